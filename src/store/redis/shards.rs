//! On a Cluster, the short-circuit of one primary: after a call to a
//! primary fails while the others answer (one shard's failure), further
//! rate-limit calls for any slot that primary serves fail at once for
//! [`DOWN_WINDOW`] instead of each waiting for the timeout; the first call
//! after the window is the probe. A hung primary then costs its own keys
//! one timeout per window, not one per call. Which primary serves a slot
//! comes from `CLUSTER SLOTS`, read at start and again after a failure
//! (a failover moves slots to the promoted replica).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};

use super::decode::{int, text};
use super::link::{DOWN_WINDOW, DownUntil};
use crate::store::{StoreError, StoreResult};

/// How recent a success must be for a failure to count as one shard's (ms).
pub(super) const SHARD_WITNESS: u64 = 1_000;

/// Whether a failure at `now_ms` is one shard's: a call succeeded at most
/// [`SHARD_WITNESS`] before it (`last_success` is that instant plus one,
/// 0 for never). The success may have been on the failing shard itself just
/// before it died: then the first second of a whole-Cluster outage is
/// taken for one shard's and the store circuit hears of it a second late.
pub(super) fn shard_local(last_success: u64, now_ms: u64) -> bool {
    last_success != 0 && now_ms < last_success + SHARD_WITNESS
}

/// A Cluster's rate-limit calls, told apart by shard: which failures are
/// one shard's, which primary serves each slot, and which primaries are
/// short-circuited.
pub(super) struct ShardGate {
    cluster: ClusterConnection,
    /// Bounds each `CLUSTER SLOTS` read.
    timeout: Duration,
    /// When a call last succeeded (ms since the link opened, plus one; 0 =
    /// never). A failure within [`SHARD_WITNESS`] of it is one shard's
    /// ([`StoreError::ShardUnavailable`]): another primary answered, so the
    /// store as a whole is up.
    last_success: AtomicU64,
    /// Empty until `CLUSTER SLOTS` answered; replaced whole on a new read.
    map: RwLock<SlotMap>,
    /// A `CLUSTER SLOTS` read is under way.
    refreshing: AtomicBool,
}

/// Slot → primary, and each primary's short-circuit.
#[derive(Default)]
struct SlotMap {
    /// Slot → index into `primaries`.
    owners: HashMap<Slot, usize>,
    /// Each primary's address and its short-circuit.
    primaries: Vec<(String, DownUntil)>,
}

impl SlotMap {
    fn primary(&self, slot: Slot) -> Option<&DownUntil> {
        self.owners.get(&slot).map(|&i| &self.primaries[i].1)
    }

    /// Whether `slot`'s primary failed within the last [`DOWN_WINDOW`].
    fn is_down(&self, slot: Slot, now_ms: u64) -> bool {
        self.primary(slot).is_some_and(|until| until.is_down(now_ms))
    }

    /// Short-circuits `slot`'s primary for [`DOWN_WINDOW`] (when known).
    fn fail(&self, slot: Slot, now_ms: u64) {
        if let Some(until) = self.primary(slot) {
            until.fail(now_ms, DOWN_WINDOW);
        }
    }

    /// The map `CLUSTER SLOTS` ranges describe; a primary that keeps its
    /// address keeps its short-circuit (taken from `self`).
    fn next(&mut self, ranges: Vec<(u16, u16, String)>) -> SlotMap {
        let mut next = SlotMap { owners: HashMap::with_capacity(usize::from(SLOTS)), primaries: Vec::new() };
        for (start, end, address) in ranges {
            let index = match next.primaries.iter().position(|(a, _)| *a == address) {
                Some(index) => index,
                None => {
                    let kept = self.primaries.iter().position(|(a, _)| *a == address);
                    let until = kept.map(|i| std::mem::take(&mut self.primaries[i].1)).unwrap_or_default();
                    next.primaries.push((address, until));
                    next.primaries.len() - 1
                }
            };
            for number in start..=end.min(SLOTS - 1) {
                next.owners.extend(Slot::new(number).map(|slot| (slot, index)));
            }
        }
        next
    }
}

impl ShardGate {
    /// The gate of `cluster`'s rate-limit calls; the slot map is read from a task.
    pub(super) fn new(cluster: ClusterConnection, timeout: Duration) -> Arc<ShardGate> {
        let gate = Arc::new(ShardGate {
            cluster,
            timeout,
            last_success: AtomicU64::new(0),
            map: RwLock::default(),
            refreshing: AtomicBool::new(false),
        });
        gate.refresh();
        gate
    }

