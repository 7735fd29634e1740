//! The admission rules of both levels (docs/architecture.md §3): who bypasses the rate
//! limit, and the backpressure test `L < limit(user_type)`.

use serde::Serialize;

use super::capacity::{Limits, pressure_ratio};
use super::gcra::GcraOutcome;
use super::{Decision, UserType};

/// An admission answer with everything a frontend needs to respond.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Admit or which refusal.
    pub decision: Decision,
    /// When a refused caller may retry (0 when admitted).
    pub retry_after_ms: u64,
    /// Why, for the caller and the logs.
    pub reason: String,
    /// Load over the system total when decided.
    pub pressure_ratio: f64,
}

/// What the backpressure test looks at: load, capacity and limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    /// `L`: tasks admitted and not yet completed.
    pub load: u64,
    /// `T`: the system total capacity.
    pub system_total: u64,
    /// The load each user type may fill the system to.
    pub limits: Limits,
}

/// Level 2's test, and Level 1's against a snapshot: a request is admitted
/// while the load is below its user type's limit.
pub fn admits(load: u64, limit: u64) -> bool {
    load < limit
}

/// A refusal is a sign of system overload (what the backpressure circuit
/// counts) only at the hard limit or with no capacity at all. Refusals at
/// the anonymous or registered threshold are the thresholds working as
/// designed, and must not shut out the user types still below theirs.
pub fn is_overload(pressure: &Pressure) -> bool {
    pressure.system_total == 0 || pressure.load >= pressure.limits.privileged
}

/// Whether Level 1 asks the backpressure circuit. Privileged users never
/// do: an open circuit sheds the others, while the hard limit (0.95 of `T`)
/// still holds for privileged chat.
pub fn level_one_guarded_by_circuit(user_type: UserType) -> bool {
    user_type != UserType::Privileged
}

/// Whether Level 2 asks the backpressure circuit: as at Level 1, and a
/// retry carrying an idempotency key does not either, since it must get its
/// first answer (the store re-checks the limit anyway).
pub fn level_two_guarded_by_circuit(user_type: UserType, has_idempotency_key: bool) -> bool {
    level_one_guarded_by_circuit(user_type) && !has_idempotency_key
}

/// Privileged users bypass rate limits on admin routes (never on chat).
pub fn bypasses_rate_limit(user_type: UserType, route: &str, admin_route_prefix: &str) -> bool {
    user_type == UserType::Privileged && !admin_route_prefix.is_empty() && route.starts_with(admin_route_prefix)
}

/// Level 1: the rate-limit outcome (None when bypassed), then backpressure.
/// Privileged admin-route traffic is not chat, so it is not held to chat
/// capacity either: it still passes when `T = 0`.
pub fn level_one(
    user_type: UserType,
    admin_route: bool,
    rate: Option<GcraOutcome>,
    pressure: Pressure,
    backpressure_retry_after_ms: u64,
) -> Verdict {
    let ratio = pressure_ratio(pressure.load, pressure.system_total);
    if let Some(GcraOutcome::Limited { retry_after_us }) = rate {
        return Verdict {
            decision: Decision::RateLimited,
            retry_after_ms: retry_after_us.div_ceil(1_000).max(1),
            reason: format!("rate limit exceeded for {} users", user_type.as_str()),
            pressure_ratio: ratio,
        };
    }
    if admin_route && user_type == UserType::Privileged {
        return admitted(ratio);
    }
    backpressure(user_type, pressure, backpressure_retry_after_ms)
}

/// The backpressure test of either level for one user type.
pub fn backpressure(user_type: UserType, pressure: Pressure, retry_after_ms: u64) -> Verdict {
    let ratio = pressure_ratio(pressure.load, pressure.system_total);
    let limit = pressure.limits.for_user(user_type);
    if admits(pressure.load, limit) {
        return admitted(ratio);
    }
    refused(user_type, pressure, retry_after_ms)
}

/// The admitted verdict.
pub fn admitted(pressure_ratio: f64) -> Verdict {
    Verdict { decision: Decision::Admit, retry_after_ms: 0, reason: "admitted".to_owned(), pressure_ratio }
}

/// The refusal while the backpressure circuit is open.
pub fn circuit_open(retry_after_ms: u64, pressure_ratio: f64) -> Verdict {
    Verdict {
        decision: Decision::CircuitOpen,
        retry_after_ms: retry_after_ms.max(1),
        reason: "backpressure circuit open: the system is overloaded".to_owned(),
        pressure_ratio,
    }
}

