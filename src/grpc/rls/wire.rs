//! `ShouldRateLimit`'s messages as the server reads and writes them, and
//! the codec between them and tonic. prost's generated request holds a
//! `String` per domain, key and value and a `Vec` per descriptor (seven
//! allocations for two one-entry descriptors): here every text of a request
//! is copied once into one `String`, the entries are spans of it and the
//! domain request borrows them. The answer is written straight from the
//! domain [`Answer`], byte for byte as prost writes the generated message,
//! without building that message (its `Vec` of statuses) first.

use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len};
use smallvec::SmallVec;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use crate::core::rls::{Answer, Code, Entry, ReportedLimit, RlsRequest, Status as DescriptorStatus, Unit};

// ---- the request ----

/// A text of the request: its byte range in [`RateLimitRequest::text`].
type Span = (usize, usize);

/// `envoy.service.ratelimit.v3.RateLimitRequest` as the server reads it
/// (the generated service takes this type through `extern_path`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RateLimitRequest {
    /// The domain, every key and every value, back to back.
    text: String,
    domain: Span,
    /// (key, value) of every entry of every descriptor, in order.
    entries: SmallVec<[(Span, Span); 4]>,
    /// Where each descriptor's entries end in `entries`.
    ends: SmallVec<[usize; 4]>,
    hits_addend: u32,
}

/// prost's own decoding of the request (the message `protoc` generates
/// from `rls.proto`): what the short path of [`RateLimitRequest::decode`]
/// leaves to it decodes, or fails, exactly as before.
#[derive(Clone, PartialEq, Message)]
pub struct ProstRateLimitRequest {
    /// The rules' domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The descriptors.
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// 0 means 1.
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

impl RateLimitRequest {
    /// Decodes one encoded message as prost would. The usual message (the
    /// three fields, descriptors of key/value entries, valid UTF-8) is read
    /// here in one pass; anything else (an unknown field, another wire
    /// type, a malformed message) goes to prost's generated decoding, so
    /// that what is accepted, and every error, stays prost's.
    pub fn decode(message: &[u8]) -> Result<RateLimitRequest, prost::DecodeError> {
        match RateLimitRequest::read(message) {
            Some(request) => Ok(request),
            None => ProstRateLimitRequest::decode(message).map(|r| RateLimitRequest::from(&r)),
        }
    }

    /// The short path: None where prost has to decide.
    fn read(mut buf: &[u8]) -> Option<RateLimitRequest> {
        let mut text = Vec::with_capacity(buf.len());
        let mut request = RateLimitRequest::default();
        while !buf.is_empty() {
            match decode_key(&mut buf).ok()? {
                (1, WireType::LengthDelimited) => request.domain = push_utf8(&mut text, field(&mut buf)?)?,
                (2, WireType::LengthDelimited) => request.read_descriptor(&mut text, field(&mut buf)?)?,
                // prost's uint32 keeps the low 32 bits of the varint.
                (3, WireType::Varint) => request.hits_addend = decode_varint(&mut buf).ok()? as u32,
                _ => return None,
            }
        }
        // Each part was checked as it was added.
        request.text = String::from_utf8(text).ok()?;
        Some(request)
    }

    fn read_descriptor(&mut self, text: &mut Vec<u8>, mut buf: &[u8]) -> Option<()> {
        while !buf.is_empty() {
            let (1, WireType::LengthDelimited) = decode_key(&mut buf).ok()? else { return None };
            let mut entry = field(&mut buf)?;
            // A field that repeats replaces the earlier one, as in prost.
            let (mut key, mut value) = ((0, 0), (0, 0));
            while !entry.is_empty() {
                match decode_key(&mut entry).ok()? {
                    (1, WireType::LengthDelimited) => key = push_utf8(text, field(&mut entry)?)?,
                    (2, WireType::LengthDelimited) => value = push_utf8(text, field(&mut entry)?)?,
                    _ => return None,
                }
            }
            self.entries.push((key, value));
        }
        self.ends.push(self.entries.len());
        Some(())
    }

    fn push(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }

