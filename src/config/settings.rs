//! Static settings: what floodgate reads once at start (addresses, store,
//! Redis, TLS, tokens, replica id) from flags, env and the optional TOML
//! file, where each came from, and how the secrets among them are redacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{fmt, str::FromStr};

use clap::{ArgMatches, Args, FromArgMatches};
use serde::Deserialize;

use super::runtime::{FieldError, Profile, RuntimeConfig};
use super::{ConfigError, flatten, prefixed, rls_rules};
use crate::auth::Tokens;
use crate::core::rls::{RlsConfig, Rules};

/// Every static setting, declared once: its type, its help text, its flag
/// and env var (clap's `long` and `env`) and its config-file key (serde:
/// the field name). Flags and env win over the file, the file over the
/// profile's defaults ([`StaticSettings::resolve`]); where each value came
/// from is read back from clap and from the file's keys, never tracked by
/// hand.
///
/// Per-setting exceptions are attributes on the one field: `#[serde(skip)]`
/// keeps a setting out of the file (secrets, the file's own path),
/// `#[arg(skip)]` makes it file-only, and `hide = true` keeps an env-only
/// setting out of `--help` (clap reads an env var through a flag, so such a
/// setting also has an undocumented flag).
///
/// Adding a setting: a field here, its field in [`Settings`] (with its
/// default in [`Settings::for_profile`]), and the line of
/// [`StaticSettings::resolve`] that moves it there.
#[derive(Debug, Clone, Default, Args, Deserialize)]
// The doc above is for readers of the code, not `--help`.
#[command(about = None, long_about = None)]
#[serde(deny_unknown_fields)]
pub struct StaticSettings {
    /// development, production or loadtest.
    #[arg(long, env = "FLOODGATE_PROFILE")]
    pub profile: Option<Profile>,
    /// gRPC listen address.
    #[arg(long, env = "FLOODGATE_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP shim listen address.
    #[arg(long, env = "FLOODGATE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// `memory`, or Redis: `redis://host:port/db`, `rediss://…` (TLS),
    /// `redis-cluster://h1:p1,h2:p2/`, `redis+sentinel://s1:p1,s2:p2/master/db`.
    // A string until resolved: a URL refused by clap would be echoed with its password.
    #[arg(long, env = "FLOODGATE_STORE")]
    pub store: Option<String>,
    /// Key prefix in Redis; must contain a `{hash tag}`.
    #[arg(long, env = "FLOODGATE_REDIS_PREFIX", hide = true)]
    pub redis_prefix: Option<String>,
    /// Bound on every Redis command, in milliseconds.
    #[arg(skip)]
    pub redis_timeout_ms: Option<u64>,
    /// Replicas that must acknowledge an admission before it is answered.
    #[arg(long, env = "FLOODGATE_REDIS_MIN_REPLICAS", hide = true, value_parser = min_replicas)]
    pub redis_min_replicas: Option<u32>,
    /// PEM CA for a TLS store URL (rediss…); default: the platform's trust store.
    #[arg(long, env = "FLOODGATE_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate chain for Redis mutual TLS (with --redis-client-key).
    #[arg(long, env = "FLOODGATE_REDIS_CLIENT_CERT")]
    pub redis_client_cert: Option<PathBuf>,
    /// PEM private key for --redis-client-cert.
    #[arg(long, env = "FLOODGATE_REDIS_CLIENT_KEY")]
    pub redis_client_key: Option<PathBuf>,
    /// PEM certificate chain: TLS on both listeners (with --tls-key).
    #[arg(long, env = "FLOODGATE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "FLOODGATE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate it issued (mutual TLS).
    #[arg(long, env = "FLOODGATE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Runtime overrides applied over the profile's defaults (`[runtime]`).
    #[arg(skip)]
    #[serde(default)]
    pub runtime: toml::Table,
    /// Envoy rate-limit service rules per domain (`[[rls.domains]]`).
    #[arg(skip)]
    #[serde(default)]
    pub rls: RlsConfig,
    /// Optional TOML config file.
    #[arg(long, env = "FLOODGATE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This replica's id (default: host name + pid).
    #[arg(long, env = "FLOODGATE_REPLICA_ID", hide = true)]
    #[serde(skip)]
    pub replica_id: Option<String>,
    /// Admin caller tokens, comma-separated.
    #[arg(long, env = "FLOODGATE_ADMIN_TOKENS", hide = true, hide_env_values = true, value_parser = token_list)]
    #[serde(skip)]
    pub admin_tokens: Option<TokenList>,
    /// Frontend caller tokens, comma-separated.
    #[arg(long, env = "FLOODGATE_FRONTEND_TOKENS", hide = true, hide_env_values = true, value_parser = token_list)]
    #[serde(skip)]
    pub frontend_tokens: Option<TokenList>,
    /// Worker caller tokens, comma-separated.
    #[arg(long, env = "FLOODGATE_WORKER_TOKENS", hide = true, hide_env_values = true, value_parser = token_list)]
    #[serde(skip)]
    pub worker_tokens: Option<TokenList>,
    /// Refused Level-1 subjects remembered per replica until their retry
    /// time, per user type (0 = off; default 100000 on Redis, off in memory).
    #[arg(long, env = "FLOODGATE_LOCAL_SHIELD_CAPACITY")]
    pub local_shield_capacity: Option<usize>,
    /// envoyproxy/ratelimit YAML rules: a file, or a directory of one file per domain (reloaded live).
    #[arg(long, env = "FLOODGATE_RLS_CONFIG")]
    pub rls_config: Option<PathBuf>,
    /// Envoy rules in shadow mode: over-limit answers are counted, not enforced (true/false).
    #[arg(long, env = "FLOODGATE_RLS_SHADOW_MODE", hide = true)]
    pub rls_shadow_mode: Option<String>,
    /// `ratelimit`: RateLimit-Limit/Remaining/Reset headers on every Envoy answer.
    #[arg(long, env = "FLOODGATE_RLS_RESPONSE_HEADERS", hide = true)]
    pub rls_response_headers: Option<String>,
    /// Envoy rule files of one domain are merged (envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG).
    #[arg(long, env = "FLOODGATE_RLS_MERGE_DOMAINS", num_args = 0..=1, default_missing_value = "true")]
    pub rls_merge_domains: Option<String>,
    /// Share of a rule's limit above which hits count as near it (0..=1; the peer's NEAR_LIMIT_RATIO).
    #[arg(long, env = "FLOODGATE_RLS_NEAR_LIMIT_RATIO", hide = true)]
    pub rls_near_limit_ratio: Option<String>,
}

