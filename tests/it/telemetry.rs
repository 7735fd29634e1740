//! OpenTelemetry and logs: with OTEL_EXPORTER_OTLP_ENDPOINT set, the real
//! binary exports a SERVER span per sampled call (and a CLIENT span per
//! Redis call inside it) over OTLP/gRPC to a collector run by the test;
//! the telemetry env vars are honoured or refused at startup.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{BIN, Process};
use common::redis::RedisServer;
use common::*;
use floodgate_client::Client;
use floodgate_client::pb::{Decision, ProcessStatus, UserType};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// One exported span, as the test reads it.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
    /// The resource's attributes (`service.name`, OTEL_RESOURCE_ATTRIBUTES).
    resource: BTreeMap<String, String>,
}

impl Exported {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Asserts each (key, value) is an attribute of the span.
    fn assert_attributes(&self, expected: &[(&str, &str)]) {
        for (key, value) in expected {
            assert_eq!(self.attribute(key), Some(*value), "{key} in {self:?}");
        }
    }
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource: BTreeMap<String, String> = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|a| (a.key.clone(), text(&a.value)))
                .collect();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                        resource: resource.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A collector on a free port; its OTLP endpoint.
async fn start_collector(collector: &Collector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    endpoint
}

/// Stops the server (TERM flushes the exporter) and waits until the
/// collector holds `want` spans named `name`; returns them all.
async fn stop_and_collect(server: Process, collector: &Collector, name: &str, want: usize) -> Vec<Exported> {
    let status = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.signal("TERM");
        server.child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut found = Vec::new();
    for _ in 0..100 {
        found = collector.spans.lock().unwrap().clone();
        if found.iter().filter(|s| s.name == name).count() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    found
}

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn rpcs_are_exported_as_spans_over_otlp() {
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let server = Process::spawn_with_env(
        "memory",
        "",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let client = floodgate_client::Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    for i in 0..3 {
        client.admission().check_capacity(check(UserType::Registered, &format!("u{i}"))).await.unwrap();
    }
    drop(client);
    let found = stop_and_collect(server, &collector, "floodgate.v1.Admission/CheckCapacity", 3).await;
    let checks: Vec<_> = found.iter().filter(|s| s.name == "floodgate.v1.Admission/CheckCapacity").collect();
    assert_eq!(checks.len(), 3, "spans: {found:?}");
    assert!(checks.iter().all(|s| s.resource["service.name"] == "floodgate"), "{checks:?}");
}

#[tokio::test]
async fn a_call_with_a_traceparent_joins_the_callers_trace_as_a_server_span() {
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let server = Process::spawn_with_env(
        "memory",
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "gate-under-test"),
        ],
    );
    let client = floodgate_client::Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    let mut request = tonic::Request::new(check(UserType::Registered, "traced-user"));
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    client.admission().check_capacity(request).await.unwrap();
    drop(client);
    let found = stop_and_collect(server, &collector, "floodgate.v1.Admission/CheckCapacity", 1).await;
    let span = found
        .iter()
        .find(|s| s.name == "floodgate.v1.Admission/CheckCapacity")
        .unwrap_or_else(|| panic!("no CheckCapacity span in {found:?}"));
    assert_eq!(span.trace_id, PARENT_TRACE, "{span:?}");
    assert_eq!(span.parent_span_id, PARENT_SPAN, "{span:?}");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER: {span:?}");
    assert_eq!(span.resource["service.name"], "gate-under-test", "OTEL_SERVICE_NAME is honoured");
    span.assert_attributes(&[
        ("rpc.system", "grpc"),
        ("rpc.service", "floodgate.v1.Admission"),
        ("rpc.method", "CheckCapacity"),
        ("rpc.grpc.status_code", "0"),
    ]);
}

/// The env of a server exporting to `endpoint` every 100 ms, plus `extra`.
fn exporting_to<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    env.extend_from_slice(extra);
    env
}

/// `message` carrying a `traceparent` of `trace`, sampled (`01`) or not (`00`).
fn traced<T>(message: T, trace: &str, flags: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("traceparent", format!("00-{trace}-{PARENT_SPAN}-{flags}").parse().unwrap());
    request
}

/// The one span named `name` in trace `trace`.
fn span_in<'a>(found: &'a [Exported], trace: &str, name: &str) -> &'a Exported {
    let spans: Vec<_> = found.iter().filter(|s| s.trace_id == trace && s.name == name).collect();
    assert_eq!(spans.len(), 1, "one {name} in trace {trace}: {found:#?}");
    spans[0]
}

