//! The shared store: every floodgate replica of a deployment keeps its state
//! in one Redis. Each decision that must be atomic is one Lua script (one
//! EVALSHA, one round trip); every key carries the deployment's hash tag so
//! Redis Cluster sees one slot. Replies are decoded by pure functions below.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{Script, Value};

use std::collections::BTreeMap;

use crate::core::analytics::{CELLS, Cells, HISTORY_MINUTES, TOP_SESSIONS};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::ProcessRecord;
use crate::core::{Millis, UserType};

use super::{
    AnalyticsView, DeadLetter, EnqueueOutcome, LeaseRequest, LeasedTask, NewTask, ProcessView, QueueStats, Store,
    StoreError, StoreResult, StoredConfig,
};

pub mod connection;
mod rls;

use connection::Connection;
pub use connection::{RedisTlsFiles, RedisUrl};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Where "now" comes from for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// Redis TIME: one clock for all replicas (production).
    Server,
    /// The caller's clock, passed to every script (tests with a manual clock).
    Caller,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Key prefix holding the hash tag, e.g. `{floodgate}`.
    pub prefix: String,
    /// Bound on every command.
    pub timeout: Duration,
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

/// The key names of one deployment.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    /// Ready queues indexed by `UserType::index`.
    queues: [String; 3],
    expiry: String,
    meta: String,
    payload: String,
    leases: String,
    dead: String,
    sequence: String,
    processes: String,
    breaker_resets: String,
    breakers: String,
    config_version: String,
    config: String,
    config_previous: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        let k = |name: &str| format!("{prefix}:{name}");
        Keys {
            prefix: prefix.to_owned(),
            queues: UserType::ALL.map(|u| k(&format!("queue:{}", u.as_str()))),
            expiry: k("lease_expiry"),
            meta: k("task_meta"),
            payload: k("task_payload"),
            leases: k("leases"),
            dead: k("dead_letters"),
            sequence: k("sequence"),
            processes: k("processes"),
            breaker_resets: k("breaker_resets"),
            breakers: k("breakers"),
            config_version: k("config_version"),
            config: k("config"),
            config_previous: k("config_previous"),
        }
    }

    fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.prefix)
    }

    fn minute_stats(&self, minute: u64) -> String {
        format!("{}:stats:{minute}", self.prefix)
    }

    fn hour_top(&self, hour: u64) -> String {
        format!("{}:top:{hour}", self.prefix)
    }

    fn rate(&self, user_type: UserType, subject: &str) -> String {
        format!("{}:rate:{}:{subject}", self.prefix, user_type.as_str())
    }
}

struct Scripts {
    extend: Script,
    heartbeat: Script,
    processes: Script,
    stats: Script,
    config: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            extend: script(include_str!("lua/extend.lua")),
            heartbeat: script(include_str!("lua/heartbeat.lua")),
            processes: script(include_str!("lua/processes.lua")),
            stats: script(include_str!("lua/stats.lua")),
            config: script(include_str!("lua/config.lua")),
        }
    }
}

/// The connection and its failure handling, shared with the GCRA batcher.
struct Link {
    /// One node, a Cluster, or the master a Sentinel names.
    connection: Connection,
    options: RedisOptions,
    /// While Redis is failing, calls fail at once until this instant (ms
    /// since the store was opened) instead of each waiting for the timeout;
    /// the first call after it is the probe.
    down_until_ms: AtomicU64,
    opened: std::time::Instant,
    /// Replicas each script call's writes must reach (Redis WAIT, on the
    /// same connection) before the call counts as done; 0 = none.
    replicas: u32,
}

/// One Level-1 GCRA step waiting for the batcher.
struct GcraCall {
    key: String,
    limit: RateLimit,
    cost: u32,
    now: String,
}

/// Most GCRA steps in one script call.
const GCRA_BATCH: usize = 128;

