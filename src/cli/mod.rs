//! The operator CLI, `floodgate admin …`: the Admin RPCs over gRPC with the
//! generated client, answered as tables (default) or as JSON (`--json`).

mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::grpc::pb;

/// `floodgate admin`: where floodgate is, who asks, and what.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// floodgate's gRPC address: `host:port` (plaintext), `http://…` or `https://…`.
    #[arg(long, env = "FLOODGATE_ADMIN_TARGET", default_value = "http://127.0.0.1:50051", global = true)]
    target: String,
    /// Admin token, sent as `authorization: Bearer` (none when auth is off).
    #[arg(long, env = "FLOODGATE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// PEM CA that issued floodgate's certificate, for an `https://` target.
    #[arg(long, env = "FLOODGATE_ADMIN_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Print the answer as JSON (the seed's documents) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// The operator's questions and actions.
#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Processes, queues, capacity, circuits and alerts (GetSystemStatus).
    Status,
    /// The seed's eight-step capacity calculation and the per-user-type limits.
    Capacity,
    /// Every circuit breaker with its counters.
    Breakers,
    /// Close a circuit on every replica.
    Reset {
        /// authentication, rate_limiter, backpressure or storage.
        circuit: String,
    },
    /// The live configuration: show, validate or apply a change.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The active critical, warning and info alerts.
    Alerts,
    /// Throttling per window (1h … 24h); one window in detail with --window.
    Throttling {
        /// Show this window's detail: throughput per user type, top sessions.
        #[arg(long, value_parser = render::WINDOWS)]
        window: Option<String>,
    },
    /// The Envoy rate-limit rules in force: domains, their source, each
    /// rule's stats key and limit (GetRlsConfig).
    RlsConfig,
}

/// `floodgate admin config …`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Every setting in force with its source (GetEnvironment).
    Show,
    /// Check a change and preview its capacity; changes nothing.
    Validate {
        /// A JSON object of runtime settings, or a TOML file (its `[runtime]` table if it has one).
        file: PathBuf,
    },
    /// Validate and apply a change on every replica.
    Apply {
        /// A JSON object of runtime settings, or a TOML file (its `[runtime]` table if it has one).
        file: PathBuf,
    },
}

/// Why an admin command failed; shown as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The target is not a URI, or an `https://` one without a CA.
    #[error(
        "invalid --target {0:?} (expected e.g. 127.0.0.1:50051 or http://127.0.0.1:50051; https:// needs --ca-file)"
    )]
    Target(String),
    /// No connection to the target.
    #[error("cannot reach floodgate at {target}: {reason}")]
    Unreachable {
        /// The target asked for.
        target: String,
        /// The transport's reason.
        reason: String,
    },
    /// The token was missing or refused.
    #[error("the admin token was refused ({0}): set --token or FLOODGATE_ADMIN_TOKEN to an admin token")]
    Unauthenticated(String),
    /// The token is valid but not an admin's.
    #[error("permission denied ({0}): the token is not an admin token")]
    PermissionDenied(String),
    /// The token cannot be sent as a header.
    #[error("the admin token holds characters a header cannot carry")]
    Token,
    /// Any other refusal from the server.
    #[error("{code:?}: {message}")]
    Rpc {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// A config change file that cannot be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The server refused a config change (the fields are printed above).
    #[error("the change was refused: {0}")]
    Refused(String),
}

/// Runs one admin command; prints its answer, or one error line, and
/// answers the exit code (1 on any failure).
pub fn run(args: AdminArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("floodgate admin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(args)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err((output, e)) => {
            print!("{output}");
            eprintln!("floodgate admin: {e}");
            ExitCode::FAILURE
        }
    }
}

type AdminClient = pb::admin_client::AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// Attaches `authorization: Bearer <token>` to every call (nothing when no token).
#[derive(Clone)]
struct Bearer(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(bearer) = &self.0 {
            request.metadata_mut().insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

/// The URI of a `--target`: `http://…` and `https://…` as given, a bare
/// `host:port` (as grpcurl and the clients take it) as plaintext `http://`.
fn target_uri(target: &str) -> String {
    if target.contains("://") { target.to_owned() } else { format!("http://{target}") }
}

/// Connects with the token attached to every call.
async fn connect(target: &str, token: Option<&str>, ca_file: Option<&Path>) -> Result<AdminClient, CliError> {
    let uri = target_uri(target);
    let target = uri.as_str();
    let mut endpoint = Endpoint::from_shared(target.to_owned())
        .map_err(|_| CliError::Target(target.to_owned()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if target.starts_with("https://") {
        let ca_file = ca_file.ok_or_else(|| CliError::Target(format!("{target} needs --ca-file")))?;
        let ca = std::fs::read(ca_file)
            .map_err(|e| CliError::File { path: ca_file.display().to_string(), message: e.to_string() })?;
        let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca));
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| CliError::Unreachable { target: target.to_owned(), reason: error_chain(&e) })?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| CliError::Unreachable { target: target.to_owned(), reason: error_chain(&e) })?;
    let bearer = match token.filter(|t| !t.is_empty()) {
        Some(token) => Some(format!("Bearer {token}").parse::<AsciiMetadataValue>().map_err(|_| CliError::Token)?),
        None => None,
    };
    Ok(pb::admin_client::AdminClient::with_interceptor(channel, Bearer(bearer)))
}

/// An error and its sources on one line (tonic's own text is only "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn rpc_error(target: &str) -> impl Fn(Status) -> CliError + '_ {
    move |status| match status.code() {
        Code::Unauthenticated => CliError::Unauthenticated(status.message().to_owned()),
        Code::PermissionDenied => CliError::PermissionDenied(status.message().to_owned()),
        Code::Unavailable => CliError::Unreachable { target: target.to_owned(), reason: status.message().to_owned() },
        code => CliError::Rpc { code, message: status.message().to_owned() },
    }
}

