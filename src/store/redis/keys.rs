//! Key names of one deployment, in key layout `v2`. The admission state
//! (load, queues, leases, idempotency, processes, config, analytics) carries
//! the deployment's prefix, which holds the hash tag, so that Redis Cluster
//! keeps it in one slot where one script can change it atomically. Rate-limit
//! keys (Level-1 GCRA per user type and subject, Envoy descriptor counters)
//! are independent of each other: each gets a hash tag of its own, so that
//! they spread over every primary of a Cluster.

use crate::core::UserType;

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// The deployment's prefix with its hash tag and the layout version,
    /// e.g. `{floodgate}:v2`: every admission key starts with it.
    pub(super) prefix: String,
    /// The same without the prefix's braces, e.g. `floodgate:v2`: rate-limit
    /// keys start with it and carry their own hash tag after it.
    pub(super) spread: String,
    /// Ready queues indexed by `UserType::index`.
    pub(super) queues: [String; 3],
    pub(super) expiry: String,
    pub(super) meta: String,
    pub(super) payload: String,
    pub(super) leases: String,
    pub(super) dead: String,
    pub(super) sequence: String,
    pub(super) processes: String,
    pub(super) breaker_resets: String,
    pub(super) breakers: String,
    pub(super) config_version: String,
    pub(super) config: String,
    pub(super) config_previous: String,
}

impl Keys {
    pub(super) fn new(deployment: &str) -> Keys {
        let prefix = format!("{deployment}:{LAYOUT}");
        let k = |name: &str| format!("{prefix}:{name}");
        Keys {
            spread: prefix.replace(['{', '}'], ""),
            prefix: prefix.clone(),
            queues: UserType::ALL.map(|u| k(&format!("queue:{}", u.as_str()))),
            expiry: k("lease_expiry"),
            meta: k("task_meta"),
            payload: k("task_payload"),
            leases: k("leases"),
            dead: k("dead_letters"),
            sequence: k("sequence"),
            processes: k("processes"),
            breaker_resets: k("breaker_resets"),
            breakers: k("breakers"),
            config_version: k("config_version"),
            config: k("config"),
            config_previous: k("config_previous"),
        }
    }

    pub(super) fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.prefix)
    }

    pub(super) fn minute_stats(&self, minute: u64) -> String {
        format!("{}:stats:{minute}", self.prefix)
    }

    pub(super) fn hour_top(&self, hour: u64) -> String {
        format!("{}:top:{hour}", self.prefix)
    }

    /// Level 1's GCRA key of a user type and subject, in the subject's own slot.
    pub(super) fn rate(&self, user_type: UserType, subject: &str) -> String {
        format!("{}:rate:{}:{{{subject}}}", self.spread, user_type.as_str())
    }

    /// An Envoy descriptor counter's GCRA key (`core::rls::counter_key`,
    /// which starts with the domain), in the counter's own slot.
    pub(super) fn descriptor(&self, counter: &str) -> String {
        format!("{}:rls:{{{counter}}}", self.spread)
    }
}

/// The key layout's version, part of every key name: a deployment upgraded
/// from a layout without it (every key in the `{floodgate}` slot) starts
/// clean instead of reading keys it would now look for elsewhere.
pub(crate) const LAYOUT: &str = "v2";

/// The Cluster slot of a key (its hash tag's CRC16), to group the calls
/// of one batch by slot.
pub(super) fn slot(key: &str) -> redis::cluster_routing::Slot {
    redis::cluster_routing::Slot::for_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_keys_share_the_hash_tag_and_the_layout_version() {
        let k = Keys::new("{floodgate}");
        for key in [&k.queues[0], &k.expiry, &k.meta, &k.payload, &k.leases, &k.dead, &k.sequence, &k.processes] {
            assert!(key.starts_with("{floodgate}:v2:"), "{key}");
            assert_eq!(slot(key), slot("{floodgate}"), "{key}");
        }
        assert!(k.idempotency("x").starts_with("{floodgate}:v2:"));
        assert_eq!(slot(&k.minute_stats(7)), slot(&k.config));
    }

    #[test]
    fn rate_keys_hash_by_their_own_subject_or_counter() {
        let k = Keys::new("{floodgate}");
        assert_eq!(k.rate(UserType::Anonymous, "ip-1"), "floodgate:v2:rate:anonymous:{ip-1}");
        assert_eq!(k.descriptor("4:chat1:k1:v"), "floodgate:v2:rls:{4:chat1:k1:v}");
        assert_eq!(slot(&k.rate(UserType::Anonymous, "ip-1")), slot("ip-1"));
        // The same subject's keys of two user types share its slot.
        assert_eq!(slot(&k.rate(UserType::Anonymous, "u")), slot(&k.rate(UserType::Registered, "u")));
        // Subjects spread: 1,000 of them touch hundreds of slots.
        let slots: std::collections::HashSet<_> =
            (0..1_000).map(|i| slot(&k.rate(UserType::Registered, &format!("user-{i}")))).collect();
        assert!(slots.len() > 900, "{} slots", slots.len());
    }
}
