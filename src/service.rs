//! The floodgate service: validates domain requests, asks the core for the
//! rules and the store for state. gRPC and the HTTP shim both call this, so
//! every answer is computed once, here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{Mutex, Notify};

use crate::alerting::AlertBook;
use crate::clock::Clock;
use crate::config::{RuntimeConfig, Settings};
use crate::core::Decision;
use crate::core::admission::{self, Pressure, Verdict};
use crate::core::capacity::{self, CapacityCalculation, Limits};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::{self, Health, ProcessRecord, ProcessStatus};
use crate::core::rls::{self, RlsRequest};
use crate::core::{Millis, Transport, UserType};
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::protection::{Breakers, Circuit};
use crate::store::StoreError;
use crate::store::rate::RateTable;
use crate::store::{
    AnyStore, EnqueueOutcome, LeaseRequest, LeasedTask, NewTask, QueueStats, RateBatch, RateKey, Store,
};
use crate::throttling::Recorder;

/// Longest subject, session id, request id, task id or idempotency key.
pub const MAX_ID_BYTES: usize = 256;
/// Longest route.
pub const MAX_ROUTE_BYTES: usize = 1_024;
/// Largest load or capacity a heartbeat may report.
pub const MAX_PROCESS_LOAD: u32 = 1_000_000;

/// Records an RPC's latency in the metrics when dropped.
pub struct RpcTimer<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    started: std::time::Instant,
}

impl Drop for RpcTimer<'_> {
    fn drop(&mut self) {
        self.metrics.rpc(self.method, self.started.elapsed());
    }
}

/// The fields both admission levels share.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    pub user_type: UserType,
    pub subject: String,
    pub session_id: String,
    pub transport: Transport,
    pub route: String,
    pub request_id: String,
}

/// Level 2's request: the admission fields plus the task.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    pub admission: AdmissionRequest,
    pub payload: Vec<u8>,
    /// Empty means none.
    pub idempotency_key: String,
}

/// Level 2's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnqueueAnswer {
    pub verdict: Verdict,
    pub task_id: Option<String>,
    pub queue_position: u64,
}

/// A worker's heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatReport {
    pub instance_id: String,
    pub process_id: String,
    pub service_type: String,
    pub service_name: String,
    pub load: u32,
    pub capacity: u32,
    pub status: ProcessStatus,
}

/// What a heartbeat is answered with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeartbeatAck {
    pub health: Health,
    pub heartbeat_interval_ms: Millis,
    pub system_capacity: u64,
}

/// A worker asking for tasks.
#[derive(Debug, Clone)]
pub struct LeaseQuery {
    pub instance_id: String,
    pub process_id: String,
    pub max_tasks: u32,
    pub lease_ms: Millis,
    pub wait_ms: Millis,
}

/// The capacity view that Level 1 decides against, at most one refresh
/// interval old.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub calculation: CapacityCalculation,
    pub limits: Limits,
    pub processes: Vec<ProcessRecord>,
    /// Queue depths read with the processes (the load behind the capacity).
    pub stats: QueueStats,
    pub taken_at_ms: Millis,
}

/// One service group's healthy count on an instance (seed `actual_processes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupCount {
    pub service_type: String,
    pub service_name: String,
    pub healthy_processes: u64,
    pub is_chat_rest: bool,
}

/// The seed's `/debug/capacity-calculation` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    pub configuration: CapacityConfigurationView,
    pub actual_processes: ActualProcessesView,
    pub calculations_breakdown: BTreeMap<String, String>,
    pub totals: CapacityTotals,
}

/// `configuration` of the capacity document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityConfigurationView {
    pub concurrent_per_process: u32,
    pub processes_per_instance: u32,
    pub capacity_buffer: f64,
    pub queue_multiplier: u32,
}

/// `actual_processes` of the capacity document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActualProcessesView {
    pub instances_found: Vec<String>,
    pub processes_per_instance: BTreeMap<String, Vec<GroupCount>>,
}

/// The numbers behind the breakdown's sentences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityTotals {
    pub healthy_chat_rest_processes: u64,
    pub total_concurrent: u64,
    pub effective: u64,
    pub queue_capacity: u64,
    pub total_per_instance: Vec<u64>,
    pub instances: u64,
    pub system_total: u64,
    pub anonymous_limit: u64,
    pub registered_limit: u64,
    pub privileged_limit: u64,
}

