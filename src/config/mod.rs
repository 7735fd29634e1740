//! Configuration, in two halves: [`settings`], the static settings read once
//! at start (flags, env, the TOML file, where each came from), and
//! [`runtime`], the settings that start from a profile and may change live
//! (validation, merge). `check-config` and the errors both share live here.

pub mod redis;
pub mod runtime;
pub mod settings;

use std::path::Path;

pub use runtime::{FieldError, MAX_PAYLOAD_CEILING, Profile, RateLimits, RuntimeConfig};
pub use settings::{
    FileConfig, MAX_MIN_REPLICAS, RlsOptions, Settings, StaticSettings, StoreUrl, TokenList, default_replica_id,
    redact, redact_url,
};

use crate::core::rls::{RlsConfig, Rules};

/// Reading or validating configuration failed; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or wrongly typed key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, naming the key.
        message: String,
    },
    /// Values that break a rule, each naming its field.
    #[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A static setting that cannot be used (named in the message).
    #[error("{0}")]
    Setting(String),
}

/// Calls `out(key, value)` for every leaf of `value`, keys dotted under
/// `prefix` (`runtime.rate_limits.anonymous.burst`), strings unquoted.
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

/// A runtime field error as the file names it (`runtime.<field>`).
fn prefixed(e: FieldError) -> FieldError {
    if e.field == "runtime" { e } else { FieldError { field: format!("runtime.{}", e.field), message: e.message } }
}
