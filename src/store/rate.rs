//! A sharded in-memory GCRA table: the embedded store's rate limiter and the
//! fail-open fallback when a shared store is down. Sharding keeps Level 1
//! free of a global lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::core::UserType;
use crate::core::gcra::{self, GcraOutcome, RateLimit};

const SHARDS: usize = 64;

/// Arrival times per (user type, subject), in 64 shards per user type.
pub struct RateTable {
    shards: Vec<Mutex<HashMap<Box<str>, u64>>>,
    hasher: RandomState,
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable {
            shards: (0..SHARDS * UserType::ALL.len()).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl RateTable {
    fn shard(&self, user_type: UserType, subject: &str) -> &Mutex<HashMap<Box<str>, u64>> {
        let index = (self.hasher.hash_one(subject) as usize) % SHARDS;
        &self.shards[user_type.index() * SHARDS + index]
    }

    /// One GCRA step; the key is written only when the request is allowed.
    pub fn check(&self, user_type: UserType, subject: &str, limit: RateLimit, cost: u32, now_us: u64) -> GcraOutcome {
        let mut shard = self.shard(user_type, subject).lock().unwrap_or_else(|p| p.into_inner());
        let outcome = gcra::check(shard.get(subject).copied(), now_us, limit, cost);
        if let GcraOutcome::Allowed { tat } = outcome {
            match shard.get_mut(subject) {
                Some(stored) => *stored = tat,
                None => {
                    shard.insert(subject.into(), tat);
                }
            }
        }
        outcome
    }

    /// Forgets keys whose arrival time has passed (they carry no state).
    pub fn evict_idle(&self, now_us: u64) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, tat| !gcra::is_idle(*tat, now_us));
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit { per_minute: 60, burst: 2 };

    #[test]
    fn subjects_and_user_types_are_independent() {
        let table = RateTable::default();
        assert!(matches!(table.check(UserType::Anonymous, "a", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
        assert!(matches!(table.check(UserType::Anonymous, "a", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
        assert!(matches!(table.check(UserType::Anonymous, "a", LIMIT, 1, 0), GcraOutcome::Limited { .. }));
        assert!(matches!(table.check(UserType::Anonymous, "b", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
        assert!(matches!(table.check(UserType::Registered, "a", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
    }

    #[test]
    fn idle_keys_are_evicted_and_busy_ones_kept() {
        let table = RateTable::default();
        table.check(UserType::Anonymous, "old", LIMIT, 1, 0);
        table.check(UserType::Anonymous, "new", LIMIT, 1, 5_000_000);
        table.evict_idle(2_000_000);
        assert_eq!(table.len(), 1);
    }
}
