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
    pub http: Option<std::net::SocketAddr>,
    /// Where stderr goes when logs are captured.
    log: Option<TempFile>,
    _config: TempFile,
}

impl Process {
    /// Starts `floodgate serve` (production profile, test tokens) with `config` as its TOML file.
    pub fn spawn(store: &str, config: &str) -> Process {
        Self::start(store, config, false, &[])
    }

    /// [`Process::spawn`] with extra environment variables.
    pub fn spawn_with_env(store: &str, config: &str, env: &[(&str, &str)]) -> Process {
        Self::start(store, config, false, env)
    }

    /// [`Process::spawn`] with stderr (the logs) captured to a file.
    pub fn spawn_logged(store: &str, config: &str) -> Process {
        Self::start(store, config, true, &[])
    }

    /// [`Process::spawn_logged`] with extra environment variables.
    pub fn spawn_logged_with_env(store: &str, config: &str, env: &[(&str, &str)]) -> Process {
        Self::start(store, config, true, env)
    }

    fn start(store: &str, config: &str, logged: bool, env: &[(&str, &str)]) -> Process {
        let config = temp_file(config);
        let log = logged.then(|| temp_file(""));
        let stderr = match &log {
            Some(file) => Stdio::from(std::fs::File::create(&file.0).unwrap()),
            None => Stdio::null(),
        };
        let mut child = Command::new(BIN)
            .args(["serve", "--profile", "production", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--store")
            .arg(store)
            .arg("--config")
            .arg(&config.0)
            .env("FLOODGATE_ADMIN_TOKENS", ADMIN)
            .env("FLOODGATE_FRONTEND_TOKENS", FRONTEND)
            .env("FLOODGATE_WORKER_TOKENS", WORKER)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("floodgate starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("listening line");
        let grpc = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("grpc="))
            .unwrap_or_else(|| panic!("no grpc= in {line:?}"))
            .to_owned();
        let http = line.split_whitespace().find_map(|w| w.strip_prefix("http=")).and_then(|a| a.parse().ok());
        Process { child, grpc, http, log, _config: config }
    }

    /// SIGTERM, wait, and return everything logged.
    pub fn stop_and_read_logs(mut self) -> String {
        self.signal("TERM");
        let _ = self.child.wait();
        self.log.as_ref().map(|f| std::fs::read_to_string(&f.0).unwrap_or_default()).unwrap_or_default()
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
