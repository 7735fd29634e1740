//! Envoy's rate-limit service (RLS v3) as pure rules: descriptor rules per
//! domain in the spirit of envoyproxy/ratelimit, how a request's
//! descriptors match them, the all-or-nothing GCRA decision of one request
//! (the reference both stores follow) and the statuses Envoy reads.

use std::collections::HashMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::admission::Verdict;
use super::gcra::{self, GcraOutcome, RateLimit, Spacing};
use super::{Decision, Transport, UserType};

/// Longest domain or descriptor key.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest descriptor value (paths, addresses, ids).
pub const MAX_VALUE_BYTES: usize = 1_024;
/// Most descriptors in one request.
pub const MAX_DESCRIPTORS: usize = 64;
/// Most entries in one descriptor.
pub const MAX_ENTRIES: usize = 16;
/// Largest `hits_addend` (keeps the GCRA arithmetic exact in Lua's doubles).
pub const MAX_HITS_ADDEND: u32 = 1_000_000;
/// Largest `requests_per_unit` (one per µs at most, per second).
pub const MAX_REQUESTS_PER_UNIT: u32 = 1_000_000;
/// Longest time a burst may stand for (interval × burst), µs: 400 days.
pub const MAX_TOLERANCE_US: u64 = 400 * 86_400_000_000;

/// The descriptor key that makes a descriptor floodgate's Level 1 admission check.
pub const USER_TYPE_KEY: &str = "user_type";

// ---- configuration (the `[rls]` table of the config file) ----

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
    pub key: String,
    /// Without a value the rule matches any value, and each value is counted apart.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Counted and reported, never refused.
    #[serde(default)]
    pub shadow_mode: bool,
    /// Rules for the next entry of a descriptor.
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

/// A rule's limit: a rate per unit, or `unlimited`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub unit: Option<Unit>,
    #[serde(default)]
    pub requests_per_unit: Option<u32>,
    /// Requests an idle counter allows at once; `requests_per_unit` when unset.
    #[serde(default)]
    pub burst: Option<u32>,
    #[serde(default)]
    pub unlimited: bool,
    /// Reported as `current_limit.name`.
    #[serde(default)]
    pub name: Option<String>,
}

/// The unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Second,
    Minute,
    Hour,
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
}

/// A rejected field (config or request) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), message: message.into() }
}

// ---- compiled rules ----

/// A limited rule, ready to count with GCRA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub unit: Unit,
    pub requests_per_unit: u32,
    pub burst: u32,
    pub shadow_mode: bool,
    pub name: String,
}

impl Rate {
    /// `requests_per_unit` per unit with `burst`, as GCRA parameters.
    pub fn spacing(&self) -> Spacing {
        let interval_us = (self.unit.micros() / u64::from(self.requests_per_unit.max(1))).max(1);
        Spacing { interval_us, tolerance_us: interval_us * u64::from(self.burst.max(1)) }
    }
}

/// What a matched rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Rate(Rate),
}

#[derive(Debug, Default)]
struct Node {
    limit: Option<Limit>,
    /// Next-entry rules by key.
    children: HashMap<String, KeyRules>,
}

#[derive(Debug, Default)]
struct KeyRules {
    by_value: HashMap<String, Node>,
    any_value: Option<Box<Node>>,
}

/// The compiled descriptor rules of every domain.
#[derive(Debug, Default)]
pub struct Rules {
    domains: HashMap<String, Node>,
}

impl Rules {
    /// Validates and compiles the `[rls]` table; every error names its field
    /// (`rls.domains[0].descriptors[1].rate_limit.unit`).
    pub fn compile(config: &RlsConfig) -> Result<Rules, Vec<Invalid>> {
        let mut errors = Vec::new();
        let mut domains = HashMap::new();
        for (i, d) in config.domains.iter().enumerate() {
            let field = format!("rls.domains[{i}]");
            if d.domain.is_empty() || d.domain.len() > MAX_KEY_BYTES {
                errors.push(invalid(format!("{field}.domain"), format!("must be 1..={MAX_KEY_BYTES} bytes")));
                continue;
            }
            let mut root = Node::default();
            compile_children(&d.descriptors, &mut root, &format!("{field}.descriptors"), &mut errors);
            if domains.insert(d.domain.clone(), root).is_some() {
                errors.push(invalid(format!("{field}.domain"), format!("domain {:?} is configured twice", d.domain)));
            }
        }
        if errors.is_empty() { Ok(Rules { domains }) } else { Err(errors) }
    }

