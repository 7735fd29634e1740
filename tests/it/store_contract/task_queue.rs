//! `TaskQueue`: the check-and-enqueue admits exactly the core's limit, and
//! the lease cycle (lease order, extend, complete, expiry, dead letters)
//! runs the same on both backends, concurrent callers included.

use std::collections::{HashMap, HashSet};

use super::{Stores, contract};

use floodgate::core::{UserType, capacity};
use floodgate::store::{DeadLetter, EnqueueOutcome, Housekeeping, LeaseHolder, LeaseRequest, NewTask, TaskQueue};

contract!(
    enqueue_script_admits_exactly_the_core_limit,
    concurrent_completions_are_each_judged_by_their_own_lease,
    concurrent_leases_hand_out_each_task_once,
    lease_script_orders_like_the_memory_store,
    lifecycle_scripts_match_the_memory_store,
    queue_stats_count_each_class_and_its_oldest_waiting_task,
    a_dead_letter_names_the_worker_that_held_it_last,
    a_holder_comes_back_as_the_worker_named_itself,
);

pub(super) fn task(user_type: UserType, payload: &str) -> NewTask {
    NewTask { user_type, payload: payload.as_bytes().to_vec(), idempotency_key: None, idempotency_ttl_ms: 60_000 }
}

/// A worker's lease request (worker i0/p0).
pub(super) fn request(max_tasks: u32, lease_ms: u64, max_deliveries: u32) -> LeaseRequest {
    LeaseRequest { max_tasks, lease_ms, max_deliveries, holder: holder("i0", "p0") }
}

fn holder(instance_id: &str, process_id: &str) -> LeaseHolder {
    LeaseHolder { instance_id: instance_id.into(), process_id: process_id.into() }
}