/// Reads a change: a JSON object as the HTTP route takes it, or TOML
/// (a config file's `[runtime]` table, or a bare table of runtime settings).
pub fn read_change(path: &Path) -> Result<String, CliError> {
    let error = |message: String| CliError::File { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(&text) {
        return Ok(serde_json::Value::Object(object).to_string());
    }
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| error(format!("neither a JSON object nor TOML: {e}")))?;
    let runtime = match table.remove("runtime") {
        Some(toml::Value::Table(runtime)) => runtime,
        Some(_) => return Err(error("[runtime] must be a table".into())),
        None => table,
    };
    serde_json::to_string(&runtime).map_err(|e| error(e.to_string()))
}

/// The command's output (printed even on failure), or the failure.
async fn execute(args: AdminArgs) -> Result<String, (String, CliError)> {
    let fail = |e| (String::new(), e);
    let target = args.target.as_str();
    let mut admin = connect(target, args.token.as_deref(), args.ca_file.as_deref()).await.map_err(fail)?;
    let rpc = rpc_error(target);
    let json = args.json;
    let show = |text: String, value: &dyn erased::Json| if json { render::json(value) } else { text };
    match args.command {
        AdminCommand::Status => {
            let status = admin.get_system_status(pb::GetSystemStatusRequest {}).await.map_err(&rpc).map_err(fail)?;
            let status = status.into_inner();
            Ok(show(render::status(&status), &status))
        }
        AdminCommand::Capacity => {
            let calculation = admin
                .get_capacity_calculation(pb::GetCapacityCalculationRequest {})
                .await
                .map_err(&rpc)
                .map_err(fail)?
                .into_inner();
            Ok(show(render::capacity(&calculation), &calculation))
        }
        AdminCommand::Breakers => {
            let breakers =
                admin.list_circuit_breakers(pb::ListCircuitBreakersRequest {}).await.map_err(&rpc).map_err(fail)?;
            let breakers = breakers.into_inner();
            Ok(show(render::breakers(&breakers), &breakers))
        }
        AdminCommand::Reset { circuit } => {
            let request = pb::ResetCircuitBreakerRequest { circuit_name: circuit };
            let reset = admin.reset_circuit_breaker(request).await.map_err(&rpc).map_err(fail)?.into_inner();
            Ok(show(format!("circuit {}: {}\n", reset.circuit_name, reset.state), &reset))
        }
        AdminCommand::Alerts => {
            let alerts = admin.list_alerts(pb::ListAlertsRequest {}).await.map_err(&rpc).map_err(fail)?.into_inner();
            Ok(show(render::alerts(&alerts), &alerts))
        }
        AdminCommand::Throttling { window } => {
            let stats =
                admin.get_throttling_stats(pb::GetThrottlingStatsRequest {}).await.map_err(&rpc).map_err(fail)?;
            let stats = stats.into_inner();
            match window {
                None => Ok(show(render::throttling(&stats), &stats)),
                Some(window) => {
                    let period = stats.throttling_by_period.get(&window).cloned().unwrap_or_default();
                    Ok(show(render::throttling_window(&window, &period), &period))
                }
            }
        }
        AdminCommand::RlsConfig => {
            let config =
                admin.get_rls_config(pb::GetRlsConfigRequest {}).await.map_err(&rpc).map_err(fail)?.into_inner();
            Ok(show(render::rls_config(&config), &config))
        }
        AdminCommand::Config(ConfigCommand::Show) => {
            let environment =
                admin.get_environment(pb::GetEnvironmentRequest {}).await.map_err(&rpc).map_err(fail)?.into_inner();
            Ok(show(render::environment(&environment), &environment))
        }
        AdminCommand::Config(ConfigCommand::Validate { file }) => {
            let change = pb::ConfigChange { runtime_json: read_change(&file).map_err(fail)?, ..Default::default() };
            let review = admin.validate_config(change).await.map_err(&rpc).map_err(fail)?.into_inner();
            let output = show(render::review(&review), &review);
            if review.valid {
                Ok(output)
            } else {
                Err((output, CliError::Refused(render::field_errors(&review.errors))))
            }
        }
        AdminCommand::Config(ConfigCommand::Apply { file }) => {
            let change = pb::ConfigChange { runtime_json: read_change(&file).map_err(fail)?, ..Default::default() };
            let update = admin.update_config(change).await.map_err(&rpc).map_err(fail)?.into_inner();
            let output = show(render::update(&update), &update);
            if update.applied {
                Ok(output)
            } else {
                Err((output, CliError::Refused(render::field_errors(&update.errors))))
            }
        }
    }
}

/// Any answer that `--json` can print.
mod erased {
    /// A serialisable answer behind a reference.
    pub(super) trait Json {
        /// The answer as a JSON value.
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}