    /// Whether no domain is configured.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The configured domains, sorted.
    pub fn domain_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.domains.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The limit of the rule a descriptor matches, envoyproxy/ratelimit's
    /// way: each entry walks one level, preferring the rule for its exact
    /// value over the rule for its key alone; only the rule reached by the
    /// last entry counts. None when nothing matches (unknown domain too).
    pub fn find(&self, domain: &str, entries: &[Entry]) -> Option<&Limit> {
        let mut node = self.domains.get(domain)?;
        for entry in entries {
            let rules = node.children.get(&entry.key)?;
            node = rules.by_value.get(&entry.value).or(rules.any_value.as_deref())?;
        }
        node.limit.as_ref()
    }

    /// Validates a request and decides, per descriptor, what it needs.
    pub fn plan<'r>(&'r self, request: &RlsRequest) -> Result<Plan<'r>, Invalid> {
        if request.domain.is_empty() || request.domain.len() > MAX_KEY_BYTES {
            return Err(invalid("domain", format!("must be 1..={MAX_KEY_BYTES} bytes")));
        }
        if request.descriptors.is_empty() || request.descriptors.len() > MAX_DESCRIPTORS {
            return Err(invalid("descriptors", format!("must hold 1..={MAX_DESCRIPTORS} descriptors")));
        }
        if request.hits_addend > MAX_HITS_ADDEND {
            return Err(invalid("hits_addend", format!("must be at most {MAX_HITS_ADDEND}")));
        }
        let mut descriptors = Vec::with_capacity(request.descriptors.len());
        let mut admission = None;
        for (i, entries) in request.descriptors.iter().enumerate() {
            let field = || format!("descriptors[{i}].entries");
            if entries.is_empty() || entries.len() > MAX_ENTRIES {
                return Err(invalid(field(), format!("must hold 1..={MAX_ENTRIES} entries")));
            }
            for (j, entry) in entries.iter().enumerate() {
                if entry.key.is_empty() || entry.key.len() > MAX_KEY_BYTES {
                    return Err(invalid(format!("{}[{j}].key", field()), format!("must be 1..={MAX_KEY_BYTES} bytes")));
                }
                if entry.value.len() > MAX_VALUE_BYTES {
                    return Err(invalid(
                        format!("{}[{j}].value", field()),
                        format!("must be at most {MAX_VALUE_BYTES} bytes"),
                    ));
                }
            }
            if entries.iter().any(|e| e.key == USER_TYPE_KEY) {
                if admission.is_some() {
                    return Err(invalid(field(), "only one descriptor may carry user_type"));
                }
                admission = Some(AdmissionEntries::parse(i, &request.domain, entries)?);
                descriptors.push(Planned::Admission);
                continue;
            }
            descriptors.push(match self.find(&request.domain, entries) {
                None => Planned::NoRule,
                Some(Limit::Unlimited) => Planned::Unlimited,
                Some(Limit::Rate(rate)) => Planned::Limited { rate, counter: counter_key(&request.domain, entries) },
            });
        }
        Ok(Plan { descriptors, admission, hits: request.hits_addend.max(1) })
    }
}

fn compile_children(rules: &[DescriptorConfig], parent: &mut Node, field: &str, errors: &mut Vec<Invalid>) {
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if rule.key.is_empty() || rule.key.len() > MAX_KEY_BYTES {
            errors.push(invalid(format!("{field}.key"), format!("must be 1..={MAX_KEY_BYTES} bytes")));
            continue;
        }
        if rule.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            errors.push(invalid(format!("{field}.value"), format!("must be at most {MAX_VALUE_BYTES} bytes")));
            continue;
        }
        let mut node = Node { limit: compile_limit(rule, &field, errors), children: HashMap::new() };
        compile_children(&rule.descriptors, &mut node, &format!("{field}.descriptors"), errors);
        let by_key = parent.children.entry(rule.key.clone()).or_default();
        let taken = match &rule.value {
            Some(value) => by_key.by_value.insert(value.clone(), node).is_some(),
            None => by_key.any_value.replace(Box::new(node)).is_some(),
        };
        if taken {
            errors.push(invalid(
                field,
                format!("a sibling rule already has key {:?} and value {:?}", rule.key, rule.value),
            ));
        }
    }
}

