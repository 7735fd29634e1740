//! The embedded store: everything in this process's memory. The
//! check-and-enqueue, lease, complete and extend each run in one critical
//! section over the queues, which is what makes Level 2 exact.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::admission::admits;
use crate::core::analytics::{self, Cells, HISTORY_MINUTES, MinuteRing, SpaceSaving, TOP_SESSIONS};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::{self, ProcessRecord};
use crate::core::lease::{self, Expiry};
use crate::core::rls::Check;
use crate::core::{Millis, UserType};

use super::rate::RateTable;
use super::{
    AnalyticsStore, AnalyticsView, ClusterState, DeadLetter, EnqueueOutcome, Housekeeping, LeaseHolder, LeaseRequest,
    LeasedTask, NewTask, ProcessRegistry, ProcessView, QueueStats, RateBatch, RateKey, RateLimiter, StoreResult,
    StoredConfig, TaskQueue,
};
use super::{DEAD_LETTERS_KEPT, new_id};
use crate::sync::lock;

/// A task waiting in, or leased from, a priority queue.
#[derive(Debug, Clone)]
struct Task {
    task_id: String,
    /// Enqueue order, so requeued tasks go back in FIFO order.
    seq: u64,
    user_type: UserType,
    payload: Vec<u8>,
    enqueued_at_ms: Millis,
    delivery_count: u32,
}

#[derive(Debug)]
struct Lease {
    lease_id: String,
    expires_at_ms: Millis,
    /// Who holds it: named in the dead letter if it expires for the last time.
    holder: LeaseHolder,
    task: Task,
}

/// The remembered first answer for an idempotency key.
#[derive(Debug, Clone)]
struct Remembered {
    task_id: String,
    queue_position: u64,
    expires_at_ms: Millis,
}

#[derive(Debug, Default)]
struct Queues {
    /// Waiting tasks per user type, indexed by `UserType::index`.
    ready: [VecDeque<Task>; 3],
    leased: HashMap<String, Lease>,
    /// (expiry, task_id) of every lease, to find expired ones in order.
    expiries: BTreeSet<(Millis, String)>,
    /// The most recent dead letters, at most `DEAD_LETTERS_KEPT`.
    dead: VecDeque<DeadLetter>,
    idempotency: HashMap<String, Remembered>,
    /// (expiry, key) in insertion order; TTLs only grow, so it stays sorted
    /// unless the TTL is lowered live, which only delays eviction.
    idempotency_order: VecDeque<(Millis, String)>,
    next_seq: u64,
}

impl Queues {
    fn load(&self) -> u64 {
        self.ready.iter().map(|q| q.len() as u64).sum::<u64>() + self.leased.len() as u64
    }

    /// Expired leases go back to the head of their queue, or to the
    /// dead-letter list once they have had `max_deliveries` deliveries.
    fn requeue_expired(&mut self, now: Millis, max_deliveries: u32) {
        let mut expired = Vec::new();
        while let Some((expires_at, _)) = self.expiries.first() {
            if lease::is_held(*expires_at, now) {
                break;
            }
            let Some((_, task_id)) = self.expiries.pop_first() else {
                break;
            };
            if let Some(lease) = self.leased.remove(&task_id) {
                expired.push((lease.task, lease.holder));
            }
        }
        lease::requeue_order(&mut expired, |(t, _)| t.seq);
        for (task, holder) in expired {
            if lease::on_expiry(task.delivery_count, max_deliveries) == Expiry::DeadLetter {
                if self.dead.len() >= DEAD_LETTERS_KEPT {
                    self.dead.pop_front();
                }
                self.dead.push_back(DeadLetter {
                    task_id: task.task_id,
                    user_type: task.user_type,
                    enqueued_at_ms: task.enqueued_at_ms,
                    delivery_count: task.delivery_count,
                    dead_at_ms: now,
                    last_holder: Some(holder),
                });
            } else {
                self.ready[task.user_type.index()].push_front(task);
            }
        }
    }

    fn forget_expired_keys(&mut self, now: Millis) {
        while let Some((expires_at, _)) = self.idempotency_order.front() {
            if *expires_at > now {
                break;
            }
            if let Some((_, key)) = self.idempotency_order.pop_front()
                && self.idempotency.get(&key).is_some_and(|r| r.expires_at_ms <= now)
            {
                self.idempotency.remove(&key);
            }
        }
    }
}

/// The embedded, single-instance store.
#[derive(Default)]
pub struct MemoryStore {
    queues: Mutex<Queues>,
    /// Mirror of the queues' load for lock-free reads by Level 1.
    load: AtomicU64,
    processes: Mutex<HashMap<(String, String), ProcessRecord>>,
    rates: RateTable,
    analytics: Mutex<Analytics>,
    breaker_generations: Mutex<BTreeMap<String, u64>>,
    published_breakers: Mutex<HashMap<String, (Millis, String)>>,
    /// (current, previous) runtime config versions.
    config: Mutex<(Option<StoredConfig>, Option<StoredConfig>)>,
}

