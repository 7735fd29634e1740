//! The Lua scripts: each is `lua/prelude.lua` (the clock and the GCRA step
//! they share) followed by one decision's body, run as one EVALSHA.

use redis::Script;

/// Prepended to every body: Redis scripts cannot share code otherwise.
const PRELUDE: &str = include_str!("../lua/prelude.lua");

/// Level-1 GCRA steps, batched.
pub(super) const GCRA: &str = include_str!("../lua/gcra.lua");
/// Envoy requests' checks, all or nothing.
pub(super) const RLS: &str = include_str!("../lua/rls.lua");
/// Level-2 check-and-enqueues, batched.
pub(super) const ENQUEUE: &str = include_str!("../lua/enqueue.lua");
/// The expiry sweep, then leases, batched.
pub(super) const LEASE: &str = include_str!("../lua/lease.lua");
/// Completions, batched.
pub(super) const COMPLETE: &str = include_str!("../lua/complete.lua");
const EXTEND: &str = include_str!("../lua/extend.lua");
const HEARTBEAT: &str = include_str!("../lua/heartbeat.lua");
const PROCESSES: &str = include_str!("../lua/processes.lua");
const STATS: &str = include_str!("../lua/stats.lua");
const CONFIG: &str = include_str!("../lua/config.lua");

/// A script: the prelude, then `body`.
pub(super) fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// The scripts the store calls directly (the batchers hold their own).
pub(super) struct Scripts {
    /// Envoy requests whose keys span slots of a Cluster (the batcher has its own copy).
    pub(super) rls: Script,
    pub(super) extend: Script,
    pub(super) heartbeat: Script,
    pub(super) processes: Script,
    pub(super) stats: Script,
    pub(super) config: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            rls: script(RLS),
            extend: script(EXTEND),
            heartbeat: script(HEARTBEAT),
            processes: script(PROCESSES),
            stats: script(STATS),
            config: script(CONFIG),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script source, the prelude first.
    const SOURCES: [(&str, &str); 11] = [
        ("prelude.lua", PRELUDE),
        ("gcra.lua", GCRA),
        ("rls.lua", RLS),
        ("enqueue.lua", ENQUEUE),
        ("lease.lua", LEASE),
        ("complete.lua", COMPLETE),
        ("extend.lua", EXTEND),
        ("heartbeat.lua", HEARTBEAT),
        ("processes.lua", PROCESSES),
        ("stats.lua", STATS),
        ("config.lua", CONFIG),
    ];

    /// Regression: the GCRA arithmetic was written out in both gcra.lua
    /// and rls.lua, two copies of one rule to keep in step with the core.
    #[test]
    fn the_gcra_step_is_written_once_in_the_prelude() {
        let defined: Vec<&str> = SOURCES
            .iter()
            .filter(|(_, lua)| lua.contains("local function gcra_step("))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(defined, ["prelude.lua"]);
        // No body computes an arrival time of its own.
        for (name, lua) in &SOURCES[1..] {
            assert!(!lua.contains("allow_until"), "{name} repeats the GCRA step");
        }
        for (name, lua) in [("gcra.lua", GCRA), ("rls.lua", RLS)] {
            assert!(lua.contains("gcra_step("), "{name} takes the prelude's step");
        }
    }

    /// The Rust files a script names as its reference (`src/….rs`).
    fn named_files(lua: &str) -> Vec<&str> {
        let mut files = Vec::new();
        let mut rest = lua;
        while let Some(at) = rest.find("src/") {
            let path = &rest[at..];
            let end = path.find(|c: char| !(c.is_ascii_alphanumeric() || "_/.".contains(c))).unwrap_or(path.len());
            files.push(path[..end].trim_end_matches('.'));
            rest = &path[end..];
        }
        files
    }

    /// Regression: rls.lua named `src/core/rls.rs` after the core's RLS
    /// rules had moved to `src/core/rls/`.
    #[test]
    fn every_file_a_script_names_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut named = 0;
        for (name, lua) in SOURCES {
            for file in named_files(lua) {
                assert!(
                    file.ends_with(".rs") && root.join(file).is_file(),
                    "{name} names {file}, which does not exist"
                );
                named += 1;
            }
        }
        assert!(named >= SOURCES.len() - 4, "the scripts name their references ({named} found)");
    }
}
