//! Configuration: the static settings (addresses, store, tokens) and the
//! runtime settings (capacity, thresholds, rate limits, queue rules) that
//! start from a profile, can be overridden by a TOML file, and are validated
//! field by field.

use std::collections::BTreeMap;
use std::{fmt, net::SocketAddr, path::Path, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::core::UserType;
use crate::core::capacity::{CapacityConfig, Thresholds};
use crate::core::gcra::RateLimit;
use crate::core::health::HealthTiming;
use crate::core::rls::{RlsConfig, Rules};
use crate::protection::{BreakersConfig, Circuit};

/// A named set of runtime defaults (design §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Production,
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
    pub anonymous: RateLimit,
    pub registered: RateLimit,
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
    pub concurrent_per_process: u32,
    pub processes_per_instance: u32,
    pub capacity_buffer: f64,
    pub queue_multiplier: u32,
    pub anonymous_threshold: f64,
    pub registered_threshold: f64,
    pub hard_limit_threshold: f64,
    pub heartbeat_interval_ms: u64,
    pub stale_after_ms: u64,
    pub expire_after_ms: u64,
    pub rate_limits: RateLimits,
    /// Routes starting with this prefix are admin routes (privileged bypass).
    pub admin_route_prefix: String,
    /// Deliveries after which an unfinished task is dead-lettered.
    pub max_deliveries: u32,
    pub default_lease_ms: u64,
    pub max_lease_ms: u64,
    pub max_tasks_per_lease: u32,
    /// Longest long-poll a `LeaseTasks` call may ask for.
    pub max_wait_ms: u64,
    pub max_payload_bytes: u32,
    /// How long an idempotency key remembers its first answer.
    pub idempotency_ttl_ms: u64,
    /// `retry_after_ms` suggested with backpressure refusals.
    pub backpressure_retry_after_ms: u64,
    /// Throttling analytics on or off (decisions are always in /metrics).
    pub analytics_enabled: bool,
    /// Circuit breakers (design §6).
    pub breakers: BreakersConfig,
}

/// One rejected field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
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
    pub fn merged(&self, overrides: toml::Table) -> Result<RuntimeConfig, FieldError> {
        let mut base = toml::Table::try_from(self).map_err(|e| field_error("runtime", e))?;
        merge_tables(&mut base, overrides);
        RuntimeConfig::deserialize(toml::Value::Table(base)).map_err(|e| {
            let message = e.to_string();
            let field = message.split('`').nth(1).unwrap_or("runtime").to_owned();
            FieldError { field, message: message.trim().to_owned() }
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

/// The optional TOML config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub profile: Option<Profile>,
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub store: Option<String>,
    /// Key prefix in Redis; must contain a `{hash tag}`.
    pub redis_prefix: Option<String>,
    pub redis_timeout_ms: Option<u64>,
    /// Replicas that must acknowledge an admission before it is answered.
    pub redis_min_replicas: Option<u32>,
    /// PEM CA for `rediss…` store URLs (else the platform's trust store).
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate chain and key for Redis servers that require mutual TLS.
    pub redis_client_cert: Option<std::path::PathBuf>,
    pub redis_client_key: Option<std::path::PathBuf>,
    /// PEM certificate chain and key: TLS on both listeners.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM CA whose client certificates are required (mutual TLS).
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Runtime overrides applied over the profile's defaults.
    #[serde(default)]
    pub runtime: toml::Table,
    /// Envoy rate-limit service rules per domain (`[[rls.domains]]`).
    #[serde(default)]
    pub rls: RlsConfig,
}

/// Reading or validating configuration failed; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Setting(String),
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })
    }
}

/// Which state store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Redis(String),
}

impl FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use crate::store::redis::RedisUrl;
        if s == "memory" {
            Ok(StoreUrl::Memory)
        } else if RedisUrl::looks_like_redis(s) {
            // Parsed again when the store opens; here only to refuse a bad
            // URL at startup, naming the field (and never its password).
            RedisUrl::parse(s).map_err(|e| format!("store: {:?}: {e}", redact(s)))?;
            Ok(StoreUrl::Redis(s.to_owned()))
        } else {
            Err(format!(
                "store: expected \"memory\" or a Redis URL ({}), got {:?}",
                crate::store::redis::connection::SCHEMES,
                redact(s)
            ))
        }
    }
}