async fn admitted_until_refused<S: TaskQueue>(store: &S, user_type: UserType, limit: u64) -> u64 {
    let mut admitted = 0;
    loop {
        match store.enqueue(task(user_type, "x"), limit, 1_000).await.unwrap() {
            EnqueueOutcome::Admitted { load, .. } => {
                admitted += 1;
                assert_eq!(load, admitted);
            }
            EnqueueOutcome::Refused { load } => {
                assert_eq!(load, admitted);
                return admitted;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn enqueue_script_admits_exactly_the_core_limit(stores: Stores) {
    let thresholds = capacity::Thresholds { anonymous: 0.6, registered: 0.8, hard_limit: 0.95 };
    for total in [0, 1, 14, 50, 137] {
        let limits = capacity::Limits::from_thresholds(&thresholds, total);
        for user_type in UserType::ALL {
            let expected = limits.for_user(user_type);
            let admitted = admitted_until_refused(&stores.fresh().await, user_type, expected).await;
            assert_eq!(admitted, expected, "T={total} {user_type:?}");
        }
    }
}

/// Concurrent completions (sharing script calls on Redis) are each still
/// judged by their own lease: right ones complete once, wrong or repeated
/// ones don't.
async fn concurrent_completions_are_each_judged_by_their_own_lease(stores: Stores) {
    let store = stores.fresh().await;
    for i in 0..20 {
        store.enqueue(task(UserType::Registered, &format!("c{i}")), 100, 1_000).await.unwrap();
    }
    let leased = store.lease(request(20, 60_000, 5), 2_000).await.unwrap();
    assert_eq!(leased.len(), 20);
    let calls = leased.iter().flat_map(|t| {
        [
            store.complete(&t.task_id, &t.lease_id, 3_000),
            store.complete(&t.task_id, "not-the-lease", 3_000),
            store.complete(&t.task_id, &t.lease_id, 3_000),
        ]
    });
    let answers: Vec<bool> = futures_util::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    for (t, answer) in leased.iter().zip(answers.chunks(3)) {
        assert_eq!(answer, [true, false, false], "{}", t.task_id);
    }
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.leased), ([0; 3], 0));
}

/// Concurrent lease requests (sharing script calls on Redis): every task
/// goes to exactly one of them, privileged tasks first.
async fn concurrent_leases_hand_out_each_task_once(stores: Stores) {
    let store = stores.fresh().await;
    for i in 0..25 {
        let user_type = if i < 5 { UserType::Privileged } else { UserType::Anonymous };
        store.enqueue(task(user_type, &format!("l{i}")), 100, 1_000).await.unwrap();
    }
    let calls = (0..10).map(|_| store.lease(request(3, 60_000, 5), 2_000));
    let leased: Vec<Vec<_>> = futures_util::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let ids: Vec<&str> = leased.iter().flatten().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids.len(), 25, "{leased:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25, "a task leased twice");
    // Served in arrival order: the first requests got the privileged tasks.
    let first_five: Vec<_> = leased.iter().flatten().take(5).map(|t| t.user_type).collect();
    assert_eq!(first_five, [UserType::Privileged; 5]);
    assert_eq!(store.queue_stats().await.unwrap().leased, 25);
}

/// Privileged first, FIFO within a class; expired leases go back to the
/// head of their queue in their original order.
async fn lease_script_orders_like_the_memory_store(stores: Stores) {
    let store = stores.fresh().await;
    let plan = [
        (UserType::Anonymous, "a1"),
        (UserType::Registered, "r1"),
        (UserType::Privileged, "p1"),
        (UserType::Anonymous, "a2"),
        (UserType::Privileged, "p2"),
        (UserType::Registered, "r2"),
    ];
    for (user_type, name) in plan {
        store.enqueue(task(user_type, name), 100, 1_000).await.unwrap();
    }
    let mut order = Vec::new();
    // Lease three, let them expire: they go back to the head, in order.
    let first = store.lease(request(3, 100, 5), 2_000).await.unwrap();
    order.extend(first.iter().map(|t| String::from_utf8(t.payload.clone()).unwrap()));
    for t in store.lease(request(10, 100, 5), 2_100).await.unwrap() {
        order.push(format!("{}#{}", String::from_utf8(t.payload).unwrap(), t.delivery_count));
    }
    assert_eq!(order, ["p1", "p2", "r1", "p1#2", "p2#2", "r1#2", "r2#1", "a1#1", "a2#1"]);
}

/// One scripted task lifecycle (idempotency, lease order, extend, wrong and
/// right completes, expiry, requeue, dead letter), described by payload
/// names so that the stores' task ids don't matter.
async fn lifecycle<S: TaskQueue + Housekeeping>(store: &S) -> Vec<String> {
    let mut names = HashMap::new();
    let mut log = Vec::new();
    let with_key = |user_type, payload: &str, key: &str| NewTask {
        idempotency_key: Some(key.to_owned()),
        ..task(user_type, payload)
    };
    for (new_task, name) in [
        (task(UserType::Anonymous, "a"), "a"),
        (with_key(UserType::Registered, "b", "k1"), "b"),
        (task(UserType::Privileged, "c"), "c"),
        (with_key(UserType::Registered, "b-again", "k1"), "b-again"),
    ] {
        match store.enqueue(new_task, 100, 1_000).await.unwrap() {
            EnqueueOutcome::Admitted { task_id, queue_position, load } => {
                names.insert(task_id, name.to_owned());
                log.push(format!("admitted {name} at {queue_position}, load {load}"));
            }
            EnqueueOutcome::Duplicate { task_id, queue_position, load } => {
                log.push(format!("duplicate of {} at {queue_position}, load {load}", names[&task_id]));
            }
            EnqueueOutcome::Refused { load } => log.push(format!("refused {name}, load {load}")),
        }
    }
    let first = store.lease(request(2, 100, 2), 1_000).await.unwrap();
    for t in &first {
        log.push(format!("leased {} #{} until {}", names[&t.task_id], t.delivery_count, t.lease_expires_at_ms));
    }
    let (c, b) = (&first[0], &first[1]);
    log.push(format!("extend b: {:?}", store.extend(&b.task_id, &b.lease_id, 500, 1_050).await.unwrap()));
    log.push(format!("complete c, wrong lease: {}", store.complete(&c.task_id, "nope", 1_060).await.unwrap()));
    log.push(format!("complete c: {}", store.complete(&c.task_id, &c.lease_id, 1_060).await.unwrap()));
    log.push(format!("complete c again: {}", store.complete(&c.task_id, &c.lease_id, 1_061).await.unwrap()));
    store.maintain(1_200, 2).await.unwrap();
    for t in store.lease(request(5, 100, 2), 1_600).await.unwrap() {
        log.push(format!("leased {} #{} until {}", names[&t.task_id], t.delivery_count, t.lease_expires_at_ms));
    }
    log.push(format!("extend expired b: {:?}", store.extend(&b.task_id, &b.lease_id, 500, 1_700).await.unwrap()));
    store.maintain(2_000, 2).await.unwrap();
    let stats = store.queue_stats().await.unwrap();
    log.push(format!("queued {:?} leased {} dead {}", stats.queued, stats.leased, stats.dead_letters));
    for d in store.dead_letters(10).await.unwrap() {
        log.push(format!("dead {} after {} deliveries at {}", names[&d.task_id], d.delivery_count, d.dead_at_ms));
    }
    log
}

async fn lifecycle_scripts_match_the_memory_store(stores: Stores) {
    assert_eq!(
        lifecycle(&stores.fresh().await).await,
        [
            "admitted a at 1, load 1",
            "admitted b at 1, load 2",
            "admitted c at 1, load 3",
            "duplicate of b at 1, load 3",
            "leased c #1 until 1100",
            "leased b #1 until 1100",
            "extend b: Some(1550)",
            "complete c, wrong lease: false",
            "complete c: true",
            "complete c again: false",
            "leased b #2 until 1700",
            "leased a #1 until 1700",
            "extend expired b: None",
            "queued [1, 0, 0] leased 0 dead 1",
            "dead b after 2 deliveries at 2000",
        ]
    );
}

/// Queue depths per class, leases, and each class's oldest waiting task
/// (the next leased); the load is queued + leased, and `cached_load`
/// follows it on this instance.
async fn queue_stats_count_each_class_and_its_oldest_waiting_task(stores: Stores) {
    let store = stores.fresh().await;
    let empty = store.queue_stats().await.unwrap();
    assert_eq!((empty.queued, empty.leased, empty.dead_letters, empty.load()), ([0; 3], 0, 0, 0));
    assert_eq!(empty.oldest_enqueued_at_ms, [None; 3]);
    for (user_type, at) in [(UserType::Registered, 1_000), (UserType::Registered, 1_500), (UserType::Privileged, 2_000)]
    {
        store.enqueue(task(user_type, "x"), 100, at).await.unwrap();
    }
    assert_eq!(store.cached_load(), 3);
    let leased = store.lease(request(2, 60_000, 5), 3_000).await.unwrap();
    assert_eq!(leased.iter().map(|t| t.enqueued_at_ms).collect::<Vec<_>>(), [2_000, 1_000]);
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.leased, stats.load()), ([0, 1, 0], 2, 3));
    assert_eq!(stats.oldest_enqueued_at_ms, [None, Some(1_500), None]);
    assert_eq!(stats.oldest_task_age_ms(4_000), [None, Some(2_500), None]);
    assert!(store.complete(&leased[0].task_id, &leased[0].lease_id, 3_100).await.unwrap());
    assert_eq!(store.queue_stats().await.unwrap().load(), 2);
    assert_eq!(store.cached_load(), 2);
}

