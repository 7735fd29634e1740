//! Logging and tracing: JSON lines (default) or human-readable text on
//! stderr, filtered by `RUST_LOG` or the profile's default level; and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
//! OpenTelemetry spans exported over OTLP/gRPC, sampled by
//! `OTEL_TRACES_SAMPLER(_ARG)` in `rpc_trace` (standard OTel env vars).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::Profile;
use crate::rpc_trace::{CALL_TARGET, STORE_TARGET};

/// A telemetry setting refused at startup, naming its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct TelemetryError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// How log lines are written (`FLOODGATE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// `json` or `text` (any case); unset means `json`. Set but empty is
    /// refused: an empty value is a deployment's mistake, not a choice.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, TelemetryError> {
        let Some(value) = value else {
            return Ok(LogFormat::Json);
        };
        match value.trim() {
            v if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            v if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            other => Err(TelemetryError {
                variable: "FLOODGATE_LOG_FORMAT",
                message: format!("must be json or text, got {other:?}"),
            }),
        }
    }
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name,
/// by the OpenTelemetry spec: unset means `parentbased_always_on`; a ratio
/// defaults to 1.0. Unlike the SDK, which falls back to sampling every
/// call, an unknown name or a bad ratio is refused: a typo must not turn a
/// 1 % sampler into 100 %.
pub fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, TelemetryError> {
    let ratio = || -> Result<f64, TelemetryError> {
        let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
            return Ok(1.0);
        };
        arg.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| TelemetryError {
            variable: "OTEL_TRACES_SAMPLER_ARG",
            message: format!("must be a ratio from 0 to 1, got {arg:?}"),
        })
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.map(str::trim).unwrap_or("") {
        "" | "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        other => {
            return Err(TelemetryError {
                variable: "OTEL_TRACES_SAMPLER",
                message: format!(
                    "must be always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio, got {other:?}"
                ),
            });
        }
    })
}

/// The OTLP endpoint `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) names, checked: an `http://` or
/// `https://` URL with a host. Unset or empty means no export. A bad one is
/// refused rather than starting with tracing silently off.
pub fn otlp_endpoint(traces: Option<&str>, general: Option<&str>) -> Result<Option<String>, TelemetryError> {
    let named = |name: &'static str, value: Option<&str>| {
        value.map(str::trim).filter(|v| !v.is_empty()).map(|v| (name, v.to_owned()))
    };
    let Some((variable, endpoint)) =
        named("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces).or_else(|| named("OTEL_EXPORTER_OTLP_ENDPOINT", general))
    else {
        return Ok(None);
    };
    let uri = endpoint.parse::<axum::http::Uri>().ok();
    let scheme_ok = uri.as_ref().and_then(|u| u.scheme_str()).is_some_and(|s| s == "http" || s == "https");
    let host_ok = uri.as_ref().and_then(|u| u.host()).is_some_and(|h| !h.is_empty());
    if !(scheme_ok && host_ok) {
        return Err(TelemetryError {
            variable,
            message: format!("must be an http:// or https:// URL with a host, got {endpoint:?}"),
        });
    }
    Ok(Some(endpoint))
}

/// The telemetry settings read from the environment, checked before
/// anything starts.
#[derive(Debug)]
pub struct TelemetrySettings {
    /// `FLOODGATE_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: Sampler,
}

impl TelemetrySettings {
    /// Reads `FLOODGATE_LOG_FORMAT`, `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG`, and checks the OTLP endpoint variables.
    pub fn from_env() -> Result<TelemetrySettings, TelemetryError> {
        let var = |name| std::env::var(name).ok();
        otlp_endpoint(
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").as_deref(),
            var("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
        )?;
        Ok(TelemetrySettings {
            log_format: LogFormat::parse(var("FLOODGATE_LOG_FORMAT").as_deref())?,
            sampler: sampler(var("OTEL_TRACES_SAMPLER").as_deref(), var("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
        })
    }
}

/// Keeps the OTLP exporter alive; dropping it flushes pending spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("floodgate: flushing OpenTelemetry spans failed: {e}");
        }
    }
}

/// Whether the standard OTel env vars ask for trace export.
pub fn otlp_requested() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()))
}

fn otlp_provider() -> Option<SdkTracerProvider> {
    if !otlp_requested() {
        return None;
    }
    match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => {
            // The resource detectors read OTEL_SERVICE_NAME and
            // OTEL_RESOURCE_ATTRIBUTES; "floodgate" only when neither names
            // the service.
            let mut resource = opentelemetry_sdk::Resource::builder();
            if !service_named_by_env() {
                resource = resource.with_service_name("floodgate");
            }
            // Calls are sampled in rpc_trace before any span exists, so the
            // provider records every span it is given.
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.build())
                .with_sampler(Sampler::AlwaysOn)
                .build();
            Some(provider)
        }
        Err(e) => {
            eprintln!("floodgate: OTLP exporter not started: {e}");
            None
        }
    }
}

