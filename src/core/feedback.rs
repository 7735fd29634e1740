//! Breaker feedback (design §6, seed "Circuit Breaker Philosophy"): which
//! outcome of an admission call counts for or against which circuit. Only
//! system failures count; 429 and refusals at the anonymous or registered
//! threshold are policy and give a half-open probe slot back.

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
    /// The store was not asked (bypass, or its circuit is open).
    Skipped,
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
/// failed. Backpressure succeeds on an admission, fails on an overload
/// refusal (at the hard limit or with no capacity) and on a failed enqueue
/// (it cannot take more work), and has no verdict otherwise: a 429, a
/// refusal at a lower threshold, a circuit-open answer, a failed rate-limit
/// store (Level 1 falls back to the local limiter) or a call that ended early.
pub fn feedback(call: Call) -> CircuitFeedback {
    let store = match call.store {
        StoreOutcome::Answered => Feedback::Success,
        StoreOutcome::Failed => Feedback::Failure,
        StoreOutcome::Skipped => Feedback::Release,
    };
    let backpressure = match call.decided {
        Some((Decision::Admit, _)) => Feedback::Success,
        Some((Decision::Backpressure, pressure)) if admission::is_overload(&pressure) => Feedback::Failure,
        Some(_) => Feedback::Release,
        None if call.step == StoreStep::Enqueue && call.store == StoreOutcome::Failed => Feedback::Failure,
        None => Feedback::Release,
    };
    CircuitFeedback { backpressure, store }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::capacity::Limits;
    use Feedback::{Failure, Release, Success};
    use StoreOutcome::{Answered, Failed, Skipped};
    use StoreStep::{Enqueue, RateLimit};

    /// T = 14: limits 8 / 11 / 13.
    fn at(load: u64) -> Pressure {
        Pressure { load, system_total: 14, limits: Limits { anonymous: 8, registered: 11, privileged: 13 } }
    }

    #[test]
    fn each_outcome_reaches_each_circuit_as_the_table_says() {
        let none = Pressure { load: 0, system_total: 0, limits: Limits { anonymous: 0, registered: 0, privileged: 0 } };
        type Row = (StoreStep, StoreOutcome, Option<(Decision, Pressure)>, Feedback, Feedback);
        let table: [Row; 16] = [
            // Level 1 / RLS: the rate-limit store and the verdict are independent.
            (RateLimit, Answered, Some((Decision::Admit, at(3))), Success, Success),
            (RateLimit, Answered, Some((Decision::RateLimited, at(3))), Release, Success),
            (RateLimit, Answered, Some((Decision::RateLimited, at(13))), Release, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, at(9))), Release, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, at(13))), Failure, Success),
            (RateLimit, Answered, Some((Decision::Backpressure, none)), Failure, Success),
            (RateLimit, Failed, Some((Decision::Admit, at(3))), Success, Failure),
            (RateLimit, Failed, None, Release, Failure),
            (RateLimit, Skipped, Some((Decision::Admit, at(3))), Success, Release),
            (RateLimit, Skipped, Some((Decision::CircuitOpen, at(13))), Release, Release),
            // Level 2: an enqueue failure is also an overload signal.
            (Enqueue, Answered, Some((Decision::Admit, at(12))), Success, Success),
            (Enqueue, Answered, Some((Decision::Backpressure, at(11))), Release, Success),
            (Enqueue, Answered, Some((Decision::Backpressure, at(13))), Failure, Success),
            (Enqueue, Failed, None, Failure, Failure),
            (Enqueue, Skipped, None, Release, Release),
            (Enqueue, Skipped, Some((Decision::CircuitOpen, at(13))), Release, Release),
        ];
        for (step, store, decided, backpressure, store_feedback) in table {
            let call = Call { step, store, decided };
            assert_eq!(feedback(call), CircuitFeedback { backpressure, store: store_feedback }, "{call:?}");
        }
    }
}
