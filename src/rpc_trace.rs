//! Spans by the OpenTelemetry conventions: one SERVER span per call, named
//! `floodgate.v1.Admission/CheckCapacity` (gRPC, `rpc.*` attributes) or
//! `GET /monitoring/system` (the HTTP shim, `http.*` attributes), joined to
//! the caller's W3C `traceparent`/`tracestate`, with the status recorded
//! when the answer leaves; and CLIENT spans for store calls.
//!
//! Everything here is inert unless spans are exported ([`set_exporting`]):
//! the layer passes calls through untouched and [`store_span`] returns
//! `Span::none()`, so the hot path pays one relaxed atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::future::Either;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::{Service, http};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Turns span creation on (telemetry calls it once an exporter runs).
pub fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// A CLIENT span for one store call (`operation`, e.g. `EVALSHA enqueue`),
/// child of the current call's span; `Span::none()` when not exporting.
pub fn store_span(system: &'static str, operation: &'static str) -> Span {
    if !exporting() {
        return Span::none();
    }
    tracing::info_span!(
        target: "floodgate::store",
        "store",
        otel.name = operation,
        otel.kind = "client",
        db.system = system,
        db.operation.name = operation,
    )
}

/// Records the decision and user type on the current call's span.
pub fn record_decision(decision: &'static str, user_type: &'static str) {
    if exporting() {
        let span = Span::current();
        span.record("floodgate.decision", decision);
        span.record("floodgate.user_type", user_type);
    }
}

/// Wraps a service (the gRPC server's routes or the HTTP router) so that
/// each call runs in its SERVER span.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

/// The service [`TraceLayer`] builds.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

/// The call's future when traced: boxed, since it is only paid while spans
/// are exported.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Traced<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !exporting() {
            return Either::Left(self.inner.call(request));
        }
        let call = CallKind::of(&request);
        let span = call.span(&request);
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
        // The ids go on the span so JSON log lines written inside it carry them.
        let context = span.context();
        let ids = context.span().span_context().clone();
        if ids.is_valid() {
            span.record("trace_id", tracing::field::display(ids.trace_id()));
            span.record("span_id", tracing::field::display(ids.span_id()));
        }
        let future = self.inner.call(request);
        let recorder = span.clone();
        Either::Right(Box::pin(
            async move {
                let result = future.await;
                if let Ok(response) = &result {
                    call.record(&recorder, response);
                }
                result
            }
            .instrument(span),
        ))
    }
}

/// gRPC or plain HTTP: which conventions name and describe the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Grpc,
    Http,
}

impl CallKind {
    fn of<B>(request: &http::Request<B>) -> CallKind {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc { CallKind::Grpc } else { CallKind::Http }
    }

    fn span<B>(self, request: &http::Request<B>) -> Span {
        let path = request.uri().path();
        match self {
            CallKind::Grpc => {
                let name = path.trim_start_matches('/');
                let (service, method) = name.split_once('/').unwrap_or((name, ""));
                tracing::info_span!(
                    target: "floodgate::rpc",
                    "rpc",
                    otel.name = name,
                    otel.kind = "server",
                    otel.status_code = Empty,
                    rpc.system = "grpc",
                    rpc.service = service,
                    rpc.method = method,
                    rpc.grpc.status_code = Empty,
                    floodgate.decision = Empty,
                    floodgate.user_type = Empty,
                    trace_id = Empty,
                    span_id = Empty,
                )
            }
            CallKind::Http => {
                let method = request.method().as_str();
                tracing::info_span!(
                    target: "floodgate::rpc",
                    "http",
                    otel.name = format_args!("{method} {path}"),
                    otel.kind = "server",
                    otel.status_code = Empty,
                    http.request.method = method,
                    url.path = path,
                    http.response.status_code = Empty,
                    trace_id = Empty,
                    span_id = Empty,
                )
            }
        }
    }

    /// Records the answer's status. A tonic error is a trailers-only
    /// response, so its `grpc-status` is in the headers; an answer without
    /// it in the headers is a success (every floodgate RPC is unary).
    fn record<R>(self, span: &Span, response: &http::Response<R>) {
        match self {
            CallKind::Grpc => {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .unwrap_or(0);
                span.record("rpc.grpc.status_code", code);
                if code != 0 {
                    span.record("otel.status_code", "ERROR");
                }
            }
            CallKind::Http => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
        }
    }
}

/// W3C trace context from request headers (gRPC metadata are headers).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_calls_are_told_from_http_calls_by_content_type() {
        let grpc = http::Request::builder()
            .uri("/floodgate.v1.Admission/CheckCapacity")
            .header("content-type", "application/grpc+proto")
            .body(())
            .expect("request");
        let plain = http::Request::builder().uri("/monitoring/system").body(()).expect("request");
        assert_eq!(CallKind::of(&grpc), CallKind::Grpc);
        assert_eq!(CallKind::of(&plain), CallKind::Http);
    }

    #[test]
    fn traceparent_is_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        headers
            .insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().expect("value"));
        let context = TraceContextPropagator::new().extract(&Headers(&headers));
        let remote = context.span().span_context().clone();
        assert_eq!(remote.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(remote.span_id().to_string(), "00f067aa0ba902b7");
        assert!(remote.is_remote());
    }

    #[test]
    fn nothing_is_spanned_while_not_exporting() {
        set_exporting(false);
        assert!(store_span("redis", "EVALSHA gcra").is_none());
    }
}