/// The config file: the same declaration, read through serde.
pub type FileConfig = StaticSettings;

/// A comma-separated token list; never printed.
#[derive(Clone, Default)]
pub struct TokenList(pub Vec<String>);

impl fmt::Debug for TokenList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} token(s)", self.0.len())
    }
}

fn token_list(list: &str) -> Result<TokenList, String> {
    Ok(TokenList(Tokens::parse_list(list)))
}

fn min_replicas(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("FLOODGATE_REDIS_MIN_REPLICAS must be a whole number 0..={MAX_MIN_REPLICAS}"))
}

/// Replaces a default with the value given, if any.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// The `/debug/environment` key a setting is shown under (the TLS files
/// are shown as one value each).
fn environment_key(setting: &str) -> &str {
    match setting {
        "redis_ca_file" | "redis_client_cert" | "redis_client_key" => "redis_tls",
        "tls_cert" | "tls_key" | "tls_client_ca" => "tls",
        other => other,
    }
}

impl StaticSettings {
    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<StaticSettings, ConfigError> {
        Self::load_with_keys(path).map(|(file, _)| file)
    }

    /// [`StaticSettings::load`] and the top-level keys the file sets.
    fn load_with_keys(path: &Path) -> Result<(StaticSettings, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let parse_error =
            |e: toml::de::Error| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() };
        let file: StaticSettings = toml::from_str(&text).map_err(parse_error)?;
        let keys = toml::from_str::<toml::Table>(&text).map_err(parse_error)?.into_iter().map(|(k, _)| k).collect();
        Ok((file, keys))
    }

    /// Settings from what clap matched for this declaration (flags and
    /// env) over the config file it names over the profile's defaults.
    pub fn resolve(matches: &ArgMatches) -> Result<Settings, ConfigError> {
        let setting_error = |e: clap::Error| ConfigError::Setting(e.to_string());
        let given = StaticSettings::from_arg_matches(matches).map_err(setting_error)?;
        let mut sources = BTreeMap::new();
        let mut layered = match &given.config {
            Some(path) => {
                let (file, keys) = StaticSettings::load_with_keys(path)?;
                for key in keys.iter().filter(|k| *k != "runtime" && *k != "rls") {
                    sources.insert(environment_key(key).to_owned(), "file".to_owned());
                }
                flatten("runtime", &toml::Value::Table(file.runtime.clone()), &mut |key, _| {
                    sources.insert(key.to_owned(), "file".to_owned());
                });
                file
            }
            None => StaticSettings::default(),
        };
        // Only what the command line or env gave replaces a file value.
        layered.update_from_arg_matches(matches).map_err(setting_error)?;
        let declared = StaticSettings::augment_args(clap::Command::new("floodgate"));
        for arg in declared.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(
                matches.value_source(id),
                Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
            ) {
                sources.insert(environment_key(id).to_owned(), "flag_or_env".to_owned());
            }
        }
        layered.into_settings(sources)
    }

    /// The profile's defaults with every setting given here applied.
    fn into_settings(self, sources: BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        let mut settings = Settings::for_profile(self.profile.unwrap_or_default());
        settings.sources = sources;
        settings.runtime =
            settings.runtime.merged(self.runtime).map_err(|e| ConfigError::Invalid(vec![prefixed(e)]))?;
        set(&mut settings.grpc_addr, self.grpc_addr);
        set(&mut settings.http_addr, self.http_addr);
        if let Some(store) = self.store {
            settings.store = store.parse().map_err(ConfigError::Setting)?;
        }
        set(&mut settings.redis_prefix, self.redis_prefix);
        set(&mut settings.redis_timeout_ms, self.redis_timeout_ms);
        set(&mut settings.redis_min_replicas, self.redis_min_replicas);
        settings.redis_tls = super::redis::RedisTlsFiles {
            ca: self.redis_ca_file,
            client_cert: self.redis_client_cert,
            client_key: self.redis_client_key,
        };
        settings.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key, client_ca: self.tls_client_ca }),
            (None, None) if self.tls_client_ca.is_none() => None,
            _ => {
                return Err(ConfigError::Setting(
                    "tls: set both tls_cert and tls_key (tls_client_ca needs them too)".into(),
                ));
            }
        };
        set(&mut settings.replica_id, self.replica_id.filter(|id| !id.is_empty()));
        let list = |tokens: Option<TokenList>| tokens.map(|t| t.0).unwrap_or_default();
        settings.tokens = Tokens {
            admin: list(self.admin_tokens),
            frontend: list(self.frontend_tokens),
            worker: list(self.worker_tokens),
        };
        settings.local_shield_capacity = self.local_shield_capacity;
        settings.rls = Arc::new(rls_rules(&self.rls)?);
        settings.rls_options =
            RlsOptions::parse(self.rls_config, self.rls_shadow_mode.as_deref(), self.rls_response_headers.as_deref())
                .map_err(ConfigError::Setting)?;
        settings.rls_options.merge_domains =
            RlsOptions::merge_domains(self.rls_merge_domains.as_deref()).map_err(ConfigError::Setting)?;
        settings.rls_options.near_limit_permille =
            RlsOptions::near_limit_permille(self.rls_near_limit_ratio.as_deref()).map_err(ConfigError::Setting)?;
        settings.check()?;
        Ok(settings)
    }
}