/// The service. Cheap to share: hold it in an `Arc`.
pub struct Floodgate {
    store: AnyStore,
    runtime: ArcSwap<RuntimeConfig>,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises snapshot refreshes so an older one never overwrites a newer.
    refreshing: Mutex<()>,
    /// Level 1's rate limiter when the store fails (fail open, design §6).
    fallback_rates: RateTable,
    /// Wakes a long-polling `LeaseTasks` call when a task is enqueued here.
    task_ready: Notify,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) breakers: Breakers,
    pub(crate) recorder: Recorder,
    pub(crate) metrics: Metrics,
    pub(crate) alerts: std::sync::Mutex<AlertBook>,
    /// This replica's id (cluster breaker view, environment).
    pub(crate) replica_id: String,
    /// The runtime config version in force (0 = from profile and file).
    pub(crate) config_version: std::sync::atomic::AtomicU64,
    /// Where each setting came from, and the static settings, for GetEnvironment.
    pub(crate) environment: BTreeMap<String, (String, String)>,
    /// The load at the last alert evaluation (large load changes).
    pub(crate) last_alert_load: std::sync::atomic::AtomicU64,
    /// Envoy rate-limit service descriptor rules (TOML and live-reloaded YAML).
    rls: Arc<crate::rls_rules::RlsRules>,
}

/// Level 1 up to its rate-limit step.
enum LevelOne {
    /// Decided without the store (the backpressure circuit is open).
    Decided(Verdict),
    /// Waiting for the rate-limit outcome.
    Pending(PendingLevelOne),
}

/// What Level 1 decides with once the rate limit has answered.
struct PendingLevelOne {
    user_type: UserType,
    admin_route: bool,
    /// The user type's limit; None when the admin-route bypass applies.
    rate: Option<RateLimit>,
    pressure: Pressure,
    retry_after_ms: u64,
}

impl PendingLevelOne {
    fn verdict(&self, rate: Option<GcraOutcome>) -> Verdict {
        admission::level_one(self.user_type, self.admin_route, rate, self.pressure, self.retry_after_ms)
    }
}