/// Caller tokens per role (design §9).
#[derive(Clone, Default)]
pub struct Tokens {
    pub admin: Vec<String>,
    pub frontend: Vec<String>,
    pub worker: Vec<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are never printed, only counted.
        f.debug_struct("Tokens")
            .field("admin", &self.admin.len())
            .field("frontend", &self.frontend.len())
            .field("worker", &self.worker.len())
            .finish()
    }
}

impl Tokens {
    /// Parses comma-separated token lists, ignoring blanks.
    pub fn parse_list(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }

    /// Whether no token at all is configured (auth off).
    pub fn is_empty(&self) -> bool {
        self.admin.is_empty() && self.frontend.is_empty() && self.worker.is_empty()
    }
}

/// Everything floodgate needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub store: StoreUrl,
    pub profile: Profile,
    pub replica_id: String,
    pub tokens: Tokens,
    pub runtime: RuntimeConfig,
    /// How often the capacity snapshot behind Level 1 is refreshed.
    pub snapshot_refresh_ms: u64,
    /// Longest any RPC may run (long polls are capped below it).
    pub request_timeout_ms: u64,
    /// Concurrent requests per connection before the server queues them.
    pub max_concurrent_requests: usize,
    /// After SIGTERM, how long in-flight calls may take before floodgate exits anyway.
    pub shutdown_grace_ms: u64,
    /// Key prefix of this deployment in Redis; holds the Cluster hash tag.
    pub redis_prefix: String,
    /// Bound on every Redis command.
    pub redis_timeout_ms: u64,
    /// Replicas that must acknowledge (Redis WAIT) every admitted task
    /// before `EnqueueAtomic` answers; 0 answers once the master has it.
    pub redis_min_replicas: u32,
    /// CA and client certificate for `rediss…` store URLs.
    pub redis_tls: crate::store::RedisTlsFiles,
    /// Whose clock Redis scripts use (Redis TIME unless testing).
    pub redis_time: crate::store::TimeSource,
    /// TLS (and mutual TLS with a client CA) for both listeners.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Envoy rate-limit service descriptor rules (static: from the file at start).
    pub rls: std::sync::Arc<Rules>,
    /// envoyproxy/ratelimit YAML rules (reloaded live), global shadow mode, headers.
    pub rls_options: crate::rls_rules::RlsOptions,
    /// Where settings came from when not the default: "flag_or_env",
    /// "file"; runtime keys as `runtime.<field>`.
    pub sources: BTreeMap<String, String>,
}

/// Most replicas `redis_min_replicas` may ask for.
pub const MAX_MIN_REPLICAS: u32 = 8;

impl Settings {
    /// Defaults for a profile, with auth off and the default addresses.
    pub fn for_profile(profile: Profile) -> Settings {
        Settings {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: StoreUrl::Memory,
            profile,
            replica_id: default_replica_id(),
            tokens: Tokens::default(),
            runtime: RuntimeConfig::for_profile(profile),
            snapshot_refresh_ms: 250,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1_024,
            shutdown_grace_ms: 10_000,
            redis_prefix: "{floodgate}".to_owned(),
            redis_timeout_ms: 500,
            redis_min_replicas: 0,
            redis_tls: Default::default(),
            redis_time: crate::store::TimeSource::Server,
            tls: None,
            rls: Default::default(),
            rls_options: Default::default(),
            sources: BTreeMap::new(),
        }
    }

