//! Runtime settings: the values that may change while floodgate runs
//! (capacity, thresholds, rate limits, queue rules, breakers), their
//! profiles, the merge of partial overrides and the rules they must satisfy.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::core::UserType;
use crate::core::breaker::{BreakersConfig, Circuit};
use crate::core::capacity::{CapacityConfig, Thresholds};
use crate::core::gcra::RateLimit;
use crate::core::health::HealthTiming;

/// A named set of runtime defaults (docs/architecture.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Production's capacity rules, rate limits ten times higher, auth may be off.
    #[default]
    Development,
    /// The seed's documented numbers; refuses to start without caller tokens.
    Production,
    /// High capacity and rate limits for load tests.
    Loadtest,
}

impl Profile {
    /// The profile's name as written in flags and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Production => "production",
            Profile::Loadtest => "loadtest",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(Profile::Development),
            "production" | "prod" => Ok(Profile::Production),
            "loadtest" => Ok(Profile::Loadtest),
            other => Err(format!("unknown profile {other:?} (development, production, loadtest)")),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rate limits per user type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Level-1 rate limit for anonymous users.
    pub anonymous: RateLimit,
    /// Level-1 rate limit for registered users.
    pub registered: RateLimit,
    /// Level-1 rate limit for privileged users.
    pub privileged: RateLimit,
}

impl RateLimits {
    /// The limit for one user type.
    pub fn for_user(&self, user_type: UserType) -> RateLimit {
        match user_type {
            UserType::Anonymous => self.anonymous,
            UserType::Registered => self.registered,
            UserType::Privileged => self.privileged,
        }
    }
}

/// Settings that may change while floodgate runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Capacity step 1: concurrent chat tasks one process serves.
    pub concurrent_per_process: u32,
    /// Chat REST processes expected per instance.
    pub processes_per_instance: u32,
    /// Capacity step 4: the fraction of concurrency held back (0–1).
    pub capacity_buffer: f64,
    /// Capacity step 5: queue slots per effective slot.
    pub queue_multiplier: u32,
    /// Fraction of the system total at which anonymous users are refused.
    pub anonymous_threshold: f64,
    /// Fraction of the system total at which registered users are refused.
    pub registered_threshold: f64,
    /// Fraction of the system total that privileged users are held to.
    pub hard_limit_threshold: f64,
    /// How often workers are asked to heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a process is STALE.
    pub stale_after_ms: u64,
    /// Silence after which a process record is dropped.
    pub expire_after_ms: u64,
    /// Level-1 rate limits per user type.
    pub rate_limits: RateLimits,
    /// Routes starting with this prefix are admin routes (privileged bypass).
    pub admin_route_prefix: String,
    /// Deliveries after which an unfinished task is dead-lettered.
    pub max_deliveries: u32,
    /// Lease length when a worker asks for none.
    pub default_lease_ms: u64,
    /// Longest lease a worker may ask for.
    pub max_lease_ms: u64,
    /// Most tasks one `LeaseTasks` call hands out.
    pub max_tasks_per_lease: u32,
    /// Longest long-poll a `LeaseTasks` call may ask for.
    pub max_wait_ms: u64,
    /// Largest task payload accepted by `EnqueueAtomic`, in bytes.
    pub max_payload_bytes: u32,
    /// How long an idempotency key remembers its first answer.
    pub idempotency_ttl_ms: u64,
    /// `retry_after_ms` suggested with backpressure refusals.
    pub backpressure_retry_after_ms: u64,
    /// Throttling analytics on or off (decisions are always in /metrics).
    pub analytics_enabled: bool,
    /// Circuit breakers (docs/architecture.md §6).
    pub breakers: BreakersConfig,
}

/// One rejected field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The setting's name as the caller wrote it (`rate_limits.anonymous.burst`).
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Hard ceilings that keep a typo from exhausting memory.
pub const MAX_PAYLOAD_CEILING: u32 = 4 * 1024 * 1024;
const MAX_COUNT: u32 = 100_000;