/// Which state store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded in-process store (one instance).
    Memory,
    /// A Redis URL (standalone, Cluster or Sentinel).
    Redis(String),
}

impl FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use super::redis::RedisUrl;
        if s == "memory" {
            Ok(StoreUrl::Memory)
        } else if RedisUrl::looks_like_redis(s) {
            // Parsed again when the store opens; here only to refuse a bad
            // URL at startup, naming the field (and never its password).
            RedisUrl::parse(s).map_err(|e| format!("store: {:?}: {e}", redact(s)))?;
            Ok(StoreUrl::Redis(s.to_owned()))
        } else {
            Err(format!("store: expected \"memory\" or a Redis URL ({}), got {:?}", super::redis::SCHEMES, redact(s)))
        }
    }
}

/// The static RLS settings: where the YAML rules are, global shadow mode
/// and the response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RlsOptions {
    /// `--rls-config` / `FLOODGATE_RLS_CONFIG`: a YAML file or a directory of them.
    pub path: Option<PathBuf>,
    /// `FLOODGATE_RLS_SHADOW_MODE`: every rule in shadow mode.
    pub shadow_mode: bool,
    /// `FLOODGATE_RLS_RESPONSE_HEADERS=ratelimit`: the `RateLimit-*` headers.
    pub ratelimit_headers: bool,
    /// `--rls-merge-domains` / `FLOODGATE_RLS_MERGE_DOMAINS`: files of one
    /// domain are merged (the peer's `MERGE_DOMAIN_CONFIG`).
    pub merge_domains: bool,
    /// `FLOODGATE_RLS_NEAR_LIMIT_RATIO` per mille (None: the peer's 0.8).
    pub near_limit_permille: Option<u16>,
}

