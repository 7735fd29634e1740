//! `floodgate_rpc_duration_seconds{service,method,grpc_code}`: a tower
//! layer around the gRPC server times every call of floodgate's RPCs
//! (authentication refusals included) and records it, by the status the
//! answer carries, in a lock-free histogram resolved at startup.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::Either;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use tonic::codegen::{Service, http};

/// The RPCs whose latency is measured, as (gRPC service, method). The
/// hot ones come first: a call finds its row by comparing names in order.
pub(crate) const RPCS: [(&str, &str); 17] = [
    ("floodgate.v1.Admission", "CheckCapacity"),
    ("floodgate.v1.Admission", "EnqueueAtomic"),
    ("envoy.service.ratelimit.v3.RateLimitService", "ShouldRateLimit"),
    ("floodgate.v1.Workers", "Heartbeat"),
    ("floodgate.v1.Workers", "LeaseTasks"),
    ("floodgate.v1.Workers", "CompleteTask"),
    ("floodgate.v1.Workers", "ExtendLease"),
    ("floodgate.v1.Admin", "GetSystemStatus"),
    ("floodgate.v1.Admin", "ListCircuitBreakers"),
    ("floodgate.v1.Admin", "ResetCircuitBreaker"),
    ("floodgate.v1.Admin", "ValidateConfig"),
    ("floodgate.v1.Admin", "UpdateConfig"),
    ("floodgate.v1.Admin", "GetCapacityCalculation"),
    ("floodgate.v1.Admin", "GetThrottlingStats"),
    ("floodgate.v1.Admin", "ListAlerts"),
    ("floodgate.v1.Admin", "GetEnvironment"),
    ("floodgate.v1.Admin", "GetRlsConfig"),
];

/// The canonical gRPC status code names, indexed by code.
pub(crate) const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const OK: usize = 0;
const CANCELLED: usize = 1;
const UNKNOWN: usize = 2;

/// Upper bounds of the latency buckets, in nanoseconds: 100 µs for a
/// Level-1 check in memory up to 30 s for a `LeaseTasks` long poll (20 s
/// at most) with room to spare.
pub(crate) const BOUNDS_NS: [u64; 18] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    20_000_000_000,
    30_000_000_000,
];

/// One series: per-bucket (not cumulative) counts, the last past every
/// bound, and the sum. The count is the buckets' sum, so a scrape racing
/// an observation never shows a count below its `+Inf` bucket.
#[derive(Debug)]
struct Series {
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Series {
    fn new() -> Series {
        Series { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }

    /// Two relaxed atomic adds.
    fn observe(&self, ns: u64) {
        let bucket = BOUNDS_NS.partition_point(|bound| *bound < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Every (RPC, status code) series, allocated once; clones share them.
#[derive(Debug, Clone)]
pub struct RpcDurations {
    series: Arc<[Series]>,
}

impl Default for RpcDurations {
    fn default() -> Self {
        RpcDurations { series: (0..RPCS.len() * GRPC_CODES.len()).map(|_| Series::new()).collect() }
    }
}

impl RpcDurations {
    /// Records one call of `RPCS[rpc]` that answered `code`.
    pub fn observe(&self, rpc: usize, code: usize, ns: u64) {
        if let Some(series) = self.series.get(rpc * GRPC_CODES.len() + code.min(GRPC_CODES.len() - 1)) {
            series.observe(ns);
        }
    }

    /// The row of `RPCS` a request path (`/package.Service/Method`) names.
    pub fn rpc_of(path: &str) -> Option<usize> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        RPCS.iter().position(|(s, m)| *m == method && *s == service)
    }
}

impl EncodeMetric for RpcDurations {
    /// Every RPC's OK series, so that dashboards see each method from the
    /// start; other codes once they have happened.
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); BOUNDS_NS.len() + 1];
        for (i, series) in self.series.iter().enumerate() {
            let ((service, method), code) = (RPCS[i / GRPC_CODES.len()], i % GRPC_CODES.len());
            let mut count = 0;
            for (j, (bound, n)) in buckets.iter_mut().enumerate() {
                *bound = BOUNDS_NS.get(j).map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
                *n = series.buckets[j].load(Ordering::Relaxed);
                count += *n;
            }
            if count == 0 && code != OK {
                continue;
            }
            let sum = series.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let labels = [("service", service), ("method", method), ("grpc_code", GRPC_CODES[code])];
            encoder.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Times the gRPC server's calls into [`RpcDurations`].
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    durations: RpcDurations,
}

impl RpcMetricsLayer {
    /// A layer recording into `durations`.
    pub fn new(durations: RpcDurations) -> RpcMetricsLayer {
        RpcMetricsLayer { durations }
    }
}

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured { inner, durations: self.durations.clone() }
    }
}

/// The service [`RpcMetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct Measured<S> {
    inner: S,
    durations: RpcDurations,
}

impl<S, B, R> Service<http::Request<B>> for Measured<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, Timed<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Health checks, reflection and unknown paths are not timed.
        let Some(rpc) = RpcDurations::rpc_of(request.uri().path()) else {
            return Either::Left(self.inner.call(request));
        };
        let timer = Timer { durations: self.durations.clone(), rpc, started: Instant::now(), code: CANCELLED };
        Either::Right(Timed { inner: self.inner.call(request), timer: Some(timer) })
    }
}

/// Records on drop: a call dropped before it answered (the client went
/// away) counts as CANCELLED.
struct Timer {
    durations: RpcDurations,
    rpc: usize,
    started: Instant,
    code: usize,
}

impl Drop for Timer {
    fn drop(&mut self) {
        let ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.durations.observe(self.rpc, self.code, ns);
    }
}

/// The status of an answer: a tonic error is a trailers-only response,
/// so its `grpc-status` is in the headers; an answer without it there is
/// a success (every timed RPC is unary).
fn code_of<R, E>(result: &Result<http::Response<R>, E>) -> usize {
    match result {
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(OK),
        Err(_) => UNKNOWN,
    }
}

pin_project_lite::pin_project! {
    /// A timed call's future.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        timer: Option<Timer>,
    }
}

impl<F, R, E> Future for Timed<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(mut timer) = this.timer.take() {
            timer.code = code_of(&result);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_rpc_and_others_none() {
        assert_eq!(RpcDurations::rpc_of("/floodgate.v1.Admission/CheckCapacity"), Some(0));
        assert_eq!(RPCS[RpcDurations::rpc_of("/floodgate.v1.Workers/LeaseTasks").unwrap()].1, "LeaseTasks");
        assert_eq!(RpcDurations::rpc_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(RpcDurations::rpc_of("/floodgate.v1.Workers/CheckCapacity"), None);
        assert_eq!(RpcDurations::rpc_of("CheckCapacity"), None);
    }

    #[test]
    fn a_duration_on_a_bound_counts_in_that_bucket() {
        let series = Series::new();
        series.observe(100_000);
        series.observe(100_001);
        series.observe(31_000_000_000);
        assert_eq!(series.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(series.buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(series.buckets[BOUNDS_NS.len()].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_codes_are_in_tonic_order() {
        assert_eq!(GRPC_CODES[tonic::Code::ResourceExhausted as usize], "RESOURCE_EXHAUSTED");
        assert_eq!(GRPC_CODES[tonic::Code::Unauthenticated as usize], "UNAUTHENTICATED");
    }
}
