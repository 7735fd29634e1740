//! Lease rules (docs/architecture.md §3, "Workers"): the order tasks are leased in,
//! whether a lease is still held, and what an expired lease does to its
//! task (back to the head of its queue, or to the dead letters after
//! `max_deliveries`). The memory store calls these functions; the Redis
//! scripts (`store/lua/lease.lua`, `complete.lua`, `extend.lua`) mirror them
//! and name the function they mirror in their header.

use super::{Millis, UserType};

/// The order queues are served in: highest user-type priority first
/// (FIFO within a queue is the queue's own order).
pub const LEASE_ORDER: [UserType; 3] = [UserType::Privileged, UserType::Registered, UserType::Anonymous];

/// When a lease taken at `now` for `lease_ms` expires (also the new expiry
/// of an extended lease).
pub fn expires_at(now: Millis, lease_ms: Millis) -> Millis {
    now.saturating_add(lease_ms)
}

/// Whether a lease expiring at `expires_at_ms` is still held at `now`: a
/// lease is held strictly before its expiry, so completing or extending
/// at the expiry instant is refused, and the same instant sweeps it.
pub fn is_held(expires_at_ms: Millis, now: Millis) -> bool {
    expires_at_ms > now
}

/// Whether the lease is still held by `lease_id` at `now`: the right lease
/// id (a redelivered task has a new one) and not expired.
pub fn is_held_by(held_id: &str, expires_at_ms: Millis, lease_id: &str, now: Millis) -> bool {
    held_id == lease_id && is_held(expires_at_ms, now)
}

/// What an expired lease does to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Back to the head of its queue, to be delivered again.
    Redeliver,
    /// It had its `max_deliveries`: off to the dead-letter list.
    DeadLetter,
}

/// The fate of a task whose lease expired after `delivery_count` deliveries.
pub fn on_expiry(delivery_count: u32, max_deliveries: u32) -> Expiry {
    if delivery_count >= max_deliveries { Expiry::DeadLetter } else { Expiry::Redeliver }
}

/// Puts expired tasks in the order they are pushed back to the head of
/// their queues: newest enqueue first (by `seq`, the enqueue order), so that
/// after the pushes the oldest is at the head and FIFO order holds.
pub fn requeue_order<T>(expired: &mut [T], seq: impl Fn(&T) -> u64) {
    expired.sort_by_key(|t| std::cmp::Reverse(seq(t)));
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn privileged_tasks_are_leased_first_anonymous_last() {
        assert_eq!(LEASE_ORDER, [UserType::Privileged, UserType::Registered, UserType::Anonymous]);
        let mut all = LEASE_ORDER.to_vec();
        all.sort();
        assert_eq!(all, UserType::ALL.to_vec(), "every user type is served once");
    }

    #[test]
    fn a_lease_is_held_until_but_not_at_its_expiry() {
        assert!(is_held(1_000, 999));
        assert!(!is_held(1_000, 1_000));
        assert!(!is_held(1_000, 1_001));
        assert_eq!(expires_at(1_000, 30_000), 31_000);
        assert_eq!(expires_at(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn only_the_current_lease_id_holds_the_task() {
        assert!(is_held_by("l2", 1_000, "l2", 10));
        assert!(!is_held_by("l2", 1_000, "l1", 10), "an older lease of a redelivered task");
        assert!(!is_held_by("l2", 1_000, "l2", 1_000), "expired");
    }

    #[test]
    fn an_expired_lease_dead_letters_its_task_after_max_deliveries() {
        // Scenario table: (deliveries so far, max_deliveries, fate).
        let table = [
            (1, 3, Expiry::Redeliver),
            (2, 3, Expiry::Redeliver),
            (3, 3, Expiry::DeadLetter),
            (4, 3, Expiry::DeadLetter),
            (1, 1, Expiry::DeadLetter),
            (0, 1, Expiry::Redeliver),
        ];
        for (deliveries, max, fate) in table {
            assert_eq!(on_expiry(deliveries, max), fate, "{deliveries} of {max}");
        }
    }

    #[test]
    fn requeued_tasks_go_back_to_the_head_in_fifo_order() {
        let mut queue: VecDeque<u64> = VecDeque::from([9, 10]);
        let mut expired = vec![5, 2, 7];
        requeue_order(&mut expired, |s| *s);
        for seq in expired {
            queue.push_front(seq);
        }
        assert_eq!(queue, [2, 5, 7, 9, 10]);
    }

    proptest! {
        #[test]
        fn requeueing_any_expired_set_leaves_the_queue_in_enqueue_order(
            mut seqs in proptest::collection::btree_set(0u64..1_000, 0..40),
            split in 0usize..40,
        ) {
            // The oldest tasks were leased (and expired); the rest still wait.
            let all: Vec<u64> = std::mem::take(&mut seqs).into_iter().collect();
            let split = split.min(all.len());
            let mut queue: VecDeque<u64> = all[split..].iter().copied().collect();
            let mut expired: Vec<u64> = all[..split].to_vec();
            expired.reverse();
            requeue_order(&mut expired, |s| *s);
            for seq in expired {
                queue.push_front(seq);
            }
            prop_assert_eq!(queue.into_iter().collect::<Vec<_>>(), all);
        }

        #[test]
        fn a_task_is_delivered_at_most_max_deliveries_times(max in 1u32..20) {
            // Deliver, expire, and follow the rule until it dead-letters.
            let mut deliveries = 0;
            loop {
                deliveries += 1;
                if on_expiry(deliveries, max) == Expiry::DeadLetter {
                    break;
                }
            }
            prop_assert_eq!(deliveries, max);
        }

        #[test]
        fn a_lease_taken_or_extended_at_now_is_held_for_exactly_lease_ms(
            now in 0u64..1_000_000_000,
            lease_ms in 1u64..1_000_000,
        ) {
            let expiry = expires_at(now, lease_ms);
            prop_assert!(is_held(expiry, now + lease_ms - 1));
            prop_assert!(!is_held(expiry, now + lease_ms));
        }
    }
}