    /// The request in domain terms, borrowing its texts.
    pub fn to_domain(&self) -> RlsRequest<'_> {
        // Spans are only made by `push`, on whole strings.
        let text = |(start, end): Span| self.text.get(start..end).unwrap_or_default();
        let mut request = RlsRequest::new(text(self.domain), self.hits_addend);
        let mut start = 0;
        for &end in &self.ends {
            let entries = self.entries.get(start..end).unwrap_or_default();
            request.push_descriptor(entries.iter().map(|&(key, value)| Entry { key: text(key), value: text(value) }));
            start = end;
        }
        request
    }
}

impl From<&ProstRateLimitRequest> for RateLimitRequest {
    fn from(r: &ProstRateLimitRequest) -> RateLimitRequest {
        let mut request = RateLimitRequest { hits_addend: r.hits_addend, ..RateLimitRequest::default() };
        request.domain = request.push(&r.domain);
        for descriptor in &r.descriptors {
            for entry in &descriptor.entries {
                let key = request.push(&entry.key);
                let value = request.push(&entry.value);
                request.entries.push((key, value));
            }
            request.ends.push(request.entries.len());
        }
        request
    }
}

/// Appends a string field's bytes to `text`; None unless they are UTF-8,
/// as prost requires of each field (ASCII, the usual case, needs no more check).
fn push_utf8(text: &mut Vec<u8>, bytes: &[u8]) -> Option<Span> {
    if !bytes.is_ascii() {
        std::str::from_utf8(bytes).ok()?;
    }
    let start = text.len();
    text.extend_from_slice(bytes);
    Some((start, text.len()))
}

/// A length-delimited field's bytes; None when the length runs past the buffer.
fn field<'b>(buf: &mut &'b [u8]) -> Option<&'b [u8]> {
    let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Some(field)
}

// ---- the response ----

/// `envoy.service.ratelimit.v3.RateLimitResponse` as the server writes it
/// (the generated service answers with this type through `extern_path`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitResponse(pub Answer);

// The response's enums as numbers (rls.proto).
fn code(code: Code) -> u64 {
    match code {
        Code::Ok => 1,
        Code::OverLimit => 2,
    }
}

fn unit(unit: Unit) -> u64 {
    match unit {
        Unit::Second => 1,
        Unit::Minute => 2,
        Unit::Hour => 3,
        Unit::Day => 4,
    }
}

/// µs as a `google.protobuf.Duration`'s (seconds, nanos), both varints here.
pub(super) fn duration(us: u64) -> (u64, u64) {
    (us / 1_000_000, (us % 1_000_000) * 1_000)
}

// Encoded lengths, proto3's way: a scalar or text field at its default is
// not written; a present message is, even when empty.
fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + encoded_len_varint(value) }
}

fn text_len(tag: u32, text: &str) -> usize {
    if text.is_empty() { 0 } else { message_len(tag, text.len()) }
}

fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn limit_len(limit: &ReportedLimit) -> usize {
    varint_len(1, u64::from(limit.requests_per_unit)) + varint_len(2, unit(limit.unit)) + text_len(3, &limit.name)
}

fn duration_len(us: u64) -> usize {
    let (seconds, nanos) = duration(us);
    varint_len(1, seconds) + varint_len(2, nanos)
}

fn status_len(status: &DescriptorStatus) -> usize {
    varint_len(1, code(status.code))
        + status.current_limit.as_ref().map_or(0, |l| message_len(2, limit_len(l)))
        + varint_len(3, u64::from(status.limit_remaining))
        + message_len(4, duration_len(status.until_reset_us))
}

fn header_len(key: &str, value: &str) -> usize {
    text_len(1, key) + text_len(2, value)
}

fn put_varint(tag: u32, value: u64, buf: &mut impl BufMut) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(value, buf);
    }
}

fn put_text(tag: u32, text: &str, buf: &mut impl BufMut) {
    if !text.is_empty() {
        put_message_head(tag, text.len(), buf);
        buf.put_slice(text.as_bytes());
    }
}

