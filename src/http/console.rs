//! The operator console (issue 13): the page at `/ui/` (three assets built
//! into the binary, nothing fetched at run time) and the read-only JSON it
//! needs beyond the seed's documents: processes with heartbeat ages, the
//! per-minute decision series, circuits with their time to half-open, and
//! the live runtime config. The JSON routes are mounted behind the admin
//! check by `super::router`; they compose existing service and store calls.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{HttpError, Shim};
use crate::core::analytics::{self, CELLS, Cells};
use crate::core::breaker::Circuit;
use crate::core::breaker::{BreakerStats, half_open_in};
use crate::core::health::{self, ProcessStatus};
use crate::core::{Millis, UserType};
use crate::service::Snapshot;
use crate::store::{AnalyticsStore, AnalyticsView, DeadLetter, TaskQueue};

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const STYLE_CSS: &str = include_str!("../../console/style.css");

/// Minutes of the throttling chart (the "last 1 h").
pub(crate) const CHART_MINUTES: u64 = 60;
/// Dead letters listed in the queues panel (newest first).
pub(crate) const DEAD_LETTERS_SHOWN: usize = 20;

/// Same-origin only: the page runs its own script and talks to its own host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One asset, never cached (a new binary may serve a new page) and never framed.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page and its assets, open to anyone: they hold no data and no
/// token. `auth_required` tells the page whether to ask for the admin
/// token before it polls (so a development run works without one).
pub(super) fn pages(auth_required: bool) -> Router<Shim> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/ui/session", get(move || async move { Json(SessionInfo { auth_required }) }))
}

/// The console's JSON; the caller puts them behind the admin check.
pub(super) fn documents() -> Router<Shim> {
    Router::new()
        .route("/monitoring/processes", get(processes))
        .route("/monitoring/throttling/minutes", get(throttling_minutes))
        .route("/monitoring/circuit-breakers/recovery", get(circuit_recovery))
        .route("/monitoring/queues", get(queues))
        .route("/monitoring/runtime-config", get(runtime_config))
}

/// `GET /ui/session`.
#[derive(Debug, Serialize)]
struct SessionInfo {
    auth_required: bool,
}

/// One worker process as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProcessRow {
    pub instance_id: String,
    pub process_id: String,
    /// The seed's group key (`chat_rest`).
    pub group: String,
    /// What floodgate concludes: `healthy`, `degraded`, `unhealthy`, `stale`.
    pub health: &'static str,
    /// What the process said about itself.
    pub reported_status: ProcessStatus,
    pub load: u32,
    pub capacity: u32,
    pub is_chat_rest: bool,
    /// Time from its last heartbeat to the snapshot.
    pub last_heartbeat_age_ms: Millis,
}

/// `GET /monitoring/processes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProcessesView {
    /// When the snapshot was read (the store's clock).
    pub observed_at_ms: Millis,
    pub stale_after_ms: Millis,
    pub processes: Vec<ProcessRow>,
}

/// Every process of `snapshot`, classified as capacity classifies it.
pub(crate) fn process_rows(snapshot: &Snapshot, timing: health::HealthTiming) -> Vec<ProcessRow> {
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

/// The background's snapshot (at most one refresh old): no store call.
async fn processes(State(shim): State<Shim>) -> Json<ProcessesView> {
    let snapshot = shim.floodgate.snapshot();
    let timing = shim.floodgate.runtime().health_timing();
    Json(ProcessesView {
        observed_at_ms: snapshot.taken_at_ms,
        stale_after_ms: timing.stale_after_ms,
        processes: process_rows(&snapshot, timing),
    })
}

/// One minute of decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct MinutePoint {
    /// Start of the minute, ms since the epoch.
    pub minute_start_ms: Millis,
    pub admitted: u64,
    pub refused: u64,
    pub rate_limit_429: u64,
    pub backpressure_503: u64,
    pub circuit_open_503: u64,
}

/// `GET /monitoring/throttling/minutes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct MinutesView {
    pub now_ms: Millis,
    /// Oldest first, one point per minute (zeros included) up to the current one.
    pub minutes: Vec<MinutePoint>,
}