/// Whether the standard env vars name the service (`OTEL_SERVICE_NAME`, or
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`).
fn service_named_by_env() -> bool {
    let set = |v: &str| std::env::var(v).is_ok_and(|v| !v.trim().is_empty());
    set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|attrs| attrs.split(',').any(|kv| kv.trim_start().starts_with("service.name=")))
}

/// Installs the global subscriber (call inside the tokio runtime: the OTLP
/// exporter needs it).
pub fn init(profile: Profile, settings: TelemetrySettings) -> Telemetry {
    let default = match profile {
        Profile::Development => "info,floodgate=debug",
        Profile::Production | Profile::Loadtest => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match settings.log_format {
        LogFormat::Text => {
            // Colour codes only for a person at a terminal, never in files or collectors.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(filter).boxed()
        }
        // A line written inside a sampled call carries the call's span
        // (with its trace_id and span_id) under "span".
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let provider = otlp_provider();
    let otel = provider.as_ref().map(|p| {
        // Only the spans rpc_trace builds for sampled calls are exported.
        let spans = Targets::new().with_target(CALL_TARGET, Level::INFO).with_target(STORE_TARGET, Level::INFO);
        tracing_opentelemetry::layer().with_tracer(p.tracer("floodgate")).with_filter(spans).boxed()
    });
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    if provider.is_some() {
        crate::rpc_trace::start_sampling(settings.sampler);
    }
    Telemetry { provider }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_json_unless_text_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
    }

    #[test]
    fn an_unknown_log_format_is_refused_naming_the_variable_and_the_choices() {
        let e = LogFormat::parse(Some("logfmt")).unwrap_err();
        assert_eq!(e.variable, "FLOODGATE_LOG_FORMAT");
        assert_eq!(e.to_string(), "FLOODGATE_LOG_FORMAT: must be json or text, got \"logfmt\"");
    }

    #[test]
    fn an_empty_log_format_is_refused() {
        for empty in ["", "  "] {
            let e = LogFormat::parse(Some(empty)).unwrap_err();
            assert_eq!(e.variable, "FLOODGATE_LOG_FORMAT");
            assert!(e.message.starts_with("must be json or text"), "{e}");
        }
    }

    #[test]
    fn an_otlp_endpoint_must_be_an_http_url_with_a_host() {
        assert_eq!(otlp_endpoint(None, None), Ok(None));
        assert_eq!(otlp_endpoint(Some(" "), Some("")), Ok(None));
        assert_eq!(otlp_endpoint(None, Some("http://collector:4317")), Ok(Some("http://collector:4317".into())));
        assert_eq!(
            otlp_endpoint(Some("https://traces.example:4317"), Some("http://other:4317")),
            Ok(Some("https://traces.example:4317".into())),
            "the traces endpoint wins"
        );
        for bad in ["collector:4317", "not a url", "ftp://collector:4317", "http://"] {
            let e = otlp_endpoint(None, Some(bad)).unwrap_err();
            assert_eq!(e.variable, "OTEL_EXPORTER_OTLP_ENDPOINT", "{bad}");
            assert!(e.message.contains("http:// or https:// URL"), "{bad}: {e}");
        }
        let e = otlp_endpoint(Some("grpc://x"), None).unwrap_err();
        assert_eq!(e.variable, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    }

    #[test]
    fn samplers_are_named_as_the_spec_names_them() {
        let cases: [(Option<&str>, Option<&str>, Sampler); 8] = [
            (None, None, Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (Some("parentbased_always_on"), None, Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            (Some("parentbased_always_off"), None, Sampler::ParentBased(Box::new(Sampler::AlwaysOff))),
            (
                Some("parentbased_traceidratio"),
                Some("0.01"),
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.01))),
            ),
            (Some("always_on"), None, Sampler::AlwaysOn),
            (Some("always_off"), Some("0.5"), Sampler::AlwaysOff),
            (Some("traceidratio"), Some("0.25"), Sampler::TraceIdRatioBased(0.25)),
            (Some("traceidratio"), None, Sampler::TraceIdRatioBased(1.0)),
        ];
        for (name, arg, want) in cases {
            let got = sampler(name, arg).unwrap_or_else(|e| panic!("{name:?} {arg:?}: {e}"));
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{name:?} {arg:?}");
        }
    }

    #[test]
    fn a_bad_sampler_or_ratio_is_refused_naming_its_variable() {
        for (name, arg, variable) in [
            (Some("traceidratio_parentbased"), None, "OTEL_TRACES_SAMPLER"),
            (Some("jaeger_remote"), None, "OTEL_TRACES_SAMPLER"),
            (Some("traceidratio"), Some("1.5"), "OTEL_TRACES_SAMPLER_ARG"),
            (Some("parentbased_traceidratio"), Some("one percent"), "OTEL_TRACES_SAMPLER_ARG"),
            (Some("parentbased_traceidratio"), Some("-0.1"), "OTEL_TRACES_SAMPLER_ARG"),
        ] {
            let e = sampler(name, arg).expect_err("refused");
            assert_eq!(e.variable, variable, "{name:?} {arg:?}: {e}");
        }
    }
}