    /// Refuses settings that must not start: invalid runtime values, or
    /// production without caller tokens.
    pub fn check(&self) -> Result<(), ConfigError> {
        let errors = self.runtime.validate();
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        if self.profile == Profile::Production && self.tokens.is_empty() {
            return Err(ConfigError::Setting(
                "the production profile refuses to start without caller tokens: set FLOODGATE_ADMIN_TOKENS, FLOODGATE_FRONTEND_TOKENS and FLOODGATE_WORKER_TOKENS".into(),
            ));
        }
        if !valid_hash_tag(&self.redis_prefix) {
            return Err(ConfigError::Invalid(vec![FieldError {
                field: "redis_prefix".into(),
                message:
                    "must contain a non-empty {hash tag}, e.g. {floodgate}, so Redis Cluster keeps all keys in one slot"
                        .into(),
            }]));
        }
        if self.redis_min_replicas > MAX_MIN_REPLICAS {
            return Err(ConfigError::Invalid(vec![FieldError {
                field: "redis_min_replicas".into(),
                message: format!("must be 0..={MAX_MIN_REPLICAS}"),
            }]));
        }
        if self.redis_min_replicas > 0 && self.store == StoreUrl::Memory {
            return Err(ConfigError::Invalid(vec![FieldError {
                field: "redis_min_replicas".into(),
                message: "needs a Redis store: the embedded store has no replicas".into(),
            }]));
        }
        if self.redis_tls.is_set() {
            let tls_url = match &self.store {
                StoreUrl::Redis(url) => crate::store::redis::RedisUrl::parse(url).is_ok_and(|u| u.tls()),
                StoreUrl::Memory => false,
            };
            if !tls_url {
                return Err(ConfigError::Setting(
                    "redis_ca_file / redis_client_cert / redis_client_key: only used with a TLS store URL (rediss://, rediss-cluster://, rediss+sentinel://)".into(),
                ));
            }
        }
        if self.redis_tls.client_cert.is_some() != self.redis_tls.client_key.is_some() {
            return Err(ConfigError::Setting("redis_client_cert and redis_client_key: set both or neither".into()));
        }
        for (field, path) in [
            ("redis_ca_file", &self.redis_tls.ca),
            ("redis_client_cert", &self.redis_tls.client_cert),
            ("redis_client_key", &self.redis_tls.client_key),
        ] {
            if let Some(path) = path
                && let Err(e) = std::fs::File::open(path)
            {
                return Err(ConfigError::Setting(format!("{field}: cannot read {}: {e}", path.display())));
            }
        }
        if self.runtime.max_wait_ms >= self.request_timeout_ms {
            return Err(ConfigError::Invalid(vec![FieldError {
                field: "max_wait_ms".into(),
                message: format!("must be below the request timeout ({} ms)", self.request_timeout_ms),
            }]));
        }
        Ok(())
    }
}

impl Settings {
    /// Every effective setting as (value, source), secrets redacted: the
    /// `/debug/environment` document.
    pub fn environment(&self) -> BTreeMap<String, (String, String)> {
        let source = |key: &str, fallback: &str| self.sources.get(key).cloned().unwrap_or_else(|| fallback.to_owned());
        let mut env = BTreeMap::new();
        let mut put = |key: &str, value: String, fallback: &str| {
            env.insert(key.to_owned(), (value, source(key, fallback)));
        };
        put("grpc_addr", self.grpc_addr.to_string(), "default");
        put("http_addr", self.http_addr.to_string(), "default");
        put("store", redact_url(&self.store), "default");
        put("profile", self.profile.to_string(), "default");
        put("replica_id", self.replica_id.clone(), "default");
        put("redis_prefix", self.redis_prefix.clone(), "default");
        put("redis_timeout_ms", self.redis_timeout_ms.to_string(), "default");
        put("redis_min_replicas", self.redis_min_replicas.to_string(), "default");
        let redis_tls = match (&self.redis_tls.ca, &self.redis_tls.client_cert) {
            (None, None) => "platform trust store when the URL is rediss…".to_owned(),
            (ca, cert) => format!(
                "CA {}, client certificate {}",
                ca.as_ref().map_or("platform trust store".into(), |p| p.display().to_string()),
                cert.as_ref().map_or("none".into(), |p| p.display().to_string())
            ),
        };
        put("redis_tls", redis_tls, "default");
        put("snapshot_refresh_ms", self.snapshot_refresh_ms.to_string(), "default");
        put("request_timeout_ms", self.request_timeout_ms.to_string(), "default");
        let tls = match &self.tls {
            None => "off".to_owned(),
            Some(t) => match &t.client_ca {
                None => format!("on (cert {})", t.cert.display()),
                Some(ca) => format!("mutual (cert {}, client CA {})", t.cert.display(), ca.display()),
            },
        };
        put("tls", tls, "flag_or_env");
        for (role, list) in
            [("admin", &self.tokens.admin), ("frontend", &self.tokens.frontend), ("worker", &self.tokens.worker)]
        {
            let value = if list.is_empty() {
                "none (auth off)".to_owned()
            } else {
                format!("{} token(s), redacted", list.len())
            };
            put(&format!("{role}_tokens"), value, "env");
        }
        let domains = self.rls.domain_names().join(",");
        let domains_source = if domains.is_empty() { "default" } else { "file" };
        put("rls_domains", domains, domains_source);
        if let Ok(toml::Value::Table(runtime)) = toml::Value::try_from(&self.runtime) {
            flatten("runtime", &toml::Value::Table(runtime), &mut |key, value| put(key, value, "profile"));
        }
        env
    }
}

