//! The real `floodgate` binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ADMIN, FRONTEND, WORKER};

pub const BIN: &str = env!("CARGO_BIN_EXE_floodgate");

/// A temp file removed on drop.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn temp_file(text: &str) -> TempFile {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "floodgate-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).expect("write temp config");
    TempFile(path)
}

/// A floodgate child process on free ports; SIGKILLed on drop if still running.
pub struct Process {
    pub child: Child,
    pub grpc: String,
    _config: TempFile,
}

impl Process {
    /// Starts `floodgate serve` (production profile, test tokens) with `config` as its TOML file.
    pub fn spawn(store: &str, config: &str) -> Process {
        let config = temp_file(config);
        let mut child = Command::new(BIN)
            .args(["serve", "--profile", "production", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--store")
            .arg(store)
            .arg("--config")
            .arg(&config.0)
            .env("FLOODGATE_ADMIN_TOKENS", ADMIN)
            .env("FLOODGATE_FRONTEND_TOKENS", FRONTEND)
            .env("FLOODGATE_WORKER_TOKENS", WORKER)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("floodgate starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("listening line");
        let grpc = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("grpc="))
            .unwrap_or_else(|| panic!("no grpc= in {line:?}"))
            .to_owned();
        Process { child, grpc, _config: config }
    }

    /// Sends a signal by name (TERM, KILL).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
