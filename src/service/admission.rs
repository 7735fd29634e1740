//! Level 1 (`CheckCapacity`: circuit, rate limit, immediate backpressure)
//! and Level 2 (`EnqueueAtomic`: the atomic re-check and enqueue).

use serde::Serialize;

use super::ServiceError;
use super::{Floodgate, MAX_ROUTE_BYTES, Snapshot, check_id};
use crate::core::admission::{self, Pressure, Verdict};
use crate::core::breaker::Circuit;
use crate::core::capacity;
use crate::core::feedback::{Call, StoreOutcome, StoreStep};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::{Millis, Transport, UserType};
use crate::protection::{Permit, Permits};
use crate::store::RateKey;
use crate::store::{EnqueueOutcome, NewTask, RateLimiter, StoreError, TaskQueue};

/// The fields both admission levels share.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    /// Who the request is for.
    pub user_type: UserType,
    /// Whom the rate limit counts (user id, or IP for anonymous users).
    pub subject: String,
    /// The chat session, for throttling analytics.
    pub session_id: String,
    /// Which frontend entry point asked.
    pub transport: Transport,
    /// The route asked for (admin routes bypass for privileged users).
    pub route: String,
    /// The frontend's request id, for logs.
    pub request_id: String,
}

/// Level 2's request: the admission fields plus the task.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The admission fields.
    pub admission: AdmissionRequest,
    /// The chat task, handed to a worker as is.
    pub payload: Vec<u8>,
    /// Empty means none.
    pub idempotency_key: String,
}

/// Level 2's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnqueueAnswer {
    /// The decision.
    pub verdict: Verdict,
    /// The new task's id when admitted.
    pub task_id: Option<String>,
    /// Tasks ahead of it in its queue when admitted.
    pub queue_position: u64,
}

/// Level 1 up to its rate-limit step.
pub(super) enum LevelOne<'a> {
    /// Decided without the store (the backpressure circuit is open).
    Decided(Verdict),
    /// Waiting for the rate-limit outcome.
    Pending(PendingLevelOne<'a>),
}

/// What Level 1 decides with once the rate limit has answered.
pub(super) struct PendingLevelOne<'a> {
    /// The backpressure circuit's permit (None for privileged calls, which
    /// bypass the circuit).
    pub(super) backpressure: Option<Permit<'a>>,
    pub(super) user_type: UserType,
    admin_route: bool,
    /// The user type's limit; None when the admin-route bypass applies.
    pub(super) rate: Option<RateLimit>,
    pressure: Pressure,
    retry_after_ms: u64,
}

impl PendingLevelOne<'_> {
    pub(super) fn verdict(&self, rate: Option<GcraOutcome>) -> Verdict {
        admission::level_one(self.user_type, self.admin_route, rate, self.pressure, self.retry_after_ms)
    }
}

/// What analytics and metrics need of a request.
pub(crate) struct AdmissionKey<'a> {
    pub user_type: UserType,
    pub transport: Transport,
    /// The session (or, without one, the subject) throttling is counted for.
    pub session: &'a str,
}

impl AdmissionRequest {
    pub(crate) fn admission_key(&self) -> AdmissionKey<'_> {
        let session = if self.session_id.is_empty() { &self.subject } else { &self.session_id };
        AdmissionKey { user_type: self.user_type, transport: self.transport, session }
    }

    pub(super) fn validate(&self) -> Result<(), ServiceError> {
        check_id("subject", &self.subject, true)?;
        check_id("session_id", &self.session_id, false)?;
        check_id("request_id", &self.request_id, false)?;
        if self.route.len() > MAX_ROUTE_BYTES {
            return Err(ServiceError::invalid("route", format!("must be at most {MAX_ROUTE_BYTES} bytes")));
        }
        Ok(())
    }
}