pub fn flatten(prefix: &str, value: &toml::Value, out: &mut dyn FnMut(&str, String)) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        toml::Value::String(s) => out(prefix, s.clone()),
        other => out(prefix, serde_json::to_string(other).unwrap_or_default()),
    }
}

/// A store URL with any password replaced.
pub fn redact_url(store: &StoreUrl) -> String {
    match store {
        StoreUrl::Memory => "memory".to_owned(),
        StoreUrl::Redis(url) => redact(url),
    }
}

/// Any `user:password@` credentials and `pass=` / `password=` query
/// parameters of a URL replaced. Everything up to the last `@` goes, so a
/// password with an unescaped `/`, `?` or `@` cannot slip through (at worst
/// the host goes with it).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let scheme = if url.contains("://") { format!("{scheme}://") } else { String::new() };
    let rest = match rest.rfind('@') {
        Some(at) => format!("<redacted>@{}", &rest[at + 1..]),
        None => rest.to_owned(),
    };
    let (base, query) = rest.split_once('?').map_or((rest.as_str(), None), |(b, q)| (b, Some(q)));
    let Some(query) = query else { return format!("{scheme}{base}") };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass")
                    || k.eq_ignore_ascii_case("password")
                    || k.eq_ignore_ascii_case("sentinel_password") =>
            {
                format!("{k}=<redacted>")
            }
            _ => kv.to_owned(),
        })
        .collect();
    format!("{scheme}{base}?{}", query.join("&"))
}

/// Whether `prefix` holds a `{tag}` with at least one character.
fn valid_hash_tag(prefix: &str) -> bool {
    prefix.split_once('{').and_then(|(_, rest)| rest.split_once('}')).is_some_and(|(tag, _)| !tag.is_empty())
}

/// Host name + pid, so replicas on one host differ.
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "floodgate".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Compiles the `[rls]` descriptor rules; errors name the field.
pub fn rls_rules(config: &RlsConfig) -> Result<Rules, ConfigError> {
    Rules::compile(config).map_err(|errors| {
        ConfigError::Invalid(errors.into_iter().map(|e| FieldError { field: e.field, message: e.message }).collect())
    })
}

/// Loads a config file as `check-config` does: parse, merge over the
/// profile, validate. Returns the effective runtime config.
pub fn check_file(path: &Path, profile: Option<Profile>) -> Result<(Profile, RuntimeConfig), ConfigError> {
    let file = FileConfig::load(path)?;
    rls_rules(&file.rls)?;
    let profile = profile.or(file.profile).unwrap_or_default();
    let runtime = RuntimeConfig::for_profile(profile)
        .merged(file.runtime)
        .map_err(|e| ConfigError::Invalid(vec![prefixed(e)]))?;
    let errors = runtime.validate();
    if errors.is_empty() { Ok((profile, runtime)) } else { Err(ConfigError::Invalid(errors)) }
}