impl RuntimeConfig {
    /// The defaults of a profile. Production holds the seed's numbers exactly.
    pub fn for_profile(profile: Profile) -> RuntimeConfig {
        let seed_capacity = RuntimeConfig {
            concurrent_per_process: 5,
            processes_per_instance: 1,
            capacity_buffer: 0.2,
            queue_multiplier: 2,
            anonymous_threshold: 0.60,
            registered_threshold: 0.80,
            hard_limit_threshold: 0.95,
            heartbeat_interval_ms: 5_000,
            stale_after_ms: 15_000,
            expire_after_ms: 300_000,
            rate_limits: RateLimits {
                anonymous: RateLimit { per_minute: 10, burst: 5 },
                registered: RateLimit { per_minute: 60, burst: 20 },
                privileged: RateLimit { per_minute: 300, burst: 60 },
            },
            admin_route_prefix: "/admin".to_owned(),
            max_deliveries: 3,
            default_lease_ms: 30_000,
            max_lease_ms: 600_000,
            max_tasks_per_lease: 100,
            max_wait_ms: 20_000,
            max_payload_bytes: 64 * 1024,
            idempotency_ttl_ms: 3_600_000,
            backpressure_retry_after_ms: 1_000,
            analytics_enabled: true,
            // Production opens fast (5 failures in 10 s) and recovers slowly.
            breakers: BreakersConfig::with(5, 30_000),
        };
        let scaled = |f: u32| RateLimits {
            anonymous: RateLimit { per_minute: 10 * f, burst: 5 * f },
            registered: RateLimit { per_minute: 60 * f, burst: 20 * f },
            privileged: RateLimit { per_minute: 300 * f, burst: 60 * f },
        };
        match profile {
            Profile::Production => seed_capacity,
            // Same capacity rules so local runs behave like production.
            Profile::Development => {
                RuntimeConfig { rate_limits: scaled(10), breakers: BreakersConfig::with(10, 5_000), ..seed_capacity }
            }
            Profile::Loadtest => RuntimeConfig {
                concurrent_per_process: 1_000,
                rate_limits: scaled(100_000),
                max_payload_bytes: 1024 * 1024,
                breakers: BreakersConfig::with(10_000, 5_000),
                ..seed_capacity
            },
        }
    }

    /// Inputs of the capacity calculation.
    pub fn capacity(&self) -> CapacityConfig {
        CapacityConfig {
            concurrent_per_process: self.concurrent_per_process,
            processes_per_instance: self.processes_per_instance,
            capacity_buffer: self.capacity_buffer,
            queue_multiplier: self.queue_multiplier,
        }
    }