fn put_message_head(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

impl RateLimitResponse {
    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        let Answer { overall, statuses, response_headers, .. } = &self.0;
        varint_len(1, code(*overall))
            + statuses.iter().map(|s| message_len(2, status_len(s))).sum::<usize>()
            + response_headers.iter().map(|(k, v)| message_len(3, header_len(k, v))).sum::<usize>()
    }

    /// Writes the message: fields in tag order, as prost does.
    /// `request_headers_to_add` and `raw_body` are never set.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let Answer { overall, statuses, response_headers, .. } = &self.0;
        put_varint(1, code(*overall), buf);
        for status in statuses {
            put_message_head(2, status_len(status), buf);
            put_varint(1, code(status.code), buf);
            if let Some(limit) = &status.current_limit {
                put_message_head(2, limit_len(limit), buf);
                put_varint(1, u64::from(limit.requests_per_unit), buf);
                put_varint(2, unit(limit.unit), buf);
                put_text(3, &limit.name, buf);
            }
            put_varint(3, u64::from(status.limit_remaining), buf);
            let (seconds, nanos) = duration(status.until_reset_us);
            put_message_head(4, duration_len(status.until_reset_us), buf);
            put_varint(1, seconds, buf);
            put_varint(2, nanos, buf);
        }
        for (key, value) in response_headers {
            put_message_head(3, header_len(key, value), buf);
            put_text(1, key, buf);
            put_text(2, value, buf);
        }
    }
}

// ---- the codec ----

/// The codec of `RateLimitService` (the generated server's `codec_path`):
/// requests read by [`RateLimitRequest::decode`], answers written by
/// [`RateLimitResponse::encode`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RlsCodec;

impl Codec for RlsCodec {
    type Encode = RateLimitResponse;
    type Decode = RateLimitRequest;
    type Encoder = RlsCodec;
    type Decoder = RlsCodec;

    fn encoder(&mut self) -> RlsCodec {
        RlsCodec
    }

    fn decoder(&mut self) -> RlsCodec {
        RlsCodec
    }
}

/// Answers up to this size are written on the stack, then copied into
/// tonic's buffer at once (whose `BufMut` checks its room at every byte).
const STACK_ANSWER_BYTES: usize = 512;

impl Encoder for RlsCodec {
    type Item = RateLimitResponse;
    type Error = Status;

    fn encode(&mut self, item: RateLimitResponse, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let len = item.encoded_len();
        if len <= STACK_ANSWER_BYTES {
            let mut stack = [0u8; STACK_ANSWER_BYTES];
            item.encode(&mut &mut stack[..]);
            buf.put_slice(&stack[..len]);
        } else {
            buf.reserve(len);
            item.encode(buf);
        }
        Ok(())
    }
}