fn prefixed(e: FieldError) -> FieldError {
    if e.field == "runtime" { e } else { FieldError { field: format!("runtime.{}", e.field), message: e.message } }
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
    fn redis_passwords_are_redacted_wherever_they_are() {
        assert_eq!(redact("redis://:hunter2@10.0.0.5:6379/0"), "redis://<redacted>@10.0.0.5:6379/0");
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=1&pass=<redacted>"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        // Unescaped `?`, `/` or `@` in a password must not cut it loose either.
        for leaky in ["redis+sentinel://app:hunt?er2@s1/m", "redis://:hunt/er2@h:6379/0", "redis://:hu@nter2@h/0"] {
            let shown = redact(leaky);
            assert!(!shown.contains("er2") && !shown.contains("hunt"), "{shown}");
        }
        for bad in [
            "redis-cluster://u:hunter2@host:bad",
            "redis+sentinel://u:hunter2@host:26379",
            "rediss://u:hunter2@h:x",
            "redis+sentinel://app:hunt?er2@s1/m",
            "redis-cluster://app:hunt/er2@s1:7000/",
            "redis+sentinel://app:hunter2@s1/m/x",
        ] {
            let err = bad.parse::<StoreUrl>().unwrap_err();
            assert!(!err.contains("hunter2") && !err.contains("er2") && err.starts_with("store: "), "{err}");
        }
        assert_eq!(
            redact("redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster?sentinel_password=hunter2"),
            "redis+sentinel://<redacted>@s1:26379,s2:26379/mymaster?sentinel_password=<redacted>"
        );
    }

    #[test]
    fn tls_cluster_and_sentinel_urls_are_accepted() {
        for url in [
            "redis://10.0.0.5:6379/0",
            "redis+unix:///run/redis.sock",
            "rediss://redis.internal:6380/0",
            "redis-cluster://10.0.0.1:7000,10.0.0.2:7000/",
            "rediss-cluster://10.0.0.1:7000",
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0",
            "rediss+sentinel://10.0.0.1:26379/mymaster",
        ] {
            assert_eq!(url.parse::<StoreUrl>(), Ok(StoreUrl::Redis(url.to_owned())), "{url}");
        }
        let err = "redis-sentinel://h/m".parse::<StoreUrl>().unwrap_err();
        assert!(err.starts_with("store: ") && err.contains("redis+sentinel://"), "{err}");
        let err = "redis-cluster://h:7000/2".parse::<StoreUrl>().unwrap_err();
        assert!(err.contains("only database 0"), "{err}");
        let err = "mysql://h".parse::<StoreUrl>().unwrap_err();
        assert!(err.contains("rediss-cluster://"), "{err}");
    }

    #[test]
    fn redis_tls_files_need_a_tls_url_and_must_be_readable() {
        let ca = Some(std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")));
        let mut s = Settings::for_profile(Profile::Development);
        s.redis_tls.ca = ca.clone();
        s.store = StoreUrl::Redis("redis://h:6379/0".into());
        assert!(matches!(s.check(), Err(ConfigError::Setting(m)) if m.contains("redis_ca_file")));
        for tls in ["rediss://h:6380/0", "rediss-cluster://h:7000", "rediss+sentinel://h/m"] {
            s.store = StoreUrl::Redis(tls.into());
            assert!(s.check().is_ok(), "{tls}");
        }
        s.redis_tls.client_cert = ca;
        assert!(matches!(s.check(), Err(ConfigError::Setting(m)) if m.contains("redis_client_key")));
        s.redis_tls.client_cert = None;
        s.redis_tls.ca = Some("/nonexistent/ca.pem".into());
        assert!(matches!(s.check(), Err(ConfigError::Setting(m)) if m.starts_with("redis_ca_file: cannot read")));
    }

    #[test]
    fn min_replicas_needs_redis_a_number_and_a_sane_count() {
        let field_error = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("{other:?}"),
        };
        let options = |store: &str, raw: &str| ServeOptions {
            store: Some(store.into()),
            redis_min_replicas: Some(raw.into()),
            ..ServeOptions::default()
        };
        assert_eq!(options("redis://h:6379/0", "2").resolve().unwrap().redis_min_replicas, 2);
        for (store, raw) in [("redis://h:6379/0", "two"), ("redis://h:6379/0", "9"), ("memory", "1")] {
            assert_eq!(field_error(options(store, raw).resolve()), "redis_min_replicas", "{store} {raw}");
        }
    }

    #[test]
    fn production_without_tokens_refuses_to_start() {
        let settings = Settings::for_profile(Profile::Production);
        assert!(matches!(settings.check(), Err(ConfigError::Setting(m)) if m.contains("FLOODGATE_ADMIN_TOKENS")));
        assert!(Settings::for_profile(Profile::Development).check().is_ok());
    }
}

/// What the command line and environment say (None = not given).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub store: Option<String>,
    pub profile: Option<Profile>,
    pub config: Option<std::path::PathBuf>,
    pub replica_id: Option<String>,
    pub redis_prefix: Option<String>,
    /// `FLOODGATE_REDIS_MIN_REPLICAS`, unparsed.
    pub redis_min_replicas: Option<String>,
    pub redis_ca_file: Option<std::path::PathBuf>,
    pub redis_client_cert: Option<std::path::PathBuf>,
    pub redis_client_key: Option<std::path::PathBuf>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub tls_client_ca: Option<std::path::PathBuf>,
    pub tokens: Tokens,
    /// `--rls-config`, `FLOODGATE_RLS_SHADOW_MODE`, `FLOODGATE_RLS_RESPONSE_HEADERS`.
    pub rls: crate::rls_rules::RlsOptions,
}

