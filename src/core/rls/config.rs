//! The rule files' shape: the `[rls]` table of floodgate's TOML config and
//! envoyproxy/ratelimit's YAML, as serde types (refusing unknown keys), the
//! units, and the error naming a rejected field.

use serde::{Deserialize, Serialize};

/// The `[rls]` table: descriptor rules per domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlsConfig {
    /// One entry per domain (`[[rls.domains]]`).
    #[serde(default)]
    pub domains: Vec<DomainConfig>,
}

/// The rules of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The domain Envoy's filter is configured with.
    pub domain: String,
    /// Top-level descriptor rules.
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

/// One descriptor rule: a key, optionally a value, a limit, and rules for
/// the entries that follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    /// The descriptor entry's key this rule matches.
    pub key: String,
    /// Without a value the rule matches any value, and each value is counted apart.
    #[serde(default)]
    pub value: Option<String>,
    /// The limit at this level (absent: only nested descriptors limit).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Counted and reported, never refused.
    #[serde(default)]
    pub shadow_mode: bool,
    /// Statistics per request value: the value goes into the rule's stats
    /// key (envoyproxy/ratelimit's `detailed_metric`).
    #[serde(default)]
    pub detailed_metric: bool,
    /// Rules for the next entry of a descriptor.
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

/// A rule's limit: a rate per unit, or `unlimited`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The unit `requests_per_unit` counts over.
    #[serde(default)]
    pub unit: Option<Unit>,
    /// Requests allowed per unit; 0 refuses every request.
    #[serde(default)]
    pub requests_per_unit: Option<u32>,
    /// Requests an idle counter allows at once; `requests_per_unit` when unset.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Never limited (takes no unit or count).
    #[serde(default)]
    pub unlimited: bool,
    /// Reported as `current_limit.name`; what `replaces` refers to.
    #[serde(default)]
    pub name: Option<String>,
    /// Named limits this one removes from the same request.
    #[serde(default)]
    pub replaces: Vec<Replace>,
}

/// One entry of `replaces`: the name of the limit to drop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// The `name` of the limit to drop.
    pub name: String,
}

/// The unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    // envoyproxy/ratelimit reads units in any case; its files use both.
    /// Per second.
    #[serde(alias = "SECOND")]
    Second,
    /// Per minute.
    #[serde(alias = "MINUTE")]
    Minute,
    /// Per hour.
    #[serde(alias = "HOUR")]
    Hour,
    /// Per day.
    #[serde(alias = "DAY")]
    Day,
}

impl Unit {
    /// The unit's length in µs.
    pub fn micros(self) -> u64 {
        match self {
            Unit::Second => 1_000_000,
            Unit::Minute => 60_000_000,
            Unit::Hour => 3_600_000_000,
            Unit::Day => 86_400_000_000,
        }
    }

    /// The unit's name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }
}

/// A rejected field (config or request) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key path, e.g. `descriptors[0].rate_limit.unit`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), message: message.into() }
}
