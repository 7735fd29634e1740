//! Logging: JSON lines (default) or human-readable text, filtered by
//! `RUST_LOG` or the profile's default level.

use tracing_subscriber::EnvFilter;

use crate::config::Profile;

/// Installs the global subscriber. `FLOODGATE_LOG_FORMAT=text` for text.
pub fn init(profile: Profile, format: Option<&str>) {
    let default = match profile {
        Profile::Development => "info,floodgate=debug",
        Profile::Production | Profile::Loadtest => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == Some("text") { builder.try_init() } else { builder.json().try_init() };
}
