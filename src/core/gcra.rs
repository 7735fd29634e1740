//! GCRA rate limiting (docs/architecture.md §5): one "theoretical arrival time" per key,
//! no window boundaries, O(1) state. Times are microseconds.

use serde::{Deserialize, Serialize};

/// A rate and a burst for one user type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per minute (≥ 1).
    pub per_minute: u32,
    /// Requests that may arrive at once on an idle key (≥ 1).
    pub burst: u32,
}

impl RateLimit {
    /// Time between requests at the sustained rate, in µs.
    pub fn emission_interval_us(&self) -> u64 {
        60_000_000 / u64::from(self.per_minute.max(1))
    }

    /// How far ahead of `now` the arrival time may run: `burst` intervals.
    pub fn tolerance_us(&self) -> u64 {
        self.emission_interval_us() * u64::from(self.burst.max(1))
    }

    /// The limit as GCRA parameters.
    pub fn spacing(&self) -> Spacing {
        Spacing { interval_us: self.emission_interval_us(), tolerance_us: self.tolerance_us() }
    }
}

/// GCRA in its general form: one request every `interval_us`, the arrival
/// time running at most `tolerance_us` ahead of now (interval × burst).
/// Limits in other units than per minute (Envoy's per second … per day)
/// are expressed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spacing {
    /// Emission interval, µs (≥ 1).
    pub interval_us: u64,
    /// Tolerance, µs.
    pub tolerance_us: u64,
}

/// The result of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcraOutcome {
    /// Allowed; store `tat` for the key, which may be forgotten at `tat`.
    Allowed {
        /// The key's new theoretical arrival time, in µs.
        tat: u64,
    },
    /// Refused; the key's state is unchanged. Retry after this many µs.
    Limited {
        /// µs until the request would be allowed.
        retry_after_us: u64,
    },
}

/// One request against a key whose stored arrival time is `tat` (None
/// when the key is idle or unknown). `cost` requests are taken at once.
pub fn check(tat: Option<u64>, now_us: u64, limit: RateLimit, cost: u32) -> GcraOutcome {
    check_spacing(tat, now_us, limit.spacing(), cost)
}

/// [`check`] for limits given as [`Spacing`].
pub fn check_spacing(tat: Option<u64>, now_us: u64, spacing: Spacing, cost: u32) -> GcraOutcome {
    let base = tat.unwrap_or(now_us).max(now_us);
    let new_tat = base.saturating_add(spacing.interval_us.saturating_mul(u64::from(cost)));
    let allow_until = now_us + spacing.tolerance_us;
    if new_tat <= allow_until {
        GcraOutcome::Allowed { tat: new_tat }
    } else {
        GcraOutcome::Limited { retry_after_us: new_tat - allow_until }
    }
}

/// A key whose arrival time has passed holds no information: evicting it
/// is the same as keeping it. This is what keeps memory bounded.
pub fn is_idle(tat: u64, now_us: u64) -> bool {
    tat <= now_us
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEN_PER_MINUTE_BURST_5: RateLimit = RateLimit { per_minute: 10, burst: 5 };

    #[test]
    fn burst_is_allowed_at_once_then_limited() {
        let mut tat = None;
        for i in 0..5 {
            match check(tat, 0, TEN_PER_MINUTE_BURST_5, 1) {
                GcraOutcome::Allowed { tat: t } => tat = Some(t),
                other => panic!("request {i} refused: {other:?}"),
            }
        }
        // One emission interval (6 s) until the next slot.
        assert_eq!(check(tat, 0, TEN_PER_MINUTE_BURST_5, 1), GcraOutcome::Limited { retry_after_us: 6_000_000 });
    }

    #[test]
    fn retry_after_is_exactly_enough() {
        let mut tat = None;
        for _ in 0..5 {
            if let GcraOutcome::Allowed { tat: t } = check(tat, 0, TEN_PER_MINUTE_BURST_5, 1) {
                tat = Some(t);
            }
        }
        let GcraOutcome::Limited { retry_after_us } = check(tat, 0, TEN_PER_MINUTE_BURST_5, 1) else {
            panic!("expected a refusal");
        };
        assert!(matches!(check(tat, retry_after_us - 1, TEN_PER_MINUTE_BURST_5, 1), GcraOutcome::Limited { .. }));
        assert!(matches!(check(tat, retry_after_us, TEN_PER_MINUTE_BURST_5, 1), GcraOutcome::Allowed { .. }));
    }

    #[test]
    fn a_cost_larger_than_the_burst_never_passes() {
        assert!(matches!(check(None, 0, TEN_PER_MINUTE_BURST_5, 6), GcraOutcome::Limited { .. }));
        assert!(matches!(check(None, 0, TEN_PER_MINUTE_BURST_5, 5), GcraOutcome::Allowed { .. }));
    }

    #[test]
    fn an_idle_key_is_the_same_as_no_key() {
        let tat = 1_000;
        assert!(is_idle(tat, 1_000));
        assert_eq!(check(Some(tat), 2_000, TEN_PER_MINUTE_BURST_5, 1), check(None, 2_000, TEN_PER_MINUTE_BURST_5, 1));
    }

    proptest! {
        /// Over any span, allowed requests never exceed burst + span / interval.
        #[test]
        fn never_admits_more_than_burst_plus_rate(
            per_minute in 1u32..10_000, burst in 1u32..50,
            gaps in proptest::collection::vec(0u64..2_000_000, 1..300),
        ) {
            let limit = RateLimit { per_minute, burst };
            let (mut now, mut tat, mut allowed) = (0u64, None, 0u64);
            for gap in gaps {
                now += gap;
                if let GcraOutcome::Allowed { tat: t } = check(tat, now, limit, 1) {
                    tat = Some(t);
                    allowed += 1;
                }
            }
            prop_assert!(allowed <= u64::from(burst) + now / limit.emission_interval_us());
        }
    }
}
