//! The typed API's values: the proto enums without their `UNSPECIFIED`
//! zero, the requests as small builders, and the answers with durations
//! instead of milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::pb;

/// Who the chat request is for; decides the thresholds and rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserType {
    /// Not signed in: rate-limited by session or address, refused first.
    Anonymous,
    /// Signed in.
    Registered,
    /// Privileged (admins): refused only at the hard limit.
    Privileged,
}

/// Which frontend entry point asks (analytics only: protection is equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// REST, e.g. `/landing/chat`.
    Rest,
    /// WebSocket, e.g. `/socket.io/chat`.
    Websocket,
}

/// A worker process's own view of its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessStatus {
    /// Counts fully towards the capacity.
    Healthy,
    /// Still counts, flagged in monitoring.
    Degraded,
    /// Leaves the capacity at once.
    Unhealthy,
}

/// floodgate's answer to an admission question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Go ahead (HTTP 200).
    Admit,
    /// Too many requests from this subject (HTTP 429, retry after the given time).
    RateLimited,
    /// The system is too full for this user type (HTTP 503).
    Backpressure,
    /// The backpressure circuit is open (HTTP 503).
    CircuitOpen,
    /// A decision this client does not know (a newer server): a refusal
    /// with the server's HTTP status; the raw value is kept.
    Unrecognized(i32),
}

impl From<UserType> for pb::UserType {
    fn from(t: UserType) -> Self {
        match t {
            UserType::Anonymous => pb::UserType::Anonymous,
            UserType::Registered => pb::UserType::Registered,
            UserType::Privileged => pb::UserType::Privileged,
        }
    }
}

impl UserType {
    /// The typed value of a raw proto value (None for unspecified or unknown).
    pub fn from_proto(raw: i32) -> Option<UserType> {
        match pb::UserType::try_from(raw).ok()? {
            pb::UserType::Anonymous => Some(UserType::Anonymous),
            pb::UserType::Registered => Some(UserType::Registered),
            pb::UserType::Privileged => Some(UserType::Privileged),
            pb::UserType::Unspecified => None,
        }
    }
}

impl From<Transport> for pb::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Rest => pb::Transport::Rest,
            Transport::Websocket => pb::Transport::Websocket,
        }
    }
}

impl From<ProcessStatus> for pb::ProcessStatus {
    fn from(s: ProcessStatus) -> Self {
        match s {
            ProcessStatus::Healthy => pb::ProcessStatus::Healthy,
            ProcessStatus::Degraded => pb::ProcessStatus::Degraded,
            ProcessStatus::Unhealthy => pb::ProcessStatus::Unhealthy,
        }
    }
}

impl Decision {
    /// The typed value of a raw proto value.
    pub fn from_proto(raw: i32) -> Decision {
        match pb::Decision::try_from(raw) {
            Ok(pb::Decision::Admit) => Decision::Admit,
            Ok(pb::Decision::RateLimited) => Decision::RateLimited,
            Ok(pb::Decision::Backpressure) => Decision::Backpressure,
            Ok(pb::Decision::CircuitOpen) => Decision::CircuitOpen,
            Ok(pb::Decision::Unspecified) | Err(_) => Decision::Unrecognized(raw),
        }
    }

    /// The HTTP status a frontend answers for this decision when the server
    /// gave none: 200, 429, or 503.
    fn default_http_status(self) -> u16 {
        match self {
            Decision::Admit => 200,
            Decision::RateLimited => 429,
            Decision::Backpressure | Decision::CircuitOpen | Decision::Unrecognized(_) => 503,
        }
    }
}

/// The setters both admission requests share (their protos carry the same
/// caller fields under the same names).
macro_rules! caller_setters {
    () => {
        /// The user's session.
        pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
            self.request.session_id = session_id.into();
            self
        }

        /// REST (default) or WebSocket.
        pub fn transport(mut self, transport: Transport) -> Self {
            self.request.transport = pb::Transport::from(transport).into();
            self
        }

        /// The route asked for, e.g. `/landing/chat` (admin routes let
        /// privileged users bypass the rate limit).
        pub fn route(mut self, route: impl Into<String>) -> Self {
            self.request.route = route.into();
            self
        }

        /// A request id for tracing.
        pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
            self.request.request_id = request_id.into();
            self
        }
    };
}

