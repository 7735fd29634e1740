//! Reading envoyproxy/ratelimit's YAML rules: a file, a directory whose
//! `*.yaml` / `*.yml` files each hold one domain, or the peer's runtime
//! directory (rules under its `config/`), parsed strictly (unknown
//! keys refused) and compiled by the core; every refusal names the file
//! and the key path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::core::rls::{DomainConfig, Rules, StatsFor};

/// A rule file or directory that cannot be used; the message names the
/// file and each bad key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {}", problems.join("; "))]
pub struct LoadError {
    /// The file (or directory) at fault.
    pub path: String,
    /// One line per problem, each starting with its key path.
    pub problems: Vec<String>,
}

impl LoadError {
    fn new(path: &Path, problem: impl Into<String>) -> LoadError {
        LoadError { path: path.display().to_string(), problems: vec![problem.into()] }
    }

    /// Each problem as (key path, message): the key path is what the
    /// problem starts with (`descriptors[0].rate_limit.unit`, `domain`),
    /// empty when it names none (a file that is not YAML, an unreadable path).
    pub fn key_paths(&self) -> Vec<(String, String)> {
        self.problems
            .iter()
            .map(|problem| match problem.split_once(": ") {
                Some((key, message)) if is_key_path(key) => (key.to_owned(), message.to_owned()),
                _ => (String::new(), problem.clone()),
            })
            .collect()
    }
}

/// `descriptors[0].rate_limit.unit`, `domain`, `rls.domains[1]`: names,
/// indexes and dots only.
fn is_key_path(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '[' | ']' | '.'))
        && !text.starts_with(|c: char| c.is_ascii_digit())
}

/// The rule files under a path and their bytes, in name order: what a
/// reload compares to decide whether anything changed.
pub type Files = Vec<(PathBuf, Vec<u8>)>;

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'))
}

fn is_rule_file(path: &Path) -> bool {
    let yaml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml");
    !is_hidden(path) && yaml
}

/// The subdirectory envoyproxy/ratelimit reads its rules from under
/// `RUNTIME_ROOT/RUNTIME_SUBDIRECTORY` (its `RUNTIME_APPDIRECTORY` default).
pub const APP_DIRECTORY: &str = "config";

/// Where the rule files of `path` are: the directory itself, or, in the
/// peer's runtime layout, its `config/` subdirectory.
pub fn rules_dir(path: &Path) -> PathBuf {
    let app = path.join(APP_DIRECTORY);
    if app.is_dir() { app } else { path.to_owned() }
}

/// Reads `path`: the file itself; every `*.yaml` / `*.yml` file of the
/// directory (not its subdirectories, nor hidden entries such as a
/// ConfigMap's `..data`; symbolic links are followed); or, when the
/// directory has a `config/` subdirectory (the peer's
/// `RUNTIME_ROOT/RUNTIME_SUBDIRECTORY` holding `RUNTIME_APPDIRECTORY`),
/// every rule file under `config/`, its subdirectories included, as the
/// peer reads them. Rule files beside `config/` would never be read by the
/// peer, so they are refused rather than ignored.
pub fn read(path: &Path) -> Result<Files, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![(path.to_owned(), std::fs::read(path).map_err(|e| io(path, e))?)]);
    }
    let app = path.join(APP_DIRECTORY);
    let mut names = Vec::new();
    if app.is_dir() {
        let beside = rule_files(path, false)?;
        if let Some(file) = beside.first() {
            return Err(LoadError::new(
                file,
                format!(
                    "a rule file beside {}: in the peer's runtime layout only the files under config/ are rules; move it there",
                    app.display()
                ),
            ));
        }
        names = rule_files(&app, true)?;
    } else {
        names.extend(rule_files(path, false)?);
    }
    names.sort();
    names
        .into_iter()
        .map(|file| {
            let bytes = std::fs::read(&file).map_err(|e| io(&file, e))?;
            Ok((file, bytes))
        })
        .collect()
}

fn io(p: &Path, e: std::io::Error) -> LoadError {
    LoadError::new(p, format!("cannot read: {e}"))
}

/// The rule files of `dir`, and of its (non-hidden) subdirectories when `deep`.
fn rule_files(dir: &Path, deep: bool) -> Result<Vec<PathBuf>, LoadError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let file = entry.map_err(|e| io(dir, e))?.path();
        if is_rule_file(&file) && file.is_file() {
            names.push(file);
        } else if deep && file.is_dir() && !is_hidden(&file) {
            names.extend(rule_files(&file, true)?);
        }
    }
    Ok(names)
}

