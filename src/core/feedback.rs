//! Breaker feedback (docs/architecture.md §6, seed "Circuit Breaker Philosophy"): which
//! outcome of an admission call counts for or against which circuit. Only
//! system failures count; 429 and refusals at the anonymous or registered
//! threshold are policy and give a half-open probe slot back. A store
//! failure of one Cluster shard is no verdict on the store as a whole.

use super::Decision;
use super::admission::{self, Pressure};

/// What one circuit is told about a call it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// The system handled the call: closes a half-open circuit in time.
    Success,
    /// A system failure: counts towards opening the circuit.
    Failure,
    /// No verdict on system health: a half-open probe slot is given back.
    Release,
}

/// The store step a call made behind its store circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStep {
    /// The rate-limit step (Level 1, Envoy RLS), behind `rate_limiter`.
    RateLimit,
    /// The atomic check-and-enqueue (Level 2), behind `storage`.
    Enqueue,
}

/// How the store step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The store answered.
    Answered,
    /// The store failed (unreachable, timed out, unreadable answer).
    Failed,
    /// One shard of a Redis Cluster failed while the others answer: the
    /// call takes the store-failure path (Level 1 fails open to the local
    /// limiter, RLS answers UNAVAILABLE), but the store circuit is not
    /// told of a failure, or one dead primary would open `rate_limiter`
    /// and send every subject of every healthy shard down that path too.
    ShardFailed,
    /// The store was not asked (bypass, or its circuit is open).
    Skipped,
}

impl StoreOutcome {
    /// How a failed store step ended: one Redis Cluster shard's failure
    /// (the others answer) or the store's.
    pub fn failed(shard_local: bool) -> StoreOutcome {
        if shard_local { StoreOutcome::ShardFailed } else { StoreOutcome::Failed }
    }
}

/// One finished call, as the circuits see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    /// The store step the call reached.
    pub step: StoreStep,
    /// How the store answered.
    pub store: StoreOutcome,
    /// The decision the call ended with and the pressure it was judged
    /// against; None when it ended without one (an error).
    pub decided: Option<(Decision, Pressure)>,
}

/// What each circuit a call passed is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitFeedback {
    /// For the `backpressure` circuit.
    pub backpressure: Feedback,
    /// For the store circuit of the call's step (`rate_limiter` or `storage`).
    pub store: Feedback,
}

/// The one rule: a store that answered succeeded and one that failed
/// failed; one shard's failure gives no verdict (the whole store failing
/// still opens the circuit: its errors are not one shard's). Backpressure
/// succeeds on an admission, fails on an overload refusal (at the hard
/// limit or with no capacity) and on a failed enqueue (it cannot take more
/// work), and has no verdict otherwise: a 429, a refusal at a lower
/// threshold, a circuit-open answer, a failed rate-limit store (Level 1
/// falls back to the local limiter) or a call that ended early.
pub fn feedback(call: Call) -> CircuitFeedback {
    let store = match call.store {
        StoreOutcome::Answered => Feedback::Success,
        StoreOutcome::Failed => Feedback::Failure,
        StoreOutcome::ShardFailed | StoreOutcome::Skipped => Feedback::Release,
    };
    let backpressure = match call.decided {
        Some((Decision::Admit, _)) => Feedback::Success,
        Some((Decision::Backpressure, pressure)) if admission::is_overload(&pressure) => Feedback::Failure,
        Some(_) => Feedback::Release,
        None if call.step == StoreStep::Enqueue
            && matches!(call.store, StoreOutcome::Failed | StoreOutcome::ShardFailed) =>
        {
            Feedback::Failure
        }
        None => Feedback::Release,
    };
    CircuitFeedback { backpressure, store }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::capacity::Limits;
    use Feedback::{Failure, Release, Success};
    use StoreOutcome::{Answered, Failed, ShardFailed, Skipped};
    use StoreStep::{Enqueue, RateLimit};

    /// T = 14: limits 8 / 11 / 13.
    fn at(load: u64) -> Pressure {
        Pressure { load, system_total: 14, limits: Limits { anonymous: 8, registered: 11, privileged: 13 } }
    }

    #[test]
    fn each_outcome_reaches_each_circuit_as_the_table_says() {
        let none = Pressure { load: 0, system_total: 0, limits: Limits { anonymous: 0, registered: 0, privileged: 0 } };
        type Row = (StoreStep, StoreOutcome, Option<(Decision, Pressure)>, Feedback, Feedback);
        let table: [Row; 20] = [
            // Level 1 / RLS: the rate-limit store and the verdict are independent.
            (RateLimit, Answered, Some((Decision::Admit, at(3))), Success, Success),
            (RateLimit, Answered, Some((Decision::RateLimited, at(3))), Release, Success),
            (RateLimit, Answered, Some((Decision::RateLimited, at(13))), Release, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, at(9))), Release, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, at(13))), Failure, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, none)), Failure, Success),
            (RateLimit, Failed, Some((Decision::Admit, at(3))), Success, Failure),
            (RateLimit, Failed, None, Release, Failure),
            // One Cluster shard down: the same answers, no verdict on the store.
            (RateLimit, ShardFailed, Some((Decision::Admit, at(3))), Success, Release),
            (RateLimit, ShardFailed, Some((Decision::RateLimited, at(3))), Release, Release),
            (RateLimit, ShardFailed, None, Release, Release),
            (RateLimit, Skipped, Some((Decision::Admit, at(3))), Success, Release),
            (RateLimit, Skipped, Some((Decision::CircuitOpen, at(13))), Release, Release),
            // Level 2: an enqueue failure is also an overload signal.
            (Enqueue, Answered, Some((Decision::Admit, at(12))), Success, Success),
            (Enqueue, Answered, Some((Decision::Backpressure, at(11))), Release, Success),
            (Enqueue, Answered, Some((Decision::Backpressure, at(13))), Failure, Success),
            (Enqueue, Failed, None, Failure, Failure),
            (Enqueue, ShardFailed, None, Failure, Release),
            (Enqueue, Skipped, None, Release, Release),
            (Enqueue, Skipped, Some((Decision::CircuitOpen, at(13))), Release, Release),
        ];
        for (step, store, decided, backpressure, store_feedback) in table {
            let call = Call { step, store, decided };
            assert_eq!(feedback(call), CircuitFeedback { backpressure, store: store_feedback }, "{call:?}");
        }
    }

    /// Issue 15: a dead Cluster primary's subjects fail open without
    /// opening `rate_limiter` for everyone; a dead store still opens it.
    #[test]
    fn only_a_whole_store_failure_counts_against_the_store_circuit() {
        let call = |store| feedback(Call { step: RateLimit, store, decided: None }).store;
        assert_eq!(call(ShardFailed), Release, "one shard down: no verdict on the store");
        assert_eq!(call(Failed), Failure, "the store down: a failure, the circuit may open");
        let breaker = crate::core::breaker::BreakerConfig {
            failure_threshold: 3,
            window_ms: 10_000,
            recovery_timeout_ms: 1_000,
            half_open_max_calls: 1,
            success_threshold: 1,
            recovery_pressure: None,
        };
        for (outcome, opens) in [(ShardFailed, false), (Failed, true)] {
            let mut circuit = crate::core::breaker::Breaker::new(breaker);
            for now in 0..100 {
                if call(outcome) == Failure {
                    circuit.record_failure(now);
                }
            }
            let open = circuit.state() == crate::core::breaker::BreakerState::Open;
            assert_eq!(open, opens, "{outcome:?}: a hundred failed rate-limit calls");
        }
    }
}