/// The Redis-backed store.
pub struct RedisStore {
    link: Arc<Link>,
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

/// One lease request waiting for the batcher.
struct LeaseCall {
    request: LeaseRequest,
    now: String,
}

/// Most lease requests in one script call.
const LEASE_BATCH: usize = 64;

/// One completion waiting for the batcher.
struct CompleteCall {
    task_id: String,
    lease_id: String,
    now: String,
}

/// Most completions in one script call.
const COMPLETE_BATCH: usize = 64;

/// One Level-2 check-and-enqueue waiting for the batcher.
struct EnqueueCall {
    idempotency_key: Option<String>,
    user_type: usize,
    limit: u64,
    task_id: String,
    payload: Vec<u8>,
    /// Idempotency TTL in ms, or empty without a key.
    ttl: String,
    now: String,
}

/// Most check-and-enqueues in one script call.
const ENQUEUE_BATCH: usize = 64;

/// How long a failure short-circuits further calls.
const DOWN_WINDOW: Duration = Duration::from_millis(500);

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Opens a multiplexed, auto-reconnecting connection to one node, a
    /// Cluster or a Sentinel-named master (see [`RedisUrl`]). Does not fail
    /// when Redis is down: calls fail (within the timeout) until it is back.
    /// Fails on a bad URL or an unreadable TLS file.
    pub async fn connect(url: &str, options: RedisOptions) -> StoreResult<RedisStore> {
        let url = RedisUrl::parse(url).map_err(|e| StoreError::Protocol(format!("bad Redis URL: {e}")))?;
        let open = |replicas: u32| -> StoreResult<Arc<Link>> {
            Ok(Arc::new(Link {
                connection: Connection::open(&url, &options.tls, options.timeout).map_err(StoreError::Protocol)?,
                options: options.clone(),
                down_until_ms: AtomicU64::new(0),
                opened: std::time::Instant::now(),
                replicas,
            }))
        };
        let link = open(0)?;
        // Admissions that must reach replicas get a connection of their own:
        // WAIT holds its connection until the replicas answer, and nothing
        // else should queue behind it.
        let enqueue_link = if options.min_replicas > 0 { open(options.min_replicas)? } else { link.clone() };
        let (gcra, calls) = Batcher::new("GCRA", 4 * GCRA_BATCH);
        tokio::spawn(batch_gcra(link.clone(), script(include_str!("lua/gcra.lua")), calls));
        let (rls, rls_calls) = Batcher::new("RLS", 1_024);
        tokio::spawn(rls::batch_rls(link.clone(), rls_calls));
        let keys = Keys::new(&options.prefix);
        let (enqueues, enqueue_calls) = Batcher::new("enqueue", 4 * ENQUEUE_BATCH);
        tokio::spawn(batch_enqueue(enqueue_link, keys.clone(), script(include_str!("lua/enqueue.lua")), enqueue_calls));
        let (completes, complete_calls) = Batcher::new("complete", 4 * COMPLETE_BATCH);
        tokio::spawn(batch_complete(link.clone(), keys.clone(), complete_calls));
        let (leases, lease_calls) = Batcher::new("lease", 4 * LEASE_BATCH);
        tokio::spawn(batch_lease(link.clone(), keys.clone(), lease_calls));
        Ok(RedisStore {
            link,
            keys,
            scripts: Scripts::new(),
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

impl Link {
    fn now_arg(&self, now: u64) -> String {
        match self.options.time {
            TimeSource::Server => String::new(),
            TimeSource::Caller => now.to_string(),
        }
    }

    /// Fails at once while a recent failure's window is open.
    fn check_up(&self) -> StoreResult<()> {
        let since_open = self.opened.elapsed().as_millis() as u64;
        if since_open < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("Redis failed recently; retrying shortly".into()));
        }
        Ok(())
    }

    /// Bounds a Redis future by the timeout and classifies its error;
    /// a connection failure opens the short-circuit window.
    async fn bounded<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
        self.check_up()?;
        let result = match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Err(StoreError::Protocol(e.to_string()))
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(StoreError::Unavailable(format!("no answer within {:?}", self.options.timeout))),
        };
        if matches!(result, Err(StoreError::Unavailable(_))) {
            let until = self.opened.elapsed() + DOWN_WINDOW;
            self.down_until_ms.store(until.as_millis() as u64, Ordering::Relaxed);
        }
        result
    }

