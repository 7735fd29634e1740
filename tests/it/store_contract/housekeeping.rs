//! `Housekeeping`: the sweep follows the core's lease rules (`core::lease`):
//! an expired lease goes back to the head of its queue, or to the dead
//! letters after its last delivery; a held lease is left alone.

use super::task_queue::{request, task};
use super::{Stores, contract};

use floodgate::core::UserType;
use floodgate::core::lease::{self, Expiry};
use floodgate::store::{Housekeeping, TaskQueue};

contract!(
    both_stores_follow_the_core_lease_rules,
    maintain_requeues_an_expired_lease_at_the_head_of_its_queue,
    maintain_leaves_held_leases_alone,
);

/// Follows one task through lease after lease, each left to expire, and
/// logs (delivery, still held at the expiry instant, fate) as the store
/// decides them.
async fn expiry_fates<S: TaskQueue + Housekeeping>(store: &S, max_deliveries: u32) -> Vec<(u32, bool, Expiry)> {
    store.enqueue(task(UserType::Registered, "x"), 100, 1_000).await.unwrap();
    let mut log = Vec::new();
    for now in (1_000..).step_by(100) {
        let Some(t) = store.lease(request(1, 100, max_deliveries), now).await.unwrap().pop() else { break };
        let expiry = t.lease_expires_at_ms;
        let held = store.extend(&t.task_id, &t.lease_id, 100, expiry).await.unwrap().is_some();
        store.maintain(expiry, max_deliveries).await.unwrap();
        let stats = store.queue_stats().await.unwrap();
        let fate = if stats.dead_letters == 1 { Expiry::DeadLetter } else { Expiry::Redeliver };
        log.push((t.delivery_count, held, fate));
    }
    log
}

/// The core's answer for the same walk.
fn expiry_reference(max_deliveries: u32) -> Vec<(u32, bool, Expiry)> {
    let mut log = Vec::new();
    for delivery in 1.. {
        let fate = lease::on_expiry(delivery, max_deliveries);
        log.push((delivery, lease::is_held(1_100, 1_100), fate));
        if fate == Expiry::DeadLetter {
            break;
        }
    }
    log
}

async fn both_stores_follow_the_core_lease_rules(stores: Stores) {
    for max_deliveries in 1..=4 {
        let reference = expiry_reference(max_deliveries);
        assert_eq!(reference.len(), max_deliveries as usize);
        assert_eq!(expiry_fates(&stores.fresh().await, max_deliveries).await, reference, "max {max_deliveries}");
    }
}

/// An expired lease's task is waiting again, ahead of the tasks enqueued
/// after it, and its next delivery counts as the second.
async fn maintain_requeues_an_expired_lease_at_the_head_of_its_queue(stores: Stores) {
    let store = stores.fresh().await;
    for name in ["first", "second"] {
        store.enqueue(task(UserType::Anonymous, name), 100, 1_000).await.unwrap();
    }
    let held = store.lease(request(1, 100, 3), 1_000).await.unwrap();
    assert_eq!(held[0].payload, b"first");
    store.maintain(1_100, 3).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.leased, stats.dead_letters), ([2, 0, 0], 0, 0));
    assert!(!store.complete(&held[0].task_id, &held[0].lease_id, 1_100).await.unwrap(), "the lease is gone");
    let again = store.lease(request(1, 100, 3), 1_200).await.unwrap();
    assert_eq!((again[0].task_id.as_str(), again[0].delivery_count), (held[0].task_id.as_str(), 2));
    assert_ne!(again[0].lease_id, held[0].lease_id);
}

/// Before its expiry a lease survives the sweep: it can still be extended
/// and completed, and nothing is requeued.
async fn maintain_leaves_held_leases_alone(stores: Stores) {
    let store = stores.fresh().await;
    store.enqueue(task(UserType::Privileged, "x"), 100, 1_000).await.unwrap();
    let held = store.lease(request(1, 100, 1), 1_000).await.unwrap().remove(0);
    store.maintain(1_099, 1).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.leased, stats.dead_letters), ([0; 3], 1, 0));
    assert_eq!(store.extend(&held.task_id, &held.lease_id, 100, 1_099).await.unwrap(), Some(1_199));
    store.maintain(1_150, 1).await.unwrap();
    assert!(store.complete(&held.task_id, &held.lease_id, 1_150).await.unwrap());
    assert_eq!(store.queue_stats().await.unwrap().load(), 0);
}
