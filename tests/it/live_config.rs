//! Live runtime changes the listeners or the types cannot take are refused
//! with the field named, and change nothing: `max_payload_bytes` above the
//! gRPC message limit fixed at start, and a wrongly typed JSON value.

use crate::common;

use common::http::{get, post};
use common::*;
use floodgate::config::Profile;
use floodgate_client::pb;

/// The `field` of every error in a validate / update answer.
fn fields(reply: &serde_json::Value) -> Vec<String> {
    reply["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

/// The config version and `max_payload_bytes` in force.
async fn in_force(server: &Server) -> (String, String) {
    let env = get(server.http, "/debug/environment", Some(ADMIN)).await.json();
    let value = |key: &str| env[key]["value"].as_str().unwrap().to_owned();
    (value("config_version"), value("runtime.max_payload_bytes"))
}

#[tokio::test]
async fn raising_max_payload_bytes_live_is_refused_naming_the_field() {
    let server = start(Profile::Production, "").await;
    let before = in_force(&server).await;
    assert_eq!(before, ("0".to_owned(), "65536".to_owned()));

    let body = r#"{"max_payload_bytes": 131072}"#;
    for route in ["/admin/gateway/validate-config", "/admin/gateway/update-config"] {
        let reply = post(server.http, route, Some(ADMIN), body).await;
        assert_eq!(reply.status, 422, "{route}: {}", reply.body);
        let reply = reply.json();
        assert_eq!(fields(&reply), ["max_payload_bytes"], "{route}");
        assert!(reply["errors"][0]["message"].as_str().unwrap().contains("fixed at start"), "{reply}");
    }
    let mut admin = connect(&server, Some(ADMIN)).await.admin();
    let change = pb::ConfigChange { runtime_json: body.into(), ..Default::default() };
    let update = admin.update_config(change).await.unwrap().into_inner();
    assert!(!update.applied);
    assert_eq!(update.version, 0);
    let errors: Vec<_> = update.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(errors, ["max_payload_bytes"]);
    assert_eq!(in_force(&server).await, before, "nothing applied");

    // Lowering it is a live change like any other.
    let lower = post(server.http, "/admin/gateway/update-config", Some(ADMIN), r#"{"max_payload_bytes": 1024}"#).await;
    assert_eq!(lower.status, 200, "{}", lower.body);
    assert_eq!(in_force(&server).await, ("1".to_owned(), "1024".to_owned()));
}

#[tokio::test]
async fn a_wrongly_typed_value_names_the_field_never_the_value() {
    let server = start(Profile::Production, "").await;
    let before = in_force(&server).await;
    for (body, field) in [
        (r#"{"concurrent_per_process": -1}"#, "concurrent_per_process"),
        (r#"{"queue_multiplier": 2.5}"#, "queue_multiplier"),
        (r#"{"analytics_enabled": "yes"}"#, "analytics_enabled"),
        (r#"{"rate_limits": {"anonymous": {"burst": -5}}}"#, "rate_limits.anonymous.burst"),
    ] {
        for route in ["/admin/gateway/validate-config", "/admin/gateway/update-config"] {
            let reply = post(server.http, route, Some(ADMIN), body).await;
            assert_eq!(reply.status, 422, "{route} {body}: {}", reply.body);
            assert_eq!(fields(&reply.json()), [field], "{route} {body}");
        }
    }
    let mut admin = connect(&server, Some(ADMIN)).await.admin();
    let change = pb::ConfigChange { runtime_json: r#"{"concurrent_per_process": -1}"#.into(), ..Default::default() };
    let review = admin.validate_config(change).await.unwrap().into_inner();
    assert!(!review.valid);
    let errors: Vec<_> = review.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(errors, ["concurrent_per_process"]);
    assert_eq!(in_force(&server).await, before, "nothing applied");
}
