//! OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, the real binary
//! exports a span per RPC over OTLP/gRPC to a collector run by the test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::Process;
use common::*;
use floodgate_client::pb::UserType;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

#[derive(Clone, Default)]
struct Collector {
    /// (span name, rpc.path attribute, service.name of the resource)
    spans: Arc<Mutex<Vec<(String, String, String)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
            .as_ref()
            .and_then(|v| v.value.as_ref())
        {
            Some(Value::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
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
                    let path = span
                        .attributes
                        .iter()
                        .find(|a| a.key == "rpc.path")
                        .map(|a| text(&a.value))
                        .unwrap_or_default();
                    spans.push((span.name, path, service.clone()));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test]
async fn rpcs_are_exported_as_spans_over_otlp() {
    let collector = Collector::default();
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
    let status = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.signal("TERM");
        server.child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(0));

    // Shutdown flushes; allow the collector a moment to record the export.
    let mut found = Vec::new();
    for _ in 0..50 {
        found = collector.spans.lock().unwrap().clone();
        if found.iter().filter(|(_, path, _)| path == "/floodgate.v1.Admission/CheckCapacity").count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checks: Vec<_> = found.iter().filter(|(_, path, _)| path == "/floodgate.v1.Admission/CheckCapacity").collect();
    assert_eq!(checks.len(), 3, "spans: {found:?}");
    assert!(checks.iter().all(|(name, _, service)| name == "rpc" && service == "floodgate"), "{checks:?}");
}
