//! `envoy.service.ratelimit.v3.RateLimitService`: Envoy's global rate-limit
//! filter talks to floodgate through it. Reads the request and writes the
//! answer with [`wire`]'s types, and calls [`Floodgate::should_rate_limit`].

pub mod wire;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::grpc::OrStatus;
use crate::service::Floodgate;

/// Code generated from the hand-written Envoy protos in `proto/envoy`,
/// nested as prost expects (`envoy::service::ratelimit::v3` refers to
/// `envoy::extensions::…` and `envoy::config::…`).
#[allow(clippy::all, missing_docs)]
pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod extensions {
        pub mod common {
            pub mod ratelimit {
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    pub mod service {
        pub mod ratelimit {
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }
}

use envoy::service::ratelimit::v3::rate_limit_service_server;
use wire::{RateLimitRequest, RateLimitResponse};

/// The encoded descriptor set of the Envoy protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("envoy_rls_descriptor");

/// The gRPC name health reports on.
pub const SERVICE_NAME: &str = "envoy.service.ratelimit.v3.RateLimitService";

/// The rate-limit service over a shared [`Floodgate`].
pub struct RateLimitService {
    floodgate: Arc<Floodgate>,
}

impl RateLimitService {
    /// Serves `floodgate`.
    pub fn new(floodgate: Arc<Floodgate>) -> RateLimitService {
        RateLimitService { floodgate }
    }
}

#[tonic::async_trait]
impl rate_limit_service_server::RateLimitService for RateLimitService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        let answer = self.floodgate.should_rate_limit(&request.to_domain()).await.or_status()?;
        Ok(Response::new(RateLimitResponse(answer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_microseconds() {
        assert_eq!(wire::duration(60_000_000), (60, 0));
        assert_eq!(wire::duration(1_500_001), (1, 500_001_000));
    }
}
