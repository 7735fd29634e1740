//! Envoy rate-limit rules at run time: the TOML rules plus
//! envoyproxy/ratelimit YAML files (`--rls-config`), swapped whole and
//! atomically on reload, with the per-rule Prometheus counters, the load
//! metrics and the debug view of what is loaded.

pub mod load;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::config::RlsOptions;
use crate::core::rls::{
    Answer, DEFAULT_NEAR_LIMIT_PERMILLE, Entry, Plan, PlanOptions, RlsRequest, RuleView, Rules, StatsHandle, Tally,
};
use crate::metrics::Samples;

pub use load::LoadError;
pub use watch::spawn as watch;

/// Most per-value series that `detailed_metric` rules may create; values
/// past it are counted in their rule's own series (the label set stays bounded).
pub const MAX_DETAILED_SERIES: usize = 10_000;

/// What the last successful load holds.
#[derive(Debug, Default)]
struct Loaded {
    /// Each YAML domain's files (several when merged).
    sources: Vec<(String, PathBuf)>,
    /// The files as last read, loaded or not: a reload only parses what changed.
    seen: Option<load::Files>,
    /// The last unreadable-path error, so a path that stays missing is
    /// logged and counted once, not at every re-read.
    unreadable: Option<LoadError>,
    /// The outcome of the last load that read something new (None before the first).
    last: Option<LastLoad>,
}

/// The outcome of the last load of the YAML rules that found the files
/// changed (or unreadable): what an operator reads after editing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastLoad {
    /// When it ran (ms since the epoch).
    pub at_ms: u64,
    /// Whether its rules were put in force.
    pub ok: bool,
    /// The version in force after it (a failure leaves the previous one).
    pub version: u64,
    /// For a failure: the file (or directory) at fault.
    pub file: Option<String>,
    /// For a failure: each problem with its key path (empty when the
    /// problem names none, e.g. a file that is not YAML).
    pub problems: Vec<LoadProblem>,
}

/// One reason a load failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadProblem {
    /// The key path in the file (`descriptors[0].rate_limit.unit`).
    pub key_path: String,
    /// What is wrong there.
    pub message: String,
}

/// The rules in force and their counters.
pub struct RlsRules {
    /// The TOML config file's rules (static).
    base: Arc<Rules>,
    current: ArcSwap<Rules>,
    options: RlsOptions,
    /// Every rule's counters by (domain, stats key), so a reload keeps counting.
    registry: Mutex<HashMap<(String, String), StatsHandle>>,
    /// `detailed_metric` series by (domain, stats key with values).
    detailed: Mutex<HashMap<(String, String), StatsHandle>>,
    loaded: Mutex<Loaded>,
    load_errors: AtomicU64,
    /// Successful loads of the YAML rules (0: none yet).
    version: AtomicU64,
    loaded_at_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl RlsRules {
    /// The TOML rules alone; [`start`] adds the YAML ones.
    pub fn new(base: Arc<Rules>, options: RlsOptions) -> RlsRules {
        RlsRules {
            current: ArcSwap::new(base.clone()),
            base,
            options,
            registry: Mutex::new(HashMap::new()),
            detailed: Mutex::new(HashMap::new()),
            loaded: Mutex::new(Loaded::default()),
            load_errors: AtomicU64::new(0),
            version: AtomicU64::new(0),
            loaded_at_ms: AtomicU64::new(0),
        }
    }

    /// The rules in force (one atomic load; the set is never half-swapped).
    pub fn current(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    /// [`RlsRules::current`] for the request path: a guard that avoids
    /// touching the shared reference count (no cache-line ping-pong between cores).
    pub fn guard(&self) -> arc_swap::Guard<Arc<Rules>> {
        self.current.load()
    }

    /// Global shadow mode and response headers, for [`Rules::plan_with`].
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            shadow_mode: self.options.shadow_mode,
            ratelimit_headers: self.options.ratelimit_headers,
            near_limit_permille: self.options.near_limit_permille.unwrap_or(DEFAULT_NEAR_LIMIT_PERMILLE),
        }
    }

    /// The static settings.
    pub fn options(&self) -> &RlsOptions {
        &self.options
    }

