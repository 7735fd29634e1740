//! The `floodgate` binary: command line → config → telemetry → app.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use floodgate::app::{App, AppError};
use floodgate::cli::AdminArgs;
use floodgate::config::{self, Profile, StaticSettings};

#[derive(Parser)]
#[command(name = "floodgate", version, about = "gRPC admission control for chat platforms")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: StaticSettings,
}

// Parsed once at startup: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve(StaticSettings),
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
        /// Merge the rule files of one domain (as `serve --rls-merge-domains`).
        #[arg(long, env = "FLOODGATE_RLS_MERGE_DOMAINS", num_args = 0..=1, default_missing_value = "true")]
        rls_merge_domains: Option<String>,
    },
    /// Operate a running floodgate over gRPC: status, capacity, breakers, config, alerts, throttling.
    Admin(AdminArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Some(Command::CheckConfig { file, profile, rls_config, rls_merge_domains }) => {
            match floodgate::config::RlsOptions::merge_domains(rls_merge_domains.as_deref()) {
                Ok(merge) => check_config(file, profile, rls_config, merge),
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Admin(args)) => floodgate::cli::run(args),
        Some(Command::Serve(_)) => serve(matches.subcommand_matches("serve").unwrap_or(&matches)),
        None => serve(&matches),
    }
}

/// `check-config`: the TOML file and/or the Envoy YAML rules, each answered
/// on its own line; non-zero if either is refused.
fn check_config(file: Option<PathBuf>, profile: Option<Profile>, rls_config: Option<PathBuf>, merge: bool) -> ExitCode {
    let toml = file.map(|file| match config::check_file(&file, profile) {
        Ok((profile, _)) => Ok(format!("{}: valid ({profile} profile)", file.display())),
        Err(e) => Err(e.to_string()),
    });
    let rls = rls_config.map(|path| {
        floodgate::rls_rules::load::check(&path, merge)
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

fn serve(matches: &ArgMatches) -> ExitCode {
    let settings = match StaticSettings::resolve(matches) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("floodgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Refused before anything starts, like a bad setting.
    let telemetry = match floodgate::telemetry::TelemetrySettings::from_env() {
        Ok(telemetry) => telemetry,
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
        let telemetry = floodgate::telemetry::init(settings.profile, telemetry);
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
