//! The performance warnings an operator reads: the system document's
//! `performance_warnings` and the warnings a config review attaches to a
//! valid change. Unlike alerts they raise nothing; they explain.

use super::alerts::WARNING_PRESSURE;
use super::health::ChatHealth;

/// Warnings about the running system: missing or absent chat REST
/// processes, and queue pressure above the warning level.
pub fn system(chat: &ChatHealth, pressure_ratio: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    if chat.deficit() > 0 {
        warnings.push(format!("{} expected chat REST processes are missing", chat.deficit()));
    }
    if chat.healthy == 0 {
        warnings.push("no healthy chat REST processes: every chat request is refused".to_owned());
    }
    if pressure_ratio > WARNING_PRESSURE {
        warnings.push(format!("queue pressure {pressure_ratio:.2} above {WARNING_PRESSURE:.2}"));
    }
    warnings
}

/// The parts of a proposed runtime config the review warns about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigChange {
    /// System capacity now and with the change applied.
    pub capacity_before: u64,
    /// System capacity the change would give.
    pub capacity_after: u64,
    /// The proposed `capacity_buffer` (0–1).
    pub capacity_buffer: f64,
    /// The proposed `anonymous_threshold` (0–1).
    pub anonymous_threshold: f64,
    /// The proposed `hard_limit_threshold` (0–1).
    pub hard_limit_threshold: f64,
}

/// A buffer above this holds back more than half of the concurrency.
pub const HIGH_CAPACITY_BUFFER: f64 = 0.5;
/// An anonymous threshold below this refuses most anonymous traffic under load.
pub const LOW_ANONYMOUS_THRESHOLD: f64 = 0.3;

/// Warnings about a valid config change (it is applied all the same).
pub fn config(change: &ConfigChange) -> Vec<String> {
    let mut warnings = Vec::new();
    if change.capacity_before != change.capacity_after {
        warnings.push(format!("system capacity changes from {} to {}", change.capacity_before, change.capacity_after));
    }
    if change.capacity_buffer > HIGH_CAPACITY_BUFFER {
        warnings.push("capacity_buffer above 0.5 holds back more than half of the concurrency".into());
    }
    if change.anonymous_threshold < LOW_ANONYMOUS_THRESHOLD {
        warnings.push("anonymous_threshold below 0.3 refuses most anonymous traffic under load".into());
    }
    if change.hard_limit_threshold == 1.0 {
        warnings.push("hard_limit_threshold 1.0 leaves no headroom for privileged users".into());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(expected: u64, actual: u64, healthy: u64) -> ChatHealth {
        ChatHealth { expected, actual, healthy }
    }

    #[test]
    fn a_full_healthy_system_under_light_pressure_has_no_warning() {
        assert!(system(&chat(4, 4, 4), 0.5).is_empty());
        assert!(system(&chat(4, 4, 4), WARNING_PRESSURE).is_empty(), "the level itself does not warn");
    }

    #[test]
    fn missing_processes_are_counted() {
        assert_eq!(system(&chat(4, 3, 3), 0.0), vec!["1 expected chat REST processes are missing"]);
        assert!(system(&chat(4, 6, 6), 0.0).is_empty(), "more processes than configured is no deficit");
    }

    #[test]
    fn no_healthy_process_and_high_pressure_each_warn() {
        assert_eq!(
            system(&chat(4, 4, 0), 0.93),
            vec!["no healthy chat REST processes: every chat request is refused", "queue pressure 0.93 above 0.80"]
        );
    }

    fn change() -> ConfigChange {
        ConfigChange {
            capacity_before: 14,
            capacity_after: 14,
            capacity_buffer: 0.1,
            anonymous_threshold: 0.6,
            hard_limit_threshold: 0.95,
        }
    }

    #[test]
    fn a_change_within_the_usual_ranges_has_no_warning() {
        assert!(config(&change()).is_empty());
    }

    #[test]
    fn each_risky_setting_warns_on_its_own() {
        let cases = [
            (ConfigChange { capacity_after: 10, ..change() }, "system capacity changes from 14 to 10"),
            (ConfigChange { capacity_buffer: 0.51, ..change() }, "capacity_buffer above 0.5"),
            (ConfigChange { anonymous_threshold: 0.29, ..change() }, "anonymous_threshold below 0.3"),
            (ConfigChange { hard_limit_threshold: 1.0, ..change() }, "hard_limit_threshold 1.0"),
        ];
        for (change, expected) in cases {
            let warnings = config(&change);
            assert_eq!(warnings.len(), 1, "{change:?}");
            assert!(warnings[0].starts_with(expected), "{warnings:?}");
        }
    }

    #[test]
    fn the_boundaries_do_not_warn() {
        let edge = ConfigChange {
            capacity_buffer: HIGH_CAPACITY_BUFFER,
            anonymous_threshold: LOW_ANONYMOUS_THRESHOLD,
            ..change()
        };
        assert!(config(&edge).is_empty());
    }
}