impl RlsOptions {
    /// `FLOODGATE_RLS_NEAR_LIMIT_RATIO`: a ratio in 0..=1, kept per mille
    /// (unset: the peer's 0.8); anything else is refused naming it.
    pub fn near_limit_permille(value: Option<&str>) -> Result<Option<u16>, String> {
        let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
        match text.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(Some((ratio * 1000.0).round() as u16)),
            _ => Err(format!("FLOODGATE_RLS_NEAR_LIMIT_RATIO must be a ratio from 0 to 1, got {text:?}")),
        }
    }

    /// `--rls-merge-domains` / `FLOODGATE_RLS_MERGE_DOMAINS`: true or false
    /// (the flag alone is true); anything else is refused naming it.
    pub fn merge_domains(value: Option<&str>) -> Result<bool, String> {
        match value.map(str::trim) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(format!("FLOODGATE_RLS_MERGE_DOMAINS must be true or false, got {other:?}")),
        }
    }

    /// From the flag and the two environment variables' raw values;
    /// an unknown value is refused naming the variable.
    pub fn parse(
        path: Option<PathBuf>,
        shadow_mode: Option<&str>,
        headers: Option<&str>,
    ) -> Result<RlsOptions, String> {
        let shadow_mode = match shadow_mode.map(str::trim) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return Err(format!("FLOODGATE_RLS_SHADOW_MODE must be true or false, got {other:?}")),
        };
        let ratelimit_headers = match headers.map(str::trim) {
            None | Some("") | Some("none") => false,
            Some("ratelimit") => true,
            Some(other) => {
                return Err(format!("FLOODGATE_RLS_RESPONSE_HEADERS must be ratelimit or none, got {other:?}"));
            }
        };
        Ok(RlsOptions { path, shadow_mode, ratelimit_headers, merge_domains: false, near_limit_permille: None })
    }
}