    /// Rule-file load failures so far.
    pub fn load_errors(&self) -> u64 {
        self.load_errors.load(Ordering::Relaxed)
    }

    /// Successful loads so far.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Why the replica is not ready for its YAML rules: a path that loaded
    /// no domain (None without a path, or with domains loaded).
    pub fn not_ready(&self) -> Option<String> {
        let path = self.options.path.as_ref()?;
        if self.version() > 0 && lock(&self.loaded).sources.is_empty() {
            return Some(format!("--rls-config {}: {}", path.display(), load::no_rule_file(path)));
        }
        None
    }

    /// Re-reads the YAML path; when its files changed, compiles them and
    /// swaps the whole rule set. A bad file keeps the rules in force, is
    /// logged naming the file and counted. Ok(true) when rules were swapped.
    pub fn reload(&self) -> Result<bool, LoadError> {
        let Some(path) = &self.options.path else { return Ok(false) };
        let mut loaded = lock(&self.loaded);
        let files = match load::read(path) {
            Ok(files) => files,
            Err(e) if loaded.unreadable.as_ref() == Some(&e) => return Err(e),
            Err(e) => {
                loaded.unreadable = Some(e.clone());
                loaded.seen = None;
                loaded.last = Some(self.failure(&e));
                return Err(self.failed(e));
            }
        };
        loaded.unreadable = None;
        if loaded.seen.as_ref() == Some(&files) {
            return Ok(false);
        }
        let compiled = {
            let mut registry = lock(&self.registry);
            load::compile(&files, &self.base, self.options.merge_domains, &mut |domain, key| {
                registry.entry((domain.to_owned(), key.to_owned())).or_default().clone()
            })
        };
        loaded.seen = Some(files);
        match compiled {
            Ok((rules, sources)) => {
                let domains = sources.len();
                self.current.store(Arc::new(rules));
                loaded.sources = sources;
                let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
                let at_ms = now_ms();
                self.loaded_at_ms.store(at_ms, Ordering::Relaxed);
                loaded.last = Some(LastLoad { at_ms, ok: true, version, file: None, problems: Vec::new() });
                tracing::info!(path = %path.display(), domains, version, "Envoy rate-limit rules loaded");
                Ok(true)
            }
            Err(e) => {
                loaded.last = Some(self.failure(&e));
                Err(self.failed(e))
            }
        }
    }

    fn failure(&self, e: &LoadError) -> LastLoad {
        LastLoad {
            at_ms: now_ms(),
            ok: false,
            version: self.version(),
            file: Some(e.path.clone()),
            problems: e.key_paths().into_iter().map(|(key_path, message)| LoadProblem { key_path, message }).collect(),
        }
    }

    /// The outcome of the last load that read something new.
    pub fn last_load(&self) -> Option<LastLoad> {
        lock(&self.loaded).last.clone()
    }

    /// While the last load failed: what failed, in one line (the rules of
    /// the version before it stay in force). For the alert.
    pub fn reload_failure(&self) -> Option<String> {
        let last = self.last_load().filter(|l| !l.ok)?;
        let problems: Vec<String> = last
            .problems
            .iter()
            .map(|p| if p.key_path.is_empty() { p.message.clone() } else { format!("{}: {}", p.key_path, p.message) })
            .collect();
        Some(format!(
            "Envoy rule files not loaded: {}: {} (version {} stays in force)",
            last.file.unwrap_or_default(),
            problems.join("; "),
            last.version
        ))
    }