/// 24 h of minute counts and per-hour heavy hitters.
#[derive(Default)]
struct Analytics {
    minutes: MinuteRing,
    top_by_hour: BTreeMap<u64, SpaceSaving>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn with_queues<T>(&self, f: impl FnOnce(&mut Queues) -> T) -> T {
        let mut queues = lock(&self.queues);
        let result = f(&mut queues);
        self.load.store(queues.load(), Ordering::Release);
        result
    }
}

impl RateLimiter for MemoryStore {
    async fn rate_limit(
        &self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        cost: u32,
        now_us: u64,
    ) -> StoreResult<GcraOutcome> {
        Ok(self.rates.check(user_type, subject, limit, cost, now_us))
    }

    async fn rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<RateBatch> {
        Ok(RateBatch { outcomes: self.rates.check_all(checks, dry_run, now_us)?, now_us })
    }
}

impl TaskQueue for MemoryStore {
    async fn enqueue(&self, task: NewTask, limit: u64, now: Millis) -> StoreResult<EnqueueOutcome> {
        Ok(self.with_queues(|q| {
            if let Some(key) = &task.idempotency_key
                && let Some(first) = q.idempotency.get(key).filter(|r| r.expires_at_ms > now)
            {
                return EnqueueOutcome::Duplicate {
                    task_id: first.task_id.clone(),
                    queue_position: first.queue_position,
                    load: q.load(),
                };
            }
            let load = q.load();
            if !admits(load, limit) {
                return EnqueueOutcome::Refused { load };
            }
            q.next_seq += 1;
            let task_id = new_id();
            let queue = &mut q.ready[task.user_type.index()];
            queue.push_back(Task {
                task_id: task_id.clone(),
                seq: q.next_seq,
                user_type: task.user_type,
                payload: task.payload,
                enqueued_at_ms: now,
                delivery_count: 0,
            });
            let queue_position = queue.len() as u64;
            if let Some(key) = task.idempotency_key {
                let expires_at_ms = now + task.idempotency_ttl_ms;
                q.idempotency_order.push_back((expires_at_ms, key.clone()));
                q.idempotency.insert(key, Remembered { task_id: task_id.clone(), queue_position, expires_at_ms });
            }
            EnqueueOutcome::Admitted { task_id, queue_position, load: load + 1 }
        }))
    }

    async fn lease(&self, request: LeaseRequest, now: Millis) -> StoreResult<Vec<LeasedTask>> {
        Ok(self.with_queues(|q| {
            q.requeue_expired(now, request.max_deliveries);
            let mut leased = Vec::new();
            let expires_at_ms = lease::expires_at(now, request.lease_ms);
            for user_type in lease::LEASE_ORDER {
                while leased.len() < request.max_tasks as usize {
                    let Some(mut task) = q.ready[user_type.index()].pop_front() else {
                        break;
                    };
                    task.delivery_count += 1;
                    let lease_id = new_id();
                    leased.push(LeasedTask {
                        task_id: task.task_id.clone(),
                        lease_id: lease_id.clone(),
                        payload: task.payload.clone(),
                        user_type: task.user_type,
                        enqueued_at_ms: task.enqueued_at_ms,
                        delivery_count: task.delivery_count,
                        lease_expires_at_ms: expires_at_ms,
                    });
                    q.expiries.insert((expires_at_ms, task.task_id.clone()));
                    let holder = request.holder.clone();
                    q.leased.insert(task.task_id.clone(), Lease { lease_id, expires_at_ms, holder, task });
                }
            }
            leased
        }))
    }

    async fn complete(&self, task_id: &str, lease_id: &str, now: Millis) -> StoreResult<bool> {
        Ok(self.with_queues(|q| {
            let held =
                q.leased.get(task_id).is_some_and(|l| lease::is_held_by(&l.lease_id, l.expires_at_ms, lease_id, now));
            if held && let Some(lease) = q.leased.remove(task_id) {
                q.expiries.remove(&(lease.expires_at_ms, task_id.to_owned()));
            }
            held
        }))
    }