    /// Runs a prepared script invocation (one EVALSHA), bounded by the timeout.
    /// With `replicas`, the call also waits (WAIT, half the timeout) until
    /// that many replicas hold its writes, and fails if they don't.
    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> StoreResult<Value> {
        let mut connection = self.connection.clone();
        let replicas = self.replicas;
        let wait_ms = (self.options.timeout / 2).as_millis().max(1) as u64;
        self.bounded(async move {
            let value = invocation.invoke_async::<Value>(&mut connection).await?;
            if replicas > 0 {
                let acked: u32 = redis::cmd("WAIT").arg(replicas).arg(wait_ms).query_async(&mut connection).await?;
                if acked < replicas {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "writes not replicated",
                        format!("{acked} of {replicas} replicas acknowledged within {wait_ms} ms"),
                    )));
                }
            }
            Ok(value)
        })
        .await
    }

    /// Runs a pipeline (one round trip), bounded by the timeout.
    async fn query<T: redis::FromRedisValue>(&self, pipeline: &redis::Pipeline) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        self.bounded(pipeline.query_async(&mut connection)).await
    }
}

/// A request waiting for a batcher, with the channel its answer goes back on.
struct Queued<R, O> {
    request: R,
    reply: tokio::sync::oneshot::Sender<StoreResult<O>>,
}

/// What a batcher task receives.
type Calls<R, O> = tokio::sync::mpsc::Receiver<Queued<R, O>>;

/// The queue in front of one batcher task: requests of kind `R`, each
/// answered with an `O`.
struct Batcher<R, O> {
    calls: tokio::sync::mpsc::Sender<Queued<R, O>>,
    name: &'static str,
}

impl<R, O> Batcher<R, O> {
    /// The queue and its receiving end, for the task that serves it.
    fn new(name: &'static str, capacity: usize) -> (Batcher<R, O>, Calls<R, O>) {
        let (calls, receiver) = tokio::sync::mpsc::channel(capacity);
        (Batcher { calls, name }, receiver)
    }

