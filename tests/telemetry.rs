//! OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, the real binary
//! exports a span per RPC over OTLP/gRPC to a collector run by the test.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::Process;
use common::*;
use floodgate_client::pb::UserType;
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
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
    service: String,
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
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                        service: service.clone(),
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
    assert!(checks.iter().all(|s| s.service == "floodgate"), "{checks:?}");
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
    assert_eq!(span.service, "gate-under-test", "OTEL_SERVICE_NAME is honoured");
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "floodgate.v1.Admission"),
        ("rpc.method", "CheckCapacity"),
        ("rpc.grpc.status_code", "0"),
    ] {
        assert_eq!(span.attributes.get(key).map(String::as_str), Some(value), "{key} in {span:?}");
    }
}