fn compile_limit(rule: &DescriptorConfig, field: &str, errors: &mut Vec<Invalid>) -> Option<Limit> {
    let config = rule.rate_limit.as_ref()?;
    let field = format!("{field}.rate_limit");
    if config.unlimited {
        if config.unit.is_some() || config.requests_per_unit.is_some() || config.burst.is_some() {
            errors.push(invalid(field, "unlimited excludes unit, requests_per_unit and burst"));
            return None;
        }
        return Some(Limit::Unlimited);
    }
    let Some(unit) = config.unit else {
        errors.push(invalid(format!("{field}.unit"), "is required: second, minute, hour or day"));
        return None;
    };
    let requests_per_unit = match config.requests_per_unit {
        Some(n) if (1..=MAX_REQUESTS_PER_UNIT).contains(&n) => n,
        _ => {
            errors.push(invalid(format!("{field}.requests_per_unit"), format!("must be 1..={MAX_REQUESTS_PER_UNIT}")));
            return None;
        }
    };
    let burst = config.burst.unwrap_or(requests_per_unit);
    let rate = Rate {
        unit,
        requests_per_unit,
        burst,
        shadow_mode: rule.shadow_mode,
        name: config.name.clone().unwrap_or_default(),
    };
    if burst == 0 || rate.spacing().tolerance_us > MAX_TOLERANCE_US {
        errors.push(invalid(format!("{field}.burst"), "must be at least 1 and hold at most 400 days of the rate"));
        return None;
    }
    Some(Limit::Rate(rate))
}

/// The counter of a limited descriptor: its domain and every entry, value
/// included (a rule without a value counts each value apart, as
/// envoyproxy/ratelimit does). Length-prefixed, so no two descriptors share one.
pub fn counter_key(domain: &str, entries: &[Entry]) -> String {
    let mut key = String::with_capacity(
        domain.len() + entries.iter().map(|e| e.key.len() + e.value.len() + 8).sum::<usize>() + 4,
    );
    let mut push = |part: &str| {
        let _ = write!(key, "{}:", part.len());
        key.push_str(part);
    };
    push(domain);
    for entry in entries {
        push(&entry.key);
        push(&entry.value);
    }
    key
}

// ---- a request and its plan ----

/// One descriptor entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

/// `ShouldRateLimit`'s request in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsRequest {
    pub domain: String,
    pub descriptors: Vec<Vec<Entry>>,
    /// 0 means 1.
    pub hits_addend: u32,
}

/// What one descriptor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned<'r> {
    /// No rule matches (or the domain is unknown): OK, nothing counted.
    NoRule,
    /// The matching rule is `unlimited`: OK, nothing counted.
    Unlimited,
    /// Counted with GCRA under `counter`.
    Limited { rate: &'r Rate, counter: String },
    /// floodgate's Level 1 decides it (see [`AdmissionEntries`]).
    Admission,
}

/// The Level 1 request a `user_type` descriptor stands for: entries
/// `user_type` (anonymous, registered, privileged), and optionally
/// `subject` (else `remote_address`, else the domain: one shared subject),
/// `route` (admin-route bypass) and `transport` (rest, websocket; analytics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionEntries {
    /// Which descriptor of the request it is.
    pub index: usize,
    pub user_type: UserType,
    pub subject: String,
    pub route: String,
    pub transport: Transport,
}

impl AdmissionEntries {
    fn parse(index: usize, domain: &str, entries: &[Entry]) -> Result<AdmissionEntries, Invalid> {
        let value = |key: &str| entries.iter().find(|e| e.key == key).map(|e| e.value.as_str());
        let user_type = match value(USER_TYPE_KEY) {
            Some("anonymous") => UserType::Anonymous,
            Some("registered") => UserType::Registered,
            Some("privileged") => UserType::Privileged,
            _ => {
                return Err(invalid(
                    format!("descriptors[{index}].user_type"),
                    "must be anonymous, registered or privileged",
                ));
            }
        };
        let subject = value("subject").or(value("remote_address")).filter(|s| !s.is_empty()).unwrap_or(domain);
        let transport = match value("transport") {
            Some("rest") => Transport::Rest,
            Some("websocket") => Transport::Websocket,
            _ => Transport::Unspecified,
        };
        Ok(AdmissionEntries {
            index,
            user_type,
            subject: subject.to_owned(),
            route: value("route").unwrap_or_default().to_owned(),
            transport,
        })
    }
}

/// A validated request: one [`Planned`] per descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'r> {
    pub descriptors: Vec<Planned<'r>>,
    pub admission: Option<AdmissionEntries>,
    /// `hits_addend`, 0 made 1.
    pub hits: u32,
}