    async fn extend(
        &self,
        task_id: &str,
        lease_id: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> StoreResult<Option<Millis>> {
        Ok(self.with_queues(|q| {
            let lease =
                q.leased.get_mut(task_id).filter(|l| lease::is_held_by(&l.lease_id, l.expires_at_ms, lease_id, now))?;
            let old = (lease.expires_at_ms, task_id.to_owned());
            lease.expires_at_ms = lease::expires_at(now, lease_ms);
            let new = (lease.expires_at_ms, task_id.to_owned());
            q.expiries.remove(&old);
            q.expiries.insert(new);
            Some(lease.expires_at_ms)
        }))
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        Ok(self.with_queues(|q| QueueStats {
            queued: [0, 1, 2].map(|i| q.ready[i].len() as u64),
            leased: q.leased.len() as u64,
            dead_letters: q.dead.len() as u64,
            oldest_enqueued_at_ms: [0, 1, 2].map(|i| q.ready[i].front().map(|t| t.enqueued_at_ms)),
        }))
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        Ok(self.with_queues(|q| q.dead.iter().rev().take(limit).cloned().collect()))
    }

    fn cached_load(&self) -> u64 {
        self.load.load(Ordering::Acquire)
    }
}

impl Housekeeping for MemoryStore {
    async fn maintain(&self, now: Millis, max_deliveries: u32) -> StoreResult<()> {
        self.with_queues(|q| {
            q.requeue_expired(now, max_deliveries);
            q.forget_expired_keys(now);
        });
        self.rates.evict_idle(now.saturating_mul(1_000));
        Ok(())
    }
}

impl ProcessRegistry for MemoryStore {
    async fn heartbeat(&self, record: ProcessRecord, now: Millis) -> StoreResult<()> {
        let key = (record.instance_id.clone(), record.process_id.clone());
        let record = ProcessRecord { last_seen_ms: now, ..record };
        lock(&self.processes).insert(key, record);
        Ok(())
    }

    async fn processes(&self, now: Millis, expire_after_ms: Millis) -> StoreResult<ProcessView> {
        let mut processes = lock(&self.processes);
        processes.retain(|_, r| !health::is_expired(r, now, expire_after_ms));
        Ok(ProcessView { records: processes.values().cloned().collect(), now_ms: now })
    }
}

impl ClusterState for MemoryStore {
    async fn reset_breaker(&self, name: &str) -> StoreResult<u64> {
        let mut generations = lock(&self.breaker_generations);
        let generation = generations.entry(name.to_owned()).or_insert(0);
        *generation += 1;
        Ok(*generation)
    }

    async fn breaker_generations(&self) -> StoreResult<BTreeMap<String, u64>> {
        Ok(lock(&self.breaker_generations).clone())
    }

    async fn publish_breakers(&self, replica: &str, json: String, now: Millis) -> StoreResult<()> {
        lock(&self.published_breakers).insert(replica.to_owned(), (now, json));
        Ok(())
    }

    async fn cluster_breakers(&self, since: Millis) -> StoreResult<Vec<String>> {
        let mut published = lock(&self.published_breakers);
        published.retain(|_, (at, _)| *at >= since);
        Ok(published.values().map(|(_, json)| json.clone()).collect())
    }

    async fn store_config(&self, json: String) -> StoreResult<u64> {
        let mut config = lock(&self.config);
        let version = config.0.as_ref().map_or(0, |c| c.version) + 1;
        let previous = config.0.replace(StoredConfig { version, json });
        config.1 = previous;
        Ok(version)
    }

    async fn load_config(&self) -> StoreResult<Option<StoredConfig>> {
        Ok(lock(&self.config).0.clone())
    }
}

impl AnalyticsStore for MemoryStore {
    async fn flush_analytics(&self, minute: u64, cells: Cells, sessions: Vec<(String, u64)>) -> StoreResult<()> {
        let mut a = lock(&self.analytics);
        a.minutes.add(minute, &cells);
        let hour = minute / 60;
        let top = a.top_by_hour.entry(hour).or_insert_with(|| SpaceSaving::new(TOP_SESSIONS));
        for (session, n) in sessions {
            top.offer(&session, n);
        }
        let oldest = hour.saturating_sub(HISTORY_MINUTES / 60);
        a.top_by_hour.retain(|h, _| *h > oldest);
        Ok(())
    }

    async fn analytics(&self, now_minute: u64, span_minutes: u64) -> StoreResult<AnalyticsView> {
        let a = lock(&self.analytics);
        let minutes = (0..span_minutes.min(HISTORY_MINUTES))
            .filter_map(|back| now_minute.checked_sub(back))
            .filter_map(|m| a.minutes.get(m).map(|cells| (m, *cells)))
            .filter(|(_, cells)| cells.iter().any(|n| *n > 0))
            .collect();
        let first_hour = analytics::first_hour(now_minute, span_minutes);
        // Newest first, as the minutes; an hour without sessions is left out.
        let top_by_hour = a
            .top_by_hour
            .iter()
            .rev()
            .filter(|(h, _)| **h >= first_hour)
            .map(|(h, top)| (*h, top.top(TOP_SESSIONS)))
            .filter(|(_, top)| !top.is_empty())
            .collect();
        Ok(AnalyticsView { minutes, top_by_hour })
    }
}
