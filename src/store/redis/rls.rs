//! Envoy rate-limit requests on Redis: every GCRA check of one request in
//! one script call (`lua/rls.lua`, one EVALSHA), all or nothing. Kept apart
//! from `redis.rs` so that the RLS path reads on its own.

use std::sync::Arc;

use redis::Value;

use super::batcher::{Calls, serve_batches};
use super::decode::{array, decode_gcra_pairs, protocol, uint};
use super::link::Link;
use super::{RedisStore, script};

use crate::core::rls::Check;
use crate::store::{RateBatch, RateKey, StoreResult};

/// Most requests in one script call.
const RLS_BATCH: usize = 64;

/// One request's checks waiting for the batcher.
pub(super) struct RlsCall {
    keys: Vec<String>,
    /// interval µs, tolerance µs, cost, enforce — per check.
    checks: Vec<(u64, u64, u32, bool)>,
    dry_run: bool,
    now: String,
}

/// Requests arriving while a call is in flight share the next script call;
/// the script decides each request in turn, all or nothing, as if alone.
pub(super) async fn batch_rls(link: Arc<Link>, calls: Calls<RlsCall, RateBatch>) {
    let build = |invocation: &mut redis::ScriptInvocation<'_>, batch: &[RlsCall]| {
        for call in batch {
            invocation.arg(&call.now).arg(if call.dry_run { "1" } else { "0" }).arg(call.checks.len());
            for (key, (interval, tolerance, cost, enforce)) in call.keys.iter().zip(&call.checks) {
                invocation.key(key);
                invocation.arg(interval).arg(tolerance).arg(cost).arg(if *enforce { "1" } else { "0" });
            }
        }
    };
    let decode = |value: &Value, batch: &[RlsCall]| {
        let sizes: Vec<usize> = batch.iter().map(|c| c.checks.len()).collect();
        decode_rls_many(value, &sizes)
    };
    serve_batches(link, script(include_str!("../lua/rls.lua")), calls, RLS_BATCH, build, decode).await;
}

impl RedisStore {
    /// `Store::rate_limit_all` on Redis: one request's checks in one script
    /// call (shared with requests arriving at the same time).
    pub(super) async fn rls_rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<RateBatch> {
        self.link.check_up()?;
        let keys = checks
            .iter()
            .map(|(key, _)| match key {
                RateKey::User(user_type, subject) => self.keys.rate(*user_type, subject),
                RateKey::Descriptor(counter) => format!("{}:rls:{counter}", self.keys.prefix),
            })
            .collect();
        let checks =
            checks.iter().map(|(_, c)| (c.spacing.interval_us, c.spacing.tolerance_us, c.cost, c.enforce)).collect();
        self.rls.submit(RlsCall { keys, checks, dry_run, now: self.now_arg(now_us) }).await
    }
}

/// The replies of several requests in one script call, split by their
/// check counts.
pub fn decode_rls_many(value: &Value, sizes: &[usize]) -> StoreResult<Vec<RateBatch>> {
    let items = array("rls", value)?;
    if items.len() != sizes.iter().map(|n| 1 + 2 * n).sum::<usize>() {
        return Err(protocol("rls", value));
    }
    let mut at = 0;
    sizes
        .iter()
        .map(|n| {
            let part = &items[at..at + 1 + 2 * n];
            at += 1 + 2 * n;
            decode_rls_items(value, part, *n)
        })
        .collect()
}

/// `{now, allowed_1, n_1, …}`: one request's part of a reply → its
/// outcomes, `{1, tat}` or `{0, retry_after_us}` per check; `value` is the
/// whole reply, for the error message.
fn decode_rls_items(value: &Value, items: &[Value], checks: usize) -> StoreResult<RateBatch> {
    let bad = || protocol("rls", value);
    let (now, pairs) = items.split_first().ok_or_else(bad)?;
    if pairs.len() != 2 * checks {
        return Err(bad());
    }
    let outcomes = decode_gcra_pairs("rls", value, pairs)?;
    Ok(RateBatch { outcomes, now_us: uint(now).ok_or_else(bad)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gcra::GcraOutcome;

    #[test]
    fn rls_replies_decode_with_the_store_clock() {
        let reply = Value::Array(vec![Value::Int(77), Value::Int(1), Value::Int(90), Value::Int(0), Value::Int(5)]);
        let decode_rls = |value: &Value, n: usize| decode_rls_many(value, &[n]).map(|mut one| one.remove(0));
        let batch = decode_rls(&reply, 2).unwrap();
        assert_eq!(batch.now_us, 77);
        assert_eq!(batch.outcomes, [GcraOutcome::Allowed { tat: 90 }, GcraOutcome::Limited { retry_after_us: 5 }]);
        assert!(decode_rls(&reply, 1).is_err(), "one outcome per check");
        assert!(decode_rls(&Value::Array(vec![]), 0).is_err(), "the clock reading is required");
        let bad = Value::Array(vec![Value::Int(1), Value::Int(7), Value::Int(1)]);
        assert!(decode_rls(&bad, 1).is_err());
    }

    #[test]
    fn several_requests_split_by_their_check_counts() {
        let reply = Value::Array(vec![
            Value::Int(10),
            Value::Int(1),
            Value::Int(11),
            Value::Int(20),
            Value::Int(0),
            Value::Int(3),
            Value::Int(1),
            Value::Int(21),
        ]);
        let answers = decode_rls_many(&reply, &[1, 2]).unwrap();
        assert_eq!((answers[0].now_us, answers[1].now_us), (10, 20));
        assert_eq!(answers[1].outcomes, [GcraOutcome::Limited { retry_after_us: 3 }, GcraOutcome::Allowed { tat: 21 }]);
        assert!(decode_rls_many(&reply, &[1, 1]).is_err());
    }
}