    /// The per-user-type thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            anonymous: self.anonymous_threshold,
            registered: self.registered_threshold,
            hard_limit: self.hard_limit_threshold,
        }
    }

    /// Stale / expiry timing for heartbeats.
    pub fn health_timing(&self) -> HealthTiming {
        HealthTiming { stale_after_ms: self.stale_after_ms, expire_after_ms: self.expire_after_ms }
    }

    /// This config with the fields of `overrides` (a TOML table) applied.
    /// Unknown fields and wrong types are rejected, naming the field.
    /// The field comes from serde's path (`rate_limits.anonymous.burst`),
    /// never from the error text, which may quote the value instead.
    pub fn merged(&self, overrides: toml::Table) -> Result<RuntimeConfig, FieldError> {
        let mut base = toml::Table::try_from(self).map_err(|e| field_error("runtime", e))?;
        merge_tables(&mut base, overrides);
        serde_path_to_error::deserialize(toml::Value::Table(base)).map_err(|e| {
            let path = e.path().to_string();
            let field = if path.is_empty() || path == "." { "runtime".to_owned() } else { path };
            FieldError { field, message: e.into_inner().to_string().trim().to_owned() }
        })
    }

    /// Every rule the runtime settings must satisfy; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: String| {
            if !ok {
                errors.push(FieldError { field: field.to_owned(), message });
            }
        };
        let count = |v: u32| (1..=MAX_COUNT).contains(&v);
        check(count(self.concurrent_per_process), "concurrent_per_process", format!("must be 1..={MAX_COUNT}"));
        check(count(self.processes_per_instance), "processes_per_instance", format!("must be 1..={MAX_COUNT}"));
        check((0.0..1.0).contains(&self.capacity_buffer), "capacity_buffer", "must be at least 0 and below 1".into());
        check(self.queue_multiplier <= 1_000, "queue_multiplier", "must be 0..=1000".into());
        check(
            self.anonymous_threshold > 0.0 && self.anonymous_threshold <= self.registered_threshold,
            "anonymous_threshold",
            "must be above 0 and at most registered_threshold".into(),
        );
        check(
            self.registered_threshold <= self.hard_limit_threshold,
            "registered_threshold",
            "must be at most hard_limit_threshold".into(),
        );
        check(
            self.hard_limit_threshold > 0.0 && self.hard_limit_threshold <= 1.0,
            "hard_limit_threshold",
            "must be above 0 and at most 1".into(),
        );
        check(self.heartbeat_interval_ms >= 10, "heartbeat_interval_ms", "must be at least 10".into());
        check(
            self.stale_after_ms >= self.heartbeat_interval_ms,
            "stale_after_ms",
            "must be at least heartbeat_interval_ms".into(),
        );
        check(self.expire_after_ms >= self.stale_after_ms, "expire_after_ms", "must be at least stale_after_ms".into());
        for user_type in UserType::ALL {
            let limit = self.rate_limits.for_user(user_type);
            let name = user_type.as_str();
            check(
                (1..=60_000_000).contains(&limit.per_minute),
                &format!("rate_limits.{name}.per_minute"),
                "must be 1..=60000000".into(),
            );
            check(
                (1..=10_000_000).contains(&limit.burst),
                &format!("rate_limits.{name}.burst"),
                "must be 1..=10000000".into(),
            );
        }
        check(self.max_deliveries >= 1 && self.max_deliveries <= 1_000, "max_deliveries", "must be 1..=1000".into());
        check(self.max_lease_ms >= 1, "max_lease_ms", "must be at least 1".into());
        check(
            (1..=self.max_lease_ms).contains(&self.default_lease_ms),
            "default_lease_ms",
            "must be 1..=max_lease_ms".into(),
        );
        check(count(self.max_tasks_per_lease), "max_tasks_per_lease", format!("must be 1..={MAX_COUNT}"));
        check(self.max_wait_ms <= 300_000, "max_wait_ms", "must be at most 300000".into());
        check(
            (1..=MAX_PAYLOAD_CEILING).contains(&self.max_payload_bytes),
            "max_payload_bytes",
            format!("must be 1..={MAX_PAYLOAD_CEILING}"),
        );
        check(self.idempotency_ttl_ms >= 1_000, "idempotency_ttl_ms", "must be at least 1000".into());
        for circuit in Circuit::ALL {
            let b = self.breakers.of(circuit);
            let field = |f: &str| format!("breakers.{}.{f}", circuit.name());
            check(b.failure_threshold >= 1, &field("failure_threshold"), "must be at least 1".into());
            check(b.window_ms >= 100, &field("window_ms"), "must be at least 100".into());
            check(b.recovery_timeout_ms >= 100, &field("recovery_timeout_ms"), "must be at least 100".into());
            check(b.half_open_max_calls >= 1, &field("half_open_max_calls"), "must be at least 1".into());
            check(
                (1..=b.half_open_max_calls).contains(&b.success_threshold),
                &field("success_threshold"),
                "must be 1..=half_open_max_calls".into(),
            );
            check(
                b.recovery_pressure.is_none_or(|p| (0.0..=1.0).contains(&p)),
                &field("recovery_pressure"),
                "must be within 0..=1".into(),
            );
        }
        errors
    }

    /// [`RuntimeConfig::validate`] plus what a live change cannot do: the
    /// gRPC listeners' message limit is fixed when they start (from the
    /// `max_payload_bytes` in force then), so raising `max_payload_bytes`
    /// above that start value is refused rather than answered `applied`
    /// while payloads over the old limit still fail to decode.
    pub fn validate_live(&self, payload_limit_at_start: u32) -> Vec<FieldError> {
        let mut errors = self.validate();
        if self.max_payload_bytes > payload_limit_at_start {
            errors.push(FieldError {
                field: "max_payload_bytes".into(),
                message: format!(
                    "cannot be raised above {payload_limit_at_start} while running: the gRPC message limit is fixed at start; set it in the config file and restart"
                ),
            });
        }
        errors
    }
}

