//! Envoy rate-limit requests on Redis: every GCRA check of one request in
//! one script call (`lua/rls.lua`, one EVALSHA), all or nothing. Kept apart
//! from `redis.rs` so that the RLS path reads on its own.

use std::sync::Arc;

use redis::cluster_routing::Slot;
use redis::{Script, Value};

use super::RedisStore;
use super::batcher::{Calls, by_slot, serve_batches};
use super::decode::{array, decode_gcra_pairs, protocol, uint};
use super::keys::slot;
use super::link::Link;

use crate::core::gcra::GcraOutcome;
use crate::core::rls::Check;
use crate::store::{RateBatch, RateKey, StoreResult};

/// Most requests in one script call.
const RLS_BATCH: usize = 64;

/// One request's checks waiting for the batcher (or a part of them, on
/// one slot of a Cluster).
pub(super) struct RlsCall {
    keys: Vec<String>,
    /// interval µs, tolerance µs, cost, enforce — per check.
    checks: Vec<(u64, u64, u32, bool)>,
    dry_run: bool,
    now: String,
    /// On a Cluster, the slot every key of the call lives in.
    slot: Option<Slot>,
}

/// Adds one request to a script call: its keys and its arguments.
fn add_call(invocation: &mut redis::ScriptInvocation<'_>, call: &RlsCall) {
    invocation.arg(&call.now).arg(if call.dry_run { "1" } else { "0" }).arg(call.checks.len());
    for (key, (interval, tolerance, cost, enforce)) in call.keys.iter().zip(&call.checks) {
        invocation.key(key);
        invocation.arg(interval).arg(tolerance).arg(cost).arg(if *enforce { "1" } else { "0" });
    }
}

/// Requests arriving while a call is in flight share the next script call
/// (one per slot on a Cluster); the script decides each request in turn,
/// all or nothing, as if alone.
pub(super) async fn batch_rls(link: Arc<Link>, script: Script, calls: Calls<RlsCall, RateBatch>) {
    let build = |invocation: &mut redis::ScriptInvocation<'_>, batch: &[RlsCall]| {
        for call in batch {
            add_call(invocation, call);
        }
    };
    let decode = |value: &Value, batch: &[RlsCall]| {
        let sizes: Vec<usize> = batch.iter().map(|c| c.checks.len()).collect();
        decode_rls_many(value, &sizes)
    };
    serve_batches(link, script, calls, RLS_BATCH, |c| c.slot, build, decode).await;
}

impl RedisStore {
    /// `RateLimiter::rate_limit_all` on Redis: one request's checks in one script
    /// call (shared with requests arriving at the same time). On a Cluster,
    /// a request whose keys live in several slots is decided by
    /// [`RedisStore::rls_across_slots`].
    pub(super) async fn rls_rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<RateBatch> {
        self.rate_link.check_up()?;
        let keys: Vec<String> = checks
            .iter()
            .map(|(key, _)| match key {
                RateKey::User(user_type, subject) => self.keys.rate(*user_type, subject),
                RateKey::Descriptor(counter) => self.keys.descriptor(counter),
            })
            .collect();
        let checks =
            checks.iter().map(|(_, c)| (c.spacing.interval_us, c.spacing.tolerance_us, c.cost, c.enforce)).collect();
        let mut call = RlsCall { keys, checks, dry_run, now: self.now_arg(now_us), slot: None };
        if self.rate_link.sharded() {
            let slots: Vec<Slot> = call.keys.iter().map(|k| slot(k)).collect();
            if slots.iter().any(|s| *s != slots[0]) {
                return self.rls_across_slots(call, &slots).await;
            }
            call.slot = slots.first().copied();
        }
        self.rls.submit(call).await
    }

    /// A request whose keys live in several slots of a Cluster, decided by
    /// check-then-commit: every slot's checks run as a dry run (in parallel,
    /// nothing written); a request refused there, or a dry run, is answered
    /// with those outcomes and has consumed nothing. Otherwise each slot's
    /// checks run again for real, each slot all or nothing. What is not
    /// atomic: a request that another takes the last token from between
    /// the two steps is refused, and the slots that still admitted it have
    /// consumed. So a limit is never exceeded; under such a race a refused
    /// request may count against its other descriptors.
    async fn rls_across_slots(&self, call: RlsCall, slots: &[Slot]) -> StoreResult<RateBatch> {
        let parts = by_slot((0..call.keys.len()).collect(), |i: &usize| slots[*i]);
        let run = |dry_run: bool| {
            futures_util::future::try_join_all(parts.iter().map(|part| {
                let part_call = RlsCall {
                    keys: part.iter().map(|i| call.keys[*i].clone()).collect(),
                    checks: part.iter().map(|i| call.checks[*i]).collect(),
                    dry_run,
                    now: call.now.clone(),
                    slot: None,
                };
                let slot = slots[part[0]];
                async move {
                    let mut invocation = self.scripts.rls.prepare_invoke();
                    add_call(&mut invocation, &part_call);
                    let value = self.rate_link.run_in(Some(slot), invocation).await?;
                    decode_rls_many(&value, &[part_call.checks.len()]).map(|mut one| one.remove(0))
                }
            }))
        };
        // The parts' answers back in the request's order of checks.
        let merge = |answers: Vec<RateBatch>| {
            let mut outcomes = vec![GcraOutcome::Allowed { tat: 0 }; call.keys.len()];
            for (part, answer) in parts.iter().zip(&answers) {
                for (i, outcome) in part.iter().zip(&answer.outcomes) {
                    outcomes[*i] = *outcome;
                }
            }
            RateBatch { outcomes, now_us: answers.first().map_or(0, |a| a.now_us) }
        };
        let checked = merge(run(true).await?);
        let refused = checked
            .outcomes
            .iter()
            .zip(&call.checks)
            .any(|(outcome, check)| check.3 && matches!(outcome, GcraOutcome::Limited { .. }));
        if call.dry_run || refused {
            return Ok(checked);
        }
        Ok(merge(run(false).await?))
    }
}

/// The replies of several requests in one script call, split by their
/// check counts.
pub(crate) fn decode_rls_many(value: &Value, sizes: &[usize]) -> StoreResult<Vec<RateBatch>> {
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
