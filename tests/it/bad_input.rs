//! Bad input tried as a hostile client would (issue 12, point 6), and
//! errors answered by their class (point 3): each gets the exact status the
//! rules give it and changes no state.

use crate::common;

use std::net::SocketAddr;

use common::*;
use floodgate::config::Profile;
use floodgate_client::pb::{self, UserType};
use tonic::Code;

/// One raw HTTP/1.1 request with exactly `headers`; answers status and body.
async fn raw_http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let reply = common::http::request_with_headers(addr, method, path, headers, body).await;
    (reply.status, reply.body)
}

async fn config_version(server: &Server) -> serde_json::Value {
    common::http::get(server.http, "/debug/environment", Some(ADMIN)).await.json()["config_version"]["value"].clone()
}

#[tokio::test]
async fn an_oversize_message_is_resource_exhausted() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", pb::ProcessStatus::Healthy)).await.unwrap();
    let mut huge = enqueue(UserType::Registered, "big");
    // Past max_payload_bytes (64 KiB) plus the envelope allowance (64 KiB).
    huge.payload = vec![b'x'; 256 * 1024];
    let err = c.admission.enqueue_atomic(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(load(&server).await, 0, "nothing was enqueued");
}

#[tokio::test]
async fn undecodable_protobuf_is_invalid_argument() {
    let server = start(Profile::Production, "").await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // Field 1 of CheckCapacityRequest is `user_type`, a varint; a string
    // there is not a CheckCapacityRequest.
    let mut request = tonic::Request::new(pb::CompleteTaskRequest { task_id: "x".into(), lease_id: "y".into() });
    request.metadata_mut().insert("authorization", format!("Bearer {FRONTEND}").parse().unwrap());
    let codec = tonic_prost::ProstCodec::<pb::CompleteTaskRequest, pb::CheckCapacityResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/floodgate.v1.Admission/CheckCapacity");
    let err = grpc.unary(request, path, codec).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn an_unknown_transport_is_refused_naming_the_field() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", pb::ProcessStatus::Healthy)).await.unwrap();
    let mut request = enqueue(UserType::Registered, "u1");
    request.transport = 7;
    let err = c.admission.enqueue_atomic(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("transport: "), "{}", err.message());
    assert_eq!(load(&server).await, 0, "nothing was enqueued");
    let mut unspecified = enqueue(UserType::Registered, "u2");
    unspecified.transport = pb::Transport::Unspecified.into();
    c.admission.enqueue_atomic(unspecified).await.expect("a frontend may leave transport unset");
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let server = start(Profile::Production, "").await;
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let auth = format!("Authorization: {scheme} {ADMIN}");
        let (status, body) = raw_http(server.http, "GET", "/monitoring/alerts", &[&auth], "").await;
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    let (status, _) =
        raw_http(server.http, "GET", "/monitoring/alerts", &[&format!("Authorization: Basic {ADMIN}")], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn json_routes_accept_a_missing_content_type_and_refuse_a_wrong_one() {
    let server = start(Profile::Production, "").await;
    let auth = format!("Authorization: Bearer {ADMIN}");
    let change = r#"{"concurrent_per_process": 8}"#;
    let (status, body) = raw_http(server.http, "POST", "/admin/gateway/validate-config", &[&auth], change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["valid"], true);
    let text = "Content-Type: text/plain";
    let (status, body) = raw_http(server.http, "POST", "/admin/gateway/update-config", &[&auth, text], change).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(config_version(&server).await, "0", "no update was applied");
}

#[tokio::test]
async fn an_undecodable_store_answer_is_internal_not_unavailable() {
    let server = start_on(Backend::Redis, Profile::Production, "").await;
    let port = server.redis.as_ref().unwrap().port;
    // A process record the processes script returns but no decoder can read.
    let field = "i1\u{1f}p1";
    common::redis::cli(port, &["HSET", "{floodgate}:v2:processes", field, "99999999999999|not json"]);
    let mut c = clients(&server).await;
    let err = c.admin.get_capacity_calculation(pb::GetCapacityCalculationRequest {}).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Internal, "internal error"), "no detail leaks");
    let reply = common::http::get(server.http, "/debug/capacity-calculation", Some(ADMIN)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json()["error"], "internal error");
}

