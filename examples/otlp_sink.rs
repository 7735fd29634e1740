//! An OTLP/gRPC trace endpoint that accepts every export and counts the
//! spans, for benchmarks of floodgate with tracing on (scripts/bench-surfaces.sh).
//! Prints `otlp-sink listening 127.0.0.1:PORT`, then `spans=N` when it gets SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans =
            request.into_inner().resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
        self.spans.fetch_add(spans, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("otlp-sink listening {}", listener.local_addr()?);
    let sink = Sink::default();
    let mut term = signal(SignalKind::terminate())?;
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink.clone()))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
            term.recv().await;
        })
        .await?;
    println!("spans={}", sink.spans.load(Ordering::Relaxed));
    Ok(())
}