/// Reads one request from tonic's buffer (one contiguous block in
/// practice, read in place; copied only if it were not).
impl Decoder for RlsCodec {
    type Item = RateLimitRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<RateLimitRequest>, Status> {
        let len = buf.remaining();
        let request = match buf.chunk().get(..len) {
            Some(message) => {
                let request = RateLimitRequest::decode(message);
                buf.advance(len);
                request
            }
            None => RateLimitRequest::decode(&buf.copy_to_bytes(len)),
        };
        // tonic-prost's mapping of a decode error.
        request.map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Decision;
    use crate::core::rls::Tally;
    use crate::grpc::rls::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor;
    use floodgate_client::envoy::config::core::v3::HeaderValue;
    use floodgate_client::envoy::service::ratelimit::v3 as pb;
    use proptest::prelude::*;

    fn prost_request(domain: &str, descriptors: &[&[(&str, &str)]], hits_addend: u32) -> ProstRateLimitRequest {
        ProstRateLimitRequest {
            domain: domain.to_owned(),
            descriptors: descriptors
                .iter()
                .map(|entries| RateLimitDescriptor {
                    entries: entries
                        .iter()
                        .map(|(k, v)| rate_limit_descriptor::Entry { key: (*k).to_owned(), value: (*v).to_owned() })
                        .collect(),
                })
                .collect(),
            hits_addend,
        }
    }

    /// A decoded request as plain values: (domain, descriptors, hits_addend).
    type Owned = (String, Vec<Vec<(String, String)>>, u32);

    fn owned(r: &RateLimitRequest) -> Owned {
        let r = r.to_domain();
        let descriptors =
            r.descriptors().map(|d| d.iter().map(|e| (e.key.to_owned(), e.value.to_owned())).collect()).collect();
        (r.domain.to_owned(), descriptors, r.hits_addend)
    }

    /// Both decodings of `bytes`: (the short path's answer, prost's),
    /// each as plain values or the error's text.
    fn both(bytes: &[u8]) -> (Result<Owned, String>, Result<Owned, String>) {
        let ours = RateLimitRequest::decode(bytes).map(|r| owned(&r)).map_err(|e| e.to_string());
        let theirs =
            ProstRateLimitRequest::decode(bytes).map(|r| owned(&RateLimitRequest::from(&r))).map_err(|e| e.to_string());
        (ours, theirs)
    }

    #[test]
    fn the_usual_request_is_read_without_prost() {
        let message = prost_request("d5", &[&[("remote_address", "s1")], &[("path", "/api/v7/chat")]], 3);
        let bytes = message.encode_to_vec();
        let request = RateLimitRequest::read(&bytes).expect("the short path reads it");
        let pair = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(
            owned(&request),
            ("d5".to_owned(), vec![pair("remote_address", "s1"), pair("path", "/api/v7/chat")], 3)
        );
        assert_eq!(request.text, "d5remote_addresss1path/api/v7/chat", "one copy of every text");
    }

    #[test]
    fn what_the_short_path_leaves_prost_decides() {
        let usual = prost_request("chat", &[&[("k", "v")]], 0).encode_to_vec();
        // An unknown field (tag 9, varint 1) is skipped by prost.
        let mut unknown = usual.clone();
        encode_key(9, WireType::Varint, &mut unknown);
        unknown.push(1);
        assert_eq!(RateLimitRequest::read(&unknown), None);
        let (ours, theirs) = both(&unknown);
        assert_eq!(ours, theirs);
        assert_eq!(ours.map(|r| r.0), Ok("chat".to_owned()));
        // Invalid UTF-8 in a value fails with prost's error.
        let mut bad = prost_request("chat", &[&[("k", "\u{e9}")]], 0).encode_to_vec();
        let at = bad.len() - 2;
        bad[at] = 0xff;
        let (ours, theirs) = both(&bad);
        assert!(ours.as_ref().is_err_and(|e| e.contains("UTF-8")), "{ours:?}");
        assert_eq!(ours, theirs);
        // A truncated message too.
        let (ours, theirs) = both(&usual[..usual.len() - 1]);
        assert!(ours.is_err());
        assert_eq!(ours, theirs);
    }

    /// Messages built field by field, odd ones included: unknown tags,
    /// other wire types, invalid UTF-8, empty and repeated fields.
    fn raw_message() -> impl Strategy<Value = Vec<u8>> {
        fn delimited(tag: u32, payload: &[u8], out: &mut Vec<u8>) {
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(payload.len() as u64, out);
            out.extend_from_slice(payload);
        }
        let text = prop_oneof![Just(Vec::new()), "[a-z/.]{0,8}".prop_map(String::into_bytes), Just(vec![0xc3])];
        let entry = proptest::collection::vec((1u32..4, text.clone()), 0..4).prop_map(|fields| {
            let mut out = Vec::new();
            for (tag, value) in fields {
                delimited(tag, &value, &mut out);
            }
            out
        });
        let descriptor = proptest::collection::vec(entry, 0..3).prop_map(|entries| {
            let mut out = Vec::new();
            for entry in entries {
                delimited(1, &entry, &mut out);
            }
            out
        });
        let field = prop_oneof![
            text.prop_map(|t| (1u32, Some(t))),
            descriptor.prop_map(|d| (2u32, Some(d))),
            (1u32..6).prop_map(|tag| (tag, None)),
        ];
        proptest::collection::vec((field, any::<u64>()), 0..6).prop_map(|fields| {
            let mut out = Vec::new();
            for ((tag, payload), n) in fields {
                match payload {
                    Some(payload) => delimited(tag, &payload, &mut out),
                    None => {
                        encode_key(tag, WireType::Varint, &mut out);
                        encode_varint(n, &mut out);
                    }
                }
            }
            out
        })
    }

    proptest! {
        /// Whatever the bytes, the request read is prost's, or both fail alike.
        #[test]
        fn any_message_decodes_as_prost_decodes_it(bytes in raw_message(), cut in any::<prop::sample::Index>()) {
            let (ours, theirs) = both(&bytes);
            prop_assert_eq!(ours, theirs);
            let cut = &bytes[..cut.index(bytes.len() + 1)];
            let (ours, theirs) = both(cut);
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn well_formed_requests_take_the_short_path(
            domain in "[a-z0-9]{0,12}",
            descriptors in proptest::collection::vec(proptest::collection::vec(("[a-z_]{0,10}", "\\PC{0,10}"), 0..4), 0..6),
            hits_addend in any::<u32>(),
        ) {
            let pairs: Vec<Vec<(&str, &str)>> =
                descriptors.iter().map(|d| d.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect();
            let slices: Vec<&[(&str, &str)]> = pairs.iter().map(Vec::as_slice).collect();
            let bytes = prost_request(&domain, &slices, hits_addend).encode_to_vec();
            prop_assert!(RateLimitRequest::read(&bytes).is_some());
            let (ours, theirs) = both(&bytes);
            prop_assert_eq!(ours, theirs);
        }
    }

    /// The generated message the answer stood for before (the reference).
    fn generated(answer: &Answer) -> pb::RateLimitResponse {
        use pb::rate_limit_response::{Code as PbCode, DescriptorStatus, RateLimit, rate_limit::Unit as PbUnit};
        let code = |c: Code| match c {
            Code::Ok => PbCode::Ok,
            Code::OverLimit => PbCode::OverLimit,
        };
        let unit = |u: Unit| match u {
            Unit::Second => PbUnit::Second,
            Unit::Minute => PbUnit::Minute,
            Unit::Hour => PbUnit::Hour,
            Unit::Day => PbUnit::Day,
        };
        pb::RateLimitResponse {
            overall_code: code(answer.overall).into(),
            statuses: answer
                .statuses
                .iter()
                .map(|s| DescriptorStatus {
                    code: code(s.code).into(),
                    current_limit: s.current_limit.as_ref().map(|l| RateLimit {
                        name: l.name.clone(),
                        requests_per_unit: l.requests_per_unit,
                        unit: unit(l.unit).into(),
                    }),
                    limit_remaining: s.limit_remaining,
                    duration_until_reset: Some(prost_types::Duration {
                        seconds: i64::try_from(s.until_reset_us / 1_000_000).unwrap_or(i64::MAX),
                        nanos: ((s.until_reset_us % 1_000_000) * 1_000) as i32,
                    }),
                })
                .collect(),
            response_headers_to_add: answer
                .response_headers
                .iter()
                .map(|(key, value)| HeaderValue { key: (*key).to_owned(), value: value.clone(), raw_value: Vec::new() })
                .collect(),
            request_headers_to_add: Vec::new(),
            raw_body: Vec::new(),
        }
    }

    fn any_answer() -> impl Strategy<Value = Answer> {
        let code = prop_oneof![Just(Code::Ok), Just(Code::OverLimit)];
        let unit = prop_oneof![Just(Unit::Second), Just(Unit::Minute), Just(Unit::Hour), Just(Unit::Day)];
        let limit = proptest::option::of((".{0,6}", any::<u32>(), unit))
            .prop_map(|l| l.map(|(name, requests_per_unit, unit)| ReportedLimit { name, requests_per_unit, unit }));
        let status = (code.clone(), limit, any::<u32>(), prop_oneof![Just(0u64), any::<u64>(), 0u64..5_000_000])
            .prop_map(|(code, current_limit, limit_remaining, until_reset_us)| DescriptorStatus {
                code,
                current_limit,
                limit_remaining,
                until_reset_us,
                tally: Tally::default(),
            });
        let header = (prop_oneof![Just("retry-after"), Just("x-floodgate-decision"), Just("")], ".{0,8}");
        (code, proptest::collection::vec(status, 0..5), proptest::collection::vec(header, 0..3)).prop_map(
            |(overall, statuses, response_headers)| Answer {
                overall,
                statuses,
                response_headers,
                decision: Decision::Admit,
                shadow_over_limit: 0,
            },
        )
    }

    proptest! {
        /// The answer is written byte for byte as prost writes the generated message.
        #[test]
        fn answers_encode_as_the_generated_message(answer in any_answer()) {
            let reference = generated(&answer).encode_to_vec();
            let response = RateLimitResponse(answer);
            let mut ours = Vec::new();
            response.encode(&mut ours);
            prop_assert_eq!(response.encoded_len(), ours.len());
            prop_assert_eq!(ours, reference);
        }
    }
}
