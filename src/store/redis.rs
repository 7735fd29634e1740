//! The shared store: every floodgate replica of a deployment keeps its state
//! in one Redis (one node, a Sentinel-named master, or a Cluster). Each
//! decision that must be atomic is one Lua script (one EVALSHA, one round
//! trip). The admission state carries the deployment's hash tag, so a
//! Cluster keeps it in one slot; rate-limit keys carry their own and spread
//! over every primary (see `keys`). This file holds the role impls; the
//! key names, the connection link, the batcher, the batched calls and the
//! pure reply decoders each live in a module of their own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;

use crate::core::analytics::{Cells, HISTORY_MINUTES, TOP_SESSIONS};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::ProcessRecord;
use crate::core::{Millis, UserType};

use super::{
    AnalyticsStore, AnalyticsView, ClusterState, DeadLetter, EnqueueOutcome, Housekeeping, LeaseHolder, LeaseRequest,
    LeasedTask, NewTask, ProcessRegistry, ProcessView, QueueStats, RateLimiter, StoreError, StoreResult, StoredConfig,
    TaskQueue, new_id,
};

mod batcher;
mod batches;
pub mod connection;
mod coverage;
mod decode;
mod keys;
mod link;
mod rls;
mod scripts;
mod shards;

use batcher::Batcher;
use batches::{
    COMPLETE_BATCH, CompleteCall, ENQUEUE_BATCH, EnqueueCall, GCRA_BATCH, GcraCall, LEASE_BATCH, LeaseCall,
    batch_complete, batch_enqueue, batch_gcra, batch_lease,
};
use connection::Connection;
use decode::{
    decode_analytics, decode_config, decode_dead_letter, decode_processes, decode_stats, int, protocol, uint,
};
use keys::Keys;
use link::Link;
use scripts::{Scripts, script};

pub use crate::config::redis::{RedisTlsFiles, RedisUrl, TimeSource};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Key prefix holding the hash tag, e.g. `{floodgate}`.
    pub prefix: String,
    /// Bound on every command.
    pub timeout: Duration,
    /// Whose clock decides: the store's (Redis TIME) or the caller's.
    pub time: TimeSource,
    /// CA and client certificate for `rediss…` URLs.
    pub tls: RedisTlsFiles,
    /// Replicas that must acknowledge (WAIT) each batch of admissions
    /// before it is answered; 0 = the master's word is enough.
    pub min_replicas: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "{floodgate}".into(),
            timeout: Duration::from_millis(500),
            time: TimeSource::Server,
            tls: RedisTlsFiles::default(),
            min_replicas: 0,
        }
    }
}

/// The Redis-backed store.
pub struct RedisStore {
    link: Arc<Link>,
    /// The link of rate-limit calls (Level 1, RLS): `link` itself but on a
    /// Cluster, where it never short-circuits (see `Link::down_window`).
    rate_link: Arc<Link>,
    keys: Keys,
    scripts: Scripts,
    /// Last load seen in any reply (Level 1's view between refreshes).
    load: AtomicU64,
    /// Level-1 GCRA steps go through one batcher task: calls arriving while
    /// a batch is in flight share the next script call.
    gcra: Batcher<GcraCall, GcraOutcome>,
    /// Envoy RLS requests, batched the same way.
    rls: Batcher<rls::RlsCall, super::RateBatch>,
    /// Level-2 check-and-enqueues, batched the same way: each is still
    /// decided atomically, in arrival order, inside one script call.
    enqueues: Batcher<EnqueueCall, EnqueueOutcome>,
    /// Task completions, batched the same way.
    completes: Batcher<CompleteCall, bool>,
    /// Leases, batched the same way: one expiry sweep per call, then each
    /// request served in arrival order.
    leases: Batcher<LeaseCall, Vec<LeasedTask>>,
}

