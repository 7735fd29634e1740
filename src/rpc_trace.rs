//! Spans by the OpenTelemetry conventions: one SERVER span per call, named
//! `floodgate.v1.Admission/CheckCapacity` (gRPC, `rpc.*` attributes) or
//! `GET /admin/circuit-breakers/{circuit_name}/reset` (the HTTP shim, `http.*`
//! attributes), joined to the caller's W3C `traceparent`/`tracestate`, with
//! the decision, the user type and the status recorded on it; and a CLIENT
//! span per Redis call made inside it.
//!
//! The sampling decision comes first, from the caller's trace context and
//! the configured sampler: a call that is not sampled builds nothing (no
//! span, no attributes, no OpenTelemetry context) and passes through. The
//! tracer provider then records every span it is given, since the decision
//! has been made here. Without an exporter nothing is sampled at all, and
//! the hot path pays one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use futures_util::future::Either;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample as _};
use tonic::codegen::{Service, http};
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::core::{Decision, UserType};

/// The tracing target of call spans (the exporter's filter lets it through).
pub(crate) const CALL_TARGET: &str = "floodgate::rpc";
/// The tracing target of store spans.
pub(crate) const STORE_TARGET: &str = "floodgate::store";

static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Starts sampling calls with `sampler` (telemetry calls it once, when an
/// exporter runs); before that no call is spanned.
pub(crate) fn start_sampling(sampler: Sampler) {
    let _ = SAMPLER.set(sampler);
}

/// Whether spans are exported.
pub(crate) fn exporting() -> bool {
    SAMPLER.get().is_some()
}

/// The caller's trace context, when the request carries a valid `traceparent`.
fn caller_context(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    // The propagator is lenient (it reads `+`-prefixed and short ids as
    // numbers); a caller is joined only when its header follows the W3C rules.
    if !is_w3c_traceparent(headers.get("traceparent")?.as_bytes()) {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    context.span().span_context().is_valid().then_some(context)
}

/// Whether `value` is a `traceparent` by the W3C Trace Context rules:
/// `version-traceid-parentid-flags`, lower-case hex of 2, 32, 16 and 2
/// digits; version `ff` is invalid; all-zero ids are invalid; version 00 has
/// nothing after the flags, a later version may add `-` and more.
fn is_w3c_traceparent(value: &[u8]) -> bool {
    fn hex(field: &[u8]) -> bool {
        field.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }
    fn zero(field: &[u8]) -> bool {
        field.iter().all(|b| *b == b'0')
    }
    if value.len() < 55 || [2, 35, 52].iter().any(|&i| value[i] != b'-') {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    let fields_ok = [version, trace_id, parent_id, flags].into_iter().all(hex);
    let tail_ok = match version {
        b"00" => value.len() == 55,
        _ => value.len() == 55 || value[55] == b'-',
    };
    fields_ok && version != b"ff" && !zero(trace_id) && !zero(parent_id) && tail_ok
}

/// Whether a call is sampled: the caller's context (and trace id) when it
/// sent one, else a new trace's id, judged by `sampler` as the SDK would
/// (`parentbased_*` follow the caller's sampled flag, `traceidratio` reads
/// the trace id).
fn sampled(sampler: &Sampler, caller: Option<&opentelemetry::Context>) -> bool {
    let trace_id = match caller {
        Some(context) => context.span().span_context().trace_id(),
        None => RandomIdGenerator::default().new_trace_id(),
    };
    let result = sampler.should_sample(caller, trace_id, "", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// The current span if it is a sampled call's (Redis spans and the decision
/// attributes go on it), else None; costs nothing while not exporting.
fn sampled_call() -> Option<Span> {
    if !exporting() {
        return None;
    }
    let span = Span::current();
    span.metadata().is_some_and(|m| m.target() == CALL_TARGET).then_some(span)
}

/// A CLIENT span for one Redis call inside a sampled call, named by what it
/// sends: `EVALSHA enqueue` (the command, then the script's name, which
/// goes to `db.stored_procedure.name`), `HGETALL`, `PIPELINE`;
/// `Span::none()` otherwise.
pub(crate) fn redis_span(operation: &'static str) -> Span {
    if sampled_call().is_none() {
        return Span::none();
    }
    let (command, script) = match operation.split_once(' ') {
        Some((command, script)) => (command, Some(script)),
        None => (operation, None),
    };
    tracing::info_span!(
        target: STORE_TARGET,
        "store",
        otel.name = operation,
        otel.kind = "client",
        db.system = "redis",
        db.operation.name = command,
        db.stored_procedure.name = script,
    )
}

/// Records the decision and, when the request named one, the user type on
/// the current call's span (`floodgate.decision`, `floodgate.user_type`).
pub(crate) fn record_decision(decision: Decision, user_type: Option<UserType>) {
    if let Some(span) = sampled_call() {
        span.record("floodgate.decision", decision.as_str());
        if let Some(user_type) = user_type {
            span.record("floodgate.user_type", user_type.as_str());
        }
    }
}

/// Wraps a service (the gRPC server's routes or the HTTP router's) so that
/// each sampled call runs in its SERVER span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceLayer {
    /// `url.scheme` of HTTP spans.
    scheme: &'static str,
}

impl TraceLayer {
    /// The layer of a listener served over TLS (`tls`) or plain text.
    pub(crate) fn new(tls: bool) -> TraceLayer {
        TraceLayer { scheme: if tls { "https" } else { "http" } }
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner, scheme: self.scheme }
    }
}

/// The service [`TraceLayer`] builds.
#[derive(Debug, Clone)]
pub(crate) struct Traced<S> {
    inner: S,
    scheme: &'static str,
}

/// A sampled call's future: boxed, since only sampled calls pay for it.
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
        let Some(sampler) = SAMPLER.get() else {
            return Either::Left(self.inner.call(request));
        };
        let caller = caller_context(request.headers());
        if !sampled(sampler, caller.as_ref()) {
            return Either::Left(self.inner.call(request));
        }
        let call = CallKind::of(&request);
        let span = call.span(&request, self.scheme);
        if let Some(caller) = caller {
            let _ = span.set_parent(caller);
        }
        // The ids go on the span so JSON log lines written inside it carry them.
        let ids = span.context().span().span_context().clone();
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
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

/// A SERVER call span named `$name` with the fields every call span
/// declares: the OpenTelemetry name and kind, and the status and ids that
/// [`CallKind::record`] and the trace join fill in later (a span can only
/// record fields it was built with), around the call kind's own `$fields`
/// (each ending in a comma), in the order the span always had.
macro_rules! call_span {
    ($name:literal, $otel_name:expr, $($fields:tt)*) => {
        tracing::info_span!(
            target: CALL_TARGET,
            $name,
            otel.name = $otel_name,
            otel.kind = "server",
            otel.status_code = Empty,
            $($fields)*
            trace_id = Empty,
            span_id = Empty,
        )
    };
}

impl CallKind {
    fn of<B>(request: &http::Request<B>) -> CallKind {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc { CallKind::Grpc } else { CallKind::Http }
    }

    fn span<B>(self, request: &http::Request<B>, scheme: &'static str) -> Span {
        let path = request.uri().path();
        match self {
            CallKind::Grpc => {
                let name = path.trim_start_matches('/');
                let (service, method) = name.split_once('/').unwrap_or((name, ""));
                call_span!(
                    "rpc",
                    name,
                    rpc.system = "grpc",
                    rpc.service = service,
                    rpc.method = method,
                    rpc.grpc.status_code = Empty,
                    floodgate.decision = Empty,
                    floodgate.user_type = Empty,
                )
            }
            CallKind::Http => {
                let method = request.method().as_str();
                // The route template, never the path: a path can carry ids.
                let route = request.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str());
                let name = match route {
                    Some(route) => format!("{method} {route}"),
                    None => method.to_owned(),
                };
                call_span!(
                    "http",
                    name,
                    http.request.method = method,
                    http.route = route,
                    url.path = path,
                    url.scheme = scheme,
                    network.protocol.version = protocol_version(request.version()),
                    http.response.status_code = Empty,
                    "error.type" = Empty,
                )
            }
        }
    }

    /// Records the answer's status. A tonic error is a trailers-only
    /// response, so its `grpc-status` is in the headers; an answer without
    /// it in the headers is a success (every floodgate RPC is unary). A
    /// server span is an error only for the codes that mean the server
    /// failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
    /// UNAVAILABLE, DATA_LOSS) or an HTTP 5xx, as the conventions say.
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
                if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
                    span.record("otel.status_code", "ERROR");
                }
            }
            CallKind::Http => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", status.as_str());
                }
            }
        }
    }
}