fn field_error(field: &str, e: impl fmt::Display) -> FieldError {
    FieldError { field: field.to_owned(), message: e.to_string() }
}

/// Deep-merges `overrides` into `base` (tables merge, values replace).
fn merge_tables(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_valid() {
        for profile in [Profile::Development, Profile::Production, Profile::Loadtest] {
            assert_eq!(RuntimeConfig::for_profile(profile).validate(), vec![], "{profile}");
        }
    }

    #[test]
    fn production_holds_the_seed_numbers() {
        let p = RuntimeConfig::for_profile(Profile::Production);
        assert_eq!((p.concurrent_per_process, p.processes_per_instance, p.queue_multiplier), (5, 1, 2));
        assert_eq!(
            (p.capacity_buffer, p.anonymous_threshold, p.registered_threshold, p.hard_limit_threshold),
            (0.2, 0.6, 0.8, 0.95)
        );
        assert_eq!((p.heartbeat_interval_ms, p.stale_after_ms), (5_000, 15_000));
        assert_eq!(p.rate_limits.anonymous, RateLimit { per_minute: 10, burst: 5 });
    }

    #[test]
    fn development_has_ten_times_the_rate_limits_and_the_same_capacity() {
        let d = RuntimeConfig::for_profile(Profile::Development);
        let p = RuntimeConfig::for_profile(Profile::Production);
        assert_eq!(d.rate_limits.registered, RateLimit { per_minute: 600, burst: 200 });
        assert_eq!(d.capacity(), p.capacity());
    }

    #[test]
    fn merge_rejects_unknown_fields_naming_them() {
        let overrides: toml::Table = toml::from_str("concurrent_per_proces = 3").unwrap();
        let err = RuntimeConfig::for_profile(Profile::Production).merged(overrides).unwrap_err();
        assert_eq!(err.field, "concurrent_per_proces");
    }

    #[test]
    fn merge_applies_nested_overrides() {
        let overrides: toml::Table = toml::from_str("[rate_limits.anonymous]\nburst = 2").unwrap();
        let merged = RuntimeConfig::for_profile(Profile::Production).merged(overrides).unwrap();
        assert_eq!(merged.rate_limits.anonymous, RateLimit { per_minute: 10, burst: 2 });
    }

    #[test]
    fn threshold_order_is_enforced() {
        let mut c = RuntimeConfig::for_profile(Profile::Production);
        c.anonymous_threshold = 0.9;
        let fields: Vec<_> = c.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["anonymous_threshold"]);
        c.anonymous_threshold = 0.5;
        c.capacity_buffer = 1.0;
        let fields: Vec<_> = c.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["capacity_buffer"]);
    }

    #[test]
    fn merge_names_the_field_of_a_wrongly_typed_value_never_the_value() {
        // Regression: the field was cut out of serde's message, which quotes
        // the value: `-1` came back as the field.
        for (text, field) in [
            ("concurrent_per_process = -1", "concurrent_per_process"),
            ("concurrent_per_process = \"five\"", "concurrent_per_process"),
            ("[rate_limits.anonymous]\nburst = -3", "rate_limits.anonymous.burst"),
            ("rate_limits = 5", "rate_limits"),
            ("[breakers.storage]\nwindow_ms = 1.5", "breakers.storage.window_ms"),
        ] {
            let overrides: toml::Table = toml::from_str(text).unwrap();
            let err = RuntimeConfig::for_profile(Profile::Production).merged(overrides).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn a_live_change_may_lower_but_not_raise_max_payload_bytes() {
        let mut c = RuntimeConfig::for_profile(Profile::Production);
        let at_start = c.max_payload_bytes;
        c.max_payload_bytes = at_start / 2;
        assert_eq!(c.validate_live(at_start), vec![]);
        c.max_payload_bytes = at_start + 1;
        assert_eq!(c.validate(), vec![], "valid as a start value");
        let fields: Vec<_> = c.validate_live(at_start).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["max_payload_bytes"]);
    }
}