impl RedisStore {
    /// Opens a multiplexed, auto-reconnecting connection to one node, a
    /// Cluster or a Sentinel-named master (see [`RedisUrl`]). Does not fail
    /// when Redis is down: calls fail (within the timeout) until it is back.
    /// Fails on a bad URL or an unreadable TLS file.
    pub async fn connect(url: &str, options: RedisOptions) -> StoreResult<RedisStore> {
        let url = RedisUrl::parse(url).map_err(|e| StoreError::Protocol(format!("bad Redis URL: {e}")))?;
        let open = |replicas: u32| -> StoreResult<Arc<Link>> {
            let connection = Connection::open(&url, &options.tls, options.timeout).map_err(StoreError::Protocol)?;
            Ok(Arc::new(Link::new(connection, options.clone(), replicas, link::DOWN_WINDOW)))
        };
        let link = open(0)?;
        // Admissions that must reach replicas get a connection of their own:
        // WAIT holds its connection until the replicas answer, and nothing
        // else should queue behind it.
        let enqueue_link = if options.min_replicas > 0 { open(options.min_replicas)? } else { link.clone() };
        // On a Cluster, rate-limit calls share the connection but not the
        // short-circuit: a failing primary fails only the keys it serves.
        // A failure while other primaries answer is one shard's (see
        // `shards::ShardGate`): it fails open without a verdict on the store.
        // That is only true if Redis itself keeps serving the other shards
        // (see `coverage`); a Cluster that would not is named in the log.
        let rate_link = match &link.connection {
            Connection::Cluster(cluster) => {
                tokio::spawn(coverage::warn_if_full_coverage_required(cluster.clone(), options.timeout));
                Arc::new(Link::sharded_rate_limits(cluster.clone(), options.clone()))
            }
            _ => link.clone(),
        };
        let direct = Scripts::new();
        let (gcra, calls) = Batcher::new("GCRA", 4 * GCRA_BATCH);
        tokio::spawn(batch_gcra(rate_link.clone(), script(scripts::GCRA), calls));
        let (rls, rls_calls) = Batcher::new("RLS", 1_024);
        tokio::spawn(rls::batch_rls(rate_link.clone(), direct.rls.clone(), rls_calls));
        let keys = Keys::new(&options.prefix);
        let (enqueues, enqueue_calls) = Batcher::new("enqueue", 4 * ENQUEUE_BATCH);
        tokio::spawn(batch_enqueue(enqueue_link, keys.clone(), script(scripts::ENQUEUE), enqueue_calls));
        let (completes, complete_calls) = Batcher::new("complete", 4 * COMPLETE_BATCH);
        tokio::spawn(batch_complete(link.clone(), keys.clone(), complete_calls));
        let (leases, lease_calls) = Batcher::new("lease", 4 * LEASE_BATCH);
        tokio::spawn(batch_lease(link.clone(), keys.clone(), lease_calls));
        Ok(RedisStore {
            link,
            rate_link,
            keys,
            scripts: direct,
            load: AtomicU64::new(0),
            gcra,
            rls,
            enqueues,
            completes,
            leases,
        })
    }

    fn now_arg(&self, now: u64) -> String {
        self.link.now_arg(now)
    }

    /// Runs a prepared script invocation (one EVALSHA), bounded by the timeout.
    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> StoreResult<Value> {
        self.link.run(invocation).await
    }

    /// Runs a pipeline (one round trip), bounded by the timeout.
    async fn query<T: redis::FromRedisValue>(&self, pipeline: &redis::Pipeline) -> StoreResult<T> {
        self.link.query(pipeline).await
    }
}

#[cfg(any(test, feature = "test-support"))]
impl RedisStore {
    /// Deletes every key of this deployment's prefix (tests only: never
    /// called on a server the caller did not start): the admission keys
    /// and the rate-limit keys of the current layout. On a Cluster, KEYS
    /// asks every primary and the DEL is split by slot.
    pub async fn delete_all_keys(&self) -> StoreResult<()> {
        let mut connection = self.link.connection.clone();
        for prefix in [&self.keys.prefix, &self.keys.spread] {
            let pattern = format!("{}:*", prefix.replace('{', "\\{").replace('}', "\\}"));
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(&pattern).query_async(&mut connection).await.map_err(link::unavailable)?;
            if !keys.is_empty() {
                let _: () =
                    redis::cmd("DEL").arg(keys).query_async(&mut connection).await.map_err(link::unavailable)?;
            }
        }
        Ok(())
    }
}