/// `network.protocol.version` of an HTTP request.
fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
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

    fn caller(flags: &str) -> opentelemetry::Context {
        let mut headers = http::HeaderMap::new();
        let traceparent = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
        headers.insert("traceparent", traceparent.parse().expect("value"));
        caller_context(&headers).expect("a valid traceparent")
    }

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
        let remote = caller("01").span().span_context().clone();
        assert_eq!(remote.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(remote.span_id().to_string(), "00f067aa0ba902b7");
        assert!(remote.is_remote());
    }

    #[test]
    fn a_request_without_a_valid_traceparent_has_no_caller() {
        assert!(caller_context(&http::HeaderMap::new()).is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-not-a-trace-01".parse().expect("value"));
        assert!(caller_context(&headers).is_none());
    }

    #[test]
    fn a_traceparent_against_the_w3c_rules_is_not_joined() {
        // Each was adopted as a parent before: the propagator reads ids as numbers.
        for bad in [
            "00-abc-def-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // 31-digit trace id
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // '+'-prefixed trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01", // '+'-prefixed parent id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", // 3-digit flags
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper-case hex
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 with more
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", bad.parse().expect("value"));
            assert!(caller_context(&headers).is_none(), "{bad} was joined");
        }
    }

    #[test]
    fn a_later_versions_traceparent_may_carry_more_fields() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next".parse().unwrap(),
        );
        assert!(is_w3c_traceparent(headers["traceparent"].as_bytes()));
    }

    #[test]
    fn parent_based_samplers_follow_the_callers_sampled_flag() {
        let ratio = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.0)));
        assert!(sampled(&ratio, Some(&caller("01"))), "a sampled caller is sampled whatever the ratio");
        let always = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        assert!(!sampled(&always, Some(&caller("00"))), "an unsampled caller is not");
        assert!(sampled(&always, None), "a new trace is judged by the root sampler");
        assert!(!sampled(&ratio, None));
    }

    #[test]
    fn a_ratio_sampler_samples_about_its_share_of_new_traces() {
        let sampler = Sampler::TraceIdRatioBased(0.25);
        let n = (0..4_000).filter(|_| sampled(&sampler, None)).count();
        // 1,000 expected; the bounds are over 9 standard deviations wide.
        assert!((750..=1_250).contains(&n), "{n} of 4,000");
        assert_eq!(
            sampled(&sampler, Some(&caller("01"))),
            sampled(&sampler, Some(&caller("00"))),
            "the trace id decides"
        );
    }

    #[test]
    fn nothing_is_spanned_while_not_exporting() {
        assert!(!exporting());
        assert!(redis_span("EVALSHA gcra").is_none());
    }
}