    fn failed(&self, e: LoadError) -> LoadError {
        self.load_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "Envoy rate-limit rules not loaded; the rules in force stay");
        e
    }

    /// Adds each matched rule's tally of one answered request to its counters.
    pub fn record(&self, request: &RlsRequest<'_>, plan: &Plan<'_>, answer: &Answer) {
        let rows = plan.descriptors.iter().zip(&answer.statuses).zip(request.descriptors());
        for ((planned, status), entries) in rows {
            let Some(rate) = planned.rate() else { continue };
            if status.tally == Tally::default() {
                continue;
            }
            if rate.detailed_metric {
                self.detailed_stats(request.domain, entries, &rate.stats).0.add(&status.tally);
            } else {
                rate.stats.0.add(&status.tally);
            }
        }
    }

    /// The per-value series of a `detailed_metric` rule: `key_value` per
    /// entry joined by dots, as envoyproxy/ratelimit's detailed stats key.
    fn detailed_stats(&self, domain: &str, entries: &[Entry<'_>], rule: &StatsHandle) -> StatsHandle {
        let mut key = String::new();
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                key.push('.');
            }
            let _ = write!(key, "{}_{}", e.key, e.value);
        }
        let id = (domain.to_owned(), key);
        let mut detailed = lock(&self.detailed);
        if let Some(stats) = detailed.get(&id) {
            return stats.clone();
        }
        if detailed.len() >= MAX_DETAILED_SERIES {
            return rule.clone();
        }
        detailed.entry(id).or_default().clone()
    }

    /// Registers the per-rule counters and the load metrics in a scrape's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let mut series: BTreeMap<(String, String), [u64; 5]> = BTreeMap::new();
        self.current().for_each_rate(|domain, rate| {
            let values = rate.stats.0.values();
            // A detailed rule's own series holds only the overflow past MAX_DETAILED_SERIES.
            if !rate.detailed_metric || values[0] > 0 {
                series.insert((domain.to_owned(), rate.stats_key.clone()), values);
            }
        });
        for ((domain, key), stats) in lock(&self.detailed).iter() {
            series.insert((domain.clone(), key.clone()), stats.0.values());
        }
        let counters = [
            ("hits", "Hits (hits_addend) on each Envoy rate-limit rule"),
            ("over_limit", "Hits over the rule's limit (shadow-mode ones included)"),
            (
                "near_limit",
                "Hits within the limit but above its near-limit ratio (FLOODGATE_RLS_NEAR_LIMIT_RATIO, 0.8 by default)",
            ),
            ("within_limit", "Hits within the rule's limit"),
            ("shadow_mode", "Hits over the limit let through in shadow mode"),
        ];
        for (i, (name, help)) in counters.iter().enumerate() {
            let samples = series
                .iter()
                .map(|((domain, rule), values)| {
                    (vec![("domain", domain.clone()), ("rule", rule.clone())], ConstCounter::new(values[i]))
                })
                .collect();
            registry.register(format!("floodgate_rls_rule_{name}"), *help, Samples(samples));
        }
        registry.register(
            "floodgate_rls_config_load_errors",
            "Envoy rule files that could not be loaded",
            Samples(vec![(Vec::new(), ConstCounter::new(self.load_errors()))]),
        );
        registry.register(
            "floodgate_rls_config_version",
            "Successful loads of the Envoy rule files",
            Samples(vec![(Vec::new(), ConstGauge::new(self.version()))]),
        );
        registry.register(
            "floodgate_rls_config_last_load_failed",
            "1 while the last load of the Envoy rule files failed (the rules before it stay in force), else 0",
            Samples(vec![(Vec::new(), ConstGauge::new(u64::from(self.reload_failure().is_some())))]),
        );
        let at = self.loaded_at_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        registry.register(
            "floodgate_rls_config_loaded_timestamp_seconds",
            "When the rules in force were loaded",
            Samples(vec![(Vec::new(), ConstGauge::new(at))]),
        );
    }

    /// The loaded rules (envoyproxy/ratelimit's `/rlconfig`): domains with
    /// their source, rules with their stats keys, and the load's version and time.
    pub fn view(&self) -> RulesView {
        // A merged domain lists its files, comma-separated, in file order.
        let mut sources: HashMap<String, String> = HashMap::new();
        for (domain, path) in &lock(&self.loaded).sources {
            let files = sources.entry(domain.clone()).or_default();
            if !files.is_empty() {
                files.push_str(", ");
            }
            files.push_str(&path.display().to_string());
        }
        let mut domains: BTreeMap<String, DomainView> = BTreeMap::new();
        for rule in self.current().view() {
            let domain = rule.domain.clone();
            domains
                .entry(domain.clone())
                .or_insert_with(|| DomainView {
                    domain: domain.clone(),
                    source: sources.get(&domain).cloned().unwrap_or_else(|| "config file [rls]".to_owned()),
                    rules: Vec::new(),
                })
                .rules
                .push(rule);
        }
        RulesView {
            path: self.options.path.as_ref().map(|p| p.display().to_string()),
            version: self.version(),
            loaded_at_ms: self.loaded_at_ms.load(Ordering::Relaxed),
            load_errors: self.load_errors(),
            last_load: self.last_load(),
            shadow_mode: self.options.shadow_mode,
            ratelimit_headers: self.options.ratelimit_headers,
            domains: domains.into_values().collect(),
        }
    }
}

