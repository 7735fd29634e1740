//! The compiled descriptor rules of every domain: per-rule statistics,
//! limits, wildcard patterns, and how a request's descriptors find their rule.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use smallvec::SmallVec;

use super::config::{DescriptorConfig, DomainConfig, Invalid, RlsConfig, Unit, invalid};
use super::plan::{AdmissionEntries, Entry, Plan, Planned, RlsRequest};
use super::{
    MAX_DESCRIPTORS, MAX_ENTRIES, MAX_HITS_ADDEND, MAX_KEY_BYTES, MAX_TOLERANCE_US, MAX_VALUE_BYTES, USER_TYPE_KEY,
};
use crate::core::gcra::Spacing;

// ---- compiled rules ----

/// What a matched rule did to one request, in hits (`hits_addend`), as
/// envoyproxy/ratelimit counts per rule: every hit is within or over the
/// limit; near is the part of within above 80 % of the limit; shadow is
/// the part of over let through in shadow mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Hits the rule saw.
    pub hits: u32,
    /// Hits over the limit.
    pub over_limit: u32,
    /// Hits within the limit but above 80 % of it.
    pub near_limit: u32,
    /// Hits within the limit.
    pub within_limit: u32,
    /// Hits over the limit let through in shadow mode.
    pub shadow_mode: u32,
}

/// A rule's counters, added to on the request path without locks.
#[derive(Debug, Default)]
pub struct RuleStats {
    /// See [`Tally::hits`].
    pub hits: AtomicU64,
    /// See [`Tally::over_limit`].
    pub over_limit: AtomicU64,
    /// See [`Tally::near_limit`].
    pub near_limit: AtomicU64,
    /// See [`Tally::within_limit`].
    pub within_limit: AtomicU64,
    /// See [`Tally::shadow_mode`].
    pub shadow_mode: AtomicU64,
}

