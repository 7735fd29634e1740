//! The `floodgate` binary: command line → config → telemetry → app.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use floodgate::app::{App, AppError};
use floodgate::config::{self, Profile, ServeOptions, Tokens};

#[derive(Parser)]
#[command(name = "floodgate", version, about = "gRPC admission control for chat platforms")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at startup: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// Validate a TOML config file and/or Envoy YAML rules; exits non-zero naming the bad field.
    CheckConfig {
        /// The TOML file to check.
        #[arg(required_unless_present = "rls_config")]
        file: Option<PathBuf>,
        /// Profile whose defaults the file overrides (else the file's own).
        #[arg(long)]
        profile: Option<Profile>,
        /// envoyproxy/ratelimit YAML rules to check: a file or a directory.
        #[arg(long)]
        rls_config: Option<PathBuf>,
    },
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "FLOODGATE_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// HTTP shim listen address.
    #[arg(long, env = "FLOODGATE_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// `memory`, or Redis: `redis://host:port/db`, `rediss://…` (TLS),
    /// `redis-cluster://h1:p1,h2:p2/`, `redis+sentinel://s1:p1,s2:p2/master/db`.
    #[arg(long, env = "FLOODGATE_STORE")]
    store: Option<String>,
    /// PEM CA for a TLS store URL (rediss…); default: the platform's trust store.
    #[arg(long, env = "FLOODGATE_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// PEM client certificate chain for Redis mutual TLS (with --redis-client-key).
    #[arg(long, env = "FLOODGATE_REDIS_CLIENT_CERT")]
    redis_client_cert: Option<PathBuf>,
    /// PEM private key for --redis-client-cert.
    #[arg(long, env = "FLOODGATE_REDIS_CLIENT_KEY")]
    redis_client_key: Option<PathBuf>,
    /// development, production or loadtest.
    #[arg(long, env = "FLOODGATE_PROFILE")]
    profile: Option<Profile>,
    /// Optional TOML config file.
    #[arg(long, env = "FLOODGATE_CONFIG")]
    config: Option<PathBuf>,
    /// PEM certificate chain: TLS on both listeners (with --tls-key).
    #[arg(long, env = "FLOODGATE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "FLOODGATE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA: clients must present a certificate it issued (mutual TLS).
    #[arg(long, env = "FLOODGATE_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// envoyproxy/ratelimit YAML rules: a file, or a directory of one file per domain (reloaded live).
    #[arg(long, env = "FLOODGATE_RLS_CONFIG")]
    rls_config: Option<PathBuf>,
}

fn env_tokens(name: &str) -> Vec<String> {
    std::env::var(name).map(|v| Tokens::parse_list(&v)).unwrap_or_default()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file, profile, rls_config }) => {
            let toml = file.map(|file| match config::check_file(&file, profile) {
                Ok((profile, _)) => Ok(format!("{}: valid ({profile} profile)", file.display())),
                Err(e) => Err(e.to_string()),
            });
            let rls = rls_config.map(|path| {
                floodgate::rls_rules::load::check(&path)
                    .map(|domains| format!("{}: valid Envoy rules (domains: {})", path.display(), domains.join(", ")))
                    .map_err(|e| e.to_string())
            });
            let mut code = ExitCode::SUCCESS;
            for result in [toml, rls].into_iter().flatten() {
                match result {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("{e}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
            code
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let rls = floodgate::rls_rules::RlsOptions::parse(
        args.rls_config,
        env("FLOODGATE_RLS_SHADOW_MODE").as_deref(),
        env("FLOODGATE_RLS_RESPONSE_HEADERS").as_deref(),
    );
    let rls = match rls {
        Ok(rls) => rls,
        Err(e) => {
            eprintln!("floodgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = ServeOptions {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        store: args.store,
        profile: args.profile,
        config: args.config,
        replica_id: std::env::var("FLOODGATE_REPLICA_ID").ok(),
        redis_prefix: std::env::var("FLOODGATE_REDIS_PREFIX").ok(),
        redis_min_replicas: std::env::var("FLOODGATE_REDIS_MIN_REPLICAS").ok(),
        redis_ca_file: args.redis_ca_file,
        redis_client_cert: args.redis_client_cert,
        redis_client_key: args.redis_client_key,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        tokens: Tokens {
            admin: env_tokens("FLOODGATE_ADMIN_TOKENS"),
            frontend: env_tokens("FLOODGATE_FRONTEND_TOKENS"),
            worker: env_tokens("FLOODGATE_WORKER_TOKENS"),
        },
        rls,
    };
    let settings = match options.resolve() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("floodgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("floodgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let telemetry =
            floodgate::telemetry::init(settings.profile, std::env::var("FLOODGATE_LOG_FORMAT").ok().as_deref());
        let app = App::bind(settings.clone()).await?;
        if telemetry.exporting() {
            tracing::info!("exporting OpenTelemetry spans over OTLP");
        }
        tracing::info!(
            grpc = %app.grpc_addr(), http = %app.http_addr(), profile = %settings.profile,
            replica = %settings.replica_id, "floodgate listening"
        );
        // Signal handlers exist before anyone learns the address, so an
        // early SIGTERM is a graceful shutdown, not a kill.
        let shutdown = shutdown_signal()?;
        // A stable line for scripts and tests that start floodgate on port 0.
        println!("floodgate listening grpc={} http={}", app.grpc_addr(), app.http_addr());
        let served = app.serve(shutdown).await;
        drop(telemetry); // flushes pending spans
        served
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floodgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the SIGTERM / SIGINT handlers now; the future resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let cannot = |e: std::io::Error| AppError::Serve(format!("cannot install signal handlers: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
    let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}