const ENQUEUE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test]
async fn a_traced_call_on_redis_carries_its_decision_and_a_client_span_per_store_call() {
    let redis = RedisServer::start();
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let server =
        Process::spawn_with_env(&redis.url(), "", &exporting_to(&endpoint, &[("OTEL_SERVICE_NAME", "gate-on-redis")]));
    let workers = Client::connect(&server.grpc, Some(WORKER)).await.unwrap();
    workers.workers().heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let client = Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    let checked = client
        .admission()
        .check_capacity(traced(check(UserType::Registered, "traced-user"), PARENT_TRACE, "01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.decision(), Decision::Admit);
    let enqueued = client
        .admission()
        .enqueue_atomic(traced(enqueue(UserType::Anonymous, "traced-user"), ENQUEUE_TRACE, "01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enqueued.decision(), Decision::Admit);
    drop((client, workers));
    let found = stop_and_collect(server, &collector, "EVALSHA enqueue", 1).await;

    let check = span_in(&found, PARENT_TRACE, "floodgate.v1.Admission/CheckCapacity");
    assert_eq!(check.parent_span_id, PARENT_SPAN, "a child of the caller's span: {check:?}");
    assert_eq!(check.kind, 2, "SPAN_KIND_SERVER: {check:?}");
    assert_eq!(check.resource["service.name"], "gate-on-redis");
    check.assert_attributes(&[
        ("rpc.system", "grpc"),
        ("rpc.service", "floodgate.v1.Admission"),
        ("rpc.method", "CheckCapacity"),
        ("rpc.grpc.status_code", "0"),
        ("floodgate.decision", "admit"),
        ("floodgate.user_type", "registered"),
    ]);
    let gcra = span_in(&found, PARENT_TRACE, "EVALSHA gcra");
    assert_eq!(gcra.parent_span_id, check.span_id, "the store call is a child of the call: {gcra:?}");
    assert_eq!(gcra.kind, 3, "SPAN_KIND_CLIENT: {gcra:?}");
    gcra.assert_attributes(&[
        ("db.system", "redis"),
        ("db.operation.name", "EVALSHA"),
        ("db.stored_procedure.name", "gcra"),
    ]);

    let level_two = span_in(&found, ENQUEUE_TRACE, "floodgate.v1.Admission/EnqueueAtomic");
    assert_eq!(level_two.attribute("floodgate.decision"), Some("admit"), "{level_two:?}");
    assert_eq!(level_two.attribute("floodgate.user_type"), Some("anonymous"), "{level_two:?}");
    let script = span_in(&found, ENQUEUE_TRACE, "EVALSHA enqueue");
    assert_eq!(script.parent_span_id, level_two.span_id, "{script:?}");
    assert_eq!(script.attribute("db.system"), Some("redis"), "{script:?}");
}

const UNSAMPLED_TRACE: &str = "5b8efff798038103d269b633813fc60c";

#[tokio::test]
async fn a_parent_based_ratio_sampler_keeps_sampled_callers_and_drops_the_rest() {
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let sampler = [("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0")];
    let server = Process::spawn_with_env("memory", "", &exporting_to(&endpoint, &sampler));
    let client = Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    // New traces at ratio 0, and a caller that did not sample: none kept.
    for i in 0..20 {
        client.admission().check_capacity(check(UserType::Registered, &format!("u{i}"))).await.unwrap();
    }
    let unsampled = traced(check(UserType::Registered, "unsampled"), UNSAMPLED_TRACE, "00");
    client.admission().check_capacity(unsampled).await.unwrap();
    // A caller that sampled: kept whatever the ratio.
    client
        .admission()
        .check_capacity(traced(check(UserType::Registered, "sampled"), PARENT_TRACE, "01"))
        .await
        .unwrap();
    drop(client);
    let found = stop_and_collect(server, &collector, "floodgate.v1.Admission/CheckCapacity", 1).await;
    let checks: Vec<_> = found.iter().filter(|s| s.name == "floodgate.v1.Admission/CheckCapacity").collect();
    assert_eq!(checks.len(), 1, "only the sampled caller's call: {checks:#?}");
    assert_eq!(checks[0].trace_id, PARENT_TRACE);
}

#[tokio::test]
async fn otel_resource_attributes_describe_the_service() {
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let attributes = [("OTEL_RESOURCE_ATTRIBUTES", "service.name=gate-from-resource,deployment.environment.name=test")];
    let server = Process::spawn_with_env("memory", "", &exporting_to(&endpoint, &attributes));
    let client = Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    client.admission().check_capacity(check(UserType::Registered, "u")).await.unwrap();
    drop(client);
    let found = stop_and_collect(server, &collector, "floodgate.v1.Admission/CheckCapacity", 1).await;
    let span = found.iter().find(|s| s.name == "floodgate.v1.Admission/CheckCapacity").expect("a span");
    assert_eq!(span.resource.get("service.name").map(String::as_str), Some("gate-from-resource"), "{span:?}");
    assert_eq!(span.resource.get("deployment.environment.name").map(String::as_str), Some("test"), "{span:?}");
}

#[tokio::test]
async fn http_routes_are_server_spans_named_by_their_route_template() {
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let server = Process::spawn_with_env("memory", "", &exporting_to(&endpoint, &[]));
    let http = server.http.expect("http address");
    let traceparent = format!("traceparent: 00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let auth = format!("Authorization: Bearer {ADMIN}");
    let reply = common::http::request_with_headers(
        http,
        "POST",
        "/admin/circuit-breakers/storage/reset",
        &[&traceparent, &auth],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let name = "POST /admin/circuit-breakers/{circuit_name}/reset";
    let found = stop_and_collect(server, &collector, name, 1).await;
    let span = span_in(&found, PARENT_TRACE, name);
    assert_eq!(span.parent_span_id, PARENT_SPAN, "{span:?}");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER: {span:?}");
    span.assert_attributes(&[
        ("http.request.method", "POST"),
        ("http.route", "/admin/circuit-breakers/{circuit_name}/reset"),
        ("url.path", "/admin/circuit-breakers/storage/reset"),
        ("url.scheme", "http"),
        ("network.protocol.version", "1.1"),
        ("http.response.status_code", "200"),
    ]);
}

#[tokio::test]
async fn json_log_lines_written_inside_a_traced_call_carry_its_trace_and_span_ids() {
    let mut redis = RedisServer::start();
    let collector = Collector::default();
    let endpoint = start_collector(&collector).await;
    let server = Process::spawn_logged_with_env(&redis.url(), "", &exporting_to(&endpoint, &[]));
    let client = Client::connect(&server.grpc, Some(FRONTEND)).await.unwrap();
    // With Redis gone the rate limit falls back to the local limiter and
    // says so in a warning, written inside the call's span.
    redis.kill();
    client.admission().check_capacity(traced(check(UserType::Registered, "u"), PARENT_TRACE, "01")).await.unwrap();
    drop(client);
    let logs = tokio::task::spawn_blocking(move || server.stop_and_read_logs()).await.unwrap();
    let warning = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"].as_str().is_some_and(|m| m.contains("rate-limit store failed")))
        .unwrap_or_else(|| panic!("no store warning in {logs}"));
    assert_eq!(warning["span"]["trace_id"], PARENT_TRACE, "{warning}");
    let span_id = warning["span"]["span_id"].as_str().unwrap_or_default();
    assert!(span_id.len() == 16 && span_id != PARENT_SPAN, "the call's own span id: {warning}");
}

#[tokio::test]
async fn text_logs_written_to_a_file_have_no_colour_codes() {
    let server = Process::spawn_logged_with_env("memory", "", &[("FLOODGATE_LOG_FORMAT", "text")]);
    let logs = tokio::task::spawn_blocking(move || server.stop_and_read_logs()).await.unwrap();
    assert!(logs.contains("floodgate listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "no ANSI escape codes: {logs:?}");
}

#[test]
fn bad_telemetry_settings_are_refused_at_startup_naming_the_variable() {
    for (env, variable, accepted) in [
        (vec![("FLOODGATE_LOG_FORMAT", "logfmt")], "FLOODGATE_LOG_FORMAT", "json or text"),
        (vec![("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        (
            vec![("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "5%")],
            "OTEL_TRACES_SAMPLER_ARG",
            "from 0 to 1",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--profile", "development", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?} must stop startup: {stderr}");
        assert!(stderr.contains(variable) && stderr.contains(accepted), "{env:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "{env:?} must not serve");
    }
}

#[test]
fn an_empty_log_format_or_a_bad_otlp_endpoint_stops_startup_naming_the_variable() {
    for (env, variable) in [
        (("FLOODGATE_LOG_FORMAT", ""), "FLOODGATE_LOG_FORMAT"),
        (("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--profile", "development", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env(env.0, env.1)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?} must stop startup: {stderr}");
        assert!(stderr.contains(variable), "{env:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "{env:?} must not serve");
    }
}