/// The debug view of the loaded rules.
#[derive(Debug, Clone, Serialize)]
pub struct RulesView {
    /// The YAML file or directory watched, if any.
    pub path: Option<String>,
    /// Successful loads since start.
    pub version: u64,
    /// When the rules in force were loaded (ms since the epoch).
    pub loaded_at_ms: u64,
    /// Files refused since start.
    pub load_errors: u64,
    /// The last load that read something new: when, its outcome, and for
    /// a failure the file, key paths and messages.
    pub last_load: Option<LastLoad>,
    /// Global shadow mode.
    pub shadow_mode: bool,
    /// Whether `RateLimit-*` response headers are added.
    pub ratelimit_headers: bool,
    /// The loaded domains.
    pub domains: Vec<DomainView>,
}

/// One domain of the debug view.
#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    /// The domain's name.
    pub domain: String,
    /// The YAML file, or the TOML config file's `[rls]` table.
    pub source: String,
    /// The domain's rules.
    pub rules: Vec<RuleView>,
}

/// Loads the YAML rules once (a bad file refuses the start) and watches
/// the path for changes.
pub fn start(rules: &Arc<RlsRules>) -> Result<(), LoadError> {
    if rules.options.path.is_none() {
        return Ok(());
    }
    rules.reload()?;
    watch(rules);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_the_variable_they_refuse() {
        let ok = RlsOptions::parse(None, Some("true"), Some("ratelimit")).unwrap();
        assert!(ok.shadow_mode && ok.ratelimit_headers);
        assert_eq!(RlsOptions::parse(None, None, None).unwrap(), RlsOptions::default());
        assert!(RlsOptions::parse(None, Some("yes"), None).unwrap_err().contains("FLOODGATE_RLS_SHADOW_MODE"));
        assert!(RlsOptions::parse(None, None, Some("draft")).unwrap_err().contains("FLOODGATE_RLS_RESPONSE_HEADERS"));
        assert_eq!(RlsOptions::near_limit_permille(Some("0.9")), Ok(Some(900)));
        assert_eq!(RlsOptions::near_limit_permille(None), Ok(None));
        for bad in ["1.5", "-0.1", "most"] {
            assert!(RlsOptions::near_limit_permille(Some(bad)).unwrap_err().contains("FLOODGATE_RLS_NEAR_LIMIT_RATIO"));
        }
        assert_eq!(RlsOptions::merge_domains(Some("true")), Ok(true));
        assert!(RlsOptions::merge_domains(Some("yes")).unwrap_err().contains("FLOODGATE_RLS_MERGE_DOMAINS"));
    }

    #[test]
    fn a_missing_path_is_counted_once_and_unchanged_files_are_not_reparsed() {
        let path = std::env::temp_dir().join(format!("floodgate-rls-unit-{}.yaml", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let options = RlsOptions { path: Some(path.clone()), ..RlsOptions::default() };
        let rules = RlsRules::new(Arc::new(Rules::default()), options);
        assert!(rules.reload().is_err());
        assert!(rules.reload().is_err());
        assert_eq!(rules.load_errors(), 1, "the same unreadable path is counted once");
        std::fs::write(&path, "domain: d\n").unwrap();
        assert_eq!(rules.reload(), Ok(true));
        assert_eq!(rules.reload(), Ok(false), "unchanged files are not swapped again");
        assert_eq!((rules.version(), rules.current().domain_names()), (1, vec!["d"]));
        std::fs::write(&path, "domain: d\nbogus: 1\n").unwrap();
        assert!(rules.reload().unwrap_err().to_string().contains("unknown field `bogus`"));
        assert!(rules.reload().is_ok_and(|swapped| !swapped), "a bad file is read once");
        assert_eq!((rules.load_errors(), rules.version()), (2, 1));
        let _ = std::fs::remove_file(&path);
    }
}
