//! The batched script calls of the hot paths (Level-1 GCRA, Level-2
//! check-and-enqueue, lease, complete): what each request carries, how a
//! batch becomes one script call, and which decoder reads its reply.

use std::sync::Arc;

use redis::Script;

use super::batcher::{Calls, serve_batches};
use super::decode::{decode_completes, decode_enqueues, decode_gcra_batch, decode_leases};
use super::keys::{Keys, slot};
use super::link::Link;
use super::scripts::{self, script};
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::store::new_id;
use crate::store::{EnqueueOutcome, LeaseRequest, LeasedTask};

/// One Level-1 GCRA step waiting for the batcher.
pub(super) struct GcraCall {
    pub(super) key: String,
    pub(super) limit: RateLimit,
    pub(super) cost: u32,
    pub(super) now: String,
}

/// Most GCRA steps in one script call.
pub(super) const GCRA_BATCH: usize = 128;

/// One lease request waiting for the batcher.
pub(super) struct LeaseCall {
    pub(super) request: LeaseRequest,
    /// `request.holder` as JSON, stored with each lease.
    pub(super) holder: String,
    pub(super) now: String,
}

/// Most lease requests in one script call.
pub(super) const LEASE_BATCH: usize = 64;

/// One completion waiting for the batcher.
pub(super) struct CompleteCall {
    pub(super) task_id: String,
    pub(super) lease_id: String,
    pub(super) now: String,
}

/// Most completions in one script call.
pub(super) const COMPLETE_BATCH: usize = 64;

/// One Level-2 check-and-enqueue waiting for the batcher.
pub(super) struct EnqueueCall {
    pub(super) idempotency_key: Option<String>,
    pub(super) user_type: usize,
    pub(super) limit: u64,
    pub(super) task_id: String,
    pub(super) payload: Vec<u8>,
    /// Idempotency TTL in ms, or empty without a key.
    pub(super) ttl: String,
    pub(super) now: String,
}

/// Most check-and-enqueues in one script call.
pub(super) const ENQUEUE_BATCH: usize = 64;

/// Level-1 GCRA steps, in order (a key that appears twice sees its earlier
/// step); on a Cluster one script call per slot, each key in its own.
pub(super) async fn batch_gcra(link: Arc<Link>, script: Script, calls: Calls<GcraCall, GcraOutcome>) {
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
    serve_batches(
        link,
        script,
        calls,
        GCRA_BATCH,
        |c| Some(slot(&c.key)),
        build,
        |value, batch| decode_gcra_batch(value, batch.len()),
    )
    .await;
}

/// Check-and-enqueues, decided in arrival order, each against the live load
/// (every key in the admission slot, so one script call on a Cluster too).
pub(super) async fn batch_enqueue(
    link: Arc<Link>,
    keys: Keys,
    script: Script,
    calls: Calls<EnqueueCall, EnqueueOutcome>,
) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[EnqueueCall]| {
        invocation.key(&keys.queues[0]).key(&keys.queues[1]).key(&keys.queues[2]);
        invocation.key(&keys.expiry).key(&keys.meta).key(&keys.payload).key(&keys.sequence);
        invocation.arg(batch.first().map_or("", |c| c.now.as_str()));
        for call in batch {
            invocation.key(call.idempotency_key.as_deref().unwrap_or(&keys.sequence));
            invocation.arg(call.user_type).arg(call.limit).arg(&call.task_id).arg(&call.payload).arg(&call.ttl);
        }
    };
    serve_batches(
        link,
        script,
        calls,
        ENQUEUE_BATCH,
        |_| None,
        build,
        |value, batch| decode_enqueues(value, batch.len()),
    )
    .await;
}

/// Lease requests: one sweep of expired leases, then each request in turn.
pub(super) async fn batch_lease(link: Arc<Link>, keys: Keys, calls: Calls<LeaseCall, Vec<LeasedTask>>) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[LeaseCall]| {
        invocation.key(&keys.queues[0]).key(&keys.queues[1]).key(&keys.queues[2]);
        invocation.key(&keys.expiry).key(&keys.meta).key(&keys.payload).key(&keys.leases).key(&keys.dead);
        let first = batch.first();
        invocation
            .arg(first.map_or(0, |c| c.request.max_deliveries))
            .arg(new_id())
            .arg(first.map_or("", |c| c.now.as_str()))
            .arg(crate::store::DEAD_LETTERS_KEPT);
        for call in batch {
            invocation.arg(call.request.max_tasks).arg(call.request.lease_ms).arg(&call.holder);
        }
    };
    let script = script(scripts::LEASE);
    serve_batches(link, script, calls, LEASE_BATCH, |_| None, build, |value, batch| decode_leases(value, batch.len()))
        .await;
}

/// Completions, each checked against its own lease.
pub(super) async fn batch_complete(link: Arc<Link>, keys: Keys, calls: Calls<CompleteCall, bool>) {
    let build = move |invocation: &mut redis::ScriptInvocation<'_>, batch: &[CompleteCall]| {
        invocation.key(&keys.leases).key(&keys.expiry).key(&keys.meta).key(&keys.payload);
        invocation.arg(batch.first().map_or("", |c| c.now.as_str()));
        for call in batch {
            invocation.arg(&call.task_id).arg(&call.lease_id);
        }
    };
    let script = script(scripts::COMPLETE);
    serve_batches(
        link,
        script,
        calls,
        COMPLETE_BATCH,
        |_| None,
        build,
        |value, batch| decode_completes(value, batch.len()),
    )
    .await;
}
