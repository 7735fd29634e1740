//! `--mode rls` on the wire. The requests are encoded once before the run
//! (by the generated type, so the bytes are the ones Envoy's filter and the
//! generated client send), a codec writes them as they are, and only the
//! two things counted are read from an answer: the overall code and the
//! `x-floodgate-decision` header. The server sees the same requests; the
//! load generator no longer spends a dozen allocations and a full decode
//! per request on its own side of the measurement.

use floodgate_client::envoy::extensions::common::ratelimit::v3::{RateLimitDescriptor, rate_limit_descriptor::Entry};
use floodgate_client::envoy::service::ratelimit::v3::RateLimitRequest;
use floodgate_client::pb::Decision;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{GrpcMethod, Request};

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
    let mut request = Request::new(request);
    if let Some(bearer) = bearer {
        request.metadata_mut().insert("authorization", bearer.clone());
    }
    request.extensions_mut().insert(GrpcMethod::new("envoy.service.ratelimit.v3.RateLimitService", "ShouldRateLimit"));
    let answer = grpc.unary(request, PathAndQuery::from_static(PATH), RawCodec).await?;
    Ok(answer.into_inner())
}

/// Sends encoded requests as they are and reads the decision of an answer.
#[derive(Debug, Default, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Decision;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Decision;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Decision>, Status> {
        let len = src.remaining();
        let answer = match src.chunk().get(..len) {
            Some(message) => decision(message),
            None => decision(&src.copy_to_bytes(len)),
        };
        src.advance(src.remaining());
        answer.map(Some).ok_or_else(|| Status::internal("malformed RateLimitResponse"))
    }
}

/// The decision a `RateLimitResponse` reports: OK is admitted; OVER_LIMIT
/// is what its first `x-floodgate-decision` header says (rate-limited
/// without one); any other code is unspecified. None when the message is
/// malformed (its other fields are skipped, not checked).
fn decision(mut message: &[u8]) -> Option<Decision> {
    let (mut code, mut header) = (0, None);
    while !message.is_empty() {
        match decode_key(&mut message).ok()? {
            (1, WireType::Varint) => code = decode_varint(&mut message).ok()?,
            (3, WireType::LengthDelimited) => {
                let field = length_delimited(&mut message)?;
                if header.is_none() {
                    header = decision_header(field)?;
                }
            }
            (tag, wire_type) => skip_field(wire_type, tag, &mut message, DecodeContext::default()).ok()?,
        }
    }
    Some(match code {
        1 => Decision::Admit,
        2 => header.unwrap_or(Decision::RateLimited),
        _ => Decision::Unspecified,
    })
}

/// A `HeaderValue`'s decision when it is `x-floodgate-decision`.
fn decision_header(mut field: &[u8]) -> Option<Option<Decision>> {
    let (mut key, mut value): (&[u8], &[u8]) = (b"", b"");
    while !field.is_empty() {
        match decode_key(&mut field).ok()? {
            (1, WireType::LengthDelimited) => key = length_delimited(&mut field)?,
            (2, WireType::LengthDelimited) => value = length_delimited(&mut field)?,
            (tag, wire_type) => skip_field(wire_type, tag, &mut field, DecodeContext::default()).ok()?,
        }
    }
    Some((key == b"x-floodgate-decision").then(|| match value {
        b"backpressure" => Decision::Backpressure,
        b"circuit_open" => Decision::CircuitOpen,
        _ => Decision::RateLimited,
    }))
}

/// A length-delimited field's bytes; None when it runs past the message.
fn length_delimited<'m>(message: &mut &'m [u8]) -> Option<&'m [u8]> {
    let len = usize::try_from(decode_varint(message).ok()?).ok()?;
    if len > message.len() {
        return None;
    }
    let (field, rest) = message.split_at(len);
    *message = rest;
    Some(field)
}
