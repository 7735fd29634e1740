//! Reading envoyproxy/ratelimit's YAML rules: a file, or a directory whose
//! `*.yaml` / `*.yml` files each hold one domain, parsed strictly (unknown
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
}

/// The rule files under a path and their bytes, in name order: what a
/// reload compares to decide whether anything changed.
pub type Files = Vec<(PathBuf, Vec<u8>)>;

fn is_rule_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    let yaml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml");
    !hidden && yaml
}

/// Reads `path`: the file itself, or every `*.yaml` / `*.yml` file of the
/// directory (not its subdirectories, nor hidden entries such as a
/// ConfigMap's `..data`; symbolic links are followed).
pub fn read(path: &Path) -> Result<Files, LoadError> {
    let io = |p: &Path, e: std::io::Error| LoadError::new(p, format!("cannot read: {e}"));
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![(path.to_owned(), std::fs::read(path).map_err(|e| io(path, e))?)]);
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
        let file = entry.map_err(|e| io(path, e))?.path();
        if is_rule_file(&file) && file.is_file() {
            names.push(file);
        }
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

/// Parses one file in envoyproxy/ratelimit's format: `domain` and
/// `descriptors`, each with `key`, `value`, `rate_limit` (`unit`,
/// `requests_per_unit`, `unlimited`, `name`, `replaces`), `shadow_mode`,
/// `detailed_metric` and nested `descriptors`. Duplicate keys are refused
/// by the YAML reader, unknown keys by the schema.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<DomainConfig, LoadError> {
    serde_norway::from_slice(bytes).map_err(|e| LoadError::new(path, e.to_string()))
}

/// Parses and compiles `files` over `base` (the TOML rules): each domain
/// has one source, so a domain in two files, or in a file and in the TOML
/// config, is refused. Returns the merged rules and each YAML domain's file.
pub fn compile(
    files: &Files,
    base: &Rules,
    stats: &mut StatsFor<'_>,
) -> Result<(Rules, Vec<(String, PathBuf)>), LoadError> {
    let mut rules = base.clone();
    let mut sources: HashMap<String, PathBuf> = HashMap::new();
    for (path, bytes) in files {
        let domain = parse(path, bytes)?;
        if let Some(first) = sources.get(&domain.domain) {
            return Err(LoadError::new(
                path,
                format!(
                    "domain: {:?} is also configured in {}; one domain has one file",
                    domain.domain,
                    first.display()
                ),
            ));
        }
        if base.has_domain(&domain.domain) {
            return Err(LoadError::new(
                path,
                format!(
                    "domain: {:?} is also configured in the TOML config ([rls]); one domain has one source",
                    domain.domain
                ),
            ));
        }
        let compiled = Rules::compile_domains(&[(String::new(), &domain)], stats).map_err(|errors| LoadError {
            path: path.display().to_string(),
            problems: errors.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect(),
        })?;
        rules = rules.merged(compiled);
        sources.insert(domain.domain, path.clone());
    }
    let mut sources: Vec<(String, PathBuf)> = sources.into_iter().collect();
    sources.sort();
    Ok((rules, sources))
}

/// `check-config --rls-config`: reads and compiles `path` alone; the domains it holds.
pub fn check(path: &Path) -> Result<Vec<String>, LoadError> {
    let (_, sources) = compile(&read(path)?, &Rules::default(), &mut |_, _| Default::default())?;
    Ok(sources.into_iter().map(|(domain, _)| domain).collect())
}