fn check_id(field: &str, value: &str, required: bool) -> Result<(), ServiceError> {
    if required && value.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ServiceError::invalid(field, format!("must be at most {MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

fn check_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ServiceError> {
    if value < min || value > max {
        return Err(ServiceError::invalid(field, format!("must be {min}..={max}, got {value}")));
    }
    Ok(())
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

    fn validate(&self) -> Result<(), ServiceError> {
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
    /// A service over `store`, starting from `runtime`, with an empty
    /// capacity snapshot until the first refresh.
    pub fn new(store: AnyStore, settings: &Settings, clock: Arc<dyn Clock>) -> Floodgate {
        let runtime = settings.runtime.clone();
        let now = clock.now_ms();
        let calculation = capacity::calculate(&runtime.capacity(), &BTreeMap::new());
        let limits = Limits::from_thresholds(&runtime.thresholds(), 0);
        Floodgate {
            store,
            runtime: ArcSwap::from_pointee(runtime.clone()),
            snapshot: ArcSwap::from_pointee(Snapshot {
                calculation,
                limits,
                processes: Vec::new(),
                stats: QueueStats::default(),
                taken_at_ms: now,
            }),
            refreshing: Mutex::new(()),
            fallback_rates: RateTable::default(),
            task_ready: Notify::new(),
            clock,
            breakers: Breakers::new(&runtime.breakers),
            recorder: Recorder::new(runtime.analytics_enabled),
            metrics: Metrics::default(),
            alerts: std::sync::Mutex::new(AlertBook::default()),
            replica_id: settings.replica_id.clone(),
            config_version: std::sync::atomic::AtomicU64::new(0),
            environment: settings.environment(),
            last_alert_load: std::sync::atomic::AtomicU64::new(0),
            rls: Arc::new(crate::rls_rules::RlsRules::new(settings.rls.clone(), settings.rls_options.clone())),
        }
    }

    /// The Envoy rate-limit rules in force and their counters.
    pub fn rls_rules(&self) -> &Arc<crate::rls_rules::RlsRules> {
        &self.rls
    }

    /// The runtime config in force.
    pub fn runtime(&self) -> Arc<RuntimeConfig> {
        self.runtime.load_full()
    }

    /// Measures an RPC's latency until dropped.
    pub fn timer(&self, method: &'static str) -> RpcTimer<'_> {
        RpcTimer { metrics: &self.metrics, method, started: std::time::Instant::now() }
    }

    /// Replaces the runtime config (live update).
    pub(crate) fn set_runtime(&self, config: RuntimeConfig) {
        self.runtime.store(Arc::new(config));
    }

    /// The capacity snapshot Level 1 decides against.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The store (for housekeeping and tests).
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// Re-reads process records and recomputes capacity and limits.
    pub async fn refresh_snapshot(&self) -> Result<Arc<Snapshot>, ServiceError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let runtime = self.runtime();
        let view = self.store.processes(self.clock.now_ms(), runtime.expire_after_ms).await?;
        // Keep Level 1's load fresh too (a shared store changes under us).
        let stats = self.store.queue_stats().await?;
        let (processes, now) = (view.records, view.now_ms);
        let healthy = health::healthy_chat_rest_by_instance(&processes, now, runtime.health_timing());
        let calculation = capacity::calculate(&runtime.capacity(), &healthy);
        let limits = Limits::from_thresholds(&runtime.thresholds(), calculation.system_total);
        let ratio = capacity::pressure_ratio(self.store.cached_load(), calculation.system_total);
        let snapshot = Arc::new(Snapshot { calculation, limits, processes, stats, taken_at_ms: now });
        self.snapshot.store(snapshot.clone());
        // Queue-aware recovery: an open circuit may half-open as pressure falls.
        self.breakers.tick(self.clock.now_ms(), ratio);
        Ok(snapshot)
    }

    /// Housekeeping: lease expiry, idle keys, expired idempotency keys.
    pub async fn maintain(&self) -> Result<(), ServiceError> {
        let runtime = self.runtime();
        self.store.maintain(self.clock.now_ms(), runtime.max_deliveries).await?;
        self.fallback_rates.evict_idle(self.clock.now_us());
        Ok(())
    }

    fn pressure(&self, snapshot: &Snapshot, load: u64) -> Pressure {
        Pressure { load, system_total: snapshot.calculation.system_total, limits: snapshot.limits }
    }

    /// Level 1: the backpressure circuit, the rate limit, then immediate
    /// backpressure against the snapshot.
    pub async fn check_capacity(&self, request: &AdmissionRequest) -> Result<Verdict, ServiceError> {
        request.validate()?;
        let now_us = self.clock.now_us();
        let verdict = match self.level_one_start(request, now_us) {
            LevelOne::Decided(verdict) => verdict,
            LevelOne::Pending(pending) => {
                let rate = match pending.rate {
                    Some(limit) => Some(self.rate_limit(pending.user_type, &request.subject, limit, now_us).await),
                    None => None,
                };
                self.level_one_finish(&pending, rate, now_us / 1_000)
            }
        };
        Ok(self.decided(1, &request.admission_key(), verdict))
    }

    /// Level 1 before its rate-limit step: the backpressure circuit, the
    /// admin-route bypass, and the pressure backpressure will be judged by.
    fn level_one_start(&self, request: &AdmissionRequest, now_us: u64) -> LevelOne {
        let runtime = self.runtime.load();
        let user_type = request.user_type;
        let snapshot = self.snapshot.load();
        let pressure = self.pressure(&snapshot, self.store.cached_load());
        let ratio = capacity::pressure_ratio(pressure.load, pressure.system_total);
        // Non-privileged traffic is refused without touching the store
        // while the system is known to be overloaded.
        if user_type != UserType::Privileged && !self.breakers.allow(Circuit::Backpressure, now_us / 1_000, ratio) {
            return LevelOne::Decided(admission::circuit_open(
                runtime.breakers.backpressure.recovery_timeout_ms,
                ratio,
            ));
        }
        let admin_route = admission::bypasses_rate_limit(user_type, &request.route, &runtime.admin_route_prefix);
        LevelOne::Pending(PendingLevelOne {
            user_type,
            admin_route,
            rate: (!admin_route).then(|| runtime.rate_limits.for_user(user_type)),
            pressure,
            retry_after_ms: runtime.backpressure_retry_after_ms,
        })
    }

    /// Level 1's verdict once the rate limit answered (None when bypassed);
    /// backpressure feeds its circuit.
    fn level_one_finish(&self, pending: &PendingLevelOne, rate: Option<GcraOutcome>, now: Millis) -> Verdict {
        let verdict = pending.verdict(rate);
        // Only calls that passed the circuit report to it (privileged calls
        // bypass it), and only overload counts as failure: a refusal at the
        // anonymous or registered threshold, or a 429, is policy.
        if pending.user_type != UserType::Privileged {
            match verdict.decision {
                Decision::Backpressure if admission::is_overload(&pending.pressure) => {
                    self.breakers.failure(Circuit::Backpressure, now)
                }
                Decision::Admit => self.breakers.success(Circuit::Backpressure, now),
                _ => self.breakers.release(Circuit::Backpressure),
            }
        }
        verdict
    }

    /// Envoy's `ShouldRateLimit`. The request's descriptors are decided
    /// together: those matching a configured rule by GCRA, and a
    /// `user_type` descriptor by Level 1 exactly as [`Floodgate::check_capacity`]
    /// (and counted like it). All GCRA checks go to the store in one call
    /// and a refused request consumes nothing. Store failures are errors
    /// (UNAVAILABLE), not a local fallback: Envoy's `failure_mode_deny` decides.
    pub async fn should_rate_limit(&self, request: &RlsRequest) -> Result<rls::Answer, ServiceError> {
        let rules = self.rls.guard();
        let plan = rules
            .plan_with(request, self.rls.plan_options())
            .map_err(|e| ServiceError::invalid(&e.field, e.message))?;
        let admission = plan.admission.as_ref().map(|a| AdmissionRequest {
            user_type: a.user_type,
            subject: a.subject.clone(),
            session_id: String::new(),
            transport: a.transport,
            route: a.route.clone(),
            request_id: String::new(),
        });
        if let Some(admission) = &admission {
            admission.validate()?;
        }
        let now_us = self.clock.now_us();
        let level_one = admission.as_ref().map(|a| self.level_one_start(a, now_us));
        // A request Level 1 refuses whatever its rate limit says is decided
        // as a dry run: statuses for every descriptor, nothing consumed.
        let (admission_rate, dry_run) = match &level_one {
            None => (None, false),
            Some(LevelOne::Decided(_)) => (None, true),
            Some(LevelOne::Pending(p)) => (p.rate, p.verdict(None).decision != Decision::Admit),
        };
        let checks = plan.checks(admission_rate);
        let batch = if checks.is_empty() {
            RateBatch { outcomes: Vec::new(), now_us }
        } else {
            let keyed: Vec<(RateKey<'_>, rls::Check)> = checks
                .iter()
                .map(|(i, check)| match (&plan.descriptors[*i], &admission) {
                    (rls::Planned::Limited { counter, .. }, _) => (RateKey::Descriptor(counter), *check),
                    (_, Some(a)) => (RateKey::User(a.user_type, &a.subject), *check),
                    (_, None) => unreachable!("only limited and admission descriptors are checked"),
                })
                .collect();
            match self.rate_limit_all(&keyed, dry_run, now_us).await {
                Ok(batch) => batch,
                Err(e) => {
                    // No verdict on system health: give back a half-open probe slot.
                    if let Some(LevelOne::Pending(p)) = &level_one
                        && p.user_type != UserType::Privileged
                    {
                        self.breakers.release(Circuit::Backpressure);
                    }
                    return Err(e);
                }
            }
        };
        let verdict = level_one.map(|l| match l {
            LevelOne::Decided(verdict) => verdict,
            LevelOne::Pending(pending) => {
                let index = plan.admission.as_ref().map(|a| a.index);
                let rate = checks.iter().zip(&batch.outcomes).find(|((i, _), _)| Some(*i) == index).map(|(_, o)| *o);
                self.level_one_finish(&pending, rate, now_us / 1_000)
            }
        });
        let outcome = match (&verdict, &admission) {
            (Some(verdict), Some(a)) => {
                Some(rls::AdmissionOutcome { verdict, rate: admission_rate, user_type: a.user_type })
            }
            _ => None,
        };
        let answer = rls::answer(&plan, &checks, &batch.outcomes, batch.now_us, dry_run, outcome);
        if let (Some(verdict), Some(a)) = (verdict, &admission) {
            // Counted as what happened to the request: a descriptor over its
            // limit makes an admitted request rate-limited.
            let verdict = if answer.decision == verdict.decision {
                verdict
            } else {
                Verdict {
                    decision: answer.decision,
                    reason: "an Envoy descriptor is over its limit".to_owned(),
                    ..verdict
                }
            };
            self.decided(1, &a.admission_key(), verdict);
        }
        self.metrics.rls(&answer);
        self.rls.record(request, &plan, &answer);
        Ok(answer)
    }

    /// One request's GCRA checks behind the `rate_limiter` circuit. No
    /// local fallback: a failure is UNAVAILABLE for Envoy to judge.
    async fn rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, rls::Check)],
        dry_run: bool,
        now_us: u64,
    ) -> Result<RateBatch, ServiceError> {
        let now = now_us / 1_000;
        if !self.breakers.allow(Circuit::RateLimiter, now, 0.0) {
            return Err(ServiceError::Unavailable(StoreError::Unavailable("rate_limiter circuit open".into())));
        }
        match self.store.rate_limit_all(checks, dry_run, now_us).await {
            Ok(batch) => {
                self.breakers.success(Circuit::RateLimiter, now);
                Ok(batch)
            }
            Err(e) => {
                self.breakers.failure(Circuit::RateLimiter, now);
                self.metrics.store_error("rate_limit");
                Err(e.into())
            }
        }
    }

    /// The store's GCRA step behind the `rate_limiter` circuit; the local
    /// limiter when the store fails or the circuit is open (fail open).
    async fn rate_limit(&self, user_type: UserType, subject: &str, limit: RateLimit, now_us: u64) -> GcraOutcome {
        let now = now_us / 1_000;
        if self.breakers.allow(Circuit::RateLimiter, now, 0.0) {
            match self.store.rate_limit(user_type, subject, limit, 1, now_us).await {
                Ok(outcome) => {
                    self.breakers.success(Circuit::RateLimiter, now);
                    return outcome;
                }
                Err(e) => {
                    self.breakers.failure(Circuit::RateLimiter, now);
                    self.metrics.store_error("rate_limit");
                    tracing::warn!(error = %e, "rate-limit store failed; using the local limiter");
                }
            }
        }
        self.fallback_rates.check(user_type, subject, limit, 1, now_us)
    }

    /// Counts a decision in metrics and analytics.
    fn decided(&self, level: u8, key: &AdmissionKey<'_>, verdict: Verdict) -> Verdict {
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
        // A retry with an idempotency key must get its first answer, so the
        // circuit does not stop it (the store re-checks the limit anyway).
        let guarded = user_type != UserType::Privileged && request.idempotency_key.is_empty();
        if guarded && !self.breakers.allow(Circuit::Backpressure, now, ratio) {
            let verdict = admission::circuit_open(runtime.breakers.backpressure.recovery_timeout_ms, ratio);
            return Ok(EnqueueAnswer { verdict: self.decided(2, &key, verdict), task_id: None, queue_position: 0 });
        }
        if !self.breakers.allow(Circuit::Storage, now, ratio) {
            if guarded {
                self.breakers.release(Circuit::Backpressure);
            }
            return Err(ServiceError::Unavailable(StoreError::Unavailable("storage circuit open".into())));
        }
        let limit = snapshot.limits.for_user(user_type);
        let task = NewTask {
            user_type,
            payload: request.payload,
            idempotency_key: Some(request.idempotency_key).filter(|k| !k.is_empty()),
            idempotency_ttl_ms: runtime.idempotency_ttl_ms,
        };
        let outcome = match self.store.enqueue(task, limit, now).await {
            Ok(outcome) => {
                self.breakers.success(Circuit::Storage, now);
                outcome
            }
            Err(e) => {
                // An enqueue failure is a storage failure and an overload signal.
                self.breakers.failure(Circuit::Storage, now);
                if guarded {
                    self.breakers.failure(Circuit::Backpressure, now);
                }
                self.metrics.store_error("enqueue");
                return Err(e.into());
            }
        };
        let answer = match outcome {
            EnqueueOutcome::Admitted { task_id, queue_position, load } => {
                // One task, one waiter: a herd of long polls would each
                // run a lease (a script call on Redis) for one task.
                self.task_ready.notify_one();
                if guarded {
                    self.breakers.success(Circuit::Backpressure, now);
                }
                self.admitted(&snapshot, task_id, queue_position, load)
            }
            EnqueueOutcome::Duplicate { task_id, queue_position, load } => {
                self.admitted(&snapshot, task_id, queue_position, load)
            }
            EnqueueOutcome::Refused { load } => {
                if guarded && admission::is_overload(&self.pressure(&snapshot, load)) {
                    self.breakers.failure(Circuit::Backpressure, now);
                } else if guarded {
                    self.breakers.release(Circuit::Backpressure);
                }
                EnqueueAnswer {
                    verdict: admission::refused(
                        user_type,
                        self.pressure(&snapshot, load),
                        runtime.backpressure_retry_after_ms,
                    ),
                    task_id: None,
                    queue_position: 0,
                }
            }
        };
        let verdict = self.decided(2, &key, answer.verdict);
        Ok(EnqueueAnswer { verdict, ..answer })
    }

    fn admitted(&self, snapshot: &Snapshot, task_id: String, queue_position: u64, load: u64) -> EnqueueAnswer {
        let ratio = capacity::pressure_ratio(load, snapshot.calculation.system_total);
        EnqueueAnswer { verdict: admission::admitted(ratio), task_id: Some(task_id), queue_position }
    }

    /// Records a heartbeat and refreshes capacity at once, so a new worker
    /// is usable by the next request.
    pub async fn heartbeat(&self, report: HeartbeatReport) -> Result<HeartbeatAck, ServiceError> {
        check_id("instance_id", &report.instance_id, true)?;
        check_id("process_id", &report.process_id, true)?;
        check_id("service_type", &report.service_type, true)?;
        check_id("service_name", &report.service_name, true)?;
        let max = u64::from(MAX_PROCESS_LOAD);
        check_range("capacity", u64::from(report.capacity), 1, max)?;
        check_range("load", u64::from(report.load), 0, max)?;
        let runtime = self.runtime();
        let now = self.clock.now_ms();
        let record = ProcessRecord {
            instance_id: report.instance_id,
            process_id: report.process_id,
            service_type: report.service_type,
            service_name: report.service_name,
            load: report.load,
            capacity: report.capacity,
            status: report.status,
            last_seen_ms: now,
        };
        let health = health::classify(&record, now, runtime.health_timing());
        self.store.heartbeat(record, now).await?;
        let snapshot = self.refresh_snapshot().await?;
        Ok(HeartbeatAck {
            health,
            heartbeat_interval_ms: runtime.heartbeat_interval_ms,
            system_capacity: snapshot.calculation.system_total,
        })
    }

    /// Leases tasks, long-polling up to `wait_ms` while none is ready.
    pub async fn lease_tasks(&self, query: LeaseQuery) -> Result<Vec<LeasedTask>, ServiceError> {
        check_id("instance_id", &query.instance_id, true)?;
        check_id("process_id", &query.process_id, true)?;
        let runtime = self.runtime();
        check_range("max_tasks", u64::from(query.max_tasks), 1, u64::from(runtime.max_tasks_per_lease))?;
        check_range("lease_ms", query.lease_ms, 1, runtime.max_lease_ms)?;
        check_range("wait_ms", query.wait_ms, 0, runtime.max_wait_ms)?;
        let request = LeaseRequest {
            max_tasks: query.max_tasks,
            lease_ms: query.lease_ms,
            max_deliveries: runtime.max_deliveries,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(query.wait_ms);
        loop {
            // Register interest before looking, so an enqueue between the
            // look and the wait still wakes us.
            let ready = self.task_ready.notified();
            let tasks = match self.store.lease(request.clone(), self.clock.now_ms()).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    // A wake this call took is another waiter's now.
                    self.task_ready.notify_one();
                    return Err(e.into());
                }
            };
            if !tasks.is_empty() {
                // Pass the wake on: tasks enqueued while this call looked
                // stored only one wake between them.
                self.task_ready.notify_one();
                return Ok(tasks);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(tasks);
            }
            // Tasks enqueued through another instance (shared store) wake
            // nobody here, so poll as well.
            let poll = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(poll, ready).await;
        }
    }

    /// Completes a leased task, freeing its capacity.
    pub async fn complete_task(&self, task_id: &str, lease_id: &str) -> Result<(), ServiceError> {
        check_id("task_id", task_id, true)?;
        check_id("lease_id", lease_id, true)?;
        if self.store.complete(task_id, lease_id, self.clock.now_ms()).await? {
            Ok(())
        } else {
            Err(ServiceError::FailedPrecondition(format!(
                "task {task_id} is not leased under this lease_id (wrong, expired or already completed)"
            )))
        }
    }

    /// Extends a held lease; answers the new expiry.
    pub async fn extend_lease(&self, task_id: &str, lease_id: &str, lease_ms: Millis) -> Result<Millis, ServiceError> {
        check_id("task_id", task_id, true)?;
        check_id("lease_id", lease_id, true)?;
        check_range("lease_ms", lease_ms, 1, self.runtime().max_lease_ms)?;
        self.store.extend(task_id, lease_id, lease_ms, self.clock.now_ms()).await?.ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "task {task_id} is not leased under this lease_id (wrong or expired)"
            ))
        })
    }

    /// Queue depths, leases and dead letters.
    pub async fn queue_stats(&self) -> Result<QueueStats, ServiceError> {
        Ok(self.store.queue_stats().await?)
    }

    /// The seed's capacity-calculation document, from a fresh snapshot.
    pub async fn capacity_calculation(&self) -> Result<CapacityReport, ServiceError> {
        let snapshot = self.refresh_snapshot().await?;
        Ok(self.capacity_report(&snapshot))
    }

    /// Builds the capacity document from a snapshot.
    pub fn capacity_report(&self, snapshot: &Snapshot) -> CapacityReport {
        self.report_from(&self.runtime(), snapshot)
    }

    /// The capacity document of a snapshot computed under `runtime`.
    pub(crate) fn report_from(&self, runtime: &RuntimeConfig, snapshot: &Snapshot) -> CapacityReport {
        let calc = &snapshot.calculation;
        let now = snapshot.taken_at_ms;
        let mut groups: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
        for record in &snapshot.processes {
            let healthy = health::classify(record, now, runtime.health_timing()).counts_for_capacity();
            let count = groups
                .entry(record.instance_id.clone())
                .or_default()
                .entry((record.service_type.clone(), record.service_name.clone()))
                .or_default();
            *count += u64::from(healthy);
        }
        let processes_per_instance = groups
            .into_iter()
            .map(|(instance, groups)| {
                let counts = groups
                    .into_iter()
                    .map(|((service_type, service_name), healthy_processes)| GroupCount {
                        is_chat_rest: service_type == health::CHAT_SERVICE_TYPE
                            && service_name == health::CHAT_SERVICE_NAME,
                        service_type,
                        service_name,
                        healthy_processes,
                    })
                    .collect();
                (instance, counts)
            })
            .collect();
        let steps = calc.breakdown();
        let names = [
            "step_1_config",
            "step_2_processes",
            "step_3_total_concurrent",
            "step_4_effective",
            "step_5_queue",
            "step_6_total_per_instance",
            "step_7_instances",
            "step_8_system_total",
        ];
        let sum = |f: fn(&capacity::InstanceCapacity) -> u64| calc.instances.iter().map(f).sum();
        CapacityReport {
            configuration: CapacityConfigurationView {
                concurrent_per_process: calc.config.concurrent_per_process,
                processes_per_instance: calc.config.processes_per_instance,
                capacity_buffer: calc.config.capacity_buffer,
                queue_multiplier: calc.config.queue_multiplier,
            },
            actual_processes: ActualProcessesView {
                instances_found: calc.instances.iter().map(|i| i.instance_id.clone()).collect(),
                processes_per_instance,
            },
            calculations_breakdown: names.iter().map(|n| n.to_string()).zip(steps).collect(),
            totals: CapacityTotals {
                healthy_chat_rest_processes: calc.healthy_processes(),
                total_concurrent: sum(|i| i.total_concurrent),
                effective: sum(|i| i.effective),
                queue_capacity: sum(|i| i.queue_capacity),
                total_per_instance: calc.instances.iter().map(|i| i.total).collect(),
                instances: calc.instances.len() as u64,
                system_total: calc.system_total,
                anonymous_limit: snapshot.limits.anonymous,
                registered_limit: snapshot.limits.registered,
                privileged_limit: snapshot.limits.privileged,
            },
        }
    }
}
