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

/// A shard locked for one request, with its index.
type Held<'a> = (usize, MutexGuard<'a, Shard>);

/// A check's shard was not among those locked for its request: a bug in
/// the locking, answered as an error rather than decided on another shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate table shard {0} was not locked for the request that needs it")]
pub struct ShardNotHeld(pub usize);

/// Where `shard` is in `held` (sorted by shard).
fn held_at<T>(held: &[(usize, T)], shard: usize) -> Result<usize, ShardNotHeld> {
    held.binary_search_by_key(&shard, |(i, _)| *i).map_err(|_| ShardNotHeld(shard))
}

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
    pub fn check_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> Result<Vec<GcraOutcome>, ShardNotHeld> {
        if let [(key, check)] = checks {
            // One check (the usual Envoy request): one shard, one lookup.
            let (shard, hash, name) = self.locate(*key);
            let mut shard = lock(&self.shards[shard]);
            let decide = |tat| gcra::check_spacing(tat, now_us, check.spacing, check.cost);
            let outcome = self.step(&mut shard, hash, name, decide, |outcome| rls::kept([check], &[outcome], dry_run));
            return Ok(vec![outcome]);
        }
        // On the stack for the usual few descriptors: no allocation but the outcomes.
        let located: SmallVec<[(Located<'_>, Check); 4]> =
            checks.iter().map(|(key, check)| (self.locate(*key), *check)).collect();
        let mut order: SmallVec<[usize; 4]> = located.iter().map(|((shard, _, _), _)| *shard).collect();
        order.sort_unstable();
        order.dedup();
        let mut held: SmallVec<[Held<'_>; 4]> = order.into_iter().map(|i| (i, lock(&self.shards[i]))).collect();
        self.decide_held(&mut held, &located, dry_run, now_us)
    }

    /// Decides located checks on the shards in `held` (sorted by shard).
    /// Each check's shard is looked up once; one that is not held is an
    /// error, never a decision on another shard's table, which would read
    /// and write arrival times outside the request's locks.
    fn decide_held(
        &self,
        held: &mut [Held<'_>],
        located: &[(Located<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> Result<Vec<GcraOutcome>, ShardNotHeld> {
        // Each key with its shard's place in `held` instead of the shard.
        let placed = located
            .iter()
            .map(|((shard, hash, name), check)| Ok(((held_at(held, *shard)?, *hash, *name), *check)))
            .collect::<Result<SmallVec<[(Located<'_>, Check); 4]>, ShardNotHeld>>()?;
        let (outcomes, writes) = rls::decide_all(
            &placed,
            |(at, hash, name)| held[*at].1.find(*hash, |(k, _)| **k == **name).map(|(_, t)| *t),
            now_us,
            dry_run,
        );
        for ((at, hash, name), tat) in writes {
            self.store(&mut held[at].1, hash, name, tat);
        }
        Ok(outcomes)
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
        assert!(table.check_all(&batch, false, 0).unwrap().iter().all(|o| matches!(o, GcraOutcome::Allowed { .. })));
        assert!(matches!(table.check(UserType::Anonymous, "a", LIMIT, 1, 0), GcraOutcome::Allowed { .. }));
        // Level 1's key is now full: the batch is refused and its descriptor not consumed.
        let outcomes = table.check_all(&batch, false, 0).unwrap();
        assert!(matches!(outcomes[1], GcraOutcome::Limited { .. }));
        assert_eq!(table.len(), 2);
        let again = table.check_all(&batch[..1], false, 0).unwrap();
        assert_eq!(again, [GcraOutcome::Allowed { tat: 2 * spacing.interval_us }]);
    }

    /// Regression: a shard missing from the locked set was taken for the
    /// first one held (index 0), so the check read and wrote another
    /// shard's table, outside the locks its request held.
    #[test]
    fn a_check_whose_shard_is_not_held_is_an_error_not_the_first_shard() {
        let table = RateTable::default();
        let check = Check { spacing: LIMIT.spacing(), cost: 1, enforce: true };
        let key = |name| (table.locate(RateKey::Descriptor(name)), check);
        // Two descriptors in different shards; only the first one's is locked.
        let names = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
        let first = key(names[0]);
        let other = names.iter().map(|n| key(n)).find(|(l, _)| l.0 != first.0.0).unwrap();
        let mut held = [(first.0.0, lock(&table.shards[first.0.0]))];
        let answer = table.decide_held(&mut held, &[first, other], false, 0);
        assert_eq!(answer, Err(ShardNotHeld(other.0.0)));
        drop(held);
        assert_eq!(table.len(), 0, "nothing was written");
        assert_eq!(held_at(&[(3, ()), (9, ())], 9), Ok(1));
        assert_eq!(held_at(&[(3, ()), (9, ())], 5), Err(ShardNotHeld(5)));
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
