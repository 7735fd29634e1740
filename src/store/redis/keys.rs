//! Key names of one deployment: every key carries the deployment's prefix,
//! which holds the hash tag, so that Redis Cluster sees one slot.

use crate::core::UserType;

/// The key names of one deployment.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
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
    pub(super) fn new(prefix: &str) -> Keys {
        let k = |name: &str| format!("{prefix}:{name}");
        Keys {
            prefix: prefix.to_owned(),
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

    pub(super) fn rate(&self, user_type: UserType, subject: &str) -> String {
        format!("{}:rate:{}:{subject}", self.prefix, user_type.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_hash_tag() {
        let k = Keys::new("{floodgate}");
        for key in [&k.queues[0], &k.expiry, &k.meta, &k.payload, &k.leases, &k.dead, &k.sequence, &k.processes] {
            assert!(key.starts_with("{floodgate}:"), "{key}");
        }
        assert!(k.idempotency("x").starts_with("{floodgate}:"));
        assert!(k.rate(UserType::Anonymous, "s").starts_with("{floodgate}:"));
    }
}