impl RuleStats {
    /// Adds one request's tally.
    pub fn add(&self, t: &Tally) {
        for (counter, n) in [
            (&self.hits, t.hits),
            (&self.over_limit, t.over_limit),
            (&self.near_limit, t.near_limit),
            (&self.within_limit, t.within_limit),
            (&self.shadow_mode, t.shadow_mode),
        ] {
            if n > 0 {
                counter.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
    }

    /// The counters now: hits, over, near, within, shadow.
    pub fn values(&self) -> [u64; 5] {
        [&self.hits, &self.over_limit, &self.near_limit, &self.within_limit, &self.shadow_mode]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// A rule's counters, shared by the compiled rule sets that hold the same
/// rule (so a reload keeps counting); equal when they are the same counters.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(pub Arc<RuleStats>);

impl PartialEq for StatsHandle {
    fn eq(&self, other: &StatsHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StatsHandle {}

/// A limited rule, ready to count with GCRA (or to refuse everything when
/// `requests_per_unit` is 0, envoyproxy/ratelimit's block-list idiom).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// The unit the count is over.
    pub unit: Unit,
    /// Requests allowed per unit; 0 refuses every request.
    pub requests_per_unit: u32,
    /// Requests an idle counter allows at once.
    pub burst: u32,
    /// Counted and reported, never refused.
    pub shadow_mode: bool,
    /// Reported as `current_limit.name`; what `replaces` refers to.
    pub name: String,
    /// envoyproxy/ratelimit's stats key without the domain: `key_value`
    /// or `key` per level, joined by dots (`key1_value1.subkey1`).
    pub stats_key: String,
    /// The request's values go into the stats key.
    pub detailed_metric: bool,
    /// Names of the limits this one removes from the same request.
    pub replaces: Vec<String>,
    /// The rule's counters.
    pub stats: StatsHandle,
}

impl Rate {
    /// `requests_per_unit` per unit with `burst`, as GCRA parameters. A
    /// rate of more than one request per µs (above 1,000,000 per second,
    /// 60,000,000 per minute, 3,600,000,000 per hour) is counted in µs of
    /// the unit rather than in requests: one µs per unit of the counter,
    /// the burst as the share of the unit it stands for, and each request's
    /// hits as [`Rate::cost`] µs, so the rule holds as written.
    pub fn spacing(&self) -> Spacing {
        if self.counts_micros() {
            let tolerance_us = self.unit.micros() * u64::from(self.burst.max(1)) / u64::from(self.requests_per_unit);
            return Spacing { interval_us: 1, tolerance_us: tolerance_us.max(1) };
        }
        let interval_us = (self.unit.micros() / u64::from(self.requests_per_unit.max(1))).max(1);
        Spacing { interval_us, tolerance_us: interval_us * u64::from(self.burst.max(1)) }
    }

    /// Whether the rate is faster than one request per µs (see [`Rate::spacing`]).
    fn counts_micros(&self) -> bool {
        u64::from(self.requests_per_unit) > self.unit.micros()
    }

    /// What `hits` cost in the counter's units: the hits themselves, or
    /// for a rate faster than one per µs the µs of the unit they stand for
    /// (rounded up, at least 1).
    pub fn cost(&self, hits: u32) -> u32 {
        if !self.counts_micros() {
            return hits;
        }
        let us = (u128::from(hits) * u128::from(self.unit.micros())).div_ceil(u128::from(self.requests_per_unit));
        u32::try_from(us.max(1)).unwrap_or(u32::MAX)
    }

    /// Counter units (see [`Rate::cost`]) as hits.
    pub fn hits_of(&self, units: u64) -> u64 {
        if !self.counts_micros() {
            return units;
        }
        let hits = u128::from(units) * u128::from(self.requests_per_unit) / u128::from(self.unit.micros());
        u64::try_from(hits).unwrap_or(u64::MAX)
    }

    /// `requests_per_unit: 0`: every request is over the limit.
    pub fn refuses_all(&self) -> bool {
        self.requests_per_unit == 0
    }
}

/// What a matched rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// Never limited.
    Unlimited,
    /// Counted with GCRA (or refusing everything).
    Rate(Rate),
}

/// The rule tables: looked up with the request's keys and values on every
/// request but only ever filled from the rule files, so a request cannot
/// grow them and a fast seeded hash (foldhash) is enough; SipHash was a
/// measurable share of a `ShouldRateLimit` (five look-ups per request).
type RuleMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Debug, Default, Clone)]
struct Node {
    /// On a domain's root: an envoyproxy/ratelimit YAML domain, where every
    /// descriptor key is an ordinary key (`user_type` included); floodgate's
    /// own (TOML) domains, and unknown ones, give `user_type` to Level 1.
    ordinary_keys: bool,
    limit: Option<Limit>,
    /// The rule's stats key (empty for a domain's root).
    stats_key: String,
    /// Next-entry rules by key.
    children: RuleMap<KeyRules>,
}

#[derive(Debug, Default, Clone)]
struct KeyRules {
    by_value: RuleMap<Node>,
    /// Values with `*`, tried in file order after the exact value.
    wildcards: Vec<(Pattern, Node)>,
    any_value: Option<Box<Node>>,
}

/// A value with `*` wildcards, each matching any run of characters
/// (none included), split once at load so matching neither allocates nor
/// backtracks more than one `find` per part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: String,
    /// The literal parts between the stars: at least two.
    parts: Vec<String>,
}

impl Pattern {
    /// The pattern of a value holding at least one `*`; None otherwise.
    pub fn new(value: &str) -> Option<Pattern> {
        value
            .contains('*')
            .then(|| Pattern { raw: value.to_owned(), parts: value.split('*').map(str::to_owned).collect() })
    }