/// The backpressure refusal, with a reason an operator can act on.
pub fn refused(user_type: UserType, pressure: Pressure, retry_after_ms: u64) -> Verdict {
    let reason = if pressure.system_total == 0 {
        "no healthy chat REST processes".to_owned()
    } else {
        format!(
            "backpressure: load {} has reached the {} limit {} of capacity {}",
            pressure.load,
            user_type.as_str(),
            pressure.limits.for_user(user_type),
            pressure.system_total
        )
    };
    Verdict {
        decision: Decision::Backpressure,
        retry_after_ms: retry_after_ms.max(1),
        reason,
        pressure_ratio: pressure_ratio(pressure.load, pressure.system_total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::capacity::Thresholds;
    use proptest::prelude::*;

    const SEED_THRESHOLDS: Thresholds = Thresholds { anonymous: 0.6, registered: 0.8, hard_limit: 0.95 };

    fn seed_pressure(load: u64) -> Pressure {
        Pressure { load, system_total: 14, limits: Limits::from_thresholds(&SEED_THRESHOLDS, 14) }
    }

    #[test]
    fn only_privileged_users_skip_the_backpressure_circuit_at_either_level() {
        for user_type in [UserType::Anonymous, UserType::Registered] {
            assert!(level_one_guarded_by_circuit(user_type));
            assert!(level_two_guarded_by_circuit(user_type, false));
        }
        assert!(!level_one_guarded_by_circuit(UserType::Privileged));
        assert!(!level_two_guarded_by_circuit(UserType::Privileged, false));
    }

    #[test]
    fn a_level_two_retry_with_an_idempotency_key_skips_the_backpressure_circuit() {
        for user_type in [UserType::Anonymous, UserType::Registered, UserType::Privileged] {
            assert!(!level_two_guarded_by_circuit(user_type, true));
        }
    }

    #[test]
    fn anonymous_is_refused_at_sixty_percent() {
        assert_eq!(backpressure(UserType::Anonymous, seed_pressure(7), 1000).decision, Decision::Admit);
        let refused = backpressure(UserType::Anonymous, seed_pressure(8), 1000);
        assert_eq!(refused.decision, Decision::Backpressure);
        assert_eq!(refused.retry_after_ms, 1000);
        assert_eq!(refused.reason, "backpressure: load 8 has reached the anonymous limit 8 of capacity 14");
    }

    #[test]
    fn registered_fills_to_eleven_and_privileged_to_thirteen() {
        assert_eq!(backpressure(UserType::Registered, seed_pressure(10), 1).decision, Decision::Admit);
        assert_eq!(backpressure(UserType::Registered, seed_pressure(11), 1).decision, Decision::Backpressure);
        assert_eq!(backpressure(UserType::Privileged, seed_pressure(12), 1).decision, Decision::Admit);
        assert_eq!(backpressure(UserType::Privileged, seed_pressure(13), 1).decision, Decision::Backpressure);
    }

    #[test]
    fn rate_limit_comes_before_backpressure_with_rounded_up_retry() {
        let v = level_one(
            UserType::Registered,
            false,
            Some(GcraOutcome::Limited { retry_after_us: 1_500 }),
            seed_pressure(0),
            1,
        );
        assert_eq!(v.decision, Decision::RateLimited);
        assert_eq!(v.retry_after_ms, 2);
    }

    #[test]
    fn no_capacity_refuses_everyone_but_privileged_admin_traffic() {
        let empty = Pressure { load: 0, system_total: 0, limits: Limits::from_thresholds(&SEED_THRESHOLDS, 0) };
        for user_type in UserType::ALL {
            let v = level_one(user_type, false, None, empty, 500);
            assert_eq!(v.decision, Decision::Backpressure);
            assert_eq!(v.reason, "no healthy chat REST processes");
        }
        assert_eq!(level_one(UserType::Privileged, true, None, empty, 500).decision, Decision::Admit);
        assert_eq!(level_one(UserType::Registered, true, None, empty, 500).decision, Decision::Backpressure);
    }

    #[test]
    fn only_hard_limit_or_no_capacity_counts_as_overload() {
        assert!(!is_overload(&seed_pressure(8)), "anonymous threshold: policy");
        assert!(!is_overload(&seed_pressure(11)), "registered threshold: policy");
        assert!(is_overload(&seed_pressure(13)), "hard limit: overload");
        let empty = Pressure { load: 0, system_total: 0, limits: Limits::from_thresholds(&SEED_THRESHOLDS, 0) };
        assert!(is_overload(&empty));
    }

    #[test]
    fn only_privileged_users_on_admin_routes_bypass_rate_limits() {
        assert!(bypasses_rate_limit(UserType::Privileged, "/admin/users", "/admin"));
        assert!(!bypasses_rate_limit(UserType::Privileged, "/landing/chat", "/admin"));
        assert!(!bypasses_rate_limit(UserType::Registered, "/admin/users", "/admin"));
        assert!(!bypasses_rate_limit(UserType::Privileged, "/admin", ""));
    }

    proptest! {
        /// Whatever the interleaving of enqueues and completions, the load
        /// admitted for a user type never exceeds its limit.
        #[test]
        fn admitted_load_never_exceeds_the_limit(
            total in 0u64..200,
            ops in proptest::collection::vec((0usize..3, any::<bool>()), 1..500),
        ) {
            let limits = Limits::from_thresholds(&SEED_THRESHOLDS, total);
            let mut load = 0u64;
            for (user, complete) in ops {
                let user_type = UserType::from_index(user).unwrap();
                if complete {
                    load = load.saturating_sub(1);
                    continue;
                }
                let pressure = Pressure { load, system_total: total, limits };
                if backpressure(user_type, pressure, 1).decision == Decision::Admit {
                    load += 1;
                    prop_assert!(load <= limits.for_user(user_type));
                }
            }
            prop_assert!(load <= limits.privileged);
        }
    }
}
