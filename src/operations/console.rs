//! The operator console's documents (issue 13) beyond the seed's:
//! processes with heartbeat ages, the per-minute decision series, circuits
//! with their time to half-open, the queues with their dead letters, and
//! the live runtime config. `http::console` routes and serialises them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Operations;
use crate::config::RuntimeConfig;
use crate::core::analytics::{self, CELLS, Cells};
use crate::core::breaker::{BreakerStats, Circuit, half_open_in};
use crate::core::health::{self, ProcessStatus};
use crate::core::{Millis, UserType};
use crate::service::ServiceError;
use crate::service::Snapshot;
use crate::store::{AnalyticsView, DeadLetter};

/// Minutes of the throttling chart (the "last 1 h").
pub const CHART_MINUTES: u64 = 60;
/// Dead letters listed in the queues panel (newest first).
pub const DEAD_LETTERS_SHOWN: usize = 20;

/// One worker process as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessRow {
    /// The chat instance the process runs on.
    pub instance_id: String,
    /// The process, unique on its instance.
    pub process_id: String,
    /// The seed's group key (`chat_rest`).
    pub group: String,
    /// What floodgate concludes: `healthy`, `degraded`, `unhealthy`, `stale`.
    pub health: &'static str,
    /// What the process said about itself.
    pub reported_status: ProcessStatus,
    /// Tasks the process reports working on.
    pub load: u32,
    /// Tasks the process can work on at once.
    pub capacity: u32,
    /// Whether this is a chat REST process (the ones capacity counts).
    pub is_chat_rest: bool,
    /// Time from its last heartbeat to the snapshot.
    pub last_heartbeat_age_ms: Millis,
}

/// `GET /monitoring/processes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessesView {
    /// When the snapshot was read (the store's clock).
    pub observed_at_ms: Millis,
    /// Silence after which a process is stale.
    pub stale_after_ms: Millis,
    /// Every process, by instance, group and process id.
    pub processes: Vec<ProcessRow>,
}

/// One minute of decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinutePoint {
    /// Start of the minute, ms since the epoch.
    pub minute_start_ms: Millis,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused (429 and 503).
    pub refused: u64,
    /// Refused by a rate limit.
    pub rate_limit_429: u64,
    /// Refused by backpressure.
    pub backpressure_503: u64,
    /// Refused by an open circuit.
    pub circuit_open_503: u64,
}

/// `GET /monitoring/throttling/minutes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinutesView {
    /// When the series was read (floodgate's clock).
    pub now_ms: Millis,
    /// Oldest first, one point per minute (zeros included) up to the current one.
    pub minutes: Vec<MinutePoint>,
}

/// One circuit with its recovery timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitRecovery {
    /// The circuit's fields in the cluster's view.
    #[serde(flatten)]
    pub stats: BreakerStats,
    /// How long an open circuit waits before it goes half-open.
    pub recovery_timeout_ms: Millis,
    /// Until an open circuit lets probes through (0 when due); None unless open.
    pub half_open_in_ms: Option<Millis>,
}

/// `GET /monitoring/circuit-breakers/recovery`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryView {
    /// When the countdowns were computed (floodgate's clock).
    pub now_ms: Millis,
    /// Each circuit by name.
    pub circuits: BTreeMap<String, CircuitRecovery>,
}

/// `GET /monitoring/queues`: depths, each class's oldest task age (read
/// in the same store call as the depths) and the dead letters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuesView {
    /// When the ages were measured (floodgate's clock).
    pub now_ms: Millis,
    /// Waiting tasks per user type (`anonymous`, `registered`, `privileged`).
    pub queued: BTreeMap<&'static str, u64>,
    /// How long the task at the head of each class's queue (the next one
    /// leased) has waited; null when the queue is empty.
    pub oldest_task_age_ms: BTreeMap<&'static str, Option<Millis>>,
    /// Tasks leased to a worker and not yet completed.
    pub leased: u64,
    /// Tasks dead-lettered after too many deliveries.
    pub dead_letters: u64,
    /// The newest dead letters (at most [`DEAD_LETTERS_SHOWN`]).
    pub recent_dead_letters: Vec<DeadLetter>,
}