    /// Notes a success at `now_ms`, or names a failure one shard's when a
    /// call succeeded within [`SHARD_WITNESS`] before it.
    pub(super) fn witness<T>(&self, result: StoreResult<T>, now_ms: u64) -> StoreResult<T> {
        match result {
            Ok(value) => {
                // A read first, not a read-modify-write per call: calls that
                // finish within the same millisecond share one store. Two
                // racing stores may set it back a millisecond; harmless.
                if self.last_success.load(Ordering::Relaxed) <= now_ms {
                    self.last_success.store(now_ms + 1, Ordering::Relaxed);
                }
                Ok(value)
            }
            Err(StoreError::Unavailable(e)) if shard_local(self.last_success.load(Ordering::Relaxed), now_ms) => {
                Err(StoreError::ShardUnavailable(e))
            }
            Err(e) => Err(e),
        }
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, SlotMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `slot`'s primary failed within the last [`DOWN_WINDOW`].
    pub(super) fn is_down(&self, slot: Slot, now_ms: u64) -> bool {
        self.map().is_down(slot, now_ms)
    }

    /// A call for `slot` failed as one shard's at `now_ms`: its primary is
    /// short-circuited for [`DOWN_WINDOW`] (when known), and the slot map is
    /// read again (a failover moves the slots to the promoted replica).
    pub(super) fn failed(self: &Arc<Self>, slot: Slot, now_ms: u64) {
        self.map().fail(slot, now_ms);
        self.refresh();
    }

    /// Reads `CLUSTER SLOTS` (from any node, bounded by the timeout) into
    /// the gate, unless a read is already under way. A failed read leaves
    /// the old map; the next failure asks again.
    fn refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let gate = Arc::clone(self);
        tokio::spawn(async move {
            let ask = redis::cmd("CLUSTER").arg("SLOTS").clone();
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            match ask_bounded(gate.cluster.clone(), ask, routing, gate.timeout).await {
                Ok(reply) => match cluster_slots(&reply) {
                    Some(ranges) => {
                        let mut map = gate.map.write().unwrap_or_else(|e| e.into_inner());
                        *map = map.next(ranges);
                    }
                    None => tracing::info!(?reply, "Redis Cluster: unexpected answer to CLUSTER SLOTS"),
                },
                Err(e) => tracing::debug!(error = %e, "Redis Cluster: CLUSTER SLOTS not read"),
            }
            gate.refreshing.store(false, Ordering::Release);
        });
    }
}

/// Sends `command` as `routing` says, bounded by `timeout`; the error says
/// what went wrong (the crate's error, or no answer in time).
pub(super) async fn ask_bounded(
    mut cluster: ClusterConnection,
    command: redis::Cmd,
    routing: RoutingInfo,
    timeout: Duration,
) -> Result<Value, String> {
    match tokio::time::timeout(timeout, cluster.route_command(command, routing)).await {
        Ok(reply) => reply.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Slots in a Cluster.
const SLOTS: u16 = 16_384;

/// `CLUSTER SLOTS` → (first slot, last slot, primary's `host:port`) per
/// range: each entry is `[start, end, [host, port, id, …], replicas…]`.
/// `None` when the reply has another shape.
pub(super) fn cluster_slots(reply: &Value) -> Option<Vec<(u16, u16, String)>> {
    let Value::Array(entries) = reply else { return None };
    entries
        .iter()
        .map(|entry| {
            let Value::Array(fields) = entry else { return None };
            let [start, end, primary, ..] = fields.as_slice() else { return None };
            let Value::Array(primary) = primary else { return None };
            let [host, port, ..] = primary.as_slice() else { return None };
            let (start, end) = (u16::try_from(int(start)?).ok()?, u16::try_from(int(end)?).ok()?);
            Some((start, end, format!("{}:{}", text(host)?, int(port)?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, host: &str, port: i64) -> Value {
        let primary = Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]);
        let replica = Value::Array(vec![bulk(host), Value::Int(port + 1), bulk("id2")]);
        Value::Array(vec![Value::Int(start), Value::Int(end), primary, replica])
    }

    #[test]
    fn cluster_slots_names_each_ranges_primary() {
        let reply = Value::Array(vec![range(0, 5460, "10.0.0.1", 7000), range(5461, 16383, "10.0.0.2", 7000)]);
        assert_eq!(
            cluster_slots(&reply),
            Some(vec![(0, 5460, "10.0.0.1:7000".into()), (5461, 16383, "10.0.0.2:7000".into())])
        );
        assert_eq!(cluster_slots(&Value::Array(vec![Value::Int(1)])), None);
        assert_eq!(cluster_slots(&Value::Nil), None);
    }

    #[test]
    fn a_failed_primary_short_circuits_its_slots_only_for_the_window() {
        let mut map = SlotMap::default();
        let (a, b) = (Slot::new(10).unwrap(), Slot::new(9_000).unwrap());
        map.fail(a, 1_000);
        assert!(!map.is_down(a, 1_000), "no slot map yet: nothing to short-circuit");
        let mut map = map.next(vec![(0, 5460, "n1:7000".into()), (5461, 16383, "n2:7000".into())]);
        map.fail(a, 1_000);
        let window = DOWN_WINDOW.as_millis() as u64;
        assert!(map.is_down(a, 1_000));
        assert!(map.is_down(Slot::new(5460).unwrap(), 1_000 + window - 1), "every slot of that primary");
        assert!(!map.is_down(a, 1_000 + window), "the window has passed: the next call is the probe");
        assert!(!map.is_down(b, 1_000), "the other primary's slots are untouched");
        // A new map (a failover moved slots) keeps a primary's window by address.
        let map = map.next(vec![(0, 100, "n1:7000".into()), (101, 16383, "n3:7000".into())]);
        assert!(map.is_down(a, 1_001));
        assert!(!map.is_down(Slot::new(200).unwrap(), 1_001), "slots moved to the promoted replica");
    }

    #[test]
    fn a_failure_is_one_shards_only_within_a_second_of_a_success() {
        assert!(!shard_local(0, 0), "nothing ever answered: the store's failure");
        assert!(!shard_local(0, 5_000));
        // A success at 2 000 ms is stored as 2 001.
        assert!(shard_local(2_001, 2_000), "a failure at the same instant");
        assert!(shard_local(2_001, 2_500));
        assert!(shard_local(2_001, 3_000), "exactly a second later");
        assert!(!shard_local(2_001, 3_001), "more than a second later: the store's failure");
        assert!(!shard_local(2_001, 60_000));
    }
}
