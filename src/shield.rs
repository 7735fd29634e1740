//! The local shield: refusals remembered on this replica until their retry
//! time, so that a flood of one refused subject or descriptor costs no store
//! call (envoyproxy/ratelimit's over-limit cache, done exactly).
//!
//! Why it is exact: a GCRA refusal of `cost` hits at `now` with a retry of
//! `r` means the key's arrival time is too far ahead for `cost` hits before
//! `now + r`; other callers can only push that time further, and a refused
//! request changes nothing. So every request of at least that cost on the
//! same key is refused by the store until then, and the shield only ever
//! refuses. It never admits. What it changes: a limit raised by an operator
//! applies to a shielded key only once its retry time has passed.
//!
//! Memory is bounded: one S3-FIFO cache (scan resistant, LRU-like) per key
//! group, of a configured number of entries. Times are caller-given µs; the
//! shield reads no clock.

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;

use crate::core::UserType;
use crate::core::gcra::GcraOutcome;
use crate::core::rls::Check;
use crate::store::{RateBatch, RateKey};

/// A remembered refusal: requests of at least `cost` hits are refused until
/// `until_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    until_us: u64,
    cost: u32,
}

/// Refusals below this retry time are not remembered: the entry would
/// expire before it saved a store call, and only churn the cache.
const MIN_REMEMBERED_US: u64 = 1_000;

/// The refusals of one replica, by key. Cheap to share (`&self` methods).
pub(crate) struct Shield {
    groups: Option<Groups>,
    hits: AtomicU64,
}

/// One cache per key group, so a lookup borrows the caller's `&str` and
/// allocates nothing.
struct Groups {
    users: [Cache<Box<str>, Refusal>; 3],
    descriptors: Cache<Box<str>, Refusal>,
}

impl Groups {
    fn cache<'k>(&self, key: &RateKey<'k>) -> (&Cache<Box<str>, Refusal>, &'k str) {
        match key {
            RateKey::User(user_type, subject) => (&self.users[user_index(*user_type)], subject),
            RateKey::Descriptor(counter) => (&self.descriptors, counter),
        }
    }
}

fn user_index(user_type: UserType) -> usize {
    match user_type {
        UserType::Anonymous => 0,
        UserType::Registered => 1,
        UserType::Privileged => 2,
    }
}

impl Shield {
    /// A shield remembering up to about `capacity` refused keys per group;
    /// `0` turns it off (every call goes to the store).
    pub(crate) fn new(capacity: usize) -> Shield {
        let groups = (capacity > 0).then(|| Groups {
            users: std::array::from_fn(|_| Cache::new(capacity)),
            descriptors: Cache::new(capacity),
        });
        Shield { groups, hits: AtomicU64::new(0) }
    }

    /// Whether the shield remembers anything at all.
    #[cfg(test)]
    fn is_enabled(&self) -> bool {
        self.groups.is_some()
    }

    /// The store's answer for `cost` hits on `key` at `now_us`, when it is
    /// known without asking: a refusal whose retry time has not come.
    /// Counted as a shield hit.
    pub(crate) fn refused(&self, key: &RateKey<'_>, cost: u32, now_us: u64) -> Option<GcraOutcome> {
        let groups = self.groups.as_ref()?;
        let (cache, name) = groups.cache(key);
        let refusal = cache.get(name)?;
        let outcome = shielded(refusal, cost, now_us);
        if outcome.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else if refusal.until_us <= now_us {
            // Past its retry time the entry says nothing; make room.
            cache.remove(name);
        }
        outcome
    }

    /// Remembers the store's `outcome` for `cost` hits on `key` decided at
    /// `now_us`, if it is a refusal worth remembering.
    pub(crate) fn remember(&self, key: &RateKey<'_>, cost: u32, outcome: &GcraOutcome, now_us: u64) {
        let Some(groups) = self.groups.as_ref() else { return };
        if let Some(refusal) = refusal_of(outcome, cost, now_us) {
            let (cache, name) = groups.cache(key);
            cache.insert(name.into(), refusal);
        }
    }

