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
use super::link::DOWN_WINDOW;

/// Which primary serves each slot, and which primaries are short-circuited.
#[derive(Default)]
pub(super) struct ShardGate {
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
    /// Each primary's address and the instant (ms since the link opened)
    /// until which its calls fail at once (0 = not short-circuited).
    primaries: Vec<(String, AtomicU64)>,
}

impl SlotMap {
    fn primary(&self, slot: Slot) -> Option<&AtomicU64> {
        self.owners.get(&slot).map(|&i| &self.primaries[i].1)
    }
}

impl ShardGate {
    fn map(&self) -> std::sync::RwLockReadGuard<'_, SlotMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `slot`'s primary failed within the last [`DOWN_WINDOW`].
    pub(super) fn is_down(&self, slot: Slot, now_ms: u64) -> bool {
        self.map().primary(slot).is_some_and(|until| now_ms < until.load(Ordering::Relaxed))
    }

    /// Short-circuits `slot`'s primary for [`DOWN_WINDOW`] from `now_ms`;
    /// false when the slot's primary is not known (yet).
    pub(super) fn failed(&self, slot: Slot, now_ms: u64) -> bool {
        let map = self.map();
        let Some(until) = map.primary(slot) else { return false };
        until.store(now_ms + DOWN_WINDOW.as_millis() as u64, Ordering::Relaxed);
        true
    }

    /// Takes a new slot map; a primary that keeps its address keeps its
    /// short-circuit.
    fn set_slots(&self, ranges: Vec<(u16, u16, String)>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut next = SlotMap { owners: HashMap::with_capacity(usize::from(SLOTS)), primaries: Vec::new() };
        for (start, end, address) in ranges {
            let index = match next.primaries.iter().position(|(a, _)| *a == address) {
                Some(index) => index,
                None => {
                    let until = map.primaries.iter().find(|(a, _)| *a == address);
                    let until = until.map_or(0, |(_, until)| until.load(Ordering::Relaxed));
                    next.primaries.push((address, AtomicU64::new(until)));
                    next.primaries.len() - 1
                }
            };
            for number in start..=end.min(SLOTS - 1) {
                next.owners.extend(Slot::new(number).map(|slot| (slot, index)));
            }
        }
        *map = next;
    }

    /// Reads `CLUSTER SLOTS` (from any node, bounded by `timeout`) into the
    /// gate, unless a read is already under way. A failed read leaves the
    /// old map; the next failure asks again.
    pub(super) fn refresh(self: &Arc<Self>, mut connection: ClusterConnection, timeout: Duration) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let gate = Arc::clone(self);
        tokio::spawn(async move {
            let ask = connection.route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            );
            match tokio::time::timeout(timeout, ask).await {
                Ok(Ok(reply)) => match cluster_slots(&reply) {
                    Some(ranges) => gate.set_slots(ranges),
                    None => tracing::info!(?reply, "Redis Cluster: unexpected answer to CLUSTER SLOTS"),
                },
                Ok(Err(e)) => tracing::debug!(error = %e, "Redis Cluster: CLUSTER SLOTS failed"),
                Err(_) => tracing::debug!("Redis Cluster: no answer to CLUSTER SLOTS within {timeout:?}"),
            }
            gate.refreshing.store(false, Ordering::Release);
        });
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
        let gate = ShardGate::default();
        let (a, b) = (Slot::new(10).unwrap(), Slot::new(9_000).unwrap());
        assert!(!gate.failed(a, 1_000), "no slot map yet: nothing to short-circuit");
        assert!(!gate.is_down(a, 1_000));
        gate.set_slots(vec![(0, 5460, "n1:7000".into()), (5461, 16383, "n2:7000".into())]);
        assert!(gate.failed(a, 1_000));
        let window = DOWN_WINDOW.as_millis() as u64;
        assert!(gate.is_down(a, 1_000));
        assert!(gate.is_down(Slot::new(5460).unwrap(), 1_000 + window - 1), "every slot of that primary");
        assert!(!gate.is_down(a, 1_000 + window), "the window has passed: the next call is the probe");
        assert!(!gate.is_down(b, 1_000), "the other primary's slots are untouched");
        // A new map (a failover moved slots) keeps a primary's window by address.
        gate.set_slots(vec![(0, 100, "n1:7000".into()), (101, 16383, "n3:7000".into())]);
        assert!(gate.is_down(a, 1_001));
        assert!(!gate.is_down(Slot::new(200).unwrap(), 1_001), "slots moved to the promoted replica");
    }
}
