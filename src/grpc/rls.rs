//! `envoy.service.ratelimit.v3.RateLimitService`: Envoy's global rate-limit
//! filter talks to floodgate through it. Converts the request, calls
//! [`Floodgate::should_rate_limit`], converts the answer.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::core::rls::{self, Answer, Code, Entry, RlsRequest, Unit};
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

use envoy::config::core::v3::HeaderValue;
use envoy::service::ratelimit::v3::rate_limit_response::{self as pb_response, rate_limit};
use envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse, rate_limit_service_server};

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

/// Proto request → domain request.
pub fn rls_request(r: RateLimitRequest) -> RlsRequest {
    RlsRequest {
        domain: r.domain,
        descriptors: r
            .descriptors
            .into_iter()
            .map(|d| d.entries.into_iter().map(|e| Entry { key: e.key, value: e.value }).collect())
            .collect(),
        hits_addend: r.hits_addend,
    }
}

fn code(code: Code) -> pb_response::Code {
    match code {
        Code::Ok => pb_response::Code::Ok,
        Code::OverLimit => pb_response::Code::OverLimit,
    }
}

fn unit(unit: Unit) -> rate_limit::Unit {
    match unit {
        Unit::Second => rate_limit::Unit::Second,
        Unit::Minute => rate_limit::Unit::Minute,
        Unit::Hour => rate_limit::Unit::Hour,
        Unit::Day => rate_limit::Unit::Day,
    }
}

fn duration(us: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(us / 1_000_000).unwrap_or(i64::MAX),
        nanos: ((us % 1_000_000) * 1_000) as i32,
    }
}

/// Domain answer → proto response.
pub fn rls_response(answer: Answer) -> RateLimitResponse {
    RateLimitResponse {
        overall_code: code(answer.overall).into(),
        statuses: answer
            .statuses
            .into_iter()
            .map(|s: rls::Status| pb_response::DescriptorStatus {
                code: code(s.code).into(),
                current_limit: s.current_limit.map(|l| pb_response::RateLimit {
                    name: l.name,
                    requests_per_unit: l.requests_per_unit,
                    unit: unit(l.unit).into(),
                }),
                limit_remaining: s.limit_remaining,
                duration_until_reset: Some(duration(s.until_reset_us)),
            })
            .collect(),
        response_headers_to_add: answer
            .response_headers
            .into_iter()
            .map(|(key, value)| HeaderValue { key: key.to_owned(), value, raw_value: Vec::new() })
            .collect(),
        request_headers_to_add: Vec::new(),
        raw_body: Vec::new(),
    }
}

#[tonic::async_trait]
impl rate_limit_service_server::RateLimitService for RateLimitService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let answer = self.floodgate.should_rate_limit(&rls_request(request.into_inner())).await?;
        Ok(Response::new(rls_response(answer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_microseconds() {
        assert_eq!(duration(60_000_000), prost_types::Duration { seconds: 60, nanos: 0 });
        assert_eq!(duration(1_500_001), prost_types::Duration { seconds: 1, nanos: 500_001_000 });
    }
}
