//! Envoy rate-limit requests on Redis: every GCRA check of one request in
//! one script call (`lua/rls.lua`, one EVALSHA), all or nothing. Kept apart
//! from `redis.rs` so that the RLS path reads on its own.

use std::sync::LazyLock;

use redis::{Script, Value};

use super::{RedisStore, array, int, protocol, script, uint};
use crate::core::gcra::GcraOutcome;
use crate::core::rls::Check;
use crate::store::{RateBatch, RateKey, StoreResult};

static RLS: LazyLock<Script> = LazyLock::new(|| script(include_str!("../lua/rls.lua")));

impl RedisStore {
    /// `Store::rate_limit_all` on Redis: one request, one script call.
    pub(super) async fn rls_rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<RateBatch> {
        let mut call = RLS.prepare_invoke();
        call.arg(self.now_arg(now_us)).arg(if dry_run { "1" } else { "0" }).arg(checks.len());
        for (key, check) in checks {
            match key {
                RateKey::User(user_type, subject) => call.key(self.keys.rate(*user_type, subject)),
                RateKey::Descriptor(counter) => call.key(format!("{}:rls:{counter}", self.keys.prefix)),
            };
            call.arg(check.spacing.interval_us).arg(check.spacing.tolerance_us).arg(check.cost).arg(if check.enforce {
                "1"
            } else {
                "0"
            });
        }
        decode_rls(&self.run(call).await?, checks.len())
    }
}

/// `{now, allowed_1, n_1, …}` of one request → its outcomes: `{1, tat}` or
/// `{0, retry_after_us}` per check.
pub fn decode_rls(value: &Value, checks: usize) -> StoreResult<RateBatch> {
    let items = array("rls", value)?;
    let bad = || protocol("rls", value);
    let (now, pairs) = items.split_first().ok_or_else(bad)?;
    if pairs.len() != 2 * checks {
        return Err(bad());
    }
    let outcomes = pairs
        .chunks_exact(2)
        .map(|pair| {
            let n = uint(&pair[1]).ok_or_else(bad)?;
            match int(&pair[0]) {
                Some(1) => Ok(GcraOutcome::Allowed { tat: n }),
                Some(0) => Ok(GcraOutcome::Limited { retry_after_us: n }),
                _ => Err(bad()),
            }
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(RateBatch { outcomes, now_us: uint(now).ok_or_else(bad)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rls_replies_decode_with_the_store_clock() {
        let reply = Value::Array(vec![Value::Int(77), Value::Int(1), Value::Int(90), Value::Int(0), Value::Int(5)]);
        let batch = decode_rls(&reply, 2).unwrap();
        assert_eq!(batch.now_us, 77);
        assert_eq!(batch.outcomes, [GcraOutcome::Allowed { tat: 90 }, GcraOutcome::Limited { retry_after_us: 5 }]);
        assert!(decode_rls(&reply, 1).is_err(), "one outcome per check");
        assert!(decode_rls(&Value::Array(vec![]), 0).is_err(), "the clock reading is required");
        let bad = Value::Array(vec![Value::Int(1), Value::Int(7), Value::Int(1)]);
        assert!(decode_rls(&bad, 1).is_err());
    }
}