/// A Level 1 question (`CheckCapacity`): may this user chat right now?
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct CapacityCheck {
    pub(crate) request: pb::CheckCapacityRequest,
}

impl CapacityCheck {
    /// For `subject` (what is rate-limited: the user id, or a session id or
    /// address for anonymous users) of `user_type`, over REST by default.
    pub fn new(user_type: UserType, subject: impl Into<String>) -> Self {
        CapacityCheck {
            request: pb::CheckCapacityRequest {
                user_type: pb::UserType::from(user_type).into(),
                subject: subject.into(),
                transport: pb::Transport::Rest.into(),
                ..Default::default()
            },
        }
    }

    caller_setters!();

    /// The raw request.
    pub fn into_proto(self) -> pb::CheckCapacityRequest {
        self.request
    }
}

/// A Level 2 request (`EnqueueAtomic`): admit and enqueue the chat task in
/// one atomic step.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Enqueue {
    pub(crate) request: pb::EnqueueAtomicRequest,
}

impl Enqueue {
    /// The chat task `payload` for `subject` of `user_type`, over REST by default.
    pub fn new(user_type: UserType, subject: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Enqueue {
            request: pb::EnqueueAtomicRequest {
                user_type: pb::UserType::from(user_type).into(),
                subject: subject.into(),
                transport: pb::Transport::Rest.into(),
                payload: payload.into(),
                ..Default::default()
            },
        }
    }

    /// The key that makes this request safe to repeat: floodgate answers a
    /// key it has admitted before with the first answer and enqueues
    /// nothing. Only a request with a key is retried on `UNAVAILABLE`.
    /// Use something stable per chat message (a message id).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.request.idempotency_key = key.into();
        self
    }

    caller_setters!();

    /// The raw request.
    pub fn into_proto(self) -> pb::EnqueueAtomicRequest {
        self.request
    }
}

/// floodgate's answer to a Level 1 check: admitted, or refused with the
/// HTTP status to send and when to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    decision: Decision,
    http_status: u16,
    retry_after: Duration,
    reason: String,
    pressure_ratio: f64,
}

impl Verdict {
    fn from_parts(decision: i32, http_status: u32, retry_after_ms: u64, reason: String, pressure_ratio: f64) -> Self {
        let decision = Decision::from_proto(decision);
        let http_status = u16::try_from(http_status).ok().filter(|s| *s != 0).unwrap_or(decision.default_http_status());
        Verdict { decision, http_status, retry_after: Duration::from_millis(retry_after_ms), reason, pressure_ratio }
    }

    /// True when the user may go ahead.
    pub fn is_admitted(&self) -> bool {
        self.decision == Decision::Admit
    }

    /// The decision.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// The HTTP status a frontend sends: 200, 429 or 503.
    pub fn http_status(&self) -> u16 {
        self.http_status
    }

    /// How long the caller should wait before asking again (zero when admitted).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// An HTTP `Retry-After` value for a refusal: whole seconds, rounded
    /// up, at least 1 (0 when admitted).
    pub fn retry_after_secs(&self) -> u64 {
        if self.is_admitted() {
            return 0;
        }
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// floodgate's reason, for logs.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Load over capacity when floodgate decided (1.0 = full).
    pub fn pressure_ratio(&self) -> f64 {
        self.pressure_ratio
    }
}

impl From<pb::CheckCapacityResponse> for Verdict {
    fn from(r: pb::CheckCapacityResponse) -> Self {
        Verdict::from_parts(r.decision, r.http_status, r.retry_after_ms, r.reason, r.pressure_ratio)
    }
}

/// floodgate's answer to a Level 2 request: the [`Verdict`] and, when
/// admitted, the enqueued task.
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    verdict: Verdict,
    task_id: Option<String>,
    queue_position: u64,
}

impl Admission {
    /// True when the task was enqueued.
    pub fn is_admitted(&self) -> bool {
        self.verdict.is_admitted()
    }

    /// The HTTP status a frontend sends: 200, 429 or 503.
    pub fn http_status(&self) -> u16 {
        self.verdict.http_status()
    }

    /// How long the caller should wait before asking again (zero when admitted).
    pub fn retry_after(&self) -> Duration {
        self.verdict.retry_after()
    }

