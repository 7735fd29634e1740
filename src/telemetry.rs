//! Logging and tracing: JSON lines (default) or human-readable text on
//! stderr, filtered by `RUST_LOG` or the profile's default level; and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
//! OpenTelemetry spans exported over OTLP/gRPC (standard OTel env vars).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::Profile;

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
            // the service. The sampler follows OTEL_TRACES_SAMPLER(_ARG).
            let mut resource = opentelemetry_sdk::Resource::builder();
            if !service_named_by_env() {
                resource = resource.with_service_name("floodgate");
            }
            let resource = resource.build();
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
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
/// exporter needs it). `FLOODGATE_LOG_FORMAT=text` for text logs.
pub fn init(profile: Profile, format: Option<&str>) -> Telemetry {
    let default = match profile {
        Profile::Development => "info,floodgate=debug",
        Profile::Production | Profile::Loadtest => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if format == Some("text") {
        // Colour codes only for a person at a terminal, never in files or collectors.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(filter).boxed()
    } else {
        tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter).boxed()
    };
    let provider = otlp_provider();
    crate::rpc_trace::set_exporting(provider.is_some());
    let otel = provider.as_ref().map(|p| {
        let spans = EnvFilter::new("floodgate=info");
        tracing_opentelemetry::layer().with_tracer(p.tracer("floodgate")).with_filter(spans).boxed()
    });
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    Telemetry { provider }
}
