//! The operator surface of the service (design §7, §8; the seed's
//! "Monitoring Endpoints"): system status, circuit breakers, throttling
//! analytics, alerts, live configuration, environment and metrics, plus the
//! housekeeping that keeps them current. gRPC and HTTP both serialise these
//! documents; nothing here is computed twice.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use crate::alerting::AlertView;
use crate::config::{FieldError, RuntimeConfig};
use crate::core::alerts::{self, AlertInputs};
use crate::core::analytics::{self, Cells, PeriodStats, WINDOWS};
use crate::core::breaker::Circuit;
use crate::core::breaker::{BreakerState, BreakerStats};
use crate::core::capacity::{self, Limits};
use crate::core::health::{self, ChatHealth, Health};
use crate::core::window_cache::{WindowCache, settled_minute};
use crate::core::{Millis, UserType};
use crate::error::ServiceError;
use crate::metrics::{Gauges, Samples};
use crate::protection::merge_cluster;
use crate::service::{Floodgate, Snapshot};
use crate::store::{QueueStats, Store};

mod documents;

pub use documents::*;

/// Replicas whose breaker stats are older than this drop out of the cluster view.
const CLUSTER_VIEW_MS: Millis = 30_000;

/// Facts shared by the documents, gathered once per call.
struct Facts {
    snapshot: std::sync::Arc<Snapshot>,
    stats: QueueStats,
    runtime: std::sync::Arc<RuntimeConfig>,
    now: Millis,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { if part == 0 { 0.0 } else { 100.0 } } else { part as f64 * 100.0 / whole as f64 }
}

impl Floodgate {
    /// A fresh snapshot (processes and queue depths in one refresh).
    async fn facts(&self) -> Result<Facts, ServiceError> {
        Ok(self.facts_from(self.refresh_snapshot().await?))
    }

    fn facts_from(&self, snapshot: std::sync::Arc<Snapshot>) -> Facts {
        Facts { stats: snapshot.stats, snapshot, runtime: self.runtime(), now: self.clock.now_ms() }
    }

    /// Expected / actual (not stale) / healthy chat REST processes.
    fn chat_health(&self, facts: &Facts) -> ChatHealth {
        let timing = facts.runtime.health_timing();
        ChatHealth::of(
            &facts.snapshot.processes,
            facts.runtime.processes_per_instance,
            facts.snapshot.taken_at_ms,
            timing,
        )
    }

    /// Flushes local analytics and reads the windows `1h` … `24h`.
    pub async fn throttling_stats(&self) -> Result<BTreeMap<String, PeriodStats>, ServiceError> {
        let now = self.clock.now_ms();
        self.flush_analytics(now).await?;
        let now_minute = now / 60_000;
        let view = self.store().analytics(now_minute, analytics::HISTORY_MINUTES).await?;
        Ok(WINDOWS
            .iter()
            .map(|(name, span)| {
                let cells = analytics::window_sum(&view.minutes, now_minute, *span);
                let top = analytics::window_top(&view.top_by_hour, now_minute, *span);
                ((*name).to_owned(), analytics::period_stats(&cells, *span, top))
            })
            .collect())
    }

    async fn flush_analytics(&self, now: Millis) -> Result<(), ServiceError> {
        self.recorder.flush(self.store(), now).await.map_err(|e| {
            self.metrics.store_error("analytics", &e);
            ServiceError::from(e)
        })
    }

    /// This replica's breakers merged with every other replica's published view.
    pub async fn circuit_breakers(&self) -> Result<CircuitBreakersView, ServiceError> {
        let now = self.clock.now_ms();
        let local = self.breakers.stats(now);
        let mut views = vec![local];
        for json in self.store().cluster_breakers(now.saturating_sub(CLUSTER_VIEW_MS)).await? {
            if let Ok(published) = serde_json::from_str::<PublishedBreakers>(&json)
                && published.replica != self.replica_id
            {
                views.push(published.circuits);
            }
        }
        let circuits = merge_cluster(&views);
        let count = |state| circuits.values().filter(|c| c.state == state).count() as u32;
        Ok(CircuitBreakersView {
            summary: CircuitSummary {
                total_circuits: circuits.len() as u32,
                open_circuits: count(BreakerState::Open),
                half_open_circuits: count(BreakerState::HalfOpen),
                closed_circuits: count(BreakerState::Closed),
            },
            circuits,
        })
    }