    /// Queues `request` and waits for its answer.
    async fn submit(&self, request: R) -> StoreResult<O> {
        let stopped = || StoreError::Unavailable(format!("{} batcher stopped", self.name));
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.calls.send(Queued { request, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Natural batching: takes the calls that arrived while earlier script
/// calls were in flight (up to `max`), sends them as one script call, and
/// answers each. No call waits for a batch to fill. Up to `IN_FLIGHT`
/// batches are pipelined on the connection, so Redis never idles while a
/// reply travels back; Redis runs them in the order they were sent, and
/// each call inside a batch is decided in arrival order.
async fn serve_batches<R: Send + 'static, O: Send + 'static>(
    link: Arc<Link>,
    script: Script,
    mut calls: Calls<R, O>,
    max: usize,
    build: impl Fn(&mut redis::ScriptInvocation<'_>, &[R]),
    decode: impl Fn(&Value, &[R]) -> StoreResult<Vec<O>>,
) {
    let (link, script, build, decode) = (&link, &script, &build, &decode);
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    loop {
        let first = tokio::select! {
            // Answer finished batches first: their callers are waiting.
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            call = calls.recv(), if in_flight.len() < IN_FLIGHT => match call {
                Some(call) => call,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match calls.try_recv() {
                Ok(call) => batch.push(call),
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<R>, Vec<_>) = batch.into_iter().map(|q| (q.request, q.reply)).unzip();
        let mut invocation = script.prepare_invoke();
        build(&mut invocation, &requests);
        in_flight.push(async move {
            // A caller that gave up is not waiting for its answer.
            match link.run(invocation).await.and_then(|value| decode(&value, &requests)) {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
    while in_flight.next().await.is_some() {}
}

/// Script calls one batcher keeps in flight at once.
const IN_FLIGHT: usize = 4;

/// Level-1 GCRA steps, in order (a key that appears twice sees its earlier step).
async fn batch_gcra(link: Arc<Link>, script: Script, calls: Calls<GcraCall, GcraOutcome>) {
    let build = |invocation: &mut redis::ScriptInvocation<'_>, batch: &[GcraCall]| {
        for call in batch {
            invocation.key(&call.key);
            invocation
                .arg(call.limit.emission_interval_us())
                .arg(call.limit.tolerance_us())
                .arg(call.cost)
                .arg(&call.now);
        }
    };
    serve_batches(link, script, calls, GCRA_BATCH, build, |value, batch| decode_gcra_batch(value, batch.len())).await;
}

/// Check-and-enqueues, decided in arrival order, each against the live load.
async fn batch_enqueue(link: Arc<Link>, keys: Keys, script: Script, calls: Calls<EnqueueCall, EnqueueOutcome>) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[EnqueueCall]| {
        invocation.key(&keys.queues[0]).key(&keys.queues[1]).key(&keys.queues[2]);
        invocation.key(&keys.expiry).key(&keys.meta).key(&keys.payload).key(&keys.sequence);
        invocation.arg(batch.first().map_or("", |c| c.now.as_str()));
        for call in batch {
            invocation.key(call.idempotency_key.as_deref().unwrap_or(&keys.sequence));
            invocation.arg(call.user_type).arg(call.limit).arg(&call.task_id).arg(&call.payload).arg(&call.ttl);
        }
    };
    serve_batches(link, script, calls, ENQUEUE_BATCH, build, |value, batch| decode_enqueues(value, batch.len())).await;
}

/// Lease requests: one sweep of expired leases, then each request in turn.
async fn batch_lease(link: Arc<Link>, keys: Keys, calls: Calls<LeaseCall, Vec<LeasedTask>>) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[LeaseCall]| {
        invocation.key(&keys.queues[0]).key(&keys.queues[1]).key(&keys.queues[2]);
        invocation.key(&keys.expiry).key(&keys.meta).key(&keys.payload).key(&keys.leases).key(&keys.dead);
        let first = batch.first();
        invocation
            .arg(first.map_or(0, |c| c.request.max_deliveries))
            .arg(new_id())
            .arg(first.map_or("", |c| c.now.as_str()))
            .arg(super::DEAD_LETTERS_KEPT);
        for call in batch {
            invocation.arg(call.request.max_tasks).arg(call.request.lease_ms);
        }
    };
    let script = script(include_str!("lua/lease.lua"));
    serve_batches(link, script, calls, LEASE_BATCH, build, |value, batch| decode_leases(value, batch.len())).await;
}

/// Completions, each checked against its own lease.
async fn batch_complete(link: Arc<Link>, keys: Keys, calls: Calls<CompleteCall, bool>) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[CompleteCall]| {
        invocation.key(&keys.leases).key(&keys.expiry).key(&keys.meta).key(&keys.payload);
        invocation.arg(batch.first().map_or("", |c| c.now.as_str()));
        for call in batch {
            invocation.arg(&call.task_id).arg(&call.lease_id);
        }
    };
    let script = script(include_str!("lua/complete.lua"));
    serve_batches(link, script, calls, COMPLETE_BATCH, build, |value, batch| decode_completes(value, batch.len()))
        .await;
}

impl RedisStore {
    /// Deletes every key of this deployment's prefix (tests only: never
    /// called on a server the caller did not start). On a Cluster, KEYS
    /// asks every master (only the one holding the hash tag's slot has
    /// any) and the DEL goes to that slot's master.
    pub async fn delete_all_keys(&self) -> StoreResult<()> {
        let mut connection = self.link.connection.clone();
        let pattern = format!("{}:*", self.keys.prefix.replace('{', "\\{").replace('}', "\\}"));
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(&pattern).query_async(&mut connection).await.map_err(unavailable)?;
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut connection).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

// ---- reply decoding: pure functions over redis::Value ----

fn protocol(what: &str, value: &Value) -> StoreError {
    StoreError::Protocol(format!("unexpected {what} reply: {value:?}"))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn uint(value: &Value) -> Option<u64> {
    int(value).and_then(|i| u64::try_from(i).ok())
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}

fn array<'a>(what: &str, value: &'a Value) -> StoreResult<&'a [Value]> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(protocol(what, other)),
    }
}

/// `{status, task_id, queue_position, load}` → outcome.
pub fn decode_enqueue(value: &Value) -> StoreResult<EnqueueOutcome> {
    decode_enqueue_entry(value, array("enqueue", value)?)
}

/// One request's four entries of an enqueue reply; `value` is the whole
/// reply, for the error message.
fn decode_enqueue_entry(value: &Value, items: &[Value]) -> StoreResult<EnqueueOutcome> {
    let bad = || protocol("enqueue", value);
    let [status, task_id, position, load] = items else { return Err(bad()) };
    let (status, position, load) =
        (int(status).ok_or_else(bad)?, uint(position).ok_or_else(bad)?, uint(load).ok_or_else(bad)?);
    let task_id = text(task_id).ok_or_else(bad)?;
    match status {
        1 => Ok(EnqueueOutcome::Admitted { task_id, queue_position: position, load }),
        2 => Ok(EnqueueOutcome::Duplicate { task_id, queue_position: position, load }),
        0 => Ok(EnqueueOutcome::Refused { load }),
        _ => Err(bad()),
    }
}

/// Four entries per request → one outcome per request.
pub fn decode_enqueues(value: &Value, requests: usize) -> StoreResult<Vec<EnqueueOutcome>> {
    let items = array("enqueue", value)?;
    if items.len() != 4 * requests {
        return Err(protocol("enqueue", value));
    }
    items.chunks_exact(4).map(|chunk| decode_enqueue_entry(value, chunk)).collect()
}

/// One 1 (completed) or 0 (not held) per request.
pub fn decode_completes(value: &Value, requests: usize) -> StoreResult<Vec<bool>> {
    let items = array("complete", value)?;
    if items.len() != requests {
        return Err(protocol("complete", value));
    }
    items
        .iter()
        .map(|item| match int(item) {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err(protocol("complete", value)),
        })
        .collect()
}

/// `{now, then per request: n, then 7 entries per task…}` → each
/// request's leased tasks.
pub fn decode_leases(value: &Value, requests: usize) -> StoreResult<Vec<Vec<LeasedTask>>> {
    let items = array("lease", value)?;
    let bad = || protocol("lease", value);
    let mut rest = items.get(1..).ok_or_else(bad)?;
    let mut leased = Vec::with_capacity(requests);
    for _ in 0..requests {
        let (count, after) = rest.split_first().ok_or_else(bad)?;
        let n = uint(count).and_then(|n| usize::try_from(n).ok()).ok_or_else(bad)?;
        let tasks = after.get(..7 * n).ok_or_else(bad)?;
        rest = &after[7 * n..];
        leased.push(
            tasks
                .chunks_exact(7)
                .map(|t| {
                    Ok(LeasedTask {
                        task_id: text(&t[0]).ok_or_else(bad)?,
                        lease_id: text(&t[1]).ok_or_else(bad)?,
                        payload: bytes(&t[2]).ok_or_else(bad)?,
                        user_type: uint(&t[3]).and_then(|i| UserType::from_index(i as usize)).ok_or_else(bad)?,
                        enqueued_at_ms: uint(&t[4]).ok_or_else(bad)?,
                        delivery_count: uint(&t[5]).and_then(|d| u32::try_from(d).ok()).ok_or_else(bad)?,
                        lease_expires_at_ms: uint(&t[6]).ok_or_else(bad)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?,
        );
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(leased)
}

/// `{allowed_1, n_1, …}` → one GCRA outcome per request: `{1, tat}` or
/// `{0, retry_after_us}`.
pub fn decode_gcra_batch(value: &Value, requests: usize) -> StoreResult<Vec<GcraOutcome>> {
    let items = array("gcra", value)?;
    if items.len() != 2 * requests {
        return Err(protocol("gcra", value));
    }
    decode_gcra_pairs("gcra", value, items)
}

/// `allowed, n` pairs (as every GCRA script answers) → outcomes; `value`
/// is the whole reply, for the error message.
fn decode_gcra_pairs(what: &str, value: &Value, pairs: &[Value]) -> StoreResult<Vec<GcraOutcome>> {
    let bad = || protocol(what, value);
    pairs
        .chunks_exact(2)
        .map(|pair| {
            let n = uint(&pair[1]).ok_or_else(bad)?;
            match int(&pair[0]) {
                Some(1) => Ok(GcraOutcome::Allowed { tat: n }),
                Some(0) => Ok(GcraOutcome::Limited { retry_after_us: n }),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// `{now, "stamp|json", …}` → records stamped with the store's time.
pub fn decode_processes(value: &Value) -> StoreResult<ProcessView> {
    let items = array("processes", value)?;
    let bad = || protocol("processes", value);
    let now_ms = items.first().and_then(uint).ok_or_else(bad)?;
    let records = items[1..]
        .iter()
        .map(|item| {
            let raw = text(item).ok_or_else(bad)?;
            let (stamp, json) = raw.split_once('|').ok_or_else(bad)?;
            let record: ProcessRecord = serde_json::from_str(json).map_err(|e| StoreError::Protocol(e.to_string()))?;
            Ok(ProcessRecord { last_seen_ms: stamp.parse().map_err(|_| bad())?, ..record })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(ProcessView { records, now_ms })
}

/// `{anonymous, registered, privileged, leased, dead}` → stats.
pub fn decode_stats(value: &Value) -> StoreResult<QueueStats> {
    let items = array("stats", value)?;
    let n: Vec<u64> = items.iter().map(uint).collect::<Option<_>>().ok_or_else(|| protocol("stats", value))?;
    let [a, r, p, leased, dead] = n[..] else { return Err(protocol("stats", value)) };
    Ok(QueueStats { queued: [a, r, p], leased, dead_letters: dead })
}

/// HGETALL replies of minute hashes, then ZREVRANGE WITHSCORES replies of
/// hour sets → the analytics view.
pub fn decode_analytics(minutes: &[u64], hours: &[u64], replies: &[Value]) -> StoreResult<AnalyticsView> {
    if replies.len() != minutes.len() + hours.len() {
        return Err(StoreError::Protocol(format!(
            "analytics: {} replies for {} keys",
            replies.len(),
            minutes.len() + hours.len()
        )));
    }
    let pairs = |value: &Value| -> StoreResult<Vec<(Vec<u8>, u64)>> {
        let flat: Vec<&Value> = match value {
            Value::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
            Value::Array(items) => items.iter().collect(),
            other => return Err(protocol("analytics", other)),
        };
        flat.chunks_exact(2)
            .map(|kv| {
                let count = uint(kv[1]).or_else(|| text(kv[1]).and_then(|t| t.parse::<f64>().ok()).map(|f| f as u64));
                Ok((
                    bytes(kv[0]).ok_or_else(|| protocol("analytics", value))?,
                    count.ok_or_else(|| protocol("analytics", value))?,
                ))
            })
            .collect()
    };
    let mut view = AnalyticsView::default();
    for (minute, reply) in minutes.iter().zip(replies) {
        let mut cells = [0; CELLS];
        for (field, n) in pairs(reply)? {
            let index: usize = String::from_utf8_lossy(&field).parse().map_err(|_| protocol("analytics", reply))?;
            *cells.get_mut(index).ok_or_else(|| protocol("analytics", reply))? += n;
        }
        if cells.iter().any(|n| *n > 0) {
            view.minutes.push((*minute, cells));
        }
    }
    for (hour, reply) in hours.iter().zip(&replies[minutes.len()..]) {
        let top: Vec<(String, u64)> =
            pairs(reply)?.into_iter().map(|(k, n)| (String::from_utf8_lossy(&k).into_owned(), n)).collect();
        if !top.is_empty() {
            view.top_by_hour.push((*hour, top));
        }
    }
    Ok(view)
}

/// `version|json` → the stored config.
pub fn decode_config(raw: &str) -> StoreResult<StoredConfig> {
    let (version, json) = raw.split_once('|').ok_or_else(|| StoreError::Protocol(format!("config: {raw:?}")))?;
    let version = version.parse().map_err(|_| StoreError::Protocol(format!("config version: {raw:?}")))?;
    Ok(StoredConfig { version, json: json.to_owned() })
}

#[derive(serde::Deserialize)]
struct DeadLetterJson {
    task_id: String,
    user_type: usize,
    enqueued_at_ms: u64,
    delivery_count: u32,
    dead_at_ms: u64,
}

/// One dead-letter list entry (JSON written by lease.lua).
pub fn decode_dead_letter(raw: &str) -> StoreResult<DeadLetter> {
    let d: DeadLetterJson = serde_json::from_str(raw).map_err(|e| StoreError::Protocol(e.to_string()))?;
    Ok(DeadLetter {
        task_id: d.task_id,
        user_type: UserType::from_index(d.user_type).ok_or_else(|| StoreError::Protocol(raw.to_owned()))?,
        enqueued_at_ms: d.enqueued_at_ms,
        delivery_count: d.delivery_count,
        dead_at_ms: d.dead_at_ms,
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store for RedisStore {
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

    async fn rate_limit(
        &self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        cost: u32,
        now_us: u64,
    ) -> StoreResult<GcraOutcome> {
        self.link.check_up()?;
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
        self.leases.submit(LeaseCall { request, now: self.now_arg(now) }).await
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
        call.key(&k.queues[1]).key(&k.queues[2]).key(&k.expiry).key(&k.dead);
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

    async fn maintain(&self, now: Millis, max_deliveries: u32) -> StoreResult<()> {
        // Rate-limit and idempotency keys expire by TTL; only leases need a sweep.
        self.lease(LeaseRequest { max_tasks: 0, lease_ms: 0, max_deliveries }, now).await.map(drop)
    }

    fn cached_load(&self) -> u64 {
        self.load.load(Ordering::Relaxed)
    }

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
        let hours: Vec<u64> = (0..=span / 60).filter_map(|back| (now_minute / 60).checked_sub(back)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn enqueue_replies_decode() {
        let admitted = Value::Array(vec![Value::Int(1), bulk("t1"), Value::Int(3), Value::Int(9)]);
        assert_eq!(
            decode_enqueue(&admitted).unwrap(),
            EnqueueOutcome::Admitted { task_id: "t1".into(), queue_position: 3, load: 9 }
        );
        let refused = Value::Array(vec![Value::Int(0), bulk(""), Value::Int(0), Value::Int(8)]);
        assert_eq!(decode_enqueue(&refused).unwrap(), EnqueueOutcome::Refused { load: 8 });
        assert!(decode_enqueue(&Value::Int(1)).is_err());
        assert!(decode_enqueue(&Value::Array(vec![Value::Int(7), bulk("x"), Value::Int(0), Value::Int(0)])).is_err());
    }

    #[test]
    fn batched_enqueue_replies_split_in_fours() {
        let reply = Value::Array(vec![
            Value::Int(1),
            bulk("t1"),
            Value::Int(1),
            Value::Int(8),
            Value::Int(0),
            bulk(""),
            Value::Int(0),
            Value::Int(8),
        ]);
        let outcomes = decode_enqueues(&reply, 2).unwrap();
        assert_eq!(outcomes[0], EnqueueOutcome::Admitted { task_id: "t1".into(), queue_position: 1, load: 8 });
        assert_eq!(outcomes[1], EnqueueOutcome::Refused { load: 8 });
        assert!(decode_enqueues(&reply, 1).is_err(), "four entries per request");
    }

    #[test]
    fn batched_complete_replies_say_which_leases_were_held() {
        let reply = Value::Array(vec![Value::Int(1), Value::Int(0), Value::Int(1)]);
        assert_eq!(decode_completes(&reply, 3).unwrap(), [true, false, true]);
        assert!(decode_completes(&reply, 2).is_err(), "one answer per request");
        assert!(decode_completes(&Value::Array(vec![Value::Int(2)]), 1).is_err());
    }

    #[test]
    fn lease_replies_decode_per_request_in_groups_of_seven() {
        // Two requests: the first leased t1, the second nothing.
        let reply = Value::Array(vec![
            Value::Int(1_000),
            Value::Int(1),
            bulk("t1"),
            bulk("n-1-t1"),
            bulk("hello"),
            Value::Int(2),
            Value::Int(900),
            Value::Int(1),
            Value::Int(31_000),
            Value::Int(0),
        ]);
        let leased = decode_leases(&reply, 2).unwrap();
        assert_eq!((leased[0].len(), leased[1].len()), (1, 0));
        let task = &leased[0][0];
        assert_eq!(task.user_type, UserType::Privileged);
        assert_eq!((task.payload.as_slice(), task.delivery_count), (&b"hello"[..], 1));
        assert!(decode_leases(&reply, 1).is_err(), "a request's count is missing");
        assert!(decode_leases(&reply, 3).is_err(), "a request too many");
        assert!(decode_leases(&Value::Array(vec![Value::Int(1), Value::Int(1), bulk("t1")]), 1).is_err());
        assert_eq!(decode_leases(&Value::Array(vec![Value::Int(1), Value::Int(0)]), 1).unwrap(), [vec![]]);
    }

    #[test]
    fn gcra_and_stats_replies_decode() {
        let batch = Value::Array(vec![Value::Int(0), Value::Int(6), Value::Int(1), Value::Int(5)]);
        assert_eq!(
            decode_gcra_batch(&batch, 2).unwrap(),
            [GcraOutcome::Limited { retry_after_us: 6 }, GcraOutcome::Allowed { tat: 5 }]
        );
        assert!(decode_gcra_batch(&batch, 1).is_err(), "one outcome per request");
        let stats = decode_stats(&Value::Array((1..=5).map(Value::Int).collect())).unwrap();
        assert_eq!((stats.queued, stats.leased, stats.dead_letters, stats.load()), ([1, 2, 3], 4, 5, 10));
    }

    #[test]
    fn process_records_take_the_store_stamp() {
        let record = r#"{"instance_id":"i","process_id":"p","service_type":"chat","service_name":"rest","load":1,"capacity":5,"status":"healthy","last_seen_ms":0}"#;
        let view = decode_processes(&Value::Array(vec![Value::Int(50), bulk(&format!("42|{record}"))])).unwrap();
        assert_eq!(view.now_ms, 50);
        assert_eq!(view.records[0].last_seen_ms, 42);
    }

    #[test]
    fn dead_letters_decode() {
        let d =
            decode_dead_letter(r#"{"task_id":"t","user_type":0,"enqueued_at_ms":1,"delivery_count":3,"dead_at_ms":9}"#)
                .unwrap();
        assert_eq!((d.user_type, d.delivery_count), (UserType::Anonymous, 3));
    }

    #[test]
    fn all_keys_share_the_hash_tag() {
        let k = Keys::new("{floodgate}");
        for key in [&k.queues[0], &k.expiry, &k.meta, &k.payload, &k.leases, &k.dead, &k.sequence, &k.processes] {
            assert!(key.starts_with("{floodgate}:"), "{key}");
        }
        assert!(k.idempotency("x").starts_with("{floodgate}:"));
        assert!(k.rate(UserType::Anonymous, "s").starts_with("{floodgate}:"));
    }
}
