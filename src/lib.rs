//! floodgate: gRPC admission control for chat platforms. Dual-level
//! backpressure (an immediate check and an atomic check-and-enqueue),
//! rate limits by user type, and capacity computed from worker heartbeats.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod alerting;
pub mod app;
pub mod auth;
mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod grpc;
mod http;
mod metrics;
mod net;
pub mod operations;
mod protection;
pub mod rls_rules;
mod rpc_trace;
pub mod service;
mod shield;
pub mod store;
mod sync;
pub mod telemetry;
pub mod throttling;
pub mod tls;