#[tokio::test]
async fn cross_origin_posts_change_nothing_while_no_tokens_are_set() {
    let mut open = settings(Profile::Development, "");
    open.tokens = Default::default();
    let server = start_with(open, std::sync::Arc::new(floodgate::clock::SystemClock)).await;
    let change = r#"{"concurrent_per_process": 77}"#;
    let update = "/admin/gateway/update-config";
    // A body without Content-Type, as a browser sends it cross-origin without a preflight.
    let (status, body) = raw_http(server.http, "POST", update, &[], change).await;
    assert_eq!(status, 415, "{body}");
    // A page on another origin, whatever its Content-Type.
    let json = "Content-Type: application/json";
    let evil = "Origin: http://evil.example";
    let (status, body) = raw_http(server.http, "POST", update, &[json, evil], change).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = raw_http(server.http, "POST", "/admin/circuit-breakers/backpressure/reset", &[evil], "").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(config_version(&server).await, "0", "no update was applied");
    // The console on this origin, and a client that sends no Origin, may.
    let (status, body) = raw_http(server.http, "POST", update, &[json, "Origin: http://test"], change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(config_version(&server).await, "1");
    let (status, body) = raw_http(server.http, "POST", update, &[json], r#"{"concurrent_per_process": 6}"#).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_http_error_the_shim_answers_is_json() {
    let server = start(Profile::Production, "").await;
    let auth = format!("Authorization: Bearer {ADMIN}");
    let json = "Content-Type: application/json";
    let too_big = format!(r#"{{"concurrent_per_process": 5, "padding": "{}"}}"#, "x".repeat(100 * 1024));
    let cases: [(&str, &str, Vec<&str>, &str, u16); 3] = [
        ("POST", "/admin/gateway/validate-config", vec![&auth, json], &too_big, 413),
        ("GET", "/no/such/route", vec![&auth], "", 404),
        ("GET", "/admin/gateway/update-config", vec![&auth], "", 405),
    ];
    for (method, path, headers, body, want) in cases {
        let reply = common::http::request_with_headers(server.http, method, path, &headers, body).await;
        assert_eq!(reply.status, want, "{method} {path}: {}", reply.body);
        let content_type = reply.headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
        assert_eq!(content_type, Some("application/json"), "{method} {path}");
        assert!(reply.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {}", reply.body);
    }
}

#[tokio::test]
async fn process_ids_with_control_characters_are_refused_so_records_cannot_collide() {
    // The store keys a process by instance and process joined with 0x1f:
    // "a\x1fb" + "c" and "a" + "b\x1fc" would be one record.
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    for (instance, process, field) in [("a\u{1f}b", "c", "instance_id"), ("a", "b\u{1f}c", "process_id")] {
        let err = c.workers.heartbeat(heartbeat(instance, process, pb::ProcessStatus::Healthy)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{instance:?}/{process:?}");
        assert_eq!(err.message(), format!("{field}: must not contain control characters"));
    }
    let lease = pb::LeaseTasksRequest {
        instance_id: "a\u{1f}b".into(),
        process_id: "c".into(),
        max_tasks: 1,
        lease_ms: 1_000,
        wait_ms: 0,
    };
    let err = c.workers.lease_tasks(lease).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let status = c.admin.get_system_status(pb::GetSystemStatusRequest {}).await.unwrap().into_inner();
    assert!(status.instances.is_empty(), "nothing was recorded: {:?}", status.instances);
}

#[tokio::test]
async fn an_oversize_rate_limit_request_is_resource_exhausted_like_any_other() {
    // ShouldRateLimit has the documented message limit (max_payload_bytes
    // + 64 KiB, 128 KiB here), not tonic's default of 4 MiB.
    let server = start(Profile::Production, "").await;
    let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    let value = "x".repeat(256 * 1024);
    let request =
        floodgate_client::rate_limit_request("floodgate", &[&[("user_type", "registered"), ("subject", &value)]], 1);
    let err = rls.should_rate_limit(request).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}
