//! Housekeeping (about once a second: lease expiry, the analytics flush,
//! the cluster's breaker resets and view, alert evaluation) and the
//! Prometheus exposition, both reading the analytics windows cache.

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use super::{Facts, Operations, PublishedBreakers};
use crate::core::Millis;
use crate::core::alerts::{self, AlertInputs};
use crate::core::analytics::{self, Cells, WINDOWS};
use crate::core::capacity;
use crate::core::health;
use crate::core::window_cache::{WindowCache, settled_minute};
use crate::metrics::{Gauges, Samples};
use crate::service::ServiceError;

impl Operations {
    /// Runs about once a second: lease expiry, analytics flush, the
    /// cluster's breaker resets and view, and alert evaluation.
    pub async fn housekeeping(&self) -> Result<(), ServiceError> {
        // Each step runs even when an earlier one failed; the first error is reported.
        let now = self.floodgate.now_ms();
        let maintained = self.floodgate.maintain().await;
        let flushed = self.floodgate.flush_analytics(now).await;
        let synced = self.sync_breakers(now).await;
        let evaluated = self.evaluate_alerts().await;
        maintained.and(flushed).and(synced).and(evaluated)
    }

    /// Applies cluster-wide breaker resets and publishes this replica's view.
    async fn sync_breakers(&self, now: Millis) -> Result<(), ServiceError> {
        self.floodgate.apply_breaker_resets(now).await?;
        let published =
            PublishedBreakers { replica: self.replica_id.clone(), circuits: self.floodgate.breakers().stats(now) };
        if let Ok(json) = serde_json::to_string(&published) {
            self.floodgate.publish_breakers(&self.replica_id, json, now).await?;
        }
        Ok(())
    }

    /// Evaluates the seed's alert conditions from the background's latest
    /// snapshot (at most one refresh interval old: no extra refresh here).
    pub async fn evaluate_alerts(&self) -> Result<(), ServiceError> {
        let facts = self.facts_from(self.floodgate.snapshot());
        let now = facts.now;
        let [last_15, last_hour] = self
            .recent_windows(now, alerts::THROTTLE_SPANS)
            .await?
            .map(|(cells, span)| analytics::period_stats(&cells, span, Vec::new()));
        let load = facts.stats.load();
        let total = facts.snapshot.calculation.system_total;
        let chat = self.chat_health(&facts);
        let inputs = AlertInputs {
            open_circuits: self.floodgate.breakers().open_circuits(),
            healthy_chat_rest_processes: facts.snapshot.calculation.healthy_processes(),
            utilization_percent: capacity::utilization_percent(load, total),
            throttle_rate_15m: last_15.throttle_rate,
            throttle_rate_1h: last_hour.throttle_rate,
            requests_15m: last_15.total_requests,
            process_health_ratio: chat.ratio(),
            pressure_ratio: capacity::pressure_ratio(load, total),
            process_deficit: chat.deficit(),
            rls_reload_failure: self.floodgate.rls_rules().reload_failure(),
            capacity: total,
        };
        let mut book = self.lock_alerts();
        for event in self.floodgate.breakers().take_events() {
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
            let settled = self.floodgate.analytics(last, last - first + 1).await?;
            self.lock_windows().extend(last, &settled.minutes);
        }
        let held = self.lock_windows().through();
        let open = held.map_or(analytics::HISTORY_MINUTES, |held| now_minute.saturating_sub(held));
        let open = self.floodgate.analytics(now_minute, open.max(1)).await?;
        let cache = self.lock_windows();
        Ok(spans.map(|span| (cache.window(span, now_minute, &open.minutes), span)))
    }

    fn lock_windows(&self) -> MutexGuard<'_, WindowCache> {
        crate::sync::lock(&self.windows)
    }

    /// The Prometheus text exposition. It reads the store (queue depths,
    /// the open minutes' counts) and never writes to it.
    pub async fn metrics_text(&self) -> Result<String, ServiceError> {
        // The background's capacity snapshot (≤ one refresh old: a scrape
        // must not contend with the refresh Level 1 depends on), with the
        // queue depths read now.
        let facts = Facts { stats: self.floodgate.queue_stats().await?, ..self.facts_from(self.floodgate.snapshot()) };
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
            circuits: self
                .floodgate
                .breakers()
                .stats(facts.now)
                .into_iter()
                .map(|(name, s)| (name, s.state.level()))
                .collect(),
            processes: processes.into_iter().map(|((group, health), n)| (group, health.to_owned(), n)).collect(),
            healthy_chat_rest_processes: snapshot.calculation.healthy_processes(),
            process_health_ratio: chat.ratio(),
            process_deficit: chat.deficit(),
            throttle_ratios,
            alerts: self.alerts().into_iter().map(|a| (a.severity.as_str().to_owned(), a.code)).collect(),
        };
        let mut scrape = Registry::default();
        gauges.register(&mut scrape);
        self.floodgate.rls_rules().register_metrics(&mut scrape);
        scrape.register(
            "floodgate_local_shield_hits",
            "Level-1 and ShouldRateLimit requests refused by the local shield without a store call",
            Samples(vec![(Vec::new(), ConstCounter::new(self.floodgate.shield_hits()))]),
        );
        Ok(self.floodgate.metrics().render(scrape))
    }
}
