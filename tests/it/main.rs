//! floodgate's integration tests, one binary: the real server on
//! 127.0.0.1:0 with real clients, on the embedded store and on private
//! redis-servers. One module per area; `common` is the harness they share.

mod common;

mod bad_input;
mod binary;
mod breaker_probes;
mod cli;
mod client_typed;
mod console;
mod data_plane;
mod lifecycle;
mod live_config;
mod metrics;
mod operator_surface;
mod protection;
mod redis_cluster;
mod redis_store;
mod redis_topologies;
mod rls;
mod rls_yaml;
mod telemetry;
mod tls;
