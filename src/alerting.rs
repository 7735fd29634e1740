//! Active alerts with the time they started, plus recent info events
//! (config applied, circuit transitions, large load changes). Transitions
//! are logged here.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::core::Millis;
use crate::core::alerts::{Condition, Severity};

/// How long info events are shown.
pub(crate) const INFO_RETENTION_MS: Millis = 10 * 60_000;
/// At most this many info events are kept.
const INFO_LIMIT: usize = 100;

/// An alert as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    /// How urgent it is.
    pub severity: Severity,
    /// Stable identifier, e.g. `no_healthy_chat_rest_processes`.
    pub code: String,
    /// What an operator reads.
    pub message: String,
    /// When the condition began (ms since the epoch).
    pub since_ms: Millis,
}

/// Active conditions and recent events.
#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    active: BTreeMap<String, AlertView>,
    info: VecDeque<AlertView>,
}

impl AlertBook {
    /// Replaces the active critical/warning set, logging what started and ended.
    pub(crate) fn update(&mut self, conditions: Vec<Condition>, now: Millis) {
        let mut next = BTreeMap::new();
        for c in conditions {
            let since_ms = self.active.get(&c.code).map_or(now, |a| a.since_ms);
            if !self.active.contains_key(&c.code) {
                match c.severity {
                    Severity::Critical => tracing::error!(code = %c.code, "ALERT critical: {}", c.message),
                    _ => tracing::warn!(code = %c.code, "ALERT {}: {}", c.severity.as_str(), c.message),
                }
            }
            next.insert(c.code.clone(), AlertView { severity: c.severity, code: c.code, message: c.message, since_ms });
        }
        for code in self.active.keys().filter(|code| !next.contains_key(*code)) {
            tracing::info!(code = %code, "alert resolved");
        }
        self.active = next;
        while self.info.front().is_some_and(|i| now.saturating_sub(i.since_ms) > INFO_RETENTION_MS) {
            self.info.pop_front();
        }
    }

    /// Records an info event.
    pub(crate) fn info(&mut self, code: &str, message: String, now: Millis) {
        tracing::info!(code, "ALERT info: {message}");
        self.info.push_back(AlertView { severity: Severity::Info, code: code.to_owned(), message, since_ms: now });
        while self.info.len() > INFO_LIMIT {
            self.info.pop_front();
        }
    }

    /// Critical first, then warnings, then info (newest first).
    pub(crate) fn list(&self) -> Vec<AlertView> {
        let mut all: Vec<AlertView> = self.active.values().cloned().collect();
        all.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.code.cmp(&b.code)));
        all.extend(self.info.iter().rev().cloned());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(code: &str) -> Condition {
        Condition { severity: Severity::Warning, code: code.into(), message: code.into() }
    }

    #[test]
    fn a_continuing_condition_keeps_its_start() {
        let mut book = AlertBook::default();
        book.update(vec![condition("process_deficit")], 100);
        book.update(vec![condition("process_deficit")], 200);
        assert_eq!(book.list()[0].since_ms, 100);
        book.update(vec![], 300);
        assert!(book.list().is_empty());
    }

    #[test]
    fn info_events_expire() {
        let mut book = AlertBook::default();
        book.info("config_applied", "v2".into(), 0);
        assert_eq!(book.list()[0].code, "config_applied");
        book.update(vec![], INFO_RETENTION_MS + 1);
        assert!(book.list().is_empty());
    }
}