    /// The store's answer to an Envoy request's checks (`RateLimiter::rate_limit_all`),
    /// when every check is a remembered refusal whose retry time has not
    /// come: the store would refuse each of them, and the request with them
    /// (all or nothing: a refused request consumes nothing). Counted as one
    /// shield hit. A request with any check the shield does not know goes
    /// to the store whole, so its answer stays exact for every descriptor.
    pub(crate) fn refused_all(&self, checks: &[(RateKey<'_>, Check)], now_us: u64) -> Option<RateBatch> {
        let groups = self.groups.as_ref()?;
        let outcomes = checks
            .iter()
            .map(|(key, check)| {
                let (cache, name) = groups.cache(key);
                shielded(cache.get(name)?, check.cost, now_us)
            })
            .collect::<Option<Vec<_>>>()?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(RateBatch { outcomes, now_us })
    }

    /// Remembers the refusals among the store's answer to an Envoy
    /// request's checks, decided at `now_us`. A key checked twice in one
    /// request is skipped: its second check saw the first one's unwritten
    /// step, not the stored state.
    pub(crate) fn remember_all(&self, checks: &[(RateKey<'_>, Check)], batch: &RateBatch, now_us: u64) {
        for (i, ((key, check), outcome)) in checks.iter().zip(&batch.outcomes).enumerate() {
            if checks.iter().enumerate().all(|(j, (other, _))| i == j || other != key) {
                self.remember(key, check.cost, outcome, now_us);
            }
        }
    }

    /// Requests refused by the shield since start.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// The rule: a refusal for `cost` hits, retried after `r`, holds for every
/// request of at least `cost` hits until `now + r`.
fn refusal_of(outcome: &GcraOutcome, cost: u32, now_us: u64) -> Option<Refusal> {
    match *outcome {
        GcraOutcome::Limited { retry_after_us } if retry_after_us >= MIN_REMEMBERED_US => {
            Some(Refusal { until_us: now_us.saturating_add(retry_after_us), cost })
        }
        _ => None,
    }
}

/// The answer a remembered refusal gives for `cost` hits at `now_us`.
fn shielded(refusal: Refusal, cost: u32, now_us: u64) -> Option<GcraOutcome> {
    (cost >= refusal.cost && now_us < refusal.until_us)
        .then(|| GcraOutcome::Limited { retry_after_us: refusal.until_us - now_us })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::gcra::{self, RateLimit};

    const LIMIT: RateLimit = RateLimit { per_minute: 60, burst: 2 };

    #[test]
    fn a_refused_subject_is_refused_locally_until_its_retry_time() {
        let shield = Shield::new(100);
        let key = RateKey::User(UserType::Anonymous, "ip-1");
        shield.remember(&key, 1, &GcraOutcome::Limited { retry_after_us: 500_000 }, 1_000_000);
        assert_eq!(shield.refused(&key, 1, 1_200_000), Some(GcraOutcome::Limited { retry_after_us: 300_000 }));
        assert_eq!(shield.refused(&key, 1, 1_500_000), None, "free again at the retry time");
        assert_eq!(shield.hits(), 1);
    }

    #[test]
    fn admissions_and_short_retries_are_not_remembered() {
        let shield = Shield::new(100);
        let key = RateKey::Descriptor("domain\u{1f}k_v");
        shield.remember(&key, 1, &GcraOutcome::Allowed { tat: 5 }, 0);
        shield.remember(&key, 1, &GcraOutcome::Limited { retry_after_us: MIN_REMEMBERED_US - 1 }, 0);
        assert_eq!(shield.refused(&key, 1, 0), None);
    }

    #[test]
    fn groups_and_user_types_do_not_share_keys() {
        let shield = Shield::new(100);
        shield.remember(
            &RateKey::User(UserType::Anonymous, "x"),
            1,
            &GcraOutcome::Limited { retry_after_us: 9_000 },
            0,
        );
        assert!(shield.refused(&RateKey::User(UserType::Anonymous, "x"), 1, 0).is_some());
        assert_eq!(shield.refused(&RateKey::User(UserType::Registered, "x"), 1, 0), None);
        assert_eq!(shield.refused(&RateKey::Descriptor("x"), 1, 0), None);
    }

    #[test]
    fn a_smaller_request_than_the_refused_one_goes_to_the_store() {
        let shield = Shield::new(100);
        let key = RateKey::Descriptor("d");
        shield.remember(&key, 5, &GcraOutcome::Limited { retry_after_us: 9_000 }, 0);
        assert_eq!(shield.refused(&key, 1, 0), None, "one hit may still fit");
        assert!(shield.refused(&key, 5, 0).is_some());
        assert!(shield.refused(&key, 6, 0).is_some());
    }

    #[test]
    fn a_disabled_shield_remembers_nothing() {
        let shield = Shield::new(0);
        let key = RateKey::User(UserType::Anonymous, "ip-1");
        shield.remember(&key, 1, &GcraOutcome::Limited { retry_after_us: 9_000_000 }, 0);
        assert!(!shield.is_enabled());
        assert_eq!(shield.refused(&key, 1, 0), None);
    }

    #[test]
    fn an_envoy_request_is_answered_locally_only_when_every_check_is_a_known_refusal() {
        let shield = Shield::new(100);
        let spacing = gcra::Spacing { interval_us: 1_000_000, tolerance_us: 2_000_000 };
        let check = Check { spacing, cost: 1, enforce: true };
        let (over, fresh) = (RateKey::Descriptor("4:chat1:k1:a"), RateKey::Descriptor("4:chat1:k1:b"));
        let refused = RateBatch { outcomes: vec![GcraOutcome::Limited { retry_after_us: 400_000 }], now_us: 0 };
        shield.remember_all(&[(over, check)], &refused, 1_000_000);
        let alone = shield.refused_all(&[(over, check)], 1_100_000).expect("a known refusal");
        assert_eq!(alone.outcomes, [GcraOutcome::Limited { retry_after_us: 300_000 }]);
        assert_eq!(shield.refused_all(&[(over, check), (fresh, check)], 1_100_000), None, "fresh goes to the store");
        assert_eq!(shield.refused_all(&[(over, check)], 1_400_000), None, "free again at the retry time");
        assert_eq!(shield.hits(), 1);
    }

    #[test]
    fn a_key_checked_twice_in_one_request_is_not_remembered() {
        let shield = Shield::new(100);
        let check = Check { spacing: gcra::Spacing { interval_us: 10, tolerance_us: 10 }, cost: 1, enforce: true };
        let key = RateKey::Descriptor("d");
        // The second check was refused only because of the first one's step,
        // which a refused request never writes.
        let batch = RateBatch {
            outcomes: vec![GcraOutcome::Allowed { tat: 5 }, GcraOutcome::Limited { retry_after_us: 9_000 }],
            now_us: 0,
        };
        shield.remember_all(&[(key, check), (key, check)], &batch, 0);
        assert_eq!(shield.refused(&key, 1, 0), None);
    }

    #[test]
    fn memory_stays_bounded_by_the_capacity() {
        let shield = Shield::new(64);
        for i in 0..10_000u32 {
            let subject = format!("s{i}");
            let key = RateKey::User(UserType::Anonymous, &subject);
            shield.remember(&key, 1, &GcraOutcome::Limited { retry_after_us: 60_000_000 }, 0);
        }
        let groups = shield.groups.as_ref().expect("enabled");
        assert!(groups.users[0].len() <= 128, "kept {}", groups.users[0].len());
    }

    proptest! {
        /// The shield never admits: for any sequence of requests against one
        /// key, with the store (GCRA) deciding only what the shield lets
        /// through, every request the shield refuses is one the store
        /// would have refused at that moment.
        #[test]
        fn never_refuses_what_the_store_would_admit(
            steps in proptest::collection::vec((0u64..400_000, 1u32..4), 1..200),
        ) {
            let shield = Shield::new(16);
            let key = RateKey::User(UserType::Registered, "u");
            let mut tat: Option<u64> = None;
            let mut now = 0u64;
            for (advance, cost) in steps {
                now += advance;
                let store = gcra::check(tat, now, LIMIT, cost);
                match shield.refused(&key, cost, now) {
                    Some(GcraOutcome::Limited { retry_after_us }) => {
                        prop_assert!(matches!(store, GcraOutcome::Limited { .. }), "shield refused what GCRA admits");
                        if let GcraOutcome::Limited { retry_after_us: exact } = store {
                            prop_assert!(retry_after_us <= exact, "shield asks to wait longer than the store");
                        }
                    }
                    Some(GcraOutcome::Allowed { .. }) => prop_assert!(false, "the shield never admits"),
                    None => {
                        if let GcraOutcome::Allowed { tat: next } = store {
                            tat = Some(next);
                        }
                        shield.remember(&key, cost, &store, now);
                    }
                }
            }
        }
    }
}
