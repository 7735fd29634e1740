//! A sharded in-memory GCRA table: the embedded store's rate limiter and the
//! fail-open fallback when a shared store is down. Sharding keeps Level 1
//! free of a global lock.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use smallvec::SmallVec;

use crate::core::UserType;
use crate::core::gcra::{self, GcraOutcome, RateLimit};
use crate::core::rls::{self, Check};

use super::RateKey;
use crate::sync::lock;

const SHARDS: usize = 64;
/// Shard groups: one per user type, then one for Envoy descriptor counters.
const GROUPS: usize = UserType::ALL.len() + 1;

/// One shard: (subject or counter, arrival time), found by the key's hash.
type Shard = HashTable<(Box<str>, u64)>;

/// A key located: its shard, its hash and its name.
type Located<'a> = (usize, u64, &'a str);

/// Arrival times per (user type, subject), in 64 shards per user type, and
/// per Envoy descriptor counter in 64 more.
pub struct RateTable {
    shards: Vec<Mutex<Shard>>,
    /// SipHash with a random key: the keys are callers' subjects and
    /// values, so a shard must not be floodable. A key is hashed once per
    /// request: the hash picks its shard and finds (and stores) its slot.
    hasher: RandomState,
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable {
            shards: (0..SHARDS * GROUPS).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl RateTable {
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    fn locate<'k>(&self, key: RateKey<'k>) -> Located<'k> {
        let (group, name) = match key {
            RateKey::User(user_type, subject) => (user_type.index(), subject),
            RateKey::Descriptor(counter) => (UserType::ALL.len(), counter),
        };
        let hash = self.hash(name);
        // Bits 32 and up pick the shard: the table's slot takes the low
        // bits and its tags the top seven, so the three stay independent.
        (group * SHARDS + (hash >> 32) as usize % SHARDS, hash, name)
    }

    /// One request's checks decided together (`core::rls::decide_all`):
    /// every shard involved is held for the decision, so no other request
    /// sees half of it. Shards are locked in ascending order and `check`
    /// holds one at a time, so two requests never wait on each other in a cycle.
    pub fn check_all(&self, checks: &[(RateKey<'_>, Check)], dry_run: bool, now_us: u64) -> Vec<GcraOutcome> {
        if let [(key, check)] = checks {
            // One check (the usual Envoy request): one shard, one lookup.
            let (shard, hash, name) = self.locate(*key);
            let mut shard = lock(&self.shards[shard]);
            let decide = |tat| gcra::check_spacing(tat, now_us, check.spacing, check.cost);
            let outcome = self.step(&mut shard, hash, name, decide, |outcome| rls::kept([check], &[outcome], dry_run));
            return vec![outcome];
        }
        // On the stack for the usual few descriptors: no allocation but the outcomes.
        let located: SmallVec<[(Located<'_>, Check); 4]> =
            checks.iter().map(|(key, check)| (self.locate(*key), *check)).collect();
        let mut order: SmallVec<[usize; 4]> = located.iter().map(|((shard, _, _), _)| *shard).collect();
        order.sort_unstable();
        order.dedup();
        let mut held: SmallVec<[(usize, MutexGuard<'_, Shard>); 4]> =
            order.into_iter().map(|i| (i, lock(&self.shards[i]))).collect();
        // Every shard in `located` is in `held`, which is sorted.
        let position = |held: &[(usize, MutexGuard<'_, Shard>)], shard: usize| {
            held.binary_search_by_key(&shard, |(i, _)| *i).unwrap_or_default()
        };
        let (outcomes, writes) = rls::decide_all(
            &located,
            |(shard, hash, name)| held[position(&held, *shard)].1.find(*hash, |(k, _)| **k == **name).map(|(_, t)| *t),
            now_us,
            dry_run,
        );
        for ((shard, hash, name), tat) in writes {
            let at = position(&held, shard);
            self.store(&mut held[at].1, hash, name, tat);
        }
        outcomes
    }

    /// One GCRA step; the key is written only when the request is allowed.
    pub fn check(&self, user_type: UserType, subject: &str, limit: RateLimit, cost: u32, now_us: u64) -> GcraOutcome {
        let (shard, hash, name) = self.locate(RateKey::User(user_type, subject));
        let mut shard = lock(&self.shards[shard]);
        self.step(&mut shard, hash, name, |tat| gcra::check(tat, now_us, limit, cost), |_| true)
    }

    /// One GCRA step on one key with one probe of its shard: `decide` sees
    /// the stored arrival time; an allowed outcome's new time is stored when
    /// `keep` says so (the caller's rule: always for Level 1, `rls::kept`
    /// for a request).
    fn step(
        &self,
        shard: &mut Shard,
        hash: u64,
        name: &str,
        decide: impl FnOnce(Option<u64>) -> GcraOutcome,
        keep: impl FnOnce(GcraOutcome) -> bool,
    ) -> GcraOutcome {
        let entry = shard.entry(hash, |(k, _)| **k == *name, |(k, _)| self.hash(k));
        let outcome = decide(match &entry {
            Entry::Occupied(slot) => Some(slot.get().1),
            Entry::Vacant(_) => None,
        });
        if let GcraOutcome::Allowed { tat } = outcome
            && keep(outcome)
        {
            match entry {
                Entry::Occupied(mut slot) => slot.get_mut().1 = tat,
                Entry::Vacant(slot) => {
                    slot.insert((name.into(), tat));
                }
            }
        }
        outcome
    }

    /// Stores `tat` as `name`'s arrival time (usually an update: a lookup,
    /// with no room reserved as `entry` would; measured cheaper).
    fn store(&self, shard: &mut Shard, hash: u64, name: &str, tat: u64) {
        match shard.find_mut(hash, |(k, _)| **k == *name) {
            Some((_, stored)) => *stored = tat,
            None => {
                shard.insert_unique(hash, (name.into(), tat), |(k, _)| self.hash(k));
            }
        }
    }

    /// Keys currently held (tests: eviction frees memory).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Forgets keys whose arrival time has passed (they carry no state).
    pub fn evict_idle(&self, now_us: u64) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|(_, tat)| !gcra::is_idle(*tat, now_us));
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit(|(k, _)| self.hash(k));
            }
        }
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
    fn a_batch_shares_level_one_keys_and_keeps_descriptor_counters_apart() {
        let table = RateTable::default();
        let spacing = LIMIT.spacing();
        let check = Check { spacing, cost: 1, enforce: true };
        // The descriptor counter "a" is not the anonymous subject "a".
        let batch = [(RateKey::Descriptor("a"), check), (RateKey::User(UserType::Anonymous, "a"), check)];
        assert!(table.check_all(&batch, false, 0).iter().all(|o| matches!(o, GcraOutcome::Allowed { .. })));
        assert!(matches!(table.check(UserType::Anonymous, "a", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
        // Level 1's key is now full: the batch is refused and its descriptor not consumed.
        let outcomes = table.check_all(&batch, false, 0);
        assert!(matches!(outcomes[1], GcraOutcome::Limited { .. }));
        assert_eq!(table.len(), 2);
        let again = table.check_all(&batch[..1], false, 0);
        assert_eq!(again, [GcraOutcome::Allowed { tat: 2 * spacing.interval_us }]);
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