impl Plan<'_> {
    /// The GCRA checks the request needs, each with its descriptor's index,
    /// in request order. `admission_rate` is the user type's limit when
    /// Level 1 reached its rate-limit step; Level 1 counts one request, as
    /// `CheckCapacity` does, whatever `hits_addend` says.
    pub fn checks(&self, admission_rate: Option<RateLimit>) -> Vec<(usize, Check)> {
        let mut checks = Vec::with_capacity(self.descriptors.len());
        for (i, planned) in self.descriptors.iter().enumerate() {
            match planned {
                Planned::Limited { rate, .. } => {
                    checks.push((i, Check { spacing: rate.spacing(), cost: self.hits, enforce: !rate.shadow_mode }))
                }
                Planned::Admission => {
                    if let Some(limit) = admission_rate {
                        checks.push((i, Check { spacing: limit.spacing(), cost: 1, enforce: true }));
                    }
                }
                Planned::NoRule | Planned::Unlimited => {}
            }
        }
        checks
    }
}

// ---- the all-or-nothing decision of one request ----

/// One GCRA check of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub spacing: Spacing,
    pub cost: u32,
    /// Whether this check being limited refuses the request (not in shadow mode).
    pub enforce: bool,
}

/// Decides one request's checks together; both stores follow this rule
/// (the Redis script `rls.lua` mirrors it). Each check runs GCRA against
/// its key's arrival time, checks sharing a key seeing the earlier ones'
/// new times. The new times are kept only when no enforcing check is
/// limited and this is not a `dry_run`: a refused request consumes nothing.
/// Returns the outcomes and the arrival times to store (empty when none).
pub fn decide_all<K: PartialEq + Clone>(
    checks: &[(K, Check)],
    stored: impl Fn(&K) -> Option<u64>,
    now_us: u64,
    dry_run: bool,
) -> (Vec<GcraOutcome>, Vec<(K, u64)>) {
    let mut pending: Vec<(K, u64)> = Vec::new();
    let mut outcomes = Vec::with_capacity(checks.len());
    for (key, check) in checks {
        let tat = pending.iter().rev().find(|(k, _)| k == key).map(|(_, t)| *t).or_else(|| stored(key));
        let outcome = gcra::check_spacing(tat, now_us, check.spacing, check.cost);
        if let GcraOutcome::Allowed { tat } = outcome {
            pending.retain(|(k, _)| k != key);
            pending.push((key.clone(), tat));
        }
        outcomes.push(outcome);
    }
    if !kept(checks.iter().map(|(_, c)| c), &outcomes, dry_run) {
        pending.clear();
    }
    (outcomes, pending)
}

/// Whether a request's new arrival times were kept.
pub fn kept<'c>(checks: impl IntoIterator<Item = &'c Check>, outcomes: &[GcraOutcome], dry_run: bool) -> bool {
    !dry_run && !checks.into_iter().zip(outcomes).any(|(c, o)| c.enforce && matches!(o, GcraOutcome::Limited { .. }))
}

// ---- statuses ----

/// A descriptor's (and the request's) code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok,
    OverLimit,
}

/// The limit reported as `current_limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedLimit {
    pub name: String,
    pub requests_per_unit: u32,
    pub unit: Unit,
}

/// One descriptor's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub current_limit: Option<ReportedLimit>,
    /// Requests the counter still allows right now.
    pub limit_remaining: u32,
    /// Until the counter is back to its full burst, µs.
    pub until_reset_us: u64,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub overall: Code,
    pub statuses: Vec<Status>,
    /// Added to Envoy's response when over the limit: `retry-after`
    /// (seconds) and `x-floodgate-decision`.
    pub response_headers: Vec<(&'static str, String)>,
    /// What happened to the request, for analytics and metrics.
    pub decision: Decision,
    /// Descriptors over their limit in shadow mode (let through).
    pub shadow_over_limit: u32,
}

/// A counter's state after a decision: (remaining, µs until full).
/// `kept` says whether an allowed outcome's new arrival time was stored.
pub fn counter_state(outcome: GcraOutcome, check: &Check, now_us: u64, kept: bool) -> (u64, u64) {
    let Spacing { interval_us, tolerance_us } = check.spacing;
    let taken = interval_us.saturating_mul(u64::from(check.cost));
    // The arrival time the key holds after this decision.
    let tat = match outcome {
        GcraOutcome::Allowed { tat } if kept => tat,
        GcraOutcome::Allowed { tat } => tat.saturating_sub(taken),
        // new_tat = tat + taken = now + tolerance + retry_after
        GcraOutcome::Limited { retry_after_us } => (now_us + tolerance_us + retry_after_us).saturating_sub(taken),
    }
    .max(now_us);
    ((now_us + tolerance_us).saturating_sub(tat) / interval_us.max(1), tat - now_us)
}

