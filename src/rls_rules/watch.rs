//! Live reload: a file-system watch on the rule path (inotify on Linux)
//! wakes a reload at once; a periodic re-read catches what a watch can
//! miss (a ConfigMap's symlink swap seen from a watch that was set on the
//! old target, network file systems). A reload only parses changed files.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::RlsRules;

/// How often the path is re-read without a notification.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Lets a burst of writes (an editor, a `kubectl apply`) settle before reading.
const SETTLE: Duration = Duration::from_millis(50);

/// Watches the rules' path until the rules are dropped.
pub fn spawn(rules: &Arc<RlsRules>) {
    let Some(path) = rules.options.path.clone() else { return };
    let changed = Arc::new(Notify::new());
    let watcher = watch_path(&path, changed.clone());
    let rules: Weak<RlsRules> = Arc::downgrade(rules);
    tokio::spawn(async move {
        // Dropped with the task: the watch ends with it.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = changed.notified() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            let Some(rules) = rules.upgrade() else { return };
            // Errors are logged and counted by reload; the rules in force stay.
            let _ = tokio::task::spawn_blocking(move || rules.reload()).await;
        }
    });
}

/// A watch on the directory holding the rules (the path itself when it is
/// one): renames and symlink swaps show there, not on the old file.
fn watch_path(path: &Path, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let dir = if path.is_dir() { path.to_owned() } else { path.parent().unwrap_or(Path::new(".")).to_owned() };
    let dir = if dir.as_os_str().is_empty() { Path::new(".").to_owned() } else { dir };
    let made = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            changed.notify_one();
        }
    });
    let mut watcher = match made {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the Envoy rule files; re-reading them every second instead");
            return None;
        }
    };
    // The peer's layout keeps the rules under `config/` (and deeper): watch all of it.
    let mode = if dir.join(super::load::APP_DIRECTORY).is_dir() {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    if let Err(e) = watcher.watch(&dir, mode) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the Envoy rule files; re-reading them every second instead");
        return None;
    }
    Some(watcher)
}