/// The last `span` minutes up to `now_minute`, oldest first, every minute
/// present (a minute without decisions is a zero point, so the chart's
/// x axis is time).
pub(crate) fn minute_series(view: &AnalyticsView, now_minute: u64, span: u64) -> Vec<MinutePoint> {
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

/// Reads the last hour as the store holds it (housekeeping flushes local
/// counts every second; this route never writes).
async fn throttling_minutes(State(shim): State<Shim>) -> Result<Json<MinutesView>, HttpError> {
    let now_ms = shim.floodgate.clock.now_ms();
    let now_minute = now_ms / 60_000;
    let view = shim
        .floodgate
        .store()
        .analytics(now_minute, CHART_MINUTES)
        .await
        .map_err(crate::service::ServiceError::from)?;
    Ok(Json(MinutesView { now_ms, minutes: minute_series(&view, now_minute, CHART_MINUTES) }))
}

/// One circuit with its recovery timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CircuitRecovery {
    #[serde(flatten)]
    pub stats: BreakerStats,
    pub recovery_timeout_ms: Millis,
    /// Until an open circuit lets probes through (0 when due); None unless open.
    pub half_open_in_ms: Option<Millis>,
}

/// `GET /monitoring/circuit-breakers/recovery`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RecoveryView {
    pub now_ms: Millis,
    pub circuits: BTreeMap<String, CircuitRecovery>,
}

/// The cluster's breaker view (as `/admin/circuit-breakers`) with each
/// circuit's recovery timeout and time to half-open.
async fn circuit_recovery(State(shim): State<Shim>) -> Result<Json<RecoveryView>, HttpError> {
    let view = shim.floodgate.circuit_breakers().await?;
    let now_ms = shim.floodgate.clock.now_ms();
    let config = shim.floodgate.runtime().breakers;
    let circuits = view
        .circuits
        .into_iter()
        .map(|(name, stats)| {
            let timeout = Circuit::from_name(&name).map(|c| config.of(c).recovery_timeout_ms).unwrap_or(0);
            let half_open_in_ms = half_open_in(&stats, timeout, now_ms);
            (name, CircuitRecovery { stats, recovery_timeout_ms: timeout, half_open_in_ms })
        })
        .collect();
    Ok(Json(RecoveryView { now_ms, circuits }))
}

/// `GET /monitoring/queues`: depths, each class's oldest task age (read
/// in the same store call as the depths) and the dead letters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct QueuesView {
    /// When the ages were measured (floodgate's clock).
    pub now_ms: Millis,
    /// Waiting tasks per user type (`anonymous`, `registered`, `privileged`).
    pub queued: BTreeMap<&'static str, u64>,
    /// How long the task at the head of each class's queue (the next one
    /// leased) has waited; null when the queue is empty.
    pub oldest_task_age_ms: BTreeMap<&'static str, Option<Millis>>,
    pub leased: u64,
    pub dead_letters: u64,
    /// The newest dead letters (at most [`DEAD_LETTERS_SHOWN`]).
    pub recent_dead_letters: Vec<DeadLetter>,
}

async fn queues(State(shim): State<Shim>) -> Result<Json<QueuesView>, HttpError> {
    let stats = shim.floodgate.queue_stats().await?;
    let now_ms = shim.floodgate.clock.now_ms();
    let recent =
        shim.floodgate.store().dead_letters(DEAD_LETTERS_SHOWN).await.map_err(crate::service::ServiceError::from)?;
    let ages = stats.oldest_task_age_ms(now_ms);
    Ok(Json(QueuesView {
        now_ms,
        queued: UserType::ALL.iter().map(|u| (u.as_str(), stats.queued[u.index()])).collect(),
        oldest_task_age_ms: UserType::ALL.iter().map(|u| (u.as_str(), ages[u.index()])).collect(),
        leased: stats.leased,
        dead_letters: stats.dead_letters,
        recent_dead_letters: recent,
    }))
}

/// `GET /monitoring/runtime-config`: the settings in force and their version.
async fn runtime_config(State(shim): State<Shim>) -> Json<serde_json::Value> {
    let environment = shim.floodgate.environment();
    let version = environment.get("config_version").map(|v| v.value.clone()).unwrap_or_default();
    Json(serde_json::json!({ "version": version, "config": *shim.floodgate.runtime() }))
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
