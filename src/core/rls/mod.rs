//! Envoy's rate-limit service (RLS v3) as pure rules: descriptor rules per
//! domain in the spirit of envoyproxy/ratelimit, how a request's
//! descriptors match them, the all-or-nothing GCRA decision of one request
//! (the reference both stores follow) and the statuses Envoy reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use smallvec::SmallVec;

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

mod config;
use config::invalid;
pub use config::*;

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
    /// `requests_per_unit` per unit with `burst`, as GCRA parameters.
    pub fn spacing(&self) -> Spacing {
        let interval_us = (self.unit.micros() / u64::from(self.requests_per_unit.max(1))).max(1);
        Spacing { interval_us, tolerance_us: interval_us * u64::from(self.burst.max(1)) }
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Every rule in shadow mode (envoyproxy/ratelimit's `SHADOW_MODE`).
    pub shadow_mode: bool,
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` on every answer.
    pub ratelimit_headers: bool,
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
        Rules::compile_domains(&domains, &mut |_, _| StatsHandle::default())
    }

    /// Validates and compiles domains, each with the prefix its error
    /// fields get (empty for a file holding one domain), taking each
    /// rule's counters from `stats`.
    pub fn compile_domains(
        domains: &[(String, &DomainConfig)],
        stats: &mut StatsFor<'_>,
    ) -> Result<Rules, Vec<Invalid>> {
        let mut errors = Vec::new();
        let mut compiled = RuleMap::default();
        for (field, d) in domains {
            if d.domain.is_empty() || d.domain.len() > MAX_KEY_BYTES {
                errors.push(invalid(join(field, "domain"), format!("must be 1..={MAX_KEY_BYTES} bytes")));
                continue;
            }
            let mut root = Node::default();
            let mut cx = Compiling { domain: &d.domain, errors: &mut errors, stats };
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
    pub fn find(&self, domain: &str, entries: &[Entry]) -> Option<&Limit> {
        let mut node = self.domains.get(domain)?;
        for entry in entries {
            let rules = node.children.get(&entry.key)?;
            node = rules
                .by_value
                .get(&entry.value)
                .or_else(|| rules.wildcards.iter().find(|(p, _)| p.matches(&entry.value)).map(|(_, n)| n))
                .or(rules.any_value.as_deref())?;
        }
        node.limit.as_ref()
    }

    /// [`Rules::plan_with`] with the default options.
    pub fn plan<'r>(&'r self, request: &RlsRequest) -> Result<Plan<'r>, Invalid> {
        self.plan_with(request, PlanOptions::default())
    }

    /// Validates a request and decides, per descriptor, what it needs.
    pub fn plan_with<'r>(&'r self, request: &RlsRequest, options: PlanOptions) -> Result<Plan<'r>, Invalid> {
        if request.domain.is_empty() || request.domain.len() > MAX_KEY_BYTES {
            return Err(invalid("domain", format!("must be 1..={MAX_KEY_BYTES} bytes")));
        }
        if request.descriptors.is_empty() || request.descriptors.len() > MAX_DESCRIPTORS {
            return Err(invalid("descriptors", format!("must hold 1..={MAX_DESCRIPTORS} descriptors")));
        }
        if request.hits_addend > MAX_HITS_ADDEND {
            return Err(invalid("hits_addend", format!("must be at most {MAX_HITS_ADDEND}")));
        }
        let mut descriptors = SmallVec::with_capacity(request.descriptors.len());
        let mut admission = None;
        let mut replacing = false;
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
                Some(Limit::Rate(rate)) => {
                    replacing |= !rate.replaces.is_empty();
                    if rate.refuses_all() {
                        Planned::RefusesAll { rate }
                    } else {
                        Planned::Limited { rate, counter: counter_key(&request.domain, entries) }
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
            let mut node = Node { limit, stats_key: stats_key.clone(), children: RuleMap::default() };
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
        let requests_per_unit = match config.requests_per_unit {
            Some(n) if n <= MAX_REQUESTS_PER_UNIT => n,
            _ => {
                self.errors.push(invalid(
                    format!("{field}.requests_per_unit"),
                    format!("must be 0..={MAX_REQUESTS_PER_UNIT} (0 refuses every request)"),
                ));
                return None;
            }
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
pub fn counter_key(domain: &str, entries: &[Entry]) -> String {
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
        push(&entry.key);
        push(&entry.value);
    }
    key
}

// ---- a request and its plan ----

/// One descriptor entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's key.
    pub key: String,
    /// The entry's value.
    pub value: String,
}

/// `ShouldRateLimit`'s request in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsRequest {
    /// The rules' domain.
    pub domain: String,
    /// The descriptors, each a list of entries.
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
    Limited {
        /// The matching rule.
        rate: &'r Rate,
        /// The store key the request is counted under.
        counter: String,
    },
    /// The matching rule has `requests_per_unit: 0`: over the limit, nothing counted.
    RefusesAll {
        /// The matching rule.
        rate: &'r Rate,
    },
    /// The matching rule's limit is named in another matched rule's
    /// `replaces`: OK, nothing counted.
    Replaced,
    /// floodgate's Level 1 decides it (see [`AdmissionEntries`]).
    Admission,
}

impl<'r> Planned<'r> {
    /// The matched rule's rate, for limited and refusing rules.
    pub fn rate(&self) -> Option<&'r Rate> {
        match self {
            Planned::Limited { rate, .. } | Planned::RefusesAll { rate } => Some(rate),
            _ => None,
        }
    }
}

/// The Level 1 request a `user_type` descriptor stands for: entries
/// `user_type` (anonymous, registered, privileged), and optionally
/// `subject` (else `remote_address`, else the domain: one shared subject),
/// `route` (admin-route bypass) and `transport` (rest, websocket; analytics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionEntries {
    /// Which descriptor of the request it is.
    pub index: usize,
    /// Who the request is for.
    pub user_type: UserType,
    /// Whom the rate limit counts.
    pub subject: String,
    /// The route asked for (admin routes bypass for privileged users).
    pub route: String,
    /// Which frontend entry point asked.
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
    /// One plan per descriptor, in order (on the stack for up to four).
    pub descriptors: SmallVec<[Planned<'r>; 4]>,
    /// The Level-1 entries, when a descriptor carries `user_type`.
    pub admission: Option<AdmissionEntries>,
    /// `hits_addend`, 0 made 1.
    pub hits: u32,
    /// Global shadow mode and response headers.
    pub options: PlanOptions,
}

impl Plan<'_> {
    /// The GCRA checks the request needs, each with its descriptor's index,
    /// in request order. `admission_rate` is the user type's limit when
    /// Level 1 reached its rate-limit step; Level 1 counts one request, as
    /// `CheckCapacity` does, whatever `hits_addend` says.
    pub fn checks(&self, admission_rate: Option<RateLimit>) -> Checks {
        let mut checks = Checks::new();
        for (i, planned) in self.descriptors.iter().enumerate() {
            match planned {
                Planned::Limited { rate, .. } => checks.push((
                    i,
                    Check {
                        spacing: rate.spacing(),
                        cost: self.hits,
                        enforce: !rate.shadow_mode && !self.options.shadow_mode,
                    },
                )),
                Planned::Admission => {
                    if let Some(limit) = admission_rate {
                        checks.push((i, Check { spacing: limit.spacing(), cost: 1, enforce: true }));
                    }
                }
                Planned::NoRule | Planned::Unlimited | Planned::RefusesAll { .. } | Planned::Replaced => {}
            }
        }
        checks
    }
}

// ---- the all-or-nothing decision of one request ----

/// A request's GCRA checks, each with its descriptor's index: on the stack
/// for the usual one to four descriptors (no allocation per request).
pub type Checks = SmallVec<[(usize, Check); 4]>;

/// The arrival times [`decide_all`] keeps, by key: on the stack for up to four.
pub type Writes<K> = SmallVec<[(K, u64); 4]>;

/// One GCRA check of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The rule's GCRA parameters.
    pub spacing: Spacing,
    /// Hits this request takes.
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
) -> (Vec<GcraOutcome>, Writes<K>) {
    let mut pending: Writes<K> = Writes::new();
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
    /// Within the limit (or no limit).
    Ok,
    /// Over the limit.
    OverLimit,
}

/// The limit reported as `current_limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedLimit {
    /// The limit's name.
    pub name: String,
    /// Requests allowed per unit.
    pub requests_per_unit: u32,
    /// The unit.
    pub unit: Unit,
}

/// One descriptor's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Within or over the limit.
    pub code: Code,
    /// The matched rule's limit (absent without one).
    pub current_limit: Option<ReportedLimit>,
    /// Requests the counter still allows right now.
    pub limit_remaining: u32,
    /// Until the counter is back to its full burst, µs.
    pub until_reset_us: u64,
    /// What the matched rule counts for this request.
    pub tally: Tally,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// OVER_LIMIT when any enforced descriptor is over its limit.
    pub overall: Code,
    /// One status per descriptor, in order.
    pub statuses: Vec<Status>,
    /// Added to Envoy's response when over the limit: `retry-after`
    /// (seconds; not when the request can never pass) and
    /// `x-floodgate-decision`; with [`PlanOptions::ratelimit_headers`],
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` on every answer.
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
    /// Level 1's verdict.
    pub verdict: &'v Verdict,
    /// The user type's rate limit, when Level 1 checked it.
    pub rate: Option<RateLimit>,
    /// The request's user type.
    pub user_type: UserType,
}

/// The part of `hits` above 80 % of the counter's burst (envoyproxy/ratelimit's
/// near-limit ratio), given the requests it still allows after this decision.
fn near_limit(hits: u32, remaining: u64, check: &Check, kept: bool) -> u32 {
    let burst = check.spacing.tolerance_us / check.spacing.interval_us.max(1);
    let hits64 = u64::from(hits);
    let used = burst.saturating_sub(remaining);
    // Kept: `used` includes this request's hits; not kept: it would add them.
    let (before, after) = if kept { (used.saturating_sub(hits64), used) } else { (used, used + hits64) };
    let threshold = burst * 8 / 10;
    let near = if after > threshold { after - before.max(threshold) } else { 0 };
    u32::try_from(near.min(hits64)).unwrap_or(hits)
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
    let hits = plan.hits;
    let mut statuses: Vec<Status> = plan
        .descriptors
        .iter()
        .map(|planned| Status {
            code: Code::Ok,
            current_limit: None,
            // envoyproxy/ratelimit answers an unlimited rule with MaxUint32.
            limit_remaining: if *planned == Planned::Unlimited { u32::MAX } else { 0 },
            until_reset_us: 0,
            tally: Tally::default(),
        })
        .collect();
    let mut retry_after_us = 0u64;
    let mut over = false;
    // A refusal that waiting cannot lift (more hits than the limit holds,
    // or a limit of 0) gets no retry-after.
    let mut never_passes = false;
    let mut shadow_over_limit = 0;
    let reported = |rate: &Rate| ReportedLimit {
        name: rate.name.clone(),
        requests_per_unit: rate.requests_per_unit,
        unit: rate.unit,
    };
    for ((i, check), outcome) in checks.iter().zip(outcomes) {
        let (remaining, until_reset_us) = counter_state(*outcome, check, now_us, kept);
        let status = &mut statuses[*i];
        status.limit_remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
        status.until_reset_us = until_reset_us;
        if let Planned::Limited { rate, .. } = &plan.descriptors[*i] {
            status.current_limit = Some(reported(rate));
            status.tally.hits = hits;
            match outcome {
                GcraOutcome::Limited { retry_after_us: retry } => {
                    status.tally.over_limit = hits;
                    if check.enforce {
                        status.code = Code::OverLimit;
                        over = true;
                        retry_after_us = retry_after_us.max(*retry);
                        never_passes |= check.spacing.interval_us.saturating_mul(u64::from(check.cost))
                            > check.spacing.tolerance_us;
                    } else {
                        status.tally.shadow_mode = hits;
                        shadow_over_limit += 1;
                    }
                }
                GcraOutcome::Allowed { .. } => {
                    status.tally.within_limit = hits;
                    status.tally.near_limit = near_limit(hits, remaining, check, kept);
                }
            }
        }
    }
    for (planned, status) in plan.descriptors.iter().zip(statuses.iter_mut()) {
        if let Planned::RefusesAll { rate } = planned {
            status.current_limit = Some(reported(rate));
            status.tally = Tally { hits, over_limit: hits, ..Tally::default() };
            if rate.shadow_mode || plan.options.shadow_mode {
                status.tally.shadow_mode = hits;
                shadow_over_limit += 1;
            } else {
                status.code = Code::OverLimit;
                over = true;
                never_passes = true;
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
    let mut response_headers = Vec::new();
    if over {
        if !never_passes {
            response_headers.push(("retry-after", retry_after_us.div_ceil(1_000_000).max(1).to_string()));
        }
        response_headers.push(("x-floodgate-decision", decision.as_str().to_owned()));
    }
    if plan.options.ratelimit_headers {
        ratelimit_headers(&statuses, &mut response_headers);
    }
    Answer {
        overall: if over { Code::OverLimit } else { Code::Ok },
        statuses,
        response_headers,
        decision,
        shadow_over_limit,
    }
}

/// The IETF draft's `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset` (seconds) of the descriptor closest to its limit, as
/// envoyproxy/ratelimit's `LIMIT_RESPONSE_HEADERS_ENABLED` sets them.
fn ratelimit_headers(statuses: &[Status], headers: &mut Vec<(&'static str, String)>) {
    let closest =
        statuses.iter().filter_map(|s| s.current_limit.as_ref().map(|l| (s, l))).min_by_key(|(s, _)| s.limit_remaining);
    if let Some((status, limit)) = closest {
        headers.push(("RateLimit-Limit", limit.requests_per_unit.to_string()));
        headers.push(("RateLimit-Remaining", status.limit_remaining.to_string()));
        headers.push(("RateLimit-Reset", status.until_reset_us.div_ceil(1_000_000).to_string()));
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
            rate_limit = { unit = "second", requests_per_unit = 1000001 }
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
        let rate = Rate {
            unit: Unit::Minute,
            requests_per_unit: 3,
            burst: 3,
            shadow_mode: false,
            name: String::new(),
            stats_key: "k".into(),
            detailed_metric: false,
            replaces: Vec::new(),
            stats: StatsHandle::default(),
        };
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

    #[test]
    fn counter_keys_prefix_each_part_with_its_decimal_length() {
        let long = "k".repeat(123);
        assert_eq!(counter_key("d", &entries(&[(long.as_str(), "")])), format!("1:d123:{long}0:"));
        assert_eq!(counter_key("", &entries(&[("path", "/0123456789")])), "0:4:path11:/0123456789");
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

    /// A naive reference for `*` matching: any split of the value.
    fn naive_match(pattern: &str, value: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == value,
            Some((head, tail)) => {
                value.starts_with(head)
                    && (head.len()..=value.len()).any(|i| value.is_char_boundary(i) && naive_match(tail, &value[i..]))
            }
        }
    }

    #[test]
    fn stars_match_any_run_including_none() {
        let p = |s: &str| Pattern::new(s).expect("has a star");
        assert!(p("foo*").matches("foo") && p("foo*").matches("foobar") && !p("foo*").matches("fo"));
        assert!(p("*bar").matches("bar") && !p("*bar").matches("bars"));
        assert!(p("/api/*/users/*").matches("/api//users/") && p("/api/*/users/*").matches("/api/v1/users/7"));
        assert!(!p("/api/*/users/*").matches("/api/v1/groups/7"));
        assert!(p("a*b*a").matches("aba") && !p("a*b*a").matches("ab") && !p("aa*aa").matches("aaa"));
        assert!(p("*").matches("") && p("**").matches("x"));
        assert_eq!(Pattern::new("plain"), None);
    }

    const FEATURES: &str = r#"
        [[domains]]
        domain = "d"
        [[domains.descriptors]]
        key = "k"
        value = "a*"
        rate_limit = { unit = "minute", requests_per_unit = 1 }
        [[domains.descriptors]]
        key = "k"
        value = "ab"
        rate_limit = { unit = "minute", requests_per_unit = 2 }
        [[domains.descriptors]]
        key = "k"
        rate_limit = { unit = "minute", requests_per_unit = 3 }
        [[domains.descriptors]]
        key = "block"
        rate_limit = { unit = "minute", requests_per_unit = 0 }
        [[domains.descriptors]]
        key = "tier"
        value = "free"
        rate_limit = { unit = "minute", requests_per_unit = 2, name = "free" }
        [[domains.descriptors]]
        key = "over"
        rate_limit = { unit = "minute", requests_per_unit = 9, name = "over", replaces = [{ name = "free" }] }
    "#;

    #[test]
    fn exact_wins_over_wildcard_which_wins_over_key_only() {
        let r = rules(FEATURES);
        let per_minute = |v: &str| match r.find("d", &entries(&[("k", v)])) {
            Some(Limit::Rate(rate)) => (rate.requests_per_unit, rate.stats_key.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(per_minute("ab"), (2, "k_ab".to_owned()));
        assert_eq!(per_minute("abc"), (1, "k_a*".to_owned()));
        assert_eq!(per_minute("a"), (1, "k_a*".to_owned()));
        assert_eq!(per_minute("b"), (3, "k".to_owned()));
    }

    #[test]
    fn replaced_limits_and_zero_limits_are_planned_apart() {
        let r = rules(FEATURES);
        let req = RlsRequest {
            domain: "d".into(),
            descriptors: vec![entries(&[("tier", "free")]), entries(&[("over", "x")]), entries(&[("block", "x")])],
            hits_addend: 0,
        };
        let plan = r.plan(&req).unwrap();
        assert_eq!(plan.descriptors[0], Planned::Replaced);
        assert!(matches!(plan.descriptors[1], Planned::Limited { rate, .. } if rate.name == "over"));
        assert!(matches!(plan.descriptors[2], Planned::RefusesAll { rate } if rate.requests_per_unit == 0));
        let checks = plan.checks(None);
        assert_eq!(checks.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        let ans = answer(&plan, &checks, &[GcraOutcome::Allowed { tat: 6_666_666 }], 0, false, None);
        assert_eq!(ans.overall, Code::OverLimit);
        assert_eq!(
            ans.statuses[0],
            Status {
                code: Code::Ok,
                current_limit: None,
                limit_remaining: 0,
                until_reset_us: 0,
                tally: Tally::default()
            }
        );
        assert_eq!(ans.statuses[2].tally, Tally { hits: 1, over_limit: 1, ..Tally::default() });
        assert_eq!(
            ans.response_headers,
            [("x-floodgate-decision", "rate_limited".to_owned())],
            "no retry-after: it never passes"
        );
    }

    #[test]
    fn near_limit_counts_the_hits_above_eighty_percent() {
        // Burst 10: threshold 8. Used 7 before, 3 more hits: 1 within-only, 2 near.
        let check = Check { spacing: Spacing { interval_us: 1, tolerance_us: 10 }, cost: 3, enforce: true };
        assert_eq!(near_limit(3, 0, &check, true), 2);
        assert_eq!(near_limit(3, 3, &check, true), 0, "used 7 after: under the threshold");
        assert_eq!(near_limit(3, 1, &check, false), 3, "not kept: 9 used, 3 more all above 8");
    }

    proptest! {
        #[test]
        fn patterns_agree_with_the_naive_star_match(pattern in "[ab*]{1,6}", value in "[ab]{0,8}") {
            if let Some(p) = Pattern::new(&pattern) {
                prop_assert_eq!(p.matches(&value), naive_match(&pattern, &value), "{} vs {}", pattern, value);
            }
        }
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