/// Level 1's part of an answer.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionOutcome<'v> {
    pub verdict: &'v Verdict,
    /// The user type's rate limit, when Level 1 checked it.
    pub rate: Option<RateLimit>,
    pub user_type: UserType,
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Admit => "admit",
        Decision::RateLimited => "rate_limited",
        Decision::Backpressure => "backpressure",
        Decision::CircuitOpen => "circuit_open",
    }
}

/// Builds the answer from the checks' outcomes (aligned with `checks`),
/// decided at `now_us`, and Level 1's verdict when the request carried a
/// `user_type` descriptor. The worst descriptor wins: any enforcing
/// descriptor over its limit, or a Level 1 refusal, makes it OVER_LIMIT.
pub fn answer(
    plan: &Plan<'_>,
    checks: &[(usize, Check)],
    outcomes: &[GcraOutcome],
    now_us: u64,
    dry_run: bool,
    admission: Option<AdmissionOutcome<'_>>,
) -> Answer {
    let kept = kept(checks.iter().map(|(_, c)| c), outcomes, dry_run);
    let mut statuses: Vec<Status> = plan
        .descriptors
        .iter()
        .map(|_| Status { code: Code::Ok, current_limit: None, limit_remaining: 0, until_reset_us: 0 })
        .collect();
    let mut retry_after_us = 0u64;
    let mut over = false;
    let mut shadow_over_limit = 0;
    for ((i, check), outcome) in checks.iter().zip(outcomes) {
        let (remaining, until_reset_us) = counter_state(*outcome, check, now_us, kept);
        let status = &mut statuses[*i];
        status.limit_remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
        status.until_reset_us = until_reset_us;
        if let Planned::Limited { rate, .. } = &plan.descriptors[*i] {
            status.current_limit = Some(ReportedLimit {
                name: rate.name.clone(),
                requests_per_unit: rate.requests_per_unit,
                unit: rate.unit,
            });
            if let GcraOutcome::Limited { retry_after_us: retry } = outcome {
                if check.enforce {
                    status.code = Code::OverLimit;
                    over = true;
                    retry_after_us = retry_after_us.max(*retry);
                } else {
                    shadow_over_limit += 1;
                }
            }
        }
    }
    let mut decision = if over { Decision::RateLimited } else { Decision::Admit };
    if let (Some(a), Some(entries)) = (admission, &plan.admission) {
        let status = &mut statuses[entries.index];
        status.current_limit = a.rate.map(|r| ReportedLimit {
            name: format!("floodgate {} users", a.user_type.as_str()),
            requests_per_unit: r.per_minute,
            unit: Unit::Minute,
        });
        if a.verdict.decision != Decision::Admit {
            status.code = Code::OverLimit;
            status.limit_remaining = 0;
            if a.verdict.decision != Decision::RateLimited {
                // Refused by load, not by a counter: it clears when load falls.
                status.until_reset_us = a.verdict.retry_after_ms * 1_000;
            }
            retry_after_us = retry_after_us.max(a.verdict.retry_after_ms * 1_000);
            decision = a.verdict.decision;
            over = true;
        }
    }
    let response_headers = if over {
        vec![
            ("retry-after", retry_after_us.div_ceil(1_000_000).max(1).to_string()),
            ("x-floodgate-decision", decision_name(decision).to_owned()),
        ]
    } else {
        Vec::new()
    };
    Answer {
        overall: if over { Code::OverLimit } else { Code::Ok },
        statuses,
        response_headers,
        decision,
        shadow_over_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::admission;
    use proptest::prelude::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect()
    }

    fn rules(toml: &str) -> Rules {
        let config: RlsConfig = toml::from_str(toml).expect("valid TOML");
        Rules::compile(&config).expect("valid rules")
    }

    const CHAT: &str = r#"
        [[domains]]
        domain = "chat"
        [[domains.descriptors]]
        key = "remote_address"
        rate_limit = { unit = "minute", requests_per_unit = 3 }
        [[domains.descriptors]]
        key = "path"
        value = "/landing/chat"
        rate_limit = { unit = "second", requests_per_unit = 10, name = "chat landing" }
        [[domains.descriptors.descriptors]]
        key = "remote_address"
        rate_limit = { unit = "hour", requests_per_unit = 100, burst = 5 }
        [[domains.descriptors]]
        key = "path"
        rate_limit = { unlimited = true }
        [[domains.descriptors]]
        key = "plan"
        value = "trial"
        shadow_mode = true
        rate_limit = { unit = "day", requests_per_unit = 1 }
    "#;

    #[test]
    fn the_exact_value_wins_over_the_key_and_only_the_last_entry_counts() {
        let r = rules(CHAT);
        let rate = |l: Option<&Limit>| match l {
            Some(Limit::Rate(rate)) => (rate.requests_per_unit, rate.unit),
            other => panic!("expected a rate, got {other:?}"),
        };
        assert_eq!(rate(r.find("chat", &entries(&[("remote_address", "1.2.3.4")]))), (3, Unit::Minute));
        assert_eq!(rate(r.find("chat", &entries(&[("path", "/landing/chat")]))), (10, Unit::Second));
        assert_eq!(
            rate(r.find("chat", &entries(&[("path", "/landing/chat"), ("remote_address", "a")]))),
            (100, Unit::Hour)
        );
        assert_eq!(r.find("chat", &entries(&[("path", "/other")])), Some(&Limit::Unlimited));
        // A longer descriptor than any rule, an unknown key or domain: no limit.
        assert_eq!(r.find("chat", &entries(&[("path", "/other"), ("remote_address", "a")])), None);
        assert_eq!(r.find("chat", &entries(&[("user", "x")])), None);
        assert_eq!(r.find("other", &entries(&[("remote_address", "a")])), None);
    }

    #[test]
    fn bad_rules_name_their_field() {
        let config: RlsConfig = toml::from_str(
            r#"
            [[domains]]
            domain = "chat"
            [[domains.descriptors]]
            key = "a"
            rate_limit = { requests_per_unit = 3 }
            [[domains.descriptors]]
            key = "b"
            rate_limit = { unit = "second", requests_per_unit = 0 }
            [[domains.descriptors]]
            key = "c"
            rate_limit = { unlimited = true, unit = "second" }
            [[domains.descriptors]]
            key = "d"
            [[domains.descriptors]]
            key = "d"
            [[domains]]
            domain = "chat"
            "#,
        )
        .unwrap();
        let fields: Vec<String> = Rules::compile(&config).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "rls.domains[0].descriptors[0].rate_limit.unit",
                "rls.domains[0].descriptors[1].rate_limit.requests_per_unit",
                "rls.domains[0].descriptors[2].rate_limit",
                "rls.domains[0].descriptors[4]",
                "rls.domains[1].domain",
            ]
        );
    }

    #[test]
    fn units_become_spacing_and_burst_defaults_to_the_rate() {
        let rate = Rate { unit: Unit::Minute, requests_per_unit: 3, burst: 3, shadow_mode: false, name: String::new() };
        assert_eq!(rate.spacing(), Spacing { interval_us: 20_000_000, tolerance_us: 60_000_000 });
        let r = rules(CHAT);
        let Some(Limit::Rate(hourly)) = r.find("chat", &entries(&[("path", "/landing/chat"), ("remote_address", "a")]))
        else {
            panic!("no hourly rule");
        };
        assert_eq!(hourly.spacing(), Spacing { interval_us: 36_000_000, tolerance_us: 180_000_000 });
    }

    fn request(descriptors: &[&[(&str, &str)]], hits: u32) -> RlsRequest {
        RlsRequest {
            domain: "chat".into(),
            descriptors: descriptors.iter().map(|d| entries(d)).collect(),
            hits_addend: hits,
        }
    }

    #[test]
    fn bad_requests_name_their_field() {
        let r = rules(CHAT);
        let field = |req: RlsRequest| r.plan(&req).unwrap_err().field;
        assert_eq!(field(RlsRequest { domain: String::new(), ..request(&[&[("a", "b")]], 0) }), "domain");
        assert_eq!(field(request(&[], 0)), "descriptors");
        assert_eq!(field(request(&[&[("a", "b")], &[]], 0)), "descriptors[1].entries");
        assert_eq!(field(request(&[&[("", "b")]], 0)), "descriptors[0].entries[0].key");
        assert_eq!(field(request(&[&[("user_type", "admin")]], 0)), "descriptors[0].user_type");
        assert_eq!(
            field(request(&[&[("user_type", "anonymous")], &[("user_type", "registered")]], 0)),
            "descriptors[1].entries"
        );
        assert_eq!(field(request(&[&[("a", "b")]], MAX_HITS_ADDEND + 1)), "hits_addend");
    }

    #[test]
    fn plans_count_each_value_apart_and_find_the_admission_descriptor() {
        let r = rules(CHAT);
        let req = request(
            &[
                &[("remote_address", "1.2.3.4")],
                &[("unknown", "x")],
                &[("path", "/x")],
                &[("user_type", "anonymous"), ("remote_address", "9.9.9.9"), ("transport", "websocket")],
            ],
            0,
        );
        let plan = r.plan(&req).unwrap();
        assert_eq!(plan.hits, 1, "hits_addend 0 means 1");
        assert!(
            matches!(&plan.descriptors[0], Planned::Limited { counter, .. } if counter == "4:chat14:remote_address7:1.2.3.4")
        );
        assert_eq!(plan.descriptors[1..], [Planned::NoRule, Planned::Unlimited, Planned::Admission]);
        let a = plan.admission.as_ref().unwrap();
        assert_eq!(
            (a.index, a.user_type, a.subject.as_str(), a.transport),
            (3, UserType::Anonymous, "9.9.9.9", Transport::Websocket)
        );
        // Without subject or remote_address, the domain is the one subject.
        let plan = r.plan(&request(&[&[("user_type", "registered")]], 0)).unwrap();
        assert_eq!(plan.admission.unwrap().subject, "chat");
    }

    #[test]
    fn counter_keys_cannot_collide_through_separators() {
        assert_ne!(counter_key("d", &entries(&[("a", "b:c")])), counter_key("d", &entries(&[("a:b", "c")])));
        assert_ne!(
            counter_key("d", &entries(&[("a", "1"), ("b", "2")])),
            counter_key("d", &entries(&[("a", "1b"), ("", "2")]))
        );
    }

    const THREE_PER_MINUTE: Check =
        Check { spacing: Spacing { interval_us: 20_000_000, tolerance_us: 60_000_000 }, cost: 1, enforce: true };
    const SHADOW: Check = Check { enforce: false, ..THREE_PER_MINUTE };

    fn run(
        table: &mut HashMap<&'static str, u64>,
        checks: &[(&'static str, Check)],
        now: u64,
        dry: bool,
    ) -> Vec<GcraOutcome> {
        let (outcomes, writes) = decide_all(checks, |k| table.get(k).copied(), now, dry);
        table.extend(writes);
        outcomes
    }

    #[test]
    fn a_refused_request_consumes_nothing() {
        let mut table = HashMap::new();
        for _ in 0..3 {
            run(&mut table, &[("full", THREE_PER_MINUTE)], 0, false);
        }
        let outcomes = run(&mut table, &[("fresh", THREE_PER_MINUTE), ("full", THREE_PER_MINUTE)], 0, false);
        assert!(matches!(outcomes[0], GcraOutcome::Allowed { .. }));
        assert_eq!(outcomes[1], GcraOutcome::Limited { retry_after_us: 20_000_000 });
        assert!(!table.contains_key("fresh"), "the allowed descriptor was not consumed");
        // A shadow descriptor over its limit refuses nothing.
        let outcomes = run(&mut table, &[("fresh", THREE_PER_MINUTE), ("full", SHADOW)], 0, false);
        assert!(matches!(outcomes[1], GcraOutcome::Limited { .. }));
        assert_eq!(table["fresh"], 20_000_000);
        // A dry run writes nothing.
        run(&mut table, &[("dry", THREE_PER_MINUTE)], 0, true);
        assert!(!table.contains_key("dry"));
    }

    #[test]
    fn checks_sharing_a_key_see_each_other() {
        let mut table = HashMap::new();
        let outcomes = run(&mut table, &[("k", THREE_PER_MINUTE), ("k", THREE_PER_MINUTE)], 0, false);
        assert_eq!(outcomes, [GcraOutcome::Allowed { tat: 20_000_000 }, GcraOutcome::Allowed { tat: 40_000_000 }]);
        assert_eq!(table["k"], 40_000_000);
    }

    #[test]
    fn counter_state_reports_remaining_and_time_to_full() {
        let c = THREE_PER_MINUTE;
        let now = 1_000;
        // First hit: two left, full again in one interval.
        assert_eq!(counter_state(GcraOutcome::Allowed { tat: now + 20_000_000 }, &c, now, true), (2, 20_000_000));
        // Not kept: as if it never happened.
        assert_eq!(counter_state(GcraOutcome::Allowed { tat: now + 20_000_000 }, &c, now, false), (3, 0));
        // Over the limit after three hits at `now`: nothing left, full in 60 s.
        assert_eq!(counter_state(GcraOutcome::Limited { retry_after_us: 20_000_000 }, &c, now, false), (0, 60_000_000));
    }

    fn verdict(decision: Decision, retry_after_ms: u64) -> Verdict {
        Verdict { decision, retry_after_ms, reason: String::new(), pressure_ratio: 0.0 }
    }

    #[test]
    fn the_worst_descriptor_wins_with_retry_after_and_decision_headers() {
        let r = rules(CHAT);
        let req = request(&[&[("remote_address", "a")], &[("user_type", "registered")]], 0);
        let plan = r.plan(&req).unwrap();
        let limit = RateLimit { per_minute: 60, burst: 20 };
        let checks = plan.checks(Some(limit));
        assert_eq!(checks.len(), 2);
        let admitted = admission::admitted(0.0);
        let a = Some(AdmissionOutcome { verdict: &admitted, rate: Some(limit), user_type: UserType::Registered });
        let limited = [GcraOutcome::Limited { retry_after_us: 2_500_000 }, GcraOutcome::Allowed { tat: 1_000_000 }];
        let ans = answer(&plan, &checks, &limited, 0, false, a);
        assert_eq!(ans.overall, Code::OverLimit);
        assert_eq!((ans.statuses[0].code, ans.statuses[1].code), (Code::OverLimit, Code::Ok));
        assert_eq!(ans.decision, Decision::RateLimited);
        assert_eq!(
            ans.response_headers,
            [("retry-after", "3".to_owned()), ("x-floodgate-decision", "rate_limited".to_owned())]
        );
        assert_eq!(
            ans.statuses[1].current_limit.as_ref().map(|l| (l.requests_per_unit, l.unit)),
            Some((60, Unit::Minute))
        );

        // Backpressure refuses through the admission descriptor.
        let refused = verdict(Decision::Backpressure, 1_000);
        let a = Some(AdmissionOutcome { verdict: &refused, rate: Some(limit), user_type: UserType::Registered });
        let allowed = [GcraOutcome::Allowed { tat: 20_000_000 }, GcraOutcome::Allowed { tat: 1_000_000 }];
        let ans = answer(&plan, &checks, &allowed, 0, true, a);
        assert_eq!(
            (ans.overall, ans.statuses[0].code, ans.statuses[1].code),
            (Code::OverLimit, Code::Ok, Code::OverLimit)
        );
        assert_eq!(ans.statuses[1].until_reset_us, 1_000_000);
        assert_eq!(ans.response_headers[1].1, "backpressure");
        assert_eq!(ans.statuses[0].limit_remaining, 3, "nothing consumed");

        // All under the limit: OK and no headers.
        let ans = answer(
            &plan,
            &checks,
            &allowed,
            0,
            false,
            Some(AdmissionOutcome { verdict: &admitted, rate: Some(limit), user_type: UserType::Registered }),
        );
        assert_eq!((ans.overall, ans.decision), (Code::Ok, Decision::Admit));
        assert!(ans.response_headers.is_empty());
    }

    proptest! {
        /// Whatever the requests, a counter never allows more than burst +
        /// elapsed / interval hits, and a refused request changes no key.
        #[test]
        fn no_counter_runs_past_its_limit_and_refusals_change_nothing(
            steps in proptest::collection::vec((0u64..5_000_000, 0usize..3, 0usize..3, 1u32..4, any::<bool>()), 1..200),
        ) {
            let keys = ["a", "b", "c"];
            let mut table: HashMap<&'static str, u64> = HashMap::new();
            let mut allowed = [0u64; 3];
            let mut now = 0;
            for (gap, k1, k2, cost, shadow) in steps {
                now += gap;
                let second = if shadow { SHADOW } else { THREE_PER_MINUTE };
                let checks = [(keys[k1], Check { cost, ..THREE_PER_MINUTE }), (keys[k2], second)];
                let before = table.clone();
                let outcomes = run(&mut table, &checks, now, false);
                if kept(checks.iter().map(|(_, c)| c), &outcomes, false) {
                    for ((key, check), outcome) in checks.iter().zip(&outcomes) {
                        if matches!(outcome, GcraOutcome::Allowed { .. }) {
                            allowed[keys.iter().position(|k| k == key).unwrap()] += u64::from(check.cost);
                        }
                    }
                } else {
                    prop_assert_eq!(&before, &table);
                }
            }
            for n in allowed {
                prop_assert!(n <= 3 + now / 20_000_000);
            }
        }
    }
}
