//! `--mode rls` on the wire. The requests are encoded once before the run
//! (by the generated type, so the bytes are the ones Envoy's filter and the
//! generated client send) and written as they are, and only the two fields
//! counted are decoded from an answer: the overall code and the response
//! headers. The server sees the same requests; the load generator no
//! longer spends a dozen allocations and a full decode per request on its
//! own side of the measurement.

use floodgate_client::envoy::config::core::v3::HeaderValue;
use floodgate_client::envoy::extensions::common::ratelimit::v3::{RateLimitDescriptor, rate_limit_descriptor::Entry};
use floodgate_client::envoy::service::ratelimit::v3::RateLimitRequest;
use floodgate_client::envoy::service::ratelimit::v3::rate_limit_response::Code;
use floodgate_client::pb::Decision;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, skip_field};
use tonic::Status;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{GrpcMethod, Request};
use tonic_prost::ProstCodec;

/// Subjects up to which every request is encoded before the run (at
/// about 60 bytes a request, 6 MB at most); past it, each is encoded when sent.
const MAX_PRE_ENCODED: u64 = 100_000;

/// What every request carries.
pub struct RlsShape {
    pub domain: String,
    /// Descriptor templates: (key, value) with `{subject}` still in values.
    pub descriptors: Vec<Vec<(String, String)>>,
    pub hits_addend: u32,
}

impl RlsShape {
    /// The request for one subject.
    fn request(&self, subject: &str) -> RateLimitRequest {
        let descriptors = self
            .descriptors
            .iter()
            .map(|entries| RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(key, value)| Entry { key: key.clone(), value: value.replace("{subject}", subject) })
                    .collect(),
            })
            .collect();
        RateLimitRequest { domain: self.domain.clone(), descriptors, hits_addend: self.hits_addend }
    }
}

/// The requests of a run: `s{n % subjects}` for the n-th (every n its own
/// subject when `subjects` is 0), encoded (before the run when `pre_encode`
/// and there are at most [`MAX_PRE_ENCODED`] of them).
pub struct Requests {
    shape: RlsShape,
    subjects: u64,
    /// Request n is `encoded[n % subjects]` when pre-encoded.
    encoded: Vec<Bytes>,
}

impl Requests {
    pub fn new(shape: RlsShape, subjects: u64, pre_encode: bool) -> Requests {
        let encoded = if pre_encode && (1..=MAX_PRE_ENCODED).contains(&subjects) {
            (0..subjects).map(|n| Bytes::from(shape.request(&format!("s{n}")).encode_to_vec())).collect()
        } else {
            Vec::new()
        };
        Requests { shape, subjects, encoded }
    }

    /// The n-th request's bytes.
    pub fn get(&self, n: u64) -> Bytes {
        if self.encoded.is_empty() {
            let subject = if self.subjects == 0 { n } else { n % self.subjects };
            Bytes::from(self.shape.request(&format!("s{subject}")).encode_to_vec())
        } else {
            self.encoded[(n % self.subjects) as usize].clone()
        }
    }
}

const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// `ShouldRateLimit` with an encoded request; the decision it reports.
pub async fn should_rate_limit(
    channel: &Channel,
    request: Bytes,
    bearer: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> Result<Decision, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
    let mut request = Request::new(Encoded(request));
    if let Some(bearer) = bearer {
        request.metadata_mut().insert("authorization", bearer.clone());
    }
    request.extensions_mut().insert(GrpcMethod::new("envoy.service.ratelimit.v3.RateLimitService", "ShouldRateLimit"));
    let codec = ProstCodec::<Encoded, Answer>::default();
    let answer = grpc.unary(request, PathAndQuery::from_static(PATH), codec).await?.into_inner();
    Ok(answer.decision())
}

/// A message encoded already: written as it is. Only ever sent (decoding
/// one keeps nothing).
#[derive(Debug, Default, Clone, PartialEq)]
struct Encoded(Bytes);

impl Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The two fields of a `RateLimitResponse` the load generator counts;
/// prost skips the statuses (no allocation for an answer without headers).
#[derive(Clone, PartialEq, Message)]
struct Answer {
    #[prost(int32, tag = "1")]
    overall_code: i32,
    #[prost(message, repeated, tag = "3")]
    response_headers_to_add: Vec<HeaderValue>,
}

impl Answer {
    /// OK is admitted; OVER_LIMIT is what the first `x-floodgate-decision`
    /// header says (rate-limited without one); any other code is unspecified.
    fn decision(&self) -> Decision {
        match Code::try_from(self.overall_code).unwrap_or(Code::Unknown) {
            Code::Ok => Decision::Admit,
            Code::OverLimit => match self.response_headers_to_add.iter().find(|h| h.key == "x-floodgate-decision") {
                Some(h) if h.value == "backpressure" => Decision::Backpressure,
                Some(h) if h.value == "circuit_open" => Decision::CircuitOpen,
                _ => Decision::RateLimited,
            },
            Code::Unknown => Decision::Unspecified,
        }
    }
}