/// Regression: LeaseTasks' `instance_id` and `process_id` were ignored, so
/// a task dead-lettered after repeated expiries could not say which worker
/// let it expire. The lease records its holder (kept across an extend) and
/// the dead letter names the last one.
async fn a_dead_letter_names_the_worker_that_held_it_last(stores: Stores) {
    let store = stores.fresh().await;
    store.enqueue(task(UserType::Registered, "poison"), 100, 1_000).await.unwrap();
    let by = |worker: LeaseHolder| LeaseRequest { holder: worker, ..request(1, 100, 2) };
    let first = store.lease(by(holder("i2", "p2")), 1_000).await.unwrap().remove(0);
    // The first lease expires at 1,100; the second worker's request sweeps it back first.
    let last = store.lease(by(holder("i1", "p1")), 1_100).await.unwrap().remove(0);
    assert_eq!((last.task_id.as_str(), last.delivery_count), (first.task_id.as_str(), 2));
    assert_eq!(store.extend(&last.task_id, &last.lease_id, 100, 1_150).await.unwrap(), Some(1_250));
    store.maintain(1_250, 2).await.unwrap();
    let dead = store.dead_letters(10).await.unwrap();
    let expected = DeadLetter {
        task_id: first.task_id,
        user_type: UserType::Registered,
        enqueued_at_ms: 1_000,
        delivery_count: 2,
        dead_at_ms: 1_250,
        last_holder: Some(holder("i1", "p1")),
    };
    assert_eq!(dead, [expected]);
}

/// Ids are the worker's own strings: separators and quotes the stores use
/// come back unharmed, and completing or extending the lease still works.
async fn a_holder_comes_back_as_the_worker_named_itself(stores: Stores) {
    let store = stores.fresh().await;
    store.enqueue(task(UserType::Anonymous, "a"), 100, 1_000).await.unwrap();
    store.enqueue(task(UserType::Anonymous, "b"), 100, 1_000).await.unwrap();
    let odd = holder("pod|7 \"east\"\u{1f}/", "{\"pid\": 1}|");
    let leased = store.lease(LeaseRequest { holder: odd.clone(), ..request(2, 100, 1) }, 1_000).await.unwrap();
    let (done, dropped) = (&leased[0], &leased[1]);
    assert_eq!(store.extend(&done.task_id, &done.lease_id, 200, 1_050).await.unwrap(), Some(1_250));
    assert!(store.complete(&done.task_id, &done.lease_id, 1_060).await.unwrap());
    store.maintain(1_100, 1).await.unwrap();
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].task_id.as_str(), dead[0].last_holder.as_ref()), (dropped.task_id.as_str(), Some(&odd)));
    let json = serde_json::to_value(&dead[0]).unwrap();
    assert_eq!(json["last_holder"], serde_json::json!({"instance_id": odd.instance_id, "process_id": odd.process_id}));
}
