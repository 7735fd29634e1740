//! floodgate: gRPC admission control for chat platforms. Dual-level
//! backpressure (an immediate check and an atomic check-and-enqueue),
//! rate limits by user type, and capacity computed from worker heartbeats.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod alerting;
pub mod app;
pub mod auth;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod grpc;
pub mod http;
pub mod metrics;
mod net;
pub mod operations;
pub mod protection;
pub mod rls_rules;
pub mod rpc_trace;
pub mod service;
pub mod shield;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod throttling;
pub mod tls;