    /// Whether `value` matches: the first part is a prefix, the last a
    /// suffix, and the others follow in order in between (leftmost match
    /// is enough: any later match leaves less room for the rest).
    pub fn matches(&self, value: &str) -> bool {
        let (Some((first, rest)), true) = (self.parts.split_first(), self.parts.len() >= 2) else {
            return value == self.raw;
        };
        let Some((last, middle)) = rest.split_last() else { return false };
        if value.len() < first.len() + last.len()
            || !value.starts_with(first.as_str())
            || !value.ends_with(last.as_str())
        {
            return false;
        }
        let mut between = &value[first.len()..value.len() - last.len()];
        for part in middle {
            match between.find(part.as_str()) {
                Some(at) => between = &between[at + part.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The compiled descriptor rules of every domain.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    domains: RuleMap<Node>,
}

/// Settings that apply to every rule of a request (not per rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Every rule in shadow mode (envoyproxy/ratelimit's `SHADOW_MODE`).
    pub shadow_mode: bool,
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` on every answer.
    pub ratelimit_headers: bool,
    /// Hits within the limit above this share of it (per mille) count as
    /// near the limit (envoyproxy/ratelimit's `NEAR_LIMIT_RATIO`).
    pub near_limit_permille: u16,
}

/// envoyproxy/ratelimit's default `NEAR_LIMIT_RATIO`, 0.8, per mille.
pub const DEFAULT_NEAR_LIMIT_PERMILLE: u16 = 800;

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions { shadow_mode: false, ratelimit_headers: false, near_limit_permille: DEFAULT_NEAR_LIMIT_PERMILLE }
    }
}

/// One rule as the debug view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// The domain the rule belongs to.
    pub domain: String,
    /// envoyproxy/ratelimit's stats key without the domain.
    pub stats_key: String,
    /// `10/minute`, `unlimited`, `0/second`.
    pub limit: String,
    /// The limit's name (empty when unnamed).
    pub name: String,
    /// Counted and reported, never refused.
    pub shadow_mode: bool,
    /// The request's values go into the stats key.
    pub detailed_metric: bool,
    /// Names of the limits this one removes from the same request.
    pub replaces: Vec<String>,
}

/// Hands out a rule's counters given its domain and stats key.
pub type StatsFor<'a> = dyn FnMut(&str, &str) -> StatsHandle + 'a;

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

impl Rules {
    /// Validates and compiles the `[rls]` table; every error names its field
    /// (`rls.domains[0].descriptors[1].rate_limit.unit`).
    pub fn compile(config: &RlsConfig) -> Result<Rules, Vec<Invalid>> {
        let domains: Vec<(String, &DomainConfig)> =
            config.domains.iter().enumerate().map(|(i, d)| (format!("rls.domains[{i}]"), d)).collect();
        Rules::compile_domains(&domains, false, &mut |_, _| StatsHandle::default())
    }

    /// Validates and compiles domains, each with the prefix its error
    /// fields get (empty for a file holding one domain), taking each
    /// rule's counters from `stats`. `ordinary_keys` for envoyproxy/ratelimit
    /// YAML domains: every key is matched as written, `user_type` included;
    /// without it (floodgate's TOML domains) a `user_type` descriptor is
    /// Level 1's, so a rule keyed `user_type` could never match and is refused.
    pub fn compile_domains(
        domains: &[(String, &DomainConfig)],
        ordinary_keys: bool,
        stats: &mut StatsFor<'_>,
    ) -> Result<Rules, Vec<Invalid>> {
        let mut errors = Vec::new();
        let mut compiled = RuleMap::default();
        for (field, d) in domains {
            if d.domain.is_empty() || d.domain.len() > MAX_KEY_BYTES {
                errors.push(invalid(join(field, "domain"), format!("must be 1..={MAX_KEY_BYTES} bytes")));
                continue;
            }
            let mut root = Node { ordinary_keys, ..Node::default() };
            let mut cx = Compiling { domain: &d.domain, ordinary_keys, errors: &mut errors, stats };
            cx.children(&d.descriptors, &mut root, &join(field, "descriptors"), "");
            if compiled.insert(d.domain.clone(), root).is_some() {
                errors.push(invalid(join(field, "domain"), format!("domain {:?} is configured twice", d.domain)));
            }
        }
        if errors.is_empty() { Ok(Rules { domains: compiled }) } else { Err(errors) }
    }

    /// These rules with `other`'s domains added (`other` wins a shared domain).
    pub fn merged(&self, other: Rules) -> Rules {
        let mut domains = self.domains.clone();
        domains.extend(other.domains);
        Rules { domains }
    }

    /// Whether `domain` has rules here.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
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

    /// Every rule with a limit, by domain then stats key.
    pub fn view(&self) -> Vec<RuleView> {
        let mut out = Vec::new();
        for (domain, root) in &self.domains {
            walk(root, &mut |node| {
                let Some(limit) = &node.limit else { return };
                let mut view = RuleView {
                    domain: domain.clone(),
                    stats_key: node.stats_key.clone(),
                    limit: "unlimited".to_owned(),
                    name: String::new(),
                    shadow_mode: false,
                    detailed_metric: false,
                    replaces: Vec::new(),
                };
                if let Limit::Rate(rate) = limit {
                    view.limit = format!("{}/{}", rate.requests_per_unit, rate.unit.as_str());
                    view.name = rate.name.clone();
                    view.shadow_mode = rate.shadow_mode;
                    view.detailed_metric = rate.detailed_metric;
                    view.replaces = rate.replaces.clone();
                }
                out.push(view);
            });
        }
        out.sort_by(|a, b| (&a.domain, &a.stats_key).cmp(&(&b.domain, &b.stats_key)));
        out
    }

    /// Calls `f` with every limited rule and its domain.
    pub fn for_each_rate(&self, mut f: impl FnMut(&str, &Rate)) {
        for (domain, root) in &self.domains {
            walk(root, &mut |node| {
                if let Some(Limit::Rate(rate)) = &node.limit {
                    f(domain, rate);
                }
            });
        }
    }

    /// The limit of the rule a descriptor matches, envoyproxy/ratelimit's
    /// way: each entry walks one level, preferring the rule for its exact
    /// value, then the first wildcard value it matches, then the rule for
    /// its key alone; only the rule reached by the last entry counts. None
    /// when nothing matches (unknown domain too).
    pub fn find(&self, domain: &str, entries: &[Entry<'_>]) -> Option<&Limit> {
        find_in(self.domains.get(domain)?, entries)
    }

    /// [`Rules::plan_with`] with the default options.
    pub fn plan<'r>(&'r self, request: &RlsRequest<'_>) -> Result<Plan<'r>, Invalid> {
        self.plan_with(request, PlanOptions::default())
    }

    /// Validates a request and decides, per descriptor, what it needs.
    pub fn plan_with<'r>(&'r self, request: &RlsRequest<'_>, options: PlanOptions) -> Result<Plan<'r>, Invalid> {
        if request.domain.is_empty() || request.domain.len() > MAX_KEY_BYTES {
            return Err(invalid("domain", format!("must be 1..={MAX_KEY_BYTES} bytes")));
        }
        if request.descriptor_count() == 0 || request.descriptor_count() > MAX_DESCRIPTORS {
            return Err(invalid("descriptors", format!("must hold 1..={MAX_DESCRIPTORS} descriptors")));
        }
        if request.hits_addend > MAX_HITS_ADDEND {
            return Err(invalid("hits_addend", format!("must be at most {MAX_HITS_ADDEND}")));
        }
        let root = self.domains.get(request.domain);
        let mut descriptors = SmallVec::with_capacity(request.descriptor_count());
        let mut admission = None;
        let mut replacing = false;
        for (i, entries) in request.descriptors().enumerate() {
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
            if !root.is_some_and(|r| r.ordinary_keys) && entries.iter().any(|e| e.key == USER_TYPE_KEY) {
                if admission.is_some() {
                    return Err(invalid(field(), "only one descriptor may carry user_type"));
                }
                admission = Some(AdmissionEntries::parse(i, request.domain, entries)?);
                descriptors.push(Planned::Admission);
                continue;
            }
            descriptors.push(match root.and_then(|root| find_in(root, entries)) {
                None => Planned::NoRule,
                Some(Limit::Unlimited) => Planned::Unlimited,
                Some(Limit::Rate(rate)) => {
                    replacing |= !rate.replaces.is_empty();
                    if rate.refuses_all() {
                        Planned::RefusesAll { rate }
                    } else {
                        Planned::Limited { rate, counter: counter_key(request.domain, entries) }
                    }
                }
            });
        }
        if replacing {
            drop_replaced(&mut descriptors);
        }
        Ok(Plan { descriptors, admission, hits: request.hits_addend.max(1), options })
    }
}

/// [`Rules::find`] from a domain's root (looked up once per request).
fn find_in<'n>(mut node: &'n Node, entries: &[Entry<'_>]) -> Option<&'n Limit> {
    for entry in entries {
        let rules = node.children.get(entry.key)?;
        node = rules
            .by_value
            .get(entry.value)
            .or_else(|| rules.wildcards.iter().find(|(p, _)| p.matches(entry.value)).map(|(_, n)| n))
            .or(rules.any_value.as_deref())?;
    }
    node.limit.as_ref()
}

/// envoyproxy/ratelimit's `replaces`: a limit named by another matched
/// limit of the same request is not applied.
fn drop_replaced(descriptors: &mut [Planned<'_>]) {
    let replaced: Vec<String> =
        descriptors.iter().filter_map(Planned::rate).flat_map(|r| r.replaces.iter().cloned()).collect();
    for planned in descriptors.iter_mut() {
        if planned.rate().is_some_and(|r| !r.name.is_empty() && replaced.contains(&r.name)) {
            *planned = Planned::Replaced;
        }
    }
}

fn walk<'n>(node: &'n Node, f: &mut impl FnMut(&'n Node)) {
    f(node);
    for rules in node.children.values() {
        for child in rules.by_value.values() {
            walk(child, f);
        }
        for (_, child) in &rules.wildcards {
            walk(child, f);
        }
        if let Some(child) = &rules.any_value {
            walk(child, f);
        }
    }
}

/// One domain being compiled.
struct Compiling<'a, 'b, 'c> {
    domain: &'a str,
    ordinary_keys: bool,
    errors: &'b mut Vec<Invalid>,
    stats: &'b mut StatsFor<'c>,
}

impl Compiling<'_, '_, '_> {
    fn children(&mut self, rules: &[DescriptorConfig], parent: &mut Node, field: &str, parent_key: &str) {
        for (i, rule) in rules.iter().enumerate() {
            let field = format!("{field}[{i}]");
            if rule.key.is_empty() || rule.key.len() > MAX_KEY_BYTES {
                self.errors.push(invalid(format!("{field}.key"), format!("must be 1..={MAX_KEY_BYTES} bytes")));
                continue;
            }
            if !self.ordinary_keys && rule.key == USER_TYPE_KEY {
                self.errors.push(invalid(
                    format!("{field}.key"),
                    "user_type is floodgate's Level 1 descriptor in its own domains: no rule can match it (a rule keyed user_type belongs in a YAML domain)",
                ));
                continue;
            }
            if rule.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
                self.errors.push(invalid(format!("{field}.value"), format!("must be at most {MAX_VALUE_BYTES} bytes")));
                continue;
            }
            let own_key = match &rule.value {
                Some(value) => format!("{}_{value}", rule.key),
                None => rule.key.clone(),
            };
            let stats_key = join(parent_key, &own_key);
            let limit = self.limit(rule, &field, &stats_key);
            let mut node =
                Node { ordinary_keys: false, limit, stats_key: stats_key.clone(), children: RuleMap::default() };
            self.children(&rule.descriptors, &mut node, &format!("{field}.descriptors"), &stats_key);
            let by_key = parent.children.entry(rule.key.clone()).or_default();
            let taken = match &rule.value {
                Some(value) => match Pattern::new(value) {
                    Some(pattern) => {
                        let taken = by_key.wildcards.iter().any(|(p, _)| p == &pattern);
                        by_key.wildcards.push((pattern, node));
                        taken
                    }
                    None => by_key.by_value.insert(value.clone(), node).is_some(),
                },
                None => by_key.any_value.replace(Box::new(node)).is_some(),
            };
            if taken {
                let value = rule.value.as_ref().map_or("no value".to_owned(), |v| format!("value {v:?}"));
                self.errors.push(invalid(field, format!("a sibling rule already has key {:?} and {value}", rule.key)));
            }
        }
    }

    fn limit(&mut self, rule: &DescriptorConfig, field: &str, stats_key: &str) -> Option<Limit> {
        let config = rule.rate_limit.as_ref()?;
        let field = format!("{field}.rate_limit");
        let errors_before = self.errors.len();
        let name = config.name.clone().unwrap_or_default();
        for (j, replace) in config.replaces.iter().enumerate() {
            if replace.name.is_empty() {
                self.errors.push(invalid(format!("{field}.replaces[{j}].name"), "must name a limit"));
            } else if replace.name == name {
                self.errors.push(invalid(format!("{field}.replaces[{j}].name"), "a limit cannot replace itself"));
            }
        }
        if config.unlimited {
            if config.unit.is_some() || config.requests_per_unit.is_some() || config.burst.is_some() {
                self.errors.push(invalid(field, "unlimited excludes unit, requests_per_unit and burst"));
                return None;
            }
            if !config.replaces.is_empty() {
                self.errors.push(invalid(format!("{field}.replaces"), "an unlimited rule cannot replace limits"));
            }
            return (self.errors.len() == errors_before).then_some(Limit::Unlimited);
        }
        let Some(unit) = config.unit else {
            self.errors.push(invalid(format!("{field}.unit"), "is required: second, minute, hour or day"));
            return None;
        };
        let Some(requests_per_unit) = config.requests_per_unit else {
            self.errors.push(invalid(
                format!("{field}.requests_per_unit"),
                "is required with a unit: 0..=4294967295 (0 refuses every request)",
            ));
            return None;
        };
        let burst = config.burst.unwrap_or(requests_per_unit);
        let rate = Rate {
            unit,
            requests_per_unit,
            burst,
            shadow_mode: rule.shadow_mode,
            name,
            stats_key: stats_key.to_owned(),
            detailed_metric: rule.detailed_metric,
            replaces: config.replaces.iter().map(|r| r.name.clone()).collect(),
            stats: (self.stats)(self.domain, stats_key),
        };
        let bad_burst = if rate.refuses_all() {
            config.burst.is_some_and(|b| b > 0)
        } else {
            burst == 0 || rate.spacing().tolerance_us > MAX_TOLERANCE_US
        };
        if bad_burst {
            self.errors.push(invalid(
                format!("{field}.burst"),
                "must be at least 1 and hold at most 400 days of the rate (and unset when requests_per_unit is 0)",
            ));
            return None;
        }
        (self.errors.len() == errors_before).then_some(Limit::Rate(rate))
    }
}

/// The counter of a limited descriptor: its domain and every entry, value
/// included (a rule without a value counts each value apart, as
/// envoyproxy/ratelimit does). Length-prefixed, so no two descriptors share one.
pub fn counter_key(domain: &str, entries: &[Entry<'_>]) -> String {
    let mut key = String::with_capacity(
        domain.len() + entries.iter().map(|e| e.key.len() + e.value.len() + 8).sum::<usize>() + 4,
    );
    // Digits written by hand: `write!` costs the formatting machinery on
    // every request.
    let mut push = |part: &str| {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = part.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        key.extend(digits[at..].iter().map(|d| char::from(*d)));
        key.push(':');
        key.push_str(part);
    };
    push(domain);
    for entry in entries {
        push(entry.key);
        push(entry.value);
    }
    key
}