impl ServeOptions {
    /// Flags and env over the file over the profile's defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let mut sources = BTreeMap::new();
        let mut note = |key: &str, flag: bool, in_file: bool| {
            if flag {
                sources.insert(key.to_owned(), "flag_or_env".to_owned());
            } else if in_file {
                sources.insert(key.to_owned(), "file".to_owned());
            }
        };
        note("profile", self.profile.is_some(), file.profile.is_some());
        note("grpc_addr", self.grpc_addr.is_some(), file.grpc_addr.is_some());
        note("http_addr", self.http_addr.is_some(), file.http_addr.is_some());
        note("store", self.store.is_some(), file.store.is_some());
        note("redis_prefix", self.redis_prefix.is_some(), file.redis_prefix.is_some());
        note("redis_timeout_ms", false, file.redis_timeout_ms.is_some());
        note("redis_min_replicas", self.redis_min_replicas.is_some(), file.redis_min_replicas.is_some());
        note(
            "redis_tls",
            self.redis_ca_file.is_some() || self.redis_client_cert.is_some() || self.redis_client_key.is_some(),
            file.redis_ca_file.is_some() || file.redis_client_cert.is_some() || file.redis_client_key.is_some(),
        );
        note("replica_id", self.replica_id.is_some(), false);
        flatten("runtime", &toml::Value::Table(file.runtime.clone()), &mut |key, _| {
            sources.insert(key.to_owned(), "file".to_owned());
        });
        let profile = self.profile.or(file.profile).unwrap_or_default();
        let mut settings = Settings::for_profile(profile);
        settings.sources = sources;
        settings.runtime =
            settings.runtime.merged(file.runtime).map_err(|e| ConfigError::Invalid(vec![prefixed(e)]))?;
        if let Some(addr) = self.grpc_addr.or(file.grpc_addr) {
            settings.grpc_addr = addr;
        }
        if let Some(addr) = self.http_addr.or(file.http_addr) {
            settings.http_addr = addr;
        }
        if let Some(store) = self.store.or(file.store) {
            settings.store = store.parse().map_err(ConfigError::Setting)?;
        }
        if let Some(prefix) = self.redis_prefix.or(file.redis_prefix) {
            settings.redis_prefix = prefix;
        }
        if let Some(timeout) = file.redis_timeout_ms {
            settings.redis_timeout_ms = timeout;
        }
        if let Some(raw) = &self.redis_min_replicas {
            settings.redis_min_replicas = raw.trim().parse().map_err(|_| {
                ConfigError::Invalid(vec![FieldError {
                    field: "redis_min_replicas".into(),
                    message: format!("FLOODGATE_REDIS_MIN_REPLICAS must be a whole number 0..={MAX_MIN_REPLICAS}"),
                }])
            })?;
        } else if let Some(replicas) = file.redis_min_replicas {
            settings.redis_min_replicas = replicas;
        }
        settings.redis_tls = crate::store::RedisTlsFiles {
            ca: self.redis_ca_file.or(file.redis_ca_file),
            client_cert: self.redis_client_cert.or(file.redis_client_cert),
            client_key: self.redis_client_key.or(file.redis_client_key),
        };
        let tls_cert = self.tls_cert.or(file.tls_cert);
        let tls_key = self.tls_key.or(file.tls_key);
        let client_ca = self.tls_client_ca.or(file.tls_client_ca);
        settings.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key, client_ca }),
            (None, None) if client_ca.is_none() => None,
            _ => {
                return Err(ConfigError::Setting(
                    "tls: set both tls_cert and tls_key (tls_client_ca needs them too)".into(),
                ));
            }
        };
        if let Some(id) = self.replica_id.filter(|id| !id.is_empty()) {
            settings.replica_id = id;
        }
        settings.tokens = self.tokens;
        settings.rls = std::sync::Arc::new(rls_rules(&file.rls)?);
        settings.rls_options = self.rls;
        settings.check()?;
        Ok(settings)
    }
}
