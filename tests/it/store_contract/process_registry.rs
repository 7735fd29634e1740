//! `ProcessRegistry`: heartbeats are stamped with the store's receive time,
//! one record per (instance, process), and silent processes expire by the
//! core's rule (`core::health::is_expired`).

use super::{Stores, contract};

use floodgate::core::health::{self, ProcessRecord, ProcessStatus};
use floodgate::store::ProcessRegistry;

contract!(
    heartbeats_are_stamped_with_the_receive_time,
    one_record_per_instance_and_process,
    silent_processes_expire_by_the_core_rule,
);

fn record(instance_id: &str, process_id: &str, load: u32) -> ProcessRecord {
    ProcessRecord {
        instance_id: instance_id.into(),
        process_id: process_id.into(),
        service_type: "chat".into(),
        service_name: "rest".into(),
        load,
        capacity: 10,
        status: ProcessStatus::Healthy,
        last_seen_ms: 0,
    }
}

/// (instance, process, load, last seen), sorted: the stores keep no order.
fn seen(records: &[ProcessRecord]) -> Vec<(String, String, u32, u64)> {
    let mut seen: Vec<_> =
        records.iter().map(|r| (r.instance_id.clone(), r.process_id.clone(), r.load, r.last_seen_ms)).collect();
    seen.sort();
    seen
}

async fn heartbeats_are_stamped_with_the_receive_time(stores: Stores) {
    let store = stores.fresh().await;
    let sent = ProcessRecord { last_seen_ms: 42, ..record("i1", "p1", 3) };
    store.heartbeat(sent.clone(), 5_000).await.unwrap();
    let view = store.processes(5_250, 10_000).await.unwrap();
    assert_eq!(view.now_ms, 5_250, "the clock the records are judged by");
    assert_eq!(view.records, [ProcessRecord { last_seen_ms: 5_000, ..sent }]);
}

async fn one_record_per_instance_and_process(stores: Stores) {
    let store = stores.fresh().await;
    store.heartbeat(record("i1", "p1", 1), 1_000).await.unwrap();
    store.heartbeat(record("i1", "p2", 2), 1_000).await.unwrap();
    store.heartbeat(record("i2", "p1", 3), 1_000).await.unwrap();
    store.heartbeat(record("i1", "p1", 4), 2_000).await.unwrap();
    let view = store.processes(2_000, 10_000).await.unwrap();
    assert_eq!(
        seen(&view.records),
        [
            ("i1".into(), "p1".into(), 4, 2_000),
            ("i1".into(), "p2".into(), 2, 1_000),
            ("i2".into(), "p1".into(), 3, 1_000)
        ]
    );
}

/// A process silent for `expire_after_ms` or longer is dropped (and stays
/// dropped); one heard from since is kept.
async fn silent_processes_expire_by_the_core_rule(stores: Stores) {
    let store = stores.fresh().await;
    store.heartbeat(record("i1", "old", 0), 1_000).await.unwrap();
    store.heartbeat(record("i1", "new", 0), 1_500).await.unwrap();
    let expire_after_ms = 1_000;
    let just_before = store.processes(1_999, expire_after_ms).await.unwrap();
    assert_eq!(just_before.records.len(), 2);
    let at_expiry = store.processes(2_000, expire_after_ms).await.unwrap();
    let kept: Vec<_> = at_expiry.records.iter().map(|r| r.process_id.as_str()).collect();
    assert_eq!(kept, ["new"]);
    let core = |r: &ProcessRecord| health::is_expired(r, 2_000, expire_after_ms);
    assert!(core(&ProcessRecord { last_seen_ms: 1_000, ..record("i1", "old", 0) }), "the core's rule agrees");
    assert!(!core(&at_expiry.records[0]));
    let later = store.processes(1_999, expire_after_ms).await.unwrap();
    assert_eq!(later.records.len(), 1, "an expired record is dropped, not hidden");
}