impl Floodgate {
    /// Level 1: the backpressure circuit, the rate limit, then immediate
    /// backpressure against the snapshot.
    pub async fn check_capacity(&self, request: &AdmissionRequest) -> Result<Verdict, ServiceError> {
        request.validate()?;
        let now_us = self.clock.now_us();
        let verdict = match self.level_one_start(request, now_us) {
            LevelOne::Decided(verdict) => verdict,
            LevelOne::Pending(mut pending) => {
                let mut permits = Permits { backpressure: pending.backpressure.take(), store: None };
                let (rate, store) = match pending.rate {
                    Some(limit) => {
                        let (outcome, store) =
                            self.rate_limit(pending.user_type, &request.subject, limit, now_us, &mut permits).await;
                        (Some(outcome), store)
                    }
                    None => (None, StoreOutcome::Skipped),
                };
                self.level_one_finish(&pending, rate, store, permits, now_us / 1_000)
            }
        };
        Ok(self.decided(1, &request.admission_key(), verdict))
    }

    /// Level 1 before its rate-limit step: the backpressure circuit, the
    /// admin-route bypass, and the pressure backpressure will be judged by.
    pub(super) fn level_one_start(&self, request: &AdmissionRequest, now_us: u64) -> LevelOne<'_> {
        let runtime = self.runtime.load();
        let user_type = request.user_type;
        let snapshot = self.snapshot.load();
        let pressure = self.pressure(&snapshot, self.store.cached_load());
        let ratio = capacity::pressure_ratio(pressure.load, pressure.system_total);
        // Non-privileged traffic is refused without touching the store
        // while the system is known to be overloaded.
        let backpressure = if admission::level_one_guarded_by_circuit(user_type) {
            let Some(permit) = self.breakers.allow(Circuit::Backpressure, now_us / 1_000, ratio) else {
                return LevelOne::Decided(admission::circuit_open(
                    runtime.breakers.backpressure.recovery_timeout_ms,
                    ratio,
                ));
            };
            Some(permit)
        } else {
            None
        };
        let admin_route = admission::bypasses_rate_limit(user_type, &request.route, &runtime.admin_route_prefix);
        LevelOne::Pending(PendingLevelOne {
            backpressure,
            user_type,
            admin_route,
            rate: (!admin_route).then(|| runtime.rate_limits.for_user(user_type)),
            pressure,
            retry_after_ms: runtime.backpressure_retry_after_ms,
        })
    }

    /// Level 1's verdict once the rate limit answered (None when bypassed);
    /// the circuits the call passed are told what `core::feedback` decides.
    pub(super) fn level_one_finish(
        &self,
        pending: &PendingLevelOne<'_>,
        rate: Option<GcraOutcome>,
        store: StoreOutcome,
        permits: Permits<'_>,
        now: Millis,
    ) -> Verdict {
        let verdict = pending.verdict(rate);
        let call = Call { step: StoreStep::RateLimit, store, decided: Some((verdict.decision, pending.pressure)) };
        permits.settle(call, now);
        verdict
    }

    /// The store's GCRA step behind the `rate_limiter` circuit; the local
    /// limiter when the store fails or the circuit is open (fail open). The
    /// circuit's permit joins `permits`. A failure of one Cluster shard
    /// fails open the same way but is no verdict on the store (`ShardFailed`).
    async fn rate_limit<'a>(
        &'a self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        now_us: u64,
        permits: &mut Permits<'a>,
    ) -> (GcraOutcome, StoreOutcome) {
        let now = now_us / 1_000;
        // A refusal remembered until its retry time needs no store call
        // (the local shield: it only ever refuses what the store would).
        let key = RateKey::User(user_type, subject);
        if let Some(refused) = self.shield.refused(&key, 1, now_us) {
            return (refused, StoreOutcome::Skipped);
        }
        permits.store = self.breakers.allow(Circuit::RateLimiter, now, 0.0);
        if permits.store.is_some() {
            match self.store.rate_limit(user_type, subject, limit, 1, now_us).await {
                Ok(outcome) => {
                    self.shield.remember(&key, 1, &outcome, now_us);
                    return (outcome, StoreOutcome::Answered);
                }
                Err(e) => {
                    self.metrics.store_error("rate_limit", e.is_shard_local());
                    tracing::warn!(error = %e, "rate-limit store failed; using the local limiter");
                    let failed = StoreOutcome::failed(e.is_shard_local());
                    return (self.fallback_rates.check(user_type, subject, limit, 1, now_us), failed);
                }
            }
        }
        (self.fallback_rates.check(user_type, subject, limit, 1, now_us), StoreOutcome::Skipped)
    }

    /// Counts a decision in metrics and analytics, and records it on the
    /// call's span when the call is traced.
    pub(super) fn decided(&self, level: u8, key: &AdmissionKey<'_>, verdict: Verdict) -> Verdict {
        crate::rpc_trace::record_decision(verdict.decision, Some(key.user_type));
        self.metrics.decision(level, verdict.decision, key.user_type, key.transport);
        self.recorder.record(verdict.decision, key.user_type, key.transport, key.session);
        verdict
    }

    /// Level 2: the atomic re-check against the live load, and the enqueue.
    pub async fn enqueue_atomic(&self, request: EnqueueRequest) -> Result<EnqueueAnswer, ServiceError> {
        request.admission.validate()?;
        check_id("idempotency_key", &request.idempotency_key, false)?;
        let runtime = self.runtime.load_full();
        if request.payload.len() > runtime.max_payload_bytes as usize {
            return Err(ServiceError::invalid(
                "payload",
                format!(
                    "is {} bytes, more than max_payload_bytes {}",
                    request.payload.len(),
                    runtime.max_payload_bytes
                ),
            ));
        }
        let snapshot = self.snapshot.load_full();
        let user_type = request.admission.user_type;
        let key = request.admission.admission_key();
        let now = self.clock.now_ms();
        let ratio = capacity::pressure_ratio(self.store.cached_load(), snapshot.calculation.system_total);
        let guarded = admission::level_two_guarded_by_circuit(user_type, !request.idempotency_key.is_empty());
        let mut permits = Permits::default();
        if guarded {
            permits.backpressure = self.breakers.allow(Circuit::Backpressure, now, ratio);
            if permits.backpressure.is_none() {
                let verdict = admission::circuit_open(runtime.breakers.backpressure.recovery_timeout_ms, ratio);
                return Ok(EnqueueAnswer { verdict: self.decided(2, &key, verdict), task_id: None, queue_position: 0 });
            }
        }
        // An open storage circuit ends the call here; dropping `permits`
        // gives a backpressure probe back.
        permits.store = Some(
            self.breakers
                .allow(Circuit::Storage, now, ratio)
                .ok_or_else(|| ServiceError::Unavailable(StoreError::Unavailable("storage circuit open".into())))?,
        );
        let limit = snapshot.limits.for_user(user_type);
        let task = NewTask {
            user_type,
            payload: request.payload,
            idempotency_key: Some(request.idempotency_key).filter(|k| !k.is_empty()),
            idempotency_ttl_ms: runtime.idempotency_ttl_ms,
        };
        let outcome = match self.store.enqueue(task, limit, now).await {
            Ok(outcome) => outcome,
            Err(e) => {
                let store = StoreOutcome::failed(e.is_shard_local());
                permits.settle(Call { step: StoreStep::Enqueue, store, decided: None }, now);
                self.metrics.store_error("enqueue", e.is_shard_local());
                return Err(e.into());
            }
        };
        let (answer, load) = match outcome {
            EnqueueOutcome::Admitted { task_id, queue_position, load } => {
                // One task, one waiter: a herd of long polls would each
                // run a lease (a script call on Redis) for one task.
                self.task_ready.notify_one();
                (self.admitted(&snapshot, task_id, queue_position, load), load)
            }
            EnqueueOutcome::Duplicate { task_id, queue_position, load } => {
                (self.admitted(&snapshot, task_id, queue_position, load), load)
            }
            EnqueueOutcome::Refused { load } => {
                let verdict =
                    admission::refused(user_type, self.pressure(&snapshot, load), runtime.backpressure_retry_after_ms);
                (EnqueueAnswer { verdict, task_id: None, queue_position: 0 }, load)
            }
        };
        let decided = Some((answer.verdict.decision, self.pressure(&snapshot, load)));
        permits.settle(Call { step: StoreStep::Enqueue, store: StoreOutcome::Answered, decided }, now);
        let verdict = self.decided(2, &key, answer.verdict);
        Ok(EnqueueAnswer { verdict, ..answer })
    }

    fn admitted(&self, snapshot: &Snapshot, task_id: String, queue_position: u64, load: u64) -> EnqueueAnswer {
        let ratio = capacity::pressure_ratio(load, snapshot.calculation.system_total);
        EnqueueAnswer { verdict: admission::admitted(ratio), task_id: Some(task_id), queue_position }
    }
}