/// Everything floodgate needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the gRPC listener binds.
    pub grpc_addr: SocketAddr,
    /// Where the HTTP listener binds.
    pub http_addr: SocketAddr,
    /// Which store holds the shared state.
    pub store: StoreUrl,
    /// The runtime defaults' profile.
    pub profile: Profile,
    /// This replica's name in logs, metrics and the system document.
    pub replica_id: String,
    /// Caller tokens per role.
    pub tokens: Tokens,
    /// The runtime settings floodgate starts with.
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
    pub redis_tls: super::redis::RedisTlsFiles,
    /// Whose clock Redis scripts use (Redis TIME unless testing).
    pub redis_time: super::redis::TimeSource,
    /// TLS (and mutual TLS with a client CA) for both listeners.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Envoy rate-limit service descriptor rules (static: from the file at start).
    pub rls: std::sync::Arc<Rules>,
    /// envoyproxy/ratelimit YAML rules (reloaded live), global shadow mode, headers.
    pub rls_options: RlsOptions,
    /// The local shield's size when set (see [`Settings::shield_capacity`]).
    pub local_shield_capacity: Option<usize>,
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
            redis_time: super::redis::TimeSource::Server,
            tls: None,
            rls: Default::default(),
            rls_options: Default::default(),
            local_shield_capacity: None,
            sources: BTreeMap::new(),
        }
    }

    /// Refused subjects the local shield remembers per user type: the
    /// setting, else 100,000 on Redis (where it saves a round trip per
    /// refused request) and 0 (off) on the embedded store, whose check is
    /// already local.
    pub fn shield_capacity(&self) -> usize {
        match (self.local_shield_capacity, &self.store) {
            (Some(capacity), _) => capacity,
            (None, StoreUrl::Memory) => 0,
            (None, _) => 100_000,
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
                    "must contain a non-empty {hash tag}, e.g. {floodgate}, so Redis Cluster keeps the admission state in one slot"
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
                StoreUrl::Redis(url) => super::redis::RedisUrl::parse(url).is_ok_and(|u| u.tls()),
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
        put("tls", tls, "default");
        for (role, list) in
            [("admin", &self.tokens.admin), ("frontend", &self.tokens.frontend), ("worker", &self.tokens.worker)]
        {
            let value = if list.is_empty() {
                "none (auth off)".to_owned()
            } else {
                format!("{} token(s), redacted", list.len())
            };
            put(&format!("{role}_tokens"), value, "default");
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// What clap matches for `args` (flags only; env as the test runs).
    fn matched(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        StaticSettings::augment_args(clap::Command::new("floodgate"))
            .try_get_matches_from(std::iter::once("floodgate").chain(args.iter().copied()))
    }

    #[test]
    fn min_replicas_needs_redis_a_number_and_a_sane_count() {
        let field_error = |r: Result<Settings, ConfigError>| match r {
            Err(ConfigError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("{other:?}"),
        };
        let resolve = |store: &str, raw: &str| {
            StaticSettings::resolve(&matched(&["--store", store, "--redis-min-replicas", raw]).unwrap())
        };
        assert_eq!(resolve("redis://h:6379/0", "2").unwrap().redis_min_replicas, 2);
        for (store, raw) in [("redis://h:6379/0", "9"), ("memory", "1")] {
            assert_eq!(field_error(resolve(store, raw)), "redis_min_replicas", "{store} {raw}");
        }
        let not_a_number = matched(&["--redis-min-replicas", "two"]).unwrap_err().to_string();
        assert!(not_a_number.contains("FLOODGATE_REDIS_MIN_REPLICAS must be a whole number"), "{not_a_number}");
    }

    #[test]
    fn flags_win_over_the_file_and_each_value_names_its_source() {
        let file = std::env::temp_dir().join(format!("floodgate-settings-{}.toml", std::process::id()));
        std::fs::write(
            &file,
            "grpc_addr = \"127.0.0.1:7001\"\nhttp_addr = \"127.0.0.1:7002\"\nredis_timeout_ms = 900\n[runtime]\nmax_deliveries = 4\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let settings =
            StaticSettings::resolve(&matched(&["--config", &path, "--http-addr", "127.0.0.1:7003"]).unwrap());
        let _ = std::fs::remove_file(&file);
        let settings = settings.unwrap();
        assert_eq!(settings.grpc_addr.to_string(), "127.0.0.1:7001");
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:7003");
        assert_eq!((settings.redis_timeout_ms, settings.runtime.max_deliveries), (900, 4));
        let env = settings.environment();
        let source = |key: &str| env[key].1.as_str();
        assert_eq!(source("grpc_addr"), "file");
        assert_eq!(source("http_addr"), "flag_or_env");
        assert_eq!(source("redis_timeout_ms"), "file");
        assert_eq!(source("runtime.max_deliveries"), "file");
        assert_eq!(source("redis_prefix"), "default");
        assert_eq!(source("runtime.max_lease_ms"), "profile");
    }

    #[test]
    fn production_without_tokens_refuses_to_start() {
        let settings = Settings::for_profile(Profile::Production);
        assert!(matches!(settings.check(), Err(ConfigError::Setting(m)) if m.contains("FLOODGATE_ADMIN_TOKENS")));
        assert!(Settings::for_profile(Profile::Development).check().is_ok());
    }
}
