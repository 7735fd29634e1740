//! The generic batcher: requests arriving while earlier script calls are
//! in flight share the next script call (natural batching), each answered
//! on its own channel. On a Cluster a batch becomes one script call per
//! slot its requests touch, sent together.

use std::sync::Arc;

use futures_util::StreamExt;
use redis::cluster_routing::Slot;
use redis::{Script, Value};

use super::link::Link;
use crate::store::{StoreError, StoreResult};

/// A request waiting for a batcher, with the channel its answer goes back on.
pub(super) struct Queued<R, O> {
    pub(super) request: R,
    pub(super) reply: tokio::sync::oneshot::Sender<StoreResult<O>>,
}

/// What a batcher task receives.
pub(super) type Calls<R, O> = tokio::sync::mpsc::Receiver<Queued<R, O>>;

/// The queue in front of one batcher task: requests of kind `R`, each
/// answered with an `O`.
pub(super) struct Batcher<R, O> {
    pub(super) calls: tokio::sync::mpsc::Sender<Queued<R, O>>,
    pub(super) name: &'static str,
}

impl<R, O> Batcher<R, O> {
    /// The queue and its receiving end, for the task that serves it.
    pub(super) fn new(name: &'static str, capacity: usize) -> (Batcher<R, O>, Calls<R, O>) {
        let (calls, receiver) = tokio::sync::mpsc::channel(capacity);
        (Batcher { calls, name }, receiver)
    }

    /// Queues `request` and waits for its answer.
    pub(super) async fn submit(&self, request: R) -> StoreResult<O> {
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
///
/// `slot` names the slot a request's keys live in, `None` for the
/// deployment's admission slot. On a Cluster (`Link::sharded`) a batch is
/// split by slot, one script call per slot, all sent at once (the cluster
/// client routes each to its primary): a script may only touch one slot's
/// keys. Requests of one key share its slot, so they keep their order.
/// Those per-slot calls (rate-limit keys spread over the primaries) do not
/// take in-flight places: a hung primary would hold every place until the
/// timeout and queue the healthy primaries' calls behind it (test
/// `a_hung_primary_does_not_hold_up_the_other_shards`). On a Cluster almost
/// every such call is one decision anyway (docs/scaling.md), so the places
/// bought no batching there; a caller waits for its answer, so what is in
/// flight stays bounded by the callers and the timeout.
pub(super) async fn serve_batches<R: Send + 'static, O: Send + 'static>(
    link: Arc<Link>,
    script: Script,
    mut calls: Calls<R, O>,
    max: usize,
    slot: impl Fn(&R) -> Option<Slot>,
    build: impl Fn(&mut redis::ScriptInvocation<'_>, &[R]),
    decode: impl Fn(&Value, &[R]) -> StoreResult<Vec<O>>,
) {
    let (link, script, slot, build, decode) = (&link, &script, &slot, &build, &decode);
    // Each in-flight future says whether it holds a place.
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut places = 0;
    loop {
        let first = tokio::select! {
            // Answer finished batches first: their callers are waiting.
            biased;
            Some(held) = in_flight.next(), if !in_flight.is_empty() => {
                places -= usize::from(held);
                continue;
            }
            call = calls.recv(), if places < IN_FLIGHT => match call {
                Some(call) => call,
                None => break,
            },
        };
        // A batcher serves one kind of request: its first says whether its
        // keys spread over the primaries or live in the admission slot.
        let spread = link.sharded() && slot(&first.request).is_some();
        let mut batch = vec![first];
        while batch.len() < max {
            match calls.try_recv() {
                Ok(call) => batch.push(call),
                Err(_) => break,
            }
        }
        // One script call for `group`; the future answers whether it held a place.
        let run = move |group: Vec<Queued<R, O>>, holds_place: bool| async move {
            let (requests, replies): (Vec<R>, Vec<_>) = group.into_iter().map(|q| (q.request, q.reply)).unzip();
            let mut invocation = script.prepare_invoke();
            build(&mut invocation, &requests);
            // Spread calls are one slot's each: its primary may be short-circuited.
            let in_slot = if holds_place { None } else { requests.first().and_then(slot) };
            // A caller that gave up is not waiting for its answer.
            match link.run_in(in_slot, invocation).await.and_then(|value| decode(&value, &requests)) {
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
            holds_place
        };
        if spread {
            for group in by_slot(batch, |q| slot(&q.request)) {
                in_flight.push(run(group, false));
            }
        } else {
            // One slot (one node, or the admission slot): one call, one place.
            places += 1;
            in_flight.push(run(batch, true));
        }
    }
    while in_flight.next().await.is_some() {}
}

/// Splits `items` into one group per slot, each in the items' order, the
/// groups in the order of their first item.
pub(super) fn by_slot<T, K: std::hash::Hash + Eq>(items: Vec<T>, slot: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut index: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for item in items {
        let key = slot(&item);
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(item);
    }
    groups
}

/// Script calls one batcher keeps in flight at once.
const IN_FLIGHT: usize = 4;
