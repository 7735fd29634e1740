//! Whether a Cluster keeps serving the slots it covers while one of its
//! primaries is down. Redis's default (`cluster-require-full-coverage yes`)
//! stops the *whole* Cluster from the moment a primary is marked failed
//! until its replica is promoted: every node answers CLUSTERDOWN for every
//! key, so every Level-1 call fails open, whichever shard its key lives on.
//! floodgate cannot route around that, so it asks the primaries once at
//! start and warns when they would do it (`no` is what issue 15's blast
//! radius needs; docs/scaling.md says so).

use std::time::Duration;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

use super::decode::text;
use super::shards::ask_bounded;

/// The Redis setting that decides the blast radius of one dead primary.
pub(super) const SETTING: &str = "cluster-require-full-coverage";

/// The primaries (addresses) that answered `yes` to `CONFIG GET
/// cluster-require-full-coverage` routed to every primary: the crate
/// answers a map of address → reply, each reply the setting's name and
/// value (an array in RESP2, a map in RESP3). `None` when the reply has
/// another shape.
pub(super) fn requiring_full_coverage(reply: &Value) -> Option<Vec<String>> {
    let Value::Map(nodes) = reply else { return None };
    let mut requiring = Vec::new();
    for (address, answer) in nodes {
        let address = text(address)?;
        let value = match answer {
            Value::Array(pair) | Value::Set(pair) => pair.get(1).and_then(text),
            Value::Map(pairs) => pairs.first().and_then(|(_, v)| text(v)),
            _ => None,
        }?;
        if value.eq_ignore_ascii_case("yes") {
            requiring.push(address);
        }
    }
    requiring.sort();
    Some(requiring)
}

/// Asks every primary for the setting (once, bounded by `timeout`) and
/// logs a warning naming the primaries that would stop the whole Cluster
/// while one of them fails over. A Cluster that refuses CONFIG (managed
/// services often rename it) or is down at start is only logged at info.
pub(super) async fn warn_if_full_coverage_required(connection: ClusterConnection, timeout: Duration) {
    let ask = redis::cmd("CONFIG").arg("GET").arg(SETTING).clone();
    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let reply = match ask_bounded(connection, ask, routing, timeout).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::info!(error = %e, "Redis Cluster: cannot read {SETTING}; set it to no (see docs/scaling.md)");
            return;
        }
    };
    match requiring_full_coverage(&reply) {
        Some(primaries) if !primaries.is_empty() => tracing::warn!(
            ?primaries,
            "Redis Cluster: {SETTING} is yes, so while one primary fails over every node refuses every key \
             (CLUSTERDOWN) and all Level-1 calls fail open, not only the dead shard's; set it to no on every node"
        ),
        Some(_) => tracing::debug!("Redis Cluster: {SETTING} is no on every primary"),
        None => tracing::info!(?reply, "Redis Cluster: unexpected answer to CONFIG GET {SETTING}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(address: &str, value: &str) -> (Value, Value) {
        (bulk(address), Value::Array(vec![bulk(SETTING), bulk(value)]))
    }

    #[test]
    fn the_primaries_answering_yes_are_named() {
        let reply =
            Value::Map(vec![node("10.0.0.2:6379", "yes"), node("10.0.0.1:6379", "no"), node("10.0.0.3:6379", "YES")]);
        assert_eq!(requiring_full_coverage(&reply), Some(vec!["10.0.0.2:6379".into(), "10.0.0.3:6379".into()]));
    }

    #[test]
    fn a_cluster_set_to_no_everywhere_needs_no_warning() {
        let reply = Value::Map(vec![node("a:1", "no"), node("b:2", "no")]);
        assert_eq!(requiring_full_coverage(&reply), Some(vec![]));
        let resp3 = Value::Map(vec![(bulk("a:1"), Value::Map(vec![(bulk(SETTING), bulk("no"))]))]);
        assert_eq!(requiring_full_coverage(&resp3), Some(vec![]));
    }

    #[test]
    fn an_answer_of_another_shape_is_not_read_as_no() {
        assert_eq!(requiring_full_coverage(&Value::Array(vec![bulk(SETTING), bulk("yes")])), None);
        assert_eq!(requiring_full_coverage(&Value::Map(vec![(bulk("a:1"), Value::Array(vec![]))])), None);
    }
}
