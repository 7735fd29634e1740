//! Pure decoders of script and pipeline replies (`redis::Value` → domain
//! values), unit-tested below without a server.

use redis::Value;

use crate::core::UserType;
use crate::core::analytics::CELLS;
use crate::core::gcra::GcraOutcome;
use crate::core::health::ProcessRecord;
use crate::store::{
    AnalyticsView, DeadLetter, EnqueueOutcome, LeaseHolder, LeasedTask, ProcessView, QueueStats, StoreError,
    StoreResult, StoredConfig,
};

pub(super) fn protocol(what: &str, value: &Value) -> StoreError {
    StoreError::Protocol(format!("unexpected {what} reply: {value:?}"))
}

pub(super) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn uint(value: &Value) -> Option<u64> {
    int(value).and_then(|i| u64::try_from(i).ok())
}

pub(super) fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b).ok())
}

pub(super) fn array<'a>(what: &str, value: &'a Value) -> StoreResult<&'a [Value]> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(protocol(what, other)),
    }
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
pub(super) fn decode_enqueues(value: &Value, requests: usize) -> StoreResult<Vec<EnqueueOutcome>> {
    let items = array("enqueue", value)?;
    if items.len() != 4 * requests {
        return Err(protocol("enqueue", value));
    }
    items.chunks_exact(4).map(|chunk| decode_enqueue_entry(value, chunk)).collect()
}

/// One 1 (completed) or 0 (not held) per request.
pub(super) fn decode_completes(value: &Value, requests: usize) -> StoreResult<Vec<bool>> {
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
pub(super) fn decode_leases(value: &Value, requests: usize) -> StoreResult<Vec<Vec<LeasedTask>>> {
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
pub(super) fn decode_gcra_batch(value: &Value, requests: usize) -> StoreResult<Vec<GcraOutcome>> {
    let items = array("gcra", value)?;
    if items.len() != 2 * requests {
        return Err(protocol("gcra", value));
    }
    decode_gcra_pairs("gcra", value, items)
}

/// `allowed, n` pairs (as every GCRA script answers) → outcomes; `value`
/// is the whole reply, for the error message.
pub(super) fn decode_gcra_pairs(what: &str, value: &Value, pairs: &[Value]) -> StoreResult<Vec<GcraOutcome>> {
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
pub(super) fn decode_processes(value: &Value) -> StoreResult<ProcessView> {
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

/// `{anonymous, registered, privileged, leased, dead, then each queue's
/// oldest enqueue time or -1}` → stats.
pub(super) fn decode_stats(value: &Value) -> StoreResult<QueueStats> {
    let bad = || protocol("stats", value);
    let items = array("stats", value)?;
    let [a, r, p, leased, dead, oldest @ ..] = items else { return Err(bad()) };
    let count = |v: &Value| uint(v).ok_or_else(bad);
    let [oldest_a, oldest_r, oldest_p] = oldest else { return Err(bad()) };
    let enqueued_at = |v: &Value| match int(v) {
        Some(-1) => Ok(None),
        Some(at) => u64::try_from(at).map(Some).map_err(|_| bad()),
        None => Err(bad()),
    };
    Ok(QueueStats {
        queued: [count(a)?, count(r)?, count(p)?],
        leased: count(leased)?,
        dead_letters: count(dead)?,
        oldest_enqueued_at_ms: [enqueued_at(oldest_a)?, enqueued_at(oldest_r)?, enqueued_at(oldest_p)?],
    })
}

/// HGETALL replies of minute hashes, then ZREVRANGE WITHSCORES replies of
/// hour sets → the analytics view.
pub(super) fn decode_analytics(minutes: &[u64], hours: &[u64], replies: &[Value]) -> StoreResult<AnalyticsView> {
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
pub(super) fn decode_config(raw: &str) -> StoreResult<StoredConfig> {
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
    /// Absent from letters written before leases recorded their holder.
    #[serde(default)]
    last_holder: Option<LeaseHolder>,
}

/// One dead-letter list entry (JSON written by lease.lua).
pub(super) fn decode_dead_letter(raw: &str) -> StoreResult<DeadLetter> {
    let d: DeadLetterJson = serde_json::from_str(raw).map_err(|e| StoreError::Protocol(e.to_string()))?;
    Ok(DeadLetter {
        task_id: d.task_id,
        user_type: UserType::from_index(d.user_type).ok_or_else(|| StoreError::Protocol(raw.to_owned()))?,
        enqueued_at_ms: d.enqueued_at_ms,
        delivery_count: d.delivery_count,
        dead_at_ms: d.dead_at_ms,
        last_holder: d.last_holder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// One request's reply `{status, task_id, queue_position, load}`.
    fn decode_enqueue(value: &Value) -> StoreResult<EnqueueOutcome> {
        decode_enqueues(value, 1).map(|mut one| one.remove(0))
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
        let stats = decode_stats(&Value::Array((1..=5).chain([-1, 7, -1]).map(Value::Int).collect())).unwrap();
        assert_eq!((stats.queued, stats.leased, stats.dead_letters, stats.load()), ([1, 2, 3], 4, 5, 10));
        assert_eq!(stats.oldest_enqueued_at_ms, [None, Some(7), None]);
        assert!(decode_stats(&Value::Array((1..=5).map(Value::Int).collect())).is_err(), "oldest times missing");
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
        assert_eq!((d.user_type, d.delivery_count, d.last_holder), (UserType::Anonymous, 3, None));
        let held = r#"{"task_id":"t","user_type":1,"enqueued_at_ms":1,"delivery_count":3,"dead_at_ms":9,
                       "last_holder":{"instance_id":"i\"1","process_id":"p|1"}}"#;
        let holder = LeaseHolder { instance_id: "i\"1".into(), process_id: "p|1".into() };
        assert_eq!(decode_dead_letter(held).unwrap().last_holder, Some(holder));
        let unknown =
            r#"{"task_id":"t","user_type":1,"enqueued_at_ms":1,"delivery_count":3,"dead_at_ms":9,"last_holder":null}"#;
        assert_eq!(decode_dead_letter(unknown).unwrap().last_holder, None);
    }
}
