//! Heartbeat health classification (docs/architecture.md §4) and the healthy chat REST
//! process counts that capacity is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Millis;

/// What a process says about itself in its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Serving normally.
    Healthy,
    /// Serving with reduced capacity; still counted.
    Degraded,
    /// Not serving; not counted.
    Unhealthy,
}

/// What floodgate concludes about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Reported healthy and heard from recently.
    Healthy,
    /// Reported degraded; still counted for capacity.
    Degraded,
    /// Reported unhealthy; not counted.
    Unhealthy,
    /// Not heard from within the stale interval; not counted.
    Stale,
}

impl Health {
    /// HEALTHY and DEGRADED processes count towards capacity.
    pub fn counts_for_capacity(self) -> bool {
        matches!(self, Health::Healthy | Health::Degraded)
    }

    /// Lower-case name, as in the seed's JSON (`"healthy"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Stale => "stale",
        }
    }
}

/// The chat REST service that capacity is computed from.
pub const CHAT_SERVICE_TYPE: &str = "chat";
/// See [`CHAT_SERVICE_TYPE`].
pub const CHAT_SERVICE_NAME: &str = "rest";

/// The last heartbeat of one worker process, stamped with the receive time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The instance (host or pod) the process runs on.
    pub instance_id: String,
    /// The process's id within its instance.
    pub process_id: String,
    /// Service type, e.g. `chat`.
    pub service_type: String,
    /// Service name, e.g. `rest`.
    pub service_name: String,
    /// Tasks it is working on.
    pub load: u32,
    /// Tasks it can work on at once.
    pub capacity: u32,
    /// What it reported about itself.
    pub status: ProcessStatus,
    /// When its heartbeat was received.
    pub last_seen_ms: Millis,
}

/// Whether processes of this service type and name are chat REST
/// processes (the only kind that makes capacity).
pub fn is_chat_rest(service_type: &str, service_name: &str) -> bool {
    service_type == CHAT_SERVICE_TYPE && service_name == CHAT_SERVICE_NAME
}

impl ProcessRecord {
    /// Whether this is a chat REST process (the only kind that makes capacity).
    pub fn is_chat_rest(&self) -> bool {
        is_chat_rest(&self.service_type, &self.service_name)
    }

    /// The seed's service-group key, e.g. `chat_rest`.
    pub fn group(&self) -> String {
        format!("{}_{}", self.service_type, self.service_name)
    }
}

/// Health timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    /// No heartbeat for this long → STALE.
    pub stale_after_ms: Millis,
    /// No heartbeat for this long → the record is dropped.
    pub expire_after_ms: Millis,
}

/// STALE if silent for `stale_after`; else UNHEALTHY if it says so; else
/// DEGRADED if it says so or is at its capacity; else HEALTHY.
pub fn classify(record: &ProcessRecord, now: Millis, timing: HealthTiming) -> Health {
    if now.saturating_sub(record.last_seen_ms) >= timing.stale_after_ms {
        return Health::Stale;
    }
    match record.status {
        ProcessStatus::Unhealthy => Health::Unhealthy,
        ProcessStatus::Degraded => Health::Degraded,
        ProcessStatus::Healthy if record.capacity > 0 && record.load >= record.capacity => Health::Degraded,
        ProcessStatus::Healthy => Health::Healthy,
    }
}

/// Whether a record silent for `expire_after_ms` is old enough to be
/// dropped altogether (`HealthTiming::expire_after_ms`; mirrored by
/// `store/lua/processes.lua`).
pub fn is_expired(record: &ProcessRecord, now: Millis, expire_after_ms: Millis) -> bool {
    now.saturating_sub(record.last_seen_ms) >= expire_after_ms
}

/// Healthy (or degraded) chat REST processes per instance: capacity's input.
pub fn healthy_chat_rest_by_instance(
    records: &[ProcessRecord],
    now: Millis,
    timing: HealthTiming,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for record in records.iter().filter(|r| r.is_chat_rest()) {
        let healthy = classify(record, now, timing).counts_for_capacity();
        *counts.entry(record.instance_id.clone()).or_insert(0) += u64::from(healthy);
    }
    counts
}

/// Chat REST processes against the configuration (seed "capacity
/// transparency": health ratio and process deficit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatHealth {
    /// `processes_per_instance` × instances reporting (at least one).
    pub expected: u64,
    /// Processes not STALE.
    pub actual: u64,
    /// HEALTHY or DEGRADED processes.
    pub healthy: u64,
}