impl RateLimiter for RedisStore {
    async fn rate_limit(
        &self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        cost: u32,
        now_us: u64,
    ) -> StoreResult<GcraOutcome> {
        self.rate_link.check_up()?;
        self.gcra
            .submit(GcraCall { key: self.keys.rate(user_type, subject), limit, cost, now: self.now_arg(now_us) })
            .await
    }

    async fn rate_limit_all(
        &self,
        checks: &[(super::RateKey<'_>, crate::core::rls::Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<super::RateBatch> {
        self.rls_rate_limit_all(checks, dry_run, now_us).await
    }
}

impl TaskQueue for RedisStore {
    async fn enqueue(&self, task: NewTask, limit: u64, now: Millis) -> StoreResult<EnqueueOutcome> {
        self.link.check_up()?;
        let ttl = if task.idempotency_key.is_some() { task.idempotency_ttl_ms.to_string() } else { String::new() };
        let call = EnqueueCall {
            idempotency_key: task.idempotency_key.as_deref().map(|key| self.keys.idempotency(key)),
            user_type: task.user_type.index(),
            limit,
            task_id: new_id(),
            payload: task.payload,
            ttl,
            now: self.now_arg(now),
        };
        let outcome = self.enqueues.submit(call).await?;
        if let EnqueueOutcome::Admitted { load, .. } | EnqueueOutcome::Refused { load } = &outcome {
            self.load.store(*load, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    async fn lease(&self, request: LeaseRequest, now: Millis) -> StoreResult<Vec<LeasedTask>> {
        self.link.check_up()?;
        let holder = serde_json::to_string(&request.holder).map_err(|e| StoreError::Protocol(e.to_string()))?;
        self.leases.submit(LeaseCall { request, holder, now: self.now_arg(now) }).await
    }

    async fn complete(&self, task_id: &str, lease_id: &str, now: Millis) -> StoreResult<bool> {
        self.link.check_up()?;
        let call = CompleteCall { task_id: task_id.to_owned(), lease_id: lease_id.to_owned(), now: self.now_arg(now) };
        let completed = self.completes.submit(call).await?;
        if completed {
            let _ = self.load.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1));
        }
        Ok(completed)
    }

    async fn extend(
        &self,
        task_id: &str,
        lease_id: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> StoreResult<Option<Millis>> {
        let mut call = self.scripts.extend.key(&self.keys.leases);
        call.key(&self.keys.expiry).arg(task_id).arg(lease_id).arg(lease_ms).arg(self.now_arg(now));
        let value = self.run(call).await?;
        match int(&value) {
            Some(-1) => Ok(None),
            Some(expiry) if expiry >= 0 => Ok(Some(expiry as u64)),
            _ => Err(protocol("extend", &value)),
        }
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let k = &self.keys;
        let mut call = self.scripts.stats.key(&k.queues[0]);
        call.key(&k.queues[1]).key(&k.queues[2]).key(&k.expiry).key(&k.dead).key(&k.meta);
        let stats = decode_stats(&self.run(call).await?)?;
        self.load.store(stats.load(), Ordering::Relaxed);
        Ok(stats)
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (raw,): (Vec<String>,) = self.query(redis::pipe().lrange(&self.keys.dead, 0, limit as isize - 1)).await?;
        raw.iter().map(|r| decode_dead_letter(r)).collect()
    }

    fn cached_load(&self) -> u64 {
        self.load.load(Ordering::Relaxed)
    }
}

impl Housekeeping for RedisStore {
    async fn maintain(&self, now: Millis, max_deliveries: u32) -> StoreResult<()> {
        // Rate-limit and idempotency keys expire by TTL; only leases need a sweep.
        let sweep = LeaseRequest { max_tasks: 0, lease_ms: 0, max_deliveries, holder: LeaseHolder::default() };
        self.lease(sweep, now).await.map(drop)
    }
}

impl ProcessRegistry for RedisStore {
    async fn heartbeat(&self, record: ProcessRecord, now: Millis) -> StoreResult<()> {
        let field = format!("{}\u{1f}{}", record.instance_id, record.process_id);
        let json = serde_json::to_string(&record).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let mut call = self.scripts.heartbeat.key(&self.keys.processes);
        call.arg(field).arg(json).arg(self.now_arg(now));
        self.run(call).await.map(drop)
    }

    async fn processes(&self, now: Millis, expire_after_ms: Millis) -> StoreResult<ProcessView> {
        let mut call = self.scripts.processes.key(&self.keys.processes);
        call.arg(expire_after_ms).arg(self.now_arg(now));
        decode_processes(&self.run(call).await?)
    }
}

impl ClusterState for RedisStore {
    async fn reset_breaker(&self, name: &str) -> StoreResult<u64> {
        let (generation,): (u64,) = self.query(redis::pipe().hincr(&self.keys.breaker_resets, name, 1)).await?;
        Ok(generation)
    }

    async fn breaker_generations(&self) -> StoreResult<BTreeMap<String, u64>> {
        let (generations,): (BTreeMap<String, u64>,) =
            self.query(redis::pipe().hgetall(&self.keys.breaker_resets)).await?;
        Ok(generations)
    }

    async fn publish_breakers(&self, replica: &str, json: String, now: Millis) -> StoreResult<()> {
        self.query::<()>(redis::pipe().hset(&self.keys.breakers, replica, format!("{now}|{json}")).ignore()).await
    }

    async fn cluster_breakers(&self, since: Millis) -> StoreResult<Vec<String>> {
        let (published,): (BTreeMap<String, String>,) = self.query(redis::pipe().hgetall(&self.keys.breakers)).await?;
        Ok(published
            .into_values()
            .filter_map(|v| {
                let (at, json) = v.split_once('|')?;
                (at.parse::<u64>().ok()? >= since).then(|| json.to_owned())
            })
            .collect())
    }

    async fn store_config(&self, json: String) -> StoreResult<u64> {
        let k = &self.keys;
        let mut call = self.scripts.config.key(&k.config_version);
        call.key(&k.config).key(&k.config_previous).arg(json);
        let value = self.run(call).await?;
        uint(&value).ok_or_else(|| protocol("config", &value))
    }

    async fn load_config(&self) -> StoreResult<Option<StoredConfig>> {
        let (raw,): (Option<String>,) = self.query(redis::pipe().get(&self.keys.config)).await?;
        raw.map(|raw| decode_config(&raw)).transpose()
    }
}

impl AnalyticsStore for RedisStore {
    async fn flush_analytics(&self, minute: u64, cells: Cells, sessions: Vec<(String, u64)>) -> StoreResult<()> {
        // One pipeline per flush: counters of the minute, heavy hitters of
        // the hour trimmed to TOP_SESSIONS, both expiring after 25 h.
        let ttl = (HISTORY_MINUTES as i64 + 60) * 60;
        let mut pipe = redis::pipe();
        let stats = self.keys.minute_stats(minute);
        for (i, n) in cells.iter().enumerate().filter(|(_, n)| **n > 0) {
            pipe.hincr(&stats, i, *n).ignore();
        }
        pipe.expire(&stats, ttl).ignore();
        if !sessions.is_empty() {
            let top = self.keys.hour_top(minute / 60);
            for (session, n) in &sessions {
                pipe.zincr(&top, session, *n).ignore();
            }
            pipe.cmd("ZREMRANGEBYRANK").arg(&top).arg(0).arg(-(TOP_SESSIONS as i64) - 1).ignore();
            pipe.expire(&top, ttl).ignore();
        }
        self.query::<()>(&pipe).await
    }

    async fn analytics(&self, now_minute: u64, span_minutes: u64) -> StoreResult<AnalyticsView> {
        let span = span_minutes.clamp(1, HISTORY_MINUTES);
        let minutes: Vec<u64> = (0..span).filter_map(|back| now_minute.checked_sub(back)).collect();
        // Newest first, as the minutes: every hour with a minute in the window.
        let hours: Vec<u64> = (crate::core::analytics::first_hour(now_minute, span)..=now_minute / 60).rev().collect();
        let mut pipe = redis::pipe();
        for minute in &minutes {
            pipe.hgetall(self.keys.minute_stats(*minute));
        }
        for hour in &hours {
            pipe.zrevrange_withscores(self.keys.hour_top(*hour), 0, TOP_SESSIONS as isize - 1);
        }
        let replies: Vec<Value> = self.query(&pipe).await?;
        decode_analytics(&minutes, &hours, &replies)
    }
}
