//! The operator surface (issue: Admin RPCs, the HTTP shim with the seed's
//! JSON, live config, metrics): the real server, a plain HTTP client and
//! the gRPC client.

use crate::common;

use std::time::Duration;

use common::http::{get, post};
use common::*;
use floodgate::config::{Profile, StoreUrl};
use floodgate_client::pb::{self, ProcessStatus, UserType};
use serde_json::Value;

fn seed(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/seed/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of the seed's example is in ours, with the seed's JSON type
/// (the seed's `null` for a closed circuit's `opened_at` must be null too).
fn assert_shape(seed: &Value, ours: &Value, path: &str, missing: &mut Vec<String>) {
    match (seed, ours) {
        (Value::Object(s), Value::Object(o)) => {
            for (key, sv) in s {
                match o.get(key) {
                    Some(ov) => assert_shape(sv, ov, &format!("{path}.{key}"), missing),
                    None => missing.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            if let (Some(sv), Some(ov)) = (s.first(), o.first()) {
                assert_shape(sv, ov, &format!("{path}[0]"), missing);
            }
        }
        (s, o) if json_type(s) != json_type(o) => {
            missing.push(format!("{path}: seed has {} {s}, we have {} {o}", json_type(s), json_type(o)))
        }
        _ => {}
    }
}

fn shape_errors(seed: &Value, ours: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    assert_shape(seed, ours, "$", &mut missing);
    missing
}

fn kb_heartbeat(instance: &str) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest { service_type: "kb".into(), ..heartbeat(instance, "kb-1", ProcessStatus::Healthy) }
}

/// Regression: the buffer was formatted to two decimals and parsed back,
/// so a buffer of 2/3 read 66.67 %.
#[tokio::test]
async fn capacity_buffer_percent_carries_the_configured_fraction_unrounded() {
    let server = start(Profile::Production, "capacity_buffer = 0.6666666666666666").await;
    let mut c = clients(&server).await;
    let system = get(server.http, "/monitoring/system", Some(ADMIN)).await.json();
    let percent = system["capacity_transparency"]["capacity_metrics"]["configuration"]["capacity_buffer_percent"]
        .as_f64()
        .expect("a number");
    assert!((percent - 200.0 / 3.0).abs() < 1e-9, "HTTP: {percent}");
    let grpc = c.admin.get_system_status(pb::GetSystemStatusRequest {}).await.unwrap().into_inner();
    let configuration = grpc.capacity_transparency.unwrap().capacity_metrics.unwrap().configuration.unwrap();
    assert!((configuration.capacity_buffer_percent - 200.0 / 3.0).abs() < 1e-9, "gRPC: {configuration:?}");
}

#[tokio::test]
async fn monitoring_documents_carry_every_key_of_the_seed_examples() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    // The seed's instance ids, so its maps can be walked key for key.
    c.workers.heartbeat(heartbeat("instance-id", "p1", ProcessStatus::Healthy)).await.unwrap();
    c.workers.heartbeat(kb_heartbeat("instance-id")).await.unwrap();
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    c.admission.enqueue_atomic(enqueue(UserType::Registered, "u")).await.unwrap();

    let system = get(server.http, "/monitoring/system", Some(ADMIN)).await;
    assert_eq!(system.status, 200, "{}", system.body);
    let system = system.json();
    assert_eq!(shape_errors(&seed("monitoring_system.json"), &system), Vec::<String>::new());
    assert_eq!(system["instances"]["instance-id"]["chat_rest"]["healthy_processes"], 1);
    assert_eq!(system["instances"]["instance-id"]["kb_rest"]["is_chat_rest"], false);
    assert_eq!(system["enhanced_queue_stats"]["weighted_max_capacity"], 28);
    assert_eq!(system["enhanced_queue_stats"]["total_queue"], 1);
    assert_eq!(system["capacity_transparency"]["capacity_metrics"]["configuration"]["capacity_buffer_percent"], 20.0);
    assert_eq!(system["circuit_breakers"]["summary"]["total_circuits"], 4);

    let breakers = get(server.http, "/admin/circuit-breakers", Some(ADMIN)).await.json();
    assert_eq!(shape_errors(&seed("circuit_breakers.json"), &breakers), Vec::<String>::new());
    assert_eq!(breakers["circuits"]["backpressure"]["opened_at"], Value::Null);

    let capacity = get(server.http, "/debug/capacity-calculation", Some(ADMIN)).await.json();
    assert_eq!(shape_errors(&seed("capacity_calculation.json"), &capacity), Vec::<String>::new());
    assert_eq!(capacity["calculations_breakdown"]["step_7_instances"], "2 instances detected");

    // The gRPC answer is the same document.
    let grpc = c.admin.get_system_status(pb::GetSystemStatusRequest {}).await.unwrap().into_inner();
    let q = grpc.enhanced_queue_stats.unwrap();
    assert_eq!((q.weighted_max_capacity, q.total_queue), (28, 1));
    assert_eq!(grpc.instances["instance-id"].groups["chat_rest"].healthy_processes, 1);
    assert_eq!(grpc.throttling_by_period["1h"].total_requests, 1);
}

/// The routes the proto annotates with `google.api.http`, read from the proto text.
fn annotated_routes() -> Vec<(String, String)> {
    let path = format!("{}/proto/floodgate/v1/admin.proto", env!("CARGO_MANIFEST_DIR"));
    let proto = std::fs::read_to_string(path).unwrap();
    let mut routes = Vec::new();
    for line in proto.lines().filter(|l| l.contains("(google.api.http)")) {
        for verb in ["get", "post", "put", "delete", "patch"] {
            if let Some(rest) = line.split(&format!("{verb}: \"")).nth(1) {
                routes.push((verb.to_uppercase(), rest.split('"').next().unwrap().to_owned()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_annotated_route_is_served() {
    let server = start(Profile::Production, "").await;
    let routes = annotated_routes();
    assert_eq!(routes.len(), 10, "{routes:?}");
    for (method, route) in routes {
        let path = route.replace("{circuit_name}", "backpressure");
        let reply = common::http::request(server.http, &method, &path, Some(ADMIN), Some("{}")).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
        let unauthenticated = common::http::request(server.http, &method, &path, None, Some("{}")).await;
        assert_eq!(unauthenticated.status, 401, "{method} {path} without a token");
    }
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(server.http, open, None).await.status, 200, "{open}");
    }
}

#[tokio::test]
async fn roles_decide_what_each_token_may_call() {
    let server = start(Profile::Production, "").await;
    for (token, status) in
        [(None, 401), (Some("forged"), 401), (Some(FRONTEND), 403), (Some(WORKER), 403), (Some(ADMIN), 200)]
    {
        for path in ["/monitoring/system", "/debug/environment", "/monitoring/alerts", "/debug/capacity-calculation"] {
            assert_eq!(get(server.http, path, token).await.status, status, "{path} with {token:?}");
        }
    }
    let client = connect(&server, None).await;
    for (token, code) in
        [(FRONTEND, floodgate_client::Code::PermissionDenied), (WORKER, floodgate_client::Code::PermissionDenied)]
    {
        let err =
            client.with_token(Some(token)).unwrap().admin().list_alerts(pb::ListAlertsRequest {}).await.unwrap_err();
        assert_eq!(err.code(), code);
    }
    let err =
        client.with_token(Some(WORKER)).unwrap().admission().check_capacity(check(UserType::Registered, "u")).await;
    assert_eq!(err.unwrap_err().code(), floodgate_client::Code::PermissionDenied);
}

#[tokio::test]
async fn tokens_never_appear_in_logs_or_the_environment() {
    let server = common::process::Process::spawn_logged("memory", "");
    let addr = server.http.expect("http address");
    for token in [Some(ADMIN), Some(FRONTEND), Some("wrong-secret-token"), None] {
        get(addr, "/monitoring/system", token).await;
    }
    let client = floodgate_client::Client::connect(&server.grpc, Some("wrong-secret-token")).await.unwrap();
    let _ = client.admission().check_capacity(check(UserType::Registered, "u")).await;
    let env = get(addr, "/debug/environment", Some(ADMIN)).await;
    assert_eq!(env.status, 200);
    let env_json = env.json();
    assert_eq!(env_json["admin_tokens"]["value"], "1 token(s), redacted");
    assert_eq!(env_json["runtime.concurrent_per_process"]["value"], "5");
    assert_eq!(env_json["runtime.concurrent_per_process"]["source"], "profile");
    // Waiting for the child blocks: keep it off the runtime that drives the client.
    let logs = tokio::task::spawn_blocking(move || server.stop_and_read_logs()).await.unwrap();
    assert!(logs.contains("floodgate listening"), "logs were captured: {logs}");
    for secret in [ADMIN, FRONTEND, WORKER, "wrong-secret-token"] {
        assert!(!env.body.contains(secret), "{secret} in /debug/environment");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn validate_names_bad_fields_and_changes_nothing() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    for (body, field) in [
        (r#"{"capacity_buffer": 1.0}"#, "capacity_buffer"),
        (r#"{"anonymous_threshold": 0.9}"#, "anonymous_threshold"),
        (r#"{"hard_limit_threshold": 1.5}"#, "hard_limit_threshold"),
        (r#"{"concurrent_per_process": 0}"#, "concurrent_per_process"),
        (r#"{"concurrent_per_process": "eight"}"#, "concurrent_per_process"),
        (r#"{"concurrent_per_proces": 8}"#, "concurrent_per_proces"),
        (r#"{"rate_limits": {"anonymous": {"burst": 0}}}"#, "rate_limits.anonymous.burst"),
    ] {
        for route in ["/admin/gateway/validate-config", "/admin/gateway/update-config"] {
            let reply = post(server.http, route, Some(ADMIN), body).await;
            assert_eq!(reply.status, 422, "{route} {body}: {}", reply.body);
            let fields: Vec<String> = reply.json()["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect();
            assert!(fields.iter().any(|f| f == field), "{body}: {fields:?} must name {field}");
        }
    }
    // The seed's example body is valid; validating it changes nothing.
    let seed_body = seed("validate_config_request.json").to_string();
    let review = post(server.http, "/admin/gateway/validate-config", Some(ADMIN), &seed_body).await;
    assert_eq!(review.status, 200, "{}", review.body);
    let review = review.json();
    assert_eq!(review["valid"], true);
    // C=8, buffer 0.15: 8 → 6 effective + 16 queue = 22.
    assert_eq!(review["preview"]["calculations_breakdown"]["step_8_system_total"], "22 total system capacity");
    let now = get(server.http, "/debug/capacity-calculation", Some(ADMIN)).await.json();
    assert_eq!(now["calculations_breakdown"]["step_8_system_total"], "14 total system capacity");
    assert_eq!(now["configuration"]["concurrent_per_process"], 5);
}

#[tokio::test]
async fn bad_http_input_is_refused_and_changes_nothing() {
    let server = start(Profile::Production, "").await;
    let malformed = post(server.http, "/admin/gateway/update-config", Some(ADMIN), "{not json").await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(malformed.json()["error"].as_str().unwrap().starts_with("body"));
    let not_object = post(server.http, "/admin/gateway/update-config", Some(ADMIN), "[1, 2]").await;
    assert_eq!(not_object.status, 422);
    let unknown = post(server.http, "/admin/circuit-breakers/nope/reset", Some(ADMIN), "").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let huge = format!("{{\"concurrent_per_process\": 8, \"pad\": \"{}\"}}", "x".repeat(100_000));
    let oversized = post(server.http, "/admin/gateway/update-config", Some(ADMIN), &huge).await;
    assert_eq!(oversized.status, 413);
    let env = get(server.http, "/debug/environment", Some(ADMIN)).await.json();
    assert_eq!(env["config_version"]["value"], "0", "no update was applied");
    assert_eq!(env["runtime.concurrent_per_process"]["value"], "5");
}

#[tokio::test]
async fn an_update_on_one_replica_is_in_force_on_another_within_a_second() {
    let redis = common::redis::RedisServer::start();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut s = settings(Profile::Production, "");
        s.store = StoreUrl::Redis(redis.url());
        replicas.push(start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await);
    }
    let mut a = clients(&replicas[0]).await;
    a.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let change = pb::ConfigChange { concurrent_per_process: Some(10), ..Default::default() };
    let preview = a.admin.validate_config(change.clone()).await.unwrap().into_inner();
    assert!(preview.valid);
    let preview_total = preview.preview.unwrap().totals.unwrap().system_total;
    assert_eq!(preview_total, 28);
    let update = a.admin.update_config(change).await.unwrap().into_inner();
    assert!(update.applied);
    assert_eq!(update.version, 1);
    assert_eq!(update.capacity.unwrap().totals.unwrap().system_total, preview_total, "preview equals applied");

    // B picks it up at its next config sync: poll for it (a condition, not a timing claim).
    let mut b_total = 0;
    for _ in 0..250 {
        b_total = replicas[1].floodgate.snapshot().calculation.system_total;
        if b_total == 28 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b_total, 28, "replica B uses the new version");
    let env = get(replicas[1].http, "/debug/environment", Some(ADMIN)).await.json();
    assert_eq!(env["runtime.concurrent_per_process"]["value"], "10");
    assert_eq!(env["runtime.concurrent_per_process"]["source"], "update");
    assert_eq!(env["config_version"]["value"], "1");
}

#[tokio::test]
async fn metrics_parse_and_move_with_traffic() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let scrape = || async {
        let reply = get(server.http, "/metrics", None).await;
        assert_eq!(reply.status, 200);
        assert!(reply.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/plain")));
        let lines = reply.body.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
    };
    let value = |scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let before = scrape().await;
    for i in 0..3 {
        c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("m{i}"))).await.unwrap();
    }
    c.admission.check_capacity(check(UserType::Anonymous, "m")).await.unwrap();
    let after = scrape().await;
    let admitted = |s: &prometheus_parse::Scrape| {
        value(s, "floodgate_decisions_total", &[("level", "2"), ("decision", "admit"), ("user_type", "registered")])
    };
    assert_eq!(admitted(&after) - admitted(&before), 3.0);
    assert_eq!(value(&after, "floodgate_decisions_total", &[("level", "1")]), 1.0);
    assert_eq!(value(&after, "floodgate_capacity_system", &[]), 14.0);
    assert_eq!(value(&after, "floodgate_load", &[]), 3.0);
    assert_eq!(value(&after, "floodgate_queue_depth", &[("user_type", "registered")]), 3.0);
    assert_eq!(value(&after, "floodgate_healthy_chat_rest_processes", &[]), 1.0);
    assert_eq!(value(&after, "floodgate_circuit_state", &[("circuit", "backpressure")]), 0.0);
    let count = |s: &prometheus_parse::Scrape| {
        s.samples
            .iter()
            .filter(|x| x.metric == "floodgate_rpc_duration_seconds" && x.labels.get("method") == Some("EnqueueAtomic"))
            .map(|x| match &x.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .sum::<f64>()
    };
    assert_eq!(count(&after) - count(&before), 3.0);
}