/// `GET /monitoring/runtime-config`: the settings in force and their version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeConfigView {
    /// The runtime config in force.
    pub config: RuntimeConfig,
    /// Its version, as `/debug/environment`'s `config_version` shows it
    /// (a string: "0" until a live update).
    pub version: String,
}

/// Every process of `snapshot`, classified as capacity classifies it.
fn process_rows(snapshot: &Snapshot, timing: health::HealthTiming) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = snapshot
        .processes
        .iter()
        .map(|record| ProcessRow {
            instance_id: record.instance_id.clone(),
            process_id: record.process_id.clone(),
            group: record.group(),
            health: health::classify(record, snapshot.taken_at_ms, timing).as_str(),
            reported_status: record.status,
            load: record.load,
            capacity: record.capacity,
            is_chat_rest: record.is_chat_rest(),
            last_heartbeat_age_ms: snapshot.taken_at_ms.saturating_sub(record.last_seen_ms),
        })
        .collect();
    rows.sort_by(|a, b| (&a.instance_id, &a.group, &a.process_id).cmp(&(&b.instance_id, &b.group, &b.process_id)));
    rows
}

/// The last `span` minutes up to `now_minute`, oldest first, every minute
/// present (a minute without decisions is a zero point, so the chart's
/// x axis is time).
fn minute_series(view: &AnalyticsView, now_minute: u64, span: u64) -> Vec<MinutePoint> {
    let by_minute: BTreeMap<u64, &Cells> = view.minutes.iter().map(|(m, c)| (*m, c)).collect();
    let empty: Cells = [0; CELLS];
    (0..span)
        .rev()
        .filter_map(|back| now_minute.checked_sub(back))
        .map(|minute| {
            let stats = analytics::period_stats(by_minute.get(&minute).copied().unwrap_or(&empty), 1, Vec::new());
            MinutePoint {
                minute_start_ms: minute * 60_000,
                admitted: stats.total_requests - stats.total_throttled,
                refused: stats.total_throttled,
                rate_limit_429: stats.rate_limit_429,
                backpressure_503: stats.backpressure_503,
                circuit_open_503: stats.circuit_open_503,
            }
        })
        .collect()
}

impl Operations {
    /// Every process of the background's snapshot (at most one refresh
    /// old): no store call.
    pub fn processes(&self) -> ProcessesView {
        let snapshot = self.floodgate.snapshot();
        let timing = self.floodgate.runtime().health_timing();
        ProcessesView {
            observed_at_ms: snapshot.taken_at_ms,
            stale_after_ms: timing.stale_after_ms,
            processes: process_rows(&snapshot, timing),
        }
    }

    /// The last hour's decisions per minute, as the store holds them
    /// (housekeeping flushes local counts every second; this never writes).
    pub async fn throttling_minutes(&self) -> Result<MinutesView, ServiceError> {
        let now_ms = self.floodgate.now_ms();
        let now_minute = now_ms / 60_000;
        let view = self.floodgate.analytics(now_minute, CHART_MINUTES).await?;
        Ok(MinutesView { now_ms, minutes: minute_series(&view, now_minute, CHART_MINUTES) })
    }

    /// The cluster's breaker view (as `/admin/circuit-breakers`) with each
    /// circuit's recovery timeout and time to half-open.
    pub async fn circuit_recovery(&self) -> Result<RecoveryView, ServiceError> {
        let view = self.circuit_breakers().await?;
        let now_ms = self.floodgate.now_ms();
        let config = self.floodgate.runtime().breakers;
        let circuits = view
            .circuits
            .into_iter()
            .map(|(name, stats)| {
                let timeout = Circuit::from_name(&name).map(|c| config.of(c).recovery_timeout_ms).unwrap_or(0);
                let half_open_in_ms = half_open_in(&stats, timeout, now_ms);
                (name, CircuitRecovery { stats, recovery_timeout_ms: timeout, half_open_in_ms })
            })
            .collect();
        Ok(RecoveryView { now_ms, circuits })
    }