    /// The decision, reason and pressure.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The enqueued task's id (None when refused).
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// The task's 1-based position in its priority queue when enqueued.
    pub fn queue_position(&self) -> u64 {
        self.queue_position
    }
}

impl From<pb::EnqueueAtomicResponse> for Admission {
    fn from(r: pb::EnqueueAtomicResponse) -> Self {
        Admission {
            verdict: Verdict::from_parts(r.decision, r.http_status, r.retry_after_ms, r.reason, r.pressure_ratio),
            task_id: Some(r.task_id).filter(|id| !id.is_empty()),
            queue_position: r.queue_position,
        }
    }
}

/// A worker process's heartbeat: who it is, its load and capacity.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Heartbeat {
    pub(crate) request: pb::HeartbeatRequest,
}

impl Heartbeat {
    /// A chat REST process (`service_type` chat, `service_name` rest: the
    /// processes floodgate's capacity counts) that can take `capacity`
    /// chats at once, healthy, load 0.
    pub fn chat_rest(instance_id: impl Into<String>, process_id: impl Into<String>, capacity: u32) -> Self {
        Heartbeat::new(instance_id, process_id, "chat", "rest", capacity)
    }

    /// Any process, grouped in monitoring as `{service_type}_{service_name}`.
    pub fn new(
        instance_id: impl Into<String>,
        process_id: impl Into<String>,
        service_type: impl Into<String>,
        service_name: impl Into<String>,
        capacity: u32,
    ) -> Self {
        Heartbeat {
            request: pb::HeartbeatRequest {
                instance_id: instance_id.into(),
                process_id: process_id.into(),
                service_type: service_type.into(),
                service_name: service_name.into(),
                load: 0,
                capacity,
                status: pb::ProcessStatus::Healthy.into(),
            },
        }
    }

    /// The chats in hand now.
    pub fn load(mut self, load: u32) -> Self {
        self.request.load = load;
        self
    }

    /// The process's own view of its health (default healthy).
    pub fn status(mut self, status: ProcessStatus) -> Self {
        self.request.status = pb::ProcessStatus::from(status).into();
        self
    }

    /// The raw request.
    pub fn into_proto(self) -> pb::HeartbeatRequest {
        self.request
    }
}

/// floodgate's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatAck {
    /// The health floodgate now records for the process (`healthy`, `degraded`, `unhealthy`).
    pub health: String,
    /// How often floodgate expects heartbeats.
    pub interval: Duration,
    /// The system capacity T after this heartbeat.
    pub system_capacity: u64,
}

impl From<pb::HeartbeatResponse> for HeartbeatAck {
    fn from(r: pb::HeartbeatResponse) -> Self {
        HeartbeatAck {
            health: r.health,
            interval: Duration::from_millis(r.heartbeat_interval_ms),
            system_capacity: r.system_capacity,
        }
    }
}

/// A `LeaseTasks` request: up to `max_tasks` tasks, privileged first.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Lease {
    pub(crate) request: pb::LeaseTasksRequest,
}

impl Lease {
    /// One task for the process, leased for 30 s, without waiting.
    pub fn new(instance_id: impl Into<String>, process_id: impl Into<String>) -> Self {
        Lease {
            request: pb::LeaseTasksRequest {
                instance_id: instance_id.into(),
                process_id: process_id.into(),
                max_tasks: 1,
                lease_ms: 30_000,
                wait_ms: 0,
            },
        }
    }

    /// At most this many tasks.
    pub fn max_tasks(mut self, max_tasks: u32) -> Self {
        self.request.max_tasks = max_tasks;
        self
    }

    /// How long the tasks stay leased before floodgate delivers them again.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.request.lease_ms = millis(lease);
        self
    }

    /// Long poll: how long to wait for a task when none is queued. The
    /// call's deadline is the client's timeout plus this wait.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.request.wait_ms = millis(wait);
        self
    }

    /// The raw request.
    pub fn into_proto(self) -> pb::LeaseTasksRequest {
        self.request
    }
}

