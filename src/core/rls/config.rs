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
    /// Requests allowed per unit (envoyproxy/ratelimit's range: any
    /// uint32); 0 refuses every request.
    #[serde(default, deserialize_with = "requests_per_unit")]
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

/// `requests_per_unit`: a whole number in uint32's range, refused with
/// that range when it is outside it (a missing one is refused at compile,
/// with its own message).
fn requests_per_unit<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    struct Count;
    const RANGE: &str = "must be a whole number 0..=4294967295 (0 refuses every request)";
    impl serde::de::Visitor<'_> for Count {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(RANGE)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Option<u32>, E> {
            u32::try_from(n).map(Some).map_err(|_| E::custom(format!("{n} is out of range: {RANGE}")))
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Option<u32>, E> {
            u32::try_from(n).map(Some).map_err(|_| E::custom(format!("{n} is out of range: {RANGE}")))
        }
        fn visit_u128<E: serde::de::Error>(self, n: u128) -> Result<Option<u32>, E> {
            u32::try_from(n).map(Some).map_err(|_| E::custom(format!("{n} is out of range: {RANGE}")))
        }
        fn visit_i128<E: serde::de::Error>(self, n: i128) -> Result<Option<u32>, E> {
            u32::try_from(n).map(Some).map_err(|_| E::custom(format!("{n} is out of range: {RANGE}")))
        }
    }
    deserializer.deserialize_any(Count)
}

/// One entry of `replaces`: the name of the limit to drop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// The `name` of the limit to drop.
    pub name: String,
}

/// The unit of a rate, read in any case (`minute`, `MINUTE`, `Minute`), as
/// envoyproxy/ratelimit upper-cases it before looking it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Unit, D::Error> {
        // A visitor, so a refusal carries the key path of the value.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Unit;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("second, minute, hour or day, in any case")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Unit, E> {
                match text.to_ascii_lowercase().as_str() {
                    "second" => Ok(Unit::Second),
                    "minute" => Ok(Unit::Minute),
                    "hour" => Ok(Unit::Hour),
                    "day" => Ok(Unit::Day),
                    _ => Err(E::unknown_variant(text, &["second", "minute", "hour", "day"])),
                }
            }
        }
        deserializer.deserialize_str(Name)
    }
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