impl ChatHealth {
    /// Counts the chat REST records as of `now`.
    pub fn of(records: &[ProcessRecord], processes_per_instance: u32, now: Millis, timing: HealthTiming) -> ChatHealth {
        let chat: Vec<&ProcessRecord> = records.iter().filter(|r| r.is_chat_rest()).collect();
        let instances: std::collections::BTreeSet<&str> = chat.iter().map(|r| r.instance_id.as_str()).collect();
        let healths: Vec<Health> = chat.iter().map(|r| classify(r, now, timing)).collect();
        ChatHealth {
            expected: u64::from(processes_per_instance) * instances.len().max(1) as u64,
            actual: healths.iter().filter(|h| **h != Health::Stale).count() as u64,
            healthy: healths.iter().filter(|h| h.counts_for_capacity()).count() as u64,
        }
    }

    /// Healthy over expected, at most 1.
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 { 1.0 } else { (self.healthy as f64 / self.expected as f64).min(1.0) }
    }

    /// Expected processes missing (negative when there are more than configured).
    pub fn deficit(&self) -> i64 {
        self.expected as i64 - self.actual as i64
    }
}

/// A service group's health word in the seed's system document: unhealthy
/// with no healthy process, degraded when some are missing or unwell.
pub fn group_health(healthy: u32, actual: u32, expected: u32) -> Health {
    if healthy == 0 {
        Health::Unhealthy
    } else if healthy < actual || healthy < expected {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: HealthTiming = HealthTiming { stale_after_ms: 15_000, expire_after_ms: 300_000 };

    fn record(status: ProcessStatus, load: u32, capacity: u32, last_seen_ms: Millis) -> ProcessRecord {
        ProcessRecord {
            instance_id: "i1".into(),
            process_id: "p1".into(),
            service_type: "chat".into(),
            service_name: "rest".into(),
            load,
            capacity,
            status,
            last_seen_ms,
        }
    }

    #[test]
    fn silence_for_stale_after_makes_a_process_stale() {
        let r = record(ProcessStatus::Healthy, 0, 5, 1_000);
        assert_eq!(classify(&r, 15_999, TIMING), Health::Healthy);
        assert_eq!(classify(&r, 16_000, TIMING), Health::Stale);
    }

    #[test]
    fn self_reports_are_believed() {
        assert_eq!(classify(&record(ProcessStatus::Unhealthy, 0, 5, 0), 0, TIMING), Health::Unhealthy);
        assert_eq!(classify(&record(ProcessStatus::Degraded, 0, 5, 0), 0, TIMING), Health::Degraded);
    }

    #[test]
    fn a_full_process_is_degraded_but_still_counts() {
        let full = record(ProcessStatus::Healthy, 5, 5, 0);
        assert_eq!(classify(&full, 0, TIMING), Health::Degraded);
        assert_eq!(healthy_chat_rest_by_instance(&[full], 0, TIMING)["i1"], 1);
    }

    #[test]
    fn only_chat_rest_processes_count() {
        let mut kb = record(ProcessStatus::Healthy, 0, 5, 0);
        kb.service_type = "kb".into();
        let chat = record(ProcessStatus::Healthy, 0, 5, 0);
        let unhealthy = ProcessRecord { process_id: "p2".into(), ..record(ProcessStatus::Unhealthy, 0, 5, 0) };
        let counts = healthy_chat_rest_by_instance(&[kb, chat, unhealthy], 0, TIMING);
        assert_eq!(counts, BTreeMap::from([("i1".to_owned(), 1)]));
    }

    #[test]
    fn a_missing_process_is_a_deficit_and_lowers_the_ratio() {
        let one = record(ProcessStatus::Healthy, 0, 5, 0);
        let health = ChatHealth::of(&[one], 2, 0, TIMING);
        assert_eq!((health.expected, health.actual, health.healthy), (2, 1, 1));
        assert_eq!((health.deficit(), health.ratio()), (1, 0.5));
        let none = ChatHealth::of(&[], 1, 0, TIMING);
        assert_eq!((none.deficit(), none.ratio()), (1, 0.0));
    }

    #[test]
    fn group_health_follows_the_healthy_count() {
        assert_eq!(group_health(0, 2, 1), Health::Unhealthy);
        assert_eq!(group_health(1, 2, 1), Health::Degraded);
        assert_eq!(group_health(1, 1, 2), Health::Degraded);
        assert_eq!(group_health(2, 2, 2), Health::Healthy);
    }

    #[test]
    fn records_expire_after_expire_after() {
        let r = record(ProcessStatus::Healthy, 0, 5, 0);
        assert!(!is_expired(&r, 299_999, TIMING.expire_after_ms));
        assert!(is_expired(&r, 300_000, TIMING.expire_after_ms));
    }
}