/// A chat task leased to this worker.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeasedTask {
    /// The task.
    pub task_id: String,
    /// This delivery's lease: complete or extend with it.
    pub lease_id: String,
    /// What the frontend enqueued.
    pub payload: Vec<u8>,
    /// Whose chat it is (None for a value this client does not know).
    pub user_type: Option<UserType>,
    /// When the frontend enqueued it.
    pub enqueued_at: SystemTime,
    /// 1 on the first delivery; more after leases expired.
    pub delivery_count: u32,
    /// When the lease expires unless completed or extended.
    pub lease_expires_at: SystemTime,
}

impl From<pb::LeasedTask> for LeasedTask {
    fn from(t: pb::LeasedTask) -> Self {
        LeasedTask {
            task_id: t.task_id,
            lease_id: t.lease_id,
            payload: t.payload,
            user_type: UserType::from_proto(t.user_type),
            enqueued_at: unix_ms(t.enqueued_at_ms),
            delivery_count: t.delivery_count,
            lease_expires_at: unix_ms(t.lease_expires_at_ms),
        }
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A Unix time in milliseconds as a `SystemTime`.
pub(crate) fn unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_response(decision: pb::Decision, http_status: u32, retry_after_ms: u64) -> pb::CheckCapacityResponse {
        pb::CheckCapacityResponse {
            decision: decision.into(),
            http_status,
            retry_after_ms,
            reason: "r".into(),
            pressure_ratio: 0.5,
        }
    }

    #[test]
    fn a_rate_limited_verdict_carries_429_and_its_retry_after_as_a_duration() {
        let v = Verdict::from(check_response(pb::Decision::RateLimited, 429, 6_000));
        assert!(!v.is_admitted());
        assert_eq!(
            (v.decision(), v.http_status(), v.retry_after()),
            (Decision::RateLimited, 429, Duration::from_secs(6))
        );
        assert_eq!(v.retry_after_secs(), 6);
    }

    #[test]
    fn retry_after_seconds_round_up_and_are_at_least_one_for_refusals() {
        let v = Verdict::from(check_response(pb::Decision::Backpressure, 503, 1_001));
        assert_eq!(v.retry_after_secs(), 2);
        let v = Verdict::from(check_response(pb::Decision::Backpressure, 503, 0));
        assert_eq!(v.retry_after_secs(), 1);
        let v = Verdict::from(check_response(pb::Decision::Admit, 200, 0));
        assert_eq!(v.retry_after_secs(), 0);
    }

    #[test]
    fn a_missing_http_status_falls_back_to_the_decisions() {
        assert_eq!(Verdict::from(check_response(pb::Decision::RateLimited, 0, 1)).http_status(), 429);
        assert_eq!(Verdict::from(check_response(pb::Decision::CircuitOpen, 0, 1)).http_status(), 503);
        assert_eq!(Verdict::from(check_response(pb::Decision::Admit, 0, 0)).http_status(), 200);
    }

    #[test]
    fn an_unknown_decision_is_a_refusal_that_keeps_its_value() {
        let v = Verdict::from(pb::CheckCapacityResponse { decision: 9, http_status: 503, ..Default::default() });
        assert_eq!(v.decision(), Decision::Unrecognized(9));
        assert!(!v.is_admitted());
        assert_eq!(v.http_status(), 503);
    }

    #[test]
    fn a_refused_admission_has_no_task() {
        let a = Admission::from(pb::EnqueueAtomicResponse {
            decision: pb::Decision::Backpressure.into(),
            http_status: 503,
            retry_after_ms: 1000,
            ..Default::default()
        });
        assert_eq!((a.is_admitted(), a.task_id(), a.http_status()), (false, None, 503));
        assert_eq!(a.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn requests_carry_the_typed_values_as_proto_values() {
        let r = Enqueue::new(UserType::Privileged, "u", b"p".to_vec())
            .transport(Transport::Websocket)
            .idempotency_key("k")
            .into_proto();
        assert_eq!(
            (r.user_type, r.transport, r.idempotency_key.as_str(), r.payload.as_slice()),
            (3, 2, "k", &b"p"[..])
        );
        let h = Heartbeat::chat_rest("i", "p", 5).load(2).status(ProcessStatus::Degraded).into_proto();
        assert_eq!(
            (h.service_type.as_str(), h.service_name.as_str(), h.capacity, h.load, h.status),
            ("chat", "rest", 5, 2, 2)
        );
    }
}