    /// Queue depths with each class's oldest task age, and the newest dead letters.
    pub async fn queues(&self) -> Result<QueuesView, ServiceError> {
        let stats = self.floodgate.queue_stats().await?;
        let now_ms = self.floodgate.now_ms();
        let recent = self.floodgate.dead_letters(DEAD_LETTERS_SHOWN).await?;
        let ages = stats.oldest_task_age_ms(now_ms);
        Ok(QueuesView {
            now_ms,
            queued: UserType::ALL.iter().map(|u| (u.as_str(), stats.queued[u.index()])).collect(),
            oldest_task_age_ms: UserType::ALL.iter().map(|u| (u.as_str(), ages[u.index()])).collect(),
            leased: stats.leased,
            dead_letters: stats.dead_letters,
            recent_dead_letters: recent,
        })
    }

    /// The runtime config in force and its version.
    pub fn runtime_config(&self) -> RuntimeConfigView {
        RuntimeConfigView { config: (*self.floodgate.runtime()).clone(), version: self.config_version().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::analytics::cell;
    use crate::core::breaker::BreakerState;
    use crate::core::{Decision, Transport};

    fn cells(entries: &[(Decision, UserType, u64)]) -> Cells {
        let mut c = [0; CELLS];
        for (d, u, n) in entries {
            c[cell(*d, *u, Transport::Rest)] += n;
        }
        c
    }

    #[test]
    fn minute_series_fills_quiet_minutes_with_zeros_oldest_first() {
        let view = AnalyticsView {
            minutes: vec![
                (
                    100,
                    cells(&[
                        (Decision::Admit, UserType::Anonymous, 3),
                        (Decision::RateLimited, UserType::Registered, 2),
                    ]),
                ),
                (
                    98,
                    cells(&[
                        (Decision::Backpressure, UserType::Anonymous, 4),
                        (Decision::CircuitOpen, UserType::Anonymous, 1),
                    ]),
                ),
            ],
            top_by_hour: Vec::new(),
        };
        let series = minute_series(&view, 100, 4);
        assert_eq!(
            series.iter().map(|p| p.minute_start_ms).collect::<Vec<_>>(),
            vec![97 * 60_000, 98 * 60_000, 99 * 60_000, 100 * 60_000]
        );
        assert_eq!(
            series[0],
            MinutePoint {
                minute_start_ms: 97 * 60_000,
                admitted: 0,
                refused: 0,
                rate_limit_429: 0,
                backpressure_503: 0,
                circuit_open_503: 0
            }
        );
        assert_eq!(
            (series[1].admitted, series[1].refused, series[1].backpressure_503, series[1].circuit_open_503),
            (0, 5, 4, 1)
        );
        assert_eq!((series[3].admitted, series[3].refused, series[3].rate_limit_429), (3, 2, 2));
    }

    #[test]
    fn minute_series_near_the_epoch_has_only_the_minutes_that_exist() {
        let series = minute_series(&AnalyticsView::default(), 1, 60);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].minute_start_ms, 0);
    }

    fn stats(state: BreakerState, opened_at: Option<Millis>) -> BreakerStats {
        BreakerStats {
            state,
            failure_count: 3,
            total_requests: 10,
            current_window_failures: 3,
            consecutive_failures: 3,
            opened_at,
        }
    }

    #[test]
    fn an_open_circuit_counts_down_to_half_open_and_stops_at_zero() {
        let open = stats(BreakerState::Open, Some(1_000));
        assert_eq!(half_open_in(&open, 30_000, 11_000), Some(20_000));
        assert_eq!(half_open_in(&open, 30_000, 40_000), Some(0));
    }

    #[test]
    fn closed_and_half_open_circuits_have_no_time_to_half_open() {
        assert_eq!(half_open_in(&stats(BreakerState::Closed, None), 30_000, 5_000), None);
        assert_eq!(half_open_in(&stats(BreakerState::HalfOpen, Some(1_000)), 30_000, 5_000), None);
    }
}