    /// Resets a circuit here and, through the store, on every replica.
    pub async fn reset_circuit_breaker(&self, name: &str) -> Result<(String, BreakerState), ServiceError> {
        let circuit = Circuit::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Circuit::ALL.iter().map(|c| c.name()).collect();
            ServiceError::NotFound(format!("no circuit named {name:?} (known: {})", known.join(", ")))
        })?;
        let generation = self.store().reset_breaker(circuit.name()).await?;
        self.breakers.mark_generation(circuit, generation);
        let now = self.clock.now_ms();
        self.breakers.reset(circuit, now);
        self.lock_alerts().info("circuit_reset", format!("circuit {name} reset by an operator"), now);
        Ok((circuit.name().to_owned(), BreakerState::Closed))
    }

    fn lock_alerts(&self) -> std::sync::MutexGuard<'_, crate::alerting::AlertBook> {
        crate::sync::lock(&self.alerts)
    }

    /// Active alerts, then recent info events.
    pub fn alerts(&self) -> Vec<AlertView> {
        self.lock_alerts().list()
    }

    /// The seed's `/monitoring/system` document.
    pub async fn system_status(&self) -> Result<SystemStatus, ServiceError> {
        let facts = self.facts().await?;
        let (snapshot, runtime) = (&facts.snapshot, &facts.runtime);
        let timing = runtime.health_timing();
        let mut instances: BTreeMap<String, BTreeMap<String, GroupStatus>> = BTreeMap::new();
        let mut global: BTreeMap<String, GlobalGroupStats> = BTreeMap::new();
        for record in &snapshot.processes {
            let health = health::classify(record, snapshot.taken_at_ms, timing);
            let group =
                instances.entry(record.instance_id.clone()).or_default().entry(record.group()).or_insert(GroupStatus {
                    processes: 0,
                    actual_processes: 0,
                    healthy_processes: 0,
                    load: 0,
                    capacity: 0,
                    health: String::new(),
                    is_chat_rest: record.is_chat_rest(),
                });
            group.actual_processes += u32::from(health != Health::Stale);
            group.healthy_processes += u32::from(health.counts_for_capacity());
            group.load += u64::from(record.load);
            group.capacity += u64::from(record.capacity);
        }
        for groups in instances.values_mut() {
            for (name, g) in groups.iter_mut() {
                g.processes = if g.is_chat_rest { runtime.processes_per_instance } else { g.actual_processes };
                g.health =
                    health::group_health(g.healthy_processes, g.actual_processes, g.processes).as_str().to_owned();
                let total = global.entry(name.clone()).or_insert(GlobalGroupStats {
                    expected: 0,
                    actual: 0,
                    healthy: 0,
                    load: 0,
                    capacity: 0,
                    utilization_percent: 0.0,
                });
                total.expected += g.processes;
                total.actual += g.actual_processes;
                total.healthy += g.healthy_processes;
                total.load += g.load;
                total.capacity += g.capacity;
            }
        }
        for total in global.values_mut() {
            total.utilization_percent = percent(total.load, total.capacity);
        }
        let load = facts.stats.load();
        let total = snapshot.calculation.system_total;
        let accepting = |u: UserType| crate::core::admission::admits(load, snapshot.limits.for_user(u));
        let chat = self.chat_health(&facts);
        let detected = snapshot.calculation.instances.len().max(1) as f64;
        let warnings = crate::core::warnings::system(&chat, capacity::pressure_ratio(load, total));
        Ok(SystemStatus {
            instances,
            global_stats: global,
            enhanced_queue_stats: EnhancedQueueStats {
                total_queue: load,
                weighted_max_capacity: total,
                pressure_ratio: capacity::pressure_ratio(load, total),
                accepting_anonymous: accepting(UserType::Anonymous),
                accepting_registered: accepting(UserType::Registered),
                accepting_privileged: accepting(UserType::Privileged),
                queued_privileged: facts.stats.queued[UserType::Privileged.index()],
                queued_registered: facts.stats.queued[UserType::Registered.index()],
                queued_anonymous: facts.stats.queued[UserType::Anonymous.index()],
                leased: facts.stats.leased,
                dead_letters: facts.stats.dead_letters,
            },
            throttling_by_period: self.throttling_stats().await?,
            capacity_transparency: CapacityTransparency {
                capacity_metrics: CapacityMetrics {
                    configuration: ConfiguredCapacity {
                        configured_concurrent_per_process: runtime.concurrent_per_process,
                        configured_processes_per_instance: runtime.processes_per_instance,
                        capacity_buffer_percent: capacity::as_percent(runtime.capacity_buffer),
                    },
                    actual_runtime: ActualRuntime {
                        actual_healthy_processes_per_instance: snapshot.calculation.healthy_processes() as f64
                            / detected,
                        actual_total_capacity_per_instance: total as f64 / detected,
                    },
                    health_metrics: HealthMetrics {
                        process_health_ratio: chat.ratio(),
                        processes_vs_configured: ProcessesVsConfigured {
                            expected_processes: chat.expected,
                            actual_processes: chat.actual,
                            process_deficit: chat.deficit(),
                        },
                    },
                },
                performance_warnings: warnings,
            },
            circuit_breakers: self.circuit_breakers().await?,
            alerts: self.alerts(),
        })
    }

    /// Validates a partial runtime config (a JSON object) and previews the
    /// capacity it would give. Changes nothing.
    pub fn review_config(&self, change: &serde_json::Value) -> ConfigReview {
        let invalid = |errors: Vec<FieldError>| ConfigReview {
            valid: false,
            errors,
            warnings: Vec::new(),
            preview: None,
            config: None,
        };
        let Some(object) = change.as_object() else {
            return invalid(vec![FieldError {
                field: "body".into(),
                message: "must be a JSON object of runtime settings".into(),
            }]);
        };
        if let Some((field, _)) = object.iter().find(|(_, v)| v.is_null()) {
            return invalid(vec![FieldError { field: field.clone(), message: "must not be null".into() }]);
        }
        let overrides = match toml::Table::try_from(change) {
            Ok(table) => table,
            Err(e) => return invalid(vec![FieldError { field: "body".into(), message: e.to_string() }]),
        };
        let current = self.runtime();
        let candidate = match current.merged(overrides) {
            Ok(candidate) => candidate,
            Err(e) => return invalid(vec![e]),
        };
        let errors = candidate.validate_live(self.payload_limit_at_start);
        if !errors.is_empty() {
            return invalid(errors);
        }
        let snapshot = self.snapshot();
        let preview = self.capacity_report_for(&candidate, &snapshot);
        let warnings = crate::core::warnings::config(&crate::core::warnings::ConfigChange {
            capacity_before: snapshot.calculation.system_total,
            capacity_after: preview.totals.system_total,
            capacity_buffer: candidate.capacity_buffer,
            anonymous_threshold: candidate.anonymous_threshold,
            hard_limit_threshold: candidate.hard_limit_threshold,
        });
        ConfigReview { valid: true, errors: Vec::new(), warnings, preview: Some(preview), config: Some(candidate) }
    }

    /// Validates, stores a new version for every replica, applies it here.
    pub async fn update_config(&self, change: &serde_json::Value) -> Result<ConfigUpdate, ServiceError> {
        let review = self.review_config(change);
        let Some(config) = review.config else {
            return Ok(ConfigUpdate {
                applied: false,
                version: 0,
                errors: review.errors,
                warnings: review.warnings,
                capacity: None,
            });
        };
        let json = serde_json::to_string(&config).map_err(|e| ServiceError::invalid("body", e.to_string()))?;
        let version = self.store().store_config(json).await?;
        self.apply_config(config, version);
        let snapshot = self.refresh_snapshot().await?;
        Ok(ConfigUpdate {
            applied: true,
            version,
            errors: Vec::new(),
            warnings: review.warnings,
            capacity: Some(self.capacity_report(&snapshot)),
        })
    }

    fn apply_config(&self, config: RuntimeConfig, version: u64) {
        self.breakers.reconfigure(&config.breakers);
        self.recorder.set_enabled(config.analytics_enabled);
        self.set_runtime(config);
        self.config_version.store(version, Ordering::Release);
        let message = format!("runtime config version {version} applied on replica {}", self.replica_id);
        self.lock_alerts().info("config_applied", message, self.clock.now_ms());
    }

    /// Picks up a config version another replica stored.
    pub async fn sync_config(&self) -> Result<(), ServiceError> {
        let Some(stored) = self.store().load_config().await? else { return Ok(()) };
        if stored.version <= self.config_version.load(Ordering::Acquire) {
            return Ok(());
        }
        match serde_json::from_str::<RuntimeConfig>(&stored.json) {
            Ok(config) if config.validate().is_empty() => self.apply_config(config, stored.version),
            Ok(_) | Err(_) => {
                tracing::error!(version = stored.version, "stored runtime config is invalid; keeping the current one")
            }
        }
        Ok(())
    }

    /// Runs about once a second: lease expiry, analytics flush, the
    /// cluster's breaker resets and view, and alert evaluation.
    pub async fn housekeeping(&self) -> Result<(), ServiceError> {
        // Each step runs even when an earlier one failed; the first error is reported.
        let now = self.clock.now_ms();
        let maintained = self.maintain().await;
        let flushed = self.flush_analytics(now).await;
        let synced = self.sync_breakers(now).await;
        let evaluated = self.evaluate_alerts().await;
        maintained.and(flushed).and(synced).and(evaluated)
    }

    /// Applies cluster-wide breaker resets and publishes this replica's view.
    async fn sync_breakers(&self, now: Millis) -> Result<(), ServiceError> {
        let generations = self.store().breaker_generations().await?;
        self.breakers.apply_generations(&generations, now);
        let published = PublishedBreakers { replica: self.replica_id.clone(), circuits: self.breakers.stats(now) };
        if let Ok(json) = serde_json::to_string(&published) {
            self.store().publish_breakers(&self.replica_id, json, now).await?;
        }
        Ok(())
    }

    /// Evaluates the seed's alert conditions from the background's latest
    /// snapshot (at most one refresh interval old: no extra refresh here).
    pub async fn evaluate_alerts(&self) -> Result<(), ServiceError> {
        let facts = self.facts_from(self.snapshot());
        let now = facts.now;
        let [last_15, last_hour] = self
            .recent_windows(now, alerts::THROTTLE_SPANS)
            .await?
            .map(|(cells, span)| analytics::period_stats(&cells, span, Vec::new()));
        let load = facts.stats.load();
        let total = facts.snapshot.calculation.system_total;
        let chat = self.chat_health(&facts);
        let inputs = AlertInputs {
            open_circuits: self.breakers.open_circuits(),
            healthy_chat_rest_processes: facts.snapshot.calculation.healthy_processes(),
            utilization_percent: capacity::utilization_percent(load, total),
            throttle_rate_15m: last_15.throttle_rate,
            throttle_rate_1h: last_hour.throttle_rate,
            requests_15m: last_15.total_requests,
            process_health_ratio: chat.ratio(),
            pressure_ratio: capacity::pressure_ratio(load, total),
            process_deficit: chat.deficit(),
        };
        let mut book = self.lock_alerts();
        for event in self.breakers.take_events() {
            let message = format!(
                "circuit {} went {} → {}",
                event.circuit.name(),
                event.transition.from.as_str(),
                event.transition.to.as_str()
            );
            book.info("circuit_transition", message, now);
        }
        let previous = self.last_alert_load.swap(load, Ordering::Relaxed);
        if alerts::is_large_load_change(previous, load, total) {
            book.info("load_change", format!("load moved from {previous} to {load} (capacity {total})"), now);
        }
        book.update(alerts::evaluate(&inputs), now);
        Ok(())
    }

    /// The `/debug/environment` document: every effective setting with its
    /// source (default, profile, file, flag_or_env, update); secrets redacted.
    pub fn environment(&self) -> BTreeMap<String, EnvironmentValue> {
        let mut env: BTreeMap<String, EnvironmentValue> = self
            .environment
            .iter()
            .map(|(k, (value, source))| (k.clone(), EnvironmentValue { value: value.clone(), source: source.clone() }))
            .collect();
        // Runtime values as in force now: a live update shows as "update".
        if let Ok(toml::Value::Table(now)) = toml::Value::try_from(&*self.runtime()) {
            let mut current = Vec::new();
            crate::config::flatten("runtime", &toml::Value::Table(now), &mut |k, v| current.push((k.to_owned(), v)));
            for (key, value) in current {
                let entry =
                    env.entry(key).or_insert(EnvironmentValue { value: String::new(), source: "profile".into() });
                if entry.value != value {
                    entry.value = value;
                    entry.source = "update".to_owned();
                }
            }
        }
        env.insert(
            "config_version".to_owned(),
            EnvironmentValue { value: self.config_version.load(Ordering::Acquire).to_string(), source: "store".into() },
        );
        env
    }

    /// The decision counts of the windows of `spans` minutes ending now,
    /// each with its span. Settled minutes come from the cache, brought up
    /// to date first (in steady state one minute a minute; 24 h once at
    /// start); only the minutes after it are read, so the cost does not
    /// grow with the history. Reads only: this replica's pending counts
    /// are the next housekeeping flush's.
    async fn recent_windows<const N: usize>(
        &self,
        now: Millis,
        spans: [u64; N],
    ) -> Result<[(Cells, u64); N], ServiceError> {
        let now_minute = now / 60_000;
        let missing = settled_minute(now).and_then(|settled| self.lock_windows().missing(settled));
        if let Some((first, last)) = missing {
            let settled = self.store().analytics(last, last - first + 1).await?;
            self.lock_windows().extend(last, &settled.minutes);
        }
        let held = self.lock_windows().through();
        let open = held.map_or(analytics::HISTORY_MINUTES, |held| now_minute.saturating_sub(held));
        let open = self.store().analytics(now_minute, open.max(1)).await?;
        let cache = self.lock_windows();
        Ok(spans.map(|span| (cache.window(span, now_minute, &open.minutes), span)))
    }

    fn lock_windows(&self) -> std::sync::MutexGuard<'_, WindowCache> {
        crate::sync::lock(&self.windows)
    }

    /// The Prometheus text exposition. It reads the store (queue depths,
    /// the open minutes' counts) and never writes to it.
    pub async fn metrics_text(&self) -> Result<String, ServiceError> {
        // The background's capacity snapshot (≤ one refresh old: a scrape
        // must not contend with the refresh Level 1 depends on), with the
        // queue depths read now.
        let facts = Facts { stats: self.store().queue_stats().await?, ..self.facts_from(self.snapshot()) };
        let (snapshot, runtime) = (&facts.snapshot, &facts.runtime);
        let timing = runtime.health_timing();
        let mut processes: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for record in &snapshot.processes {
            let health = health::classify(record, snapshot.taken_at_ms, timing);
            *processes.entry((record.group(), health.as_str())).or_default() += 1;
        }
        let load = facts.stats.load();
        let total = snapshot.calculation.system_total;
        let chat = self.chat_health(&facts);
        let windows = self.recent_windows(facts.now, WINDOWS.map(|(_, span)| span)).await?;
        let throttle_ratios = WINDOWS
            .iter()
            .zip(windows)
            .map(|((name, _), (cells, _))| ((*name).to_owned(), analytics::throttle_ratio(&cells)))
            .collect();
        let gauges = Gauges {
            capacity_system: total,
            load,
            pressure_ratio: capacity::pressure_ratio(load, total),
            utilization_ratio: capacity::utilization(load, total),
            queue_depth: facts.stats.queued,
            leased: facts.stats.leased,
            dead_letters: facts.stats.dead_letters,
            circuits: self.breakers.stats(facts.now).into_iter().map(|(name, s)| (name, s.state.level())).collect(),
            processes: processes.into_iter().map(|((group, health), n)| (group, health.to_owned(), n)).collect(),
            healthy_chat_rest_processes: snapshot.calculation.healthy_processes(),
            process_health_ratio: chat.ratio(),
            process_deficit: chat.deficit(),
            throttle_ratios,
            alerts: self.alerts().into_iter().map(|a| (a.severity.as_str().to_owned(), a.code)).collect(),
        };
        let mut scrape = Registry::default();
        gauges.register(&mut scrape);
        self.rls_rules().register_metrics(&mut scrape);
        scrape.register(
            "floodgate_local_shield_hits",
            "Level-1 and ShouldRateLimit requests refused by the local shield without a store call",
            Samples(vec![(Vec::new(), ConstCounter::new(self.shield.hits()))]),
        );
        Ok(self.metrics.render(scrape))
    }

    /// One circuit's local state name (tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn breaker_state(&self, name: &str) -> Option<&'static str> {
        self.breakers.stats(self.clock.now_ms()).get(name).map(|s| s.state.as_str())
    }

    /// Throttled sessions held locally until the next flush.
    #[cfg(any(test, feature = "test-support"))]
    pub fn pending_throttled_sessions(&self) -> usize {
        self.recorder.pending_sessions()
    }

    /// Throttled sessions the store tracks over the last 24 h.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn tracked_throttled_sessions(&self) -> usize {
        let now_minute = self.clock.now_ms() / 60_000;
        match self.store().analytics(now_minute, analytics::HISTORY_MINUTES).await {
            Ok(view) => view.top_by_hour.iter().map(|(_, top)| top.len()).sum(),
            Err(_) => 0,
        }
    }

    /// The capacity document `runtime` would give over the snapshot's processes.
    pub fn capacity_report_for(&self, runtime: &RuntimeConfig, snapshot: &Snapshot) -> CapacityReport {
        let healthy =
            health::healthy_chat_rest_by_instance(&snapshot.processes, snapshot.taken_at_ms, runtime.health_timing());
        let calculation = capacity::calculate(&runtime.capacity(), &healthy);
        let limits = Limits::from_thresholds(&runtime.thresholds(), calculation.system_total);
        let candidate = Snapshot { calculation, limits, processes: snapshot.processes.clone(), ..(*snapshot).clone() };
        self.report_from(runtime, &candidate)
    }
}

impl Floodgate {
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
                        is_chat_rest: health::is_chat_rest(&service_type, &service_name),
                        service_type,
                        service_name,
                        healthy_processes,
                    })
                    .collect();
                (instance, counts)
            })
            .collect();
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
            calculations_breakdown: calc.breakdown(),
            totals: CapacityTotals {
                healthy_chat_rest_processes: calc.healthy_processes(),
                total_concurrent: calc.total_concurrent(),
                effective: calc.effective(),
                queue_capacity: calc.queue_capacity(),
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

/// What a replica publishes for the cluster's breaker view.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PublishedBreakers {
    replica: String,
    circuits: BTreeMap<String, BreakerStats>,
}