/// Parses one file in envoyproxy/ratelimit's format: `domain` and
/// `descriptors`, each with `key`, `value`, `rate_limit` (`unit`,
/// `requests_per_unit`, `unlimited`, `name`, `replaces`), `shadow_mode`,
/// `detailed_metric` and nested `descriptors`. Duplicate keys are refused
/// by the YAML reader, unknown keys by the schema.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<DomainConfig, LoadError> {
    serde_norway::from_slice(bytes).map_err(|e| LoadError::new(path, e.to_string()))
}

/// Parses and compiles `files` over `base` (the TOML rules). Without
/// `merge` each domain has one source, so a domain in two files is
/// refused; with it (the peer's `MERGE_DOMAIN_CONFIG`) the files of one
/// domain are merged, their top-level rules appended in file order, and a
/// rule repeated across them (same key and value) is refused naming both
/// files, as the peer refuses a duplicate composite key. A domain in a file
/// and in the TOML config is refused either way. Returns the merged rules
/// and each YAML domain's files.
pub fn compile(
    files: &Files,
    base: &Rules,
    merge: bool,
    stats: &mut StatsFor<'_>,
) -> Result<(Rules, Vec<(String, PathBuf)>), LoadError> {
    let mut rules = base.clone();
    // Each domain's merged config and the files it came from, in file order.
    let mut domains: Vec<(DomainConfig, Vec<(PathBuf, usize)>)> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (path, bytes) in files {
        let domain = parse(path, bytes)?;
        if base.has_domain(&domain.domain) {
            return Err(LoadError::new(
                path,
                format!(
                    "domain: {:?} is also configured in the TOML config ([rls]); one domain has one source",
                    domain.domain
                ),
            ));
        }
        // Each file must hold on its own, so its errors name it.
        Rules::compile_domains(&[(String::new(), &domain)], true, &mut |_, _| Default::default())
            .map_err(|errors| problems(path, errors))?;
        let Some(&at) = by_name.get(&domain.domain) else {
            by_name.insert(domain.domain.clone(), domains.len());
            let count = domain.descriptors.len();
            domains.push((domain, vec![(path.clone(), count)]));
            continue;
        };
        let (merged, sources) = &mut domains[at];
        if !merge {
            return Err(LoadError::new(
                path,
                format!(
                    "domain: {:?} is also configured in {}; one domain has one file (or set --rls-merge-domains)",
                    domain.domain,
                    sources[0].0.display()
                ),
            ));
        }
        for (i, rule) in domain.descriptors.iter().enumerate() {
            let mut offset = 0;
            for (other, count) in sources.iter() {
                let earlier = &merged.descriptors[offset..offset + count];
                if let Some(j) = earlier.iter().position(|r| r.key == rule.key && r.value == rule.value) {
                    return Err(LoadError::new(
                        path,
                        format!(
                            "descriptors[{i}]: merging domain {:?}: {} descriptors[{j}] already has key {:?} and {}",
                            domain.domain,
                            other.display(),
                            rule.key,
                            rule.value.as_ref().map_or("no value".to_owned(), |v| format!("value {v:?}"))
                        ),
                    ));
                }
                offset += count;
            }
        }
        sources.push((path.clone(), domain.descriptors.len()));
        merged.descriptors.extend(domain.descriptors);
    }
    let mut sources = Vec::new();
    for (domain, files) in &domains {
        let first = &files[0].0;
        let compiled = Rules::compile_domains(&[(String::new(), domain)], true, stats)
            .map_err(|errors| problems(first, errors))?;
        rules = rules.merged(compiled);
        sources.extend(files.iter().map(|(path, _)| (domain.domain.clone(), path.clone())));
    }
    sources.sort();
    Ok((rules, sources))
}

fn problems(path: &Path, errors: Vec<crate::core::rls::Invalid>) -> LoadError {
    LoadError {
        path: path.display().to_string(),
        problems: errors.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect(),
    }
}

/// Why a path holding no rule file loads nothing (check-config refuses
/// it; `serve` is not ready with it).
pub fn no_rule_file(path: &Path) -> String {
    format!(
        "holds no rule file (*.yaml or *.yml, in {} or in its config/ subdirectory): no Envoy domain is loaded",
        path.display()
    )
}

/// `check-config --rls-config`: reads and compiles `path` alone; the
/// domains it holds. A path holding no rule file is refused: it would
/// load nothing and every request would pass.
pub fn check(path: &Path, merge: bool) -> Result<Vec<String>, LoadError> {
    let files = read(path)?;
    if files.is_empty() {
        return Err(LoadError::new(path, no_rule_file(path)));
    }
    let (_, sources) = compile(&files, &Rules::default(), merge, &mut |_, _| Default::default())?;
    let mut domains: Vec<String> = sources.into_iter().map(|(domain, _)| domain).collect();
    domains.dedup();
    Ok(domains)
}
