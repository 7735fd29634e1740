//! Times floodgate's own part of `ShouldRateLimit`, in process and without
//! gRPC: `Floodgate::should_rate_limit` on the embedded store against the
//! 1,000 YAML rules of scripts/bench-rls-cpu.sh (domain d5, descriptors
//! `remote_address=s{n % 10000}` and `path=/api/v7/chat`), the same from
//! the encoded request to the encoded answer (the gRPC codec's part, h2
//! aside), and on the user_type descriptor alone. Prints ns per call,
//! three rounds each. An argument sets the calls per round (default
//! 1,000,000; fewer for `valgrind --tool=callgrind`).
//! `taskset -c 0 cargo run --release --example rls_hot_path`

use std::sync::Arc;
use std::time::Instant;

use floodgate::app::service_options;
use floodgate::clock::SystemClock;
use floodgate::config::RlsOptions;
use floodgate::config::runtime::Profile;
use floodgate::config::settings::Settings;
use floodgate::core::rls::{Entry, RlsRequest};
use floodgate::grpc::rls::envoy::extensions::common::ratelimit::v3::{RateLimitDescriptor, rate_limit_descriptor};
use floodgate::grpc::rls::wire::{ProstRateLimitRequest, RateLimitRequest, RateLimitResponse};
use floodgate::service::Floodgate;
use floodgate::store::{AnyStore, MemoryStore};
use prost::Message;

const CALLS: u64 = 1_000_000;
const SUBJECTS: u64 = 10_000;

fn rules_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("floodgate-rls-hot-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for d in 0..10 {
        let mut y = format!("domain: d{d}\ndescriptors:\n");
        y += "  - key: remote_address\n    rate_limit: {unit: second, requests_per_unit: 999000}\n";
        for j in 1..=59 {
            y += &format!(
                "  - key: remote_address\n    value: \"10.{d}.{j}.1\"\n    rate_limit: {{unit: minute, requests_per_unit: 100}}\n"
            );
        }
        for j in 1..=20 {
            y += &format!(
                "  - key: path\n    value: \"/api/v{j}/*\"\n    rate_limit: {{unit: second, requests_per_unit: 999000}}\n"
            );
        }
        for j in 1..=20 {
            y += &format!(
                "  - key: tenant\n    value: \"t{j}\"\n    descriptors:\n      - key: user\n        rate_limit: {{unit: hour, requests_per_unit: 1000}}\n"
            );
        }
        std::fs::write(dir.join(format!("d{d}.yaml")), y).expect("rule file");
    }
    dir
}

fn entry<'a>(key: &'a str, value: &'a str) -> Entry<'a> {
    Entry { key, value }
}

async fn time(floodgate: &Floodgate, label: &str, calls: u64, requests: &[RlsRequest<'_>]) {
    for round in 1..=3 {
        let started = Instant::now();
        for n in 0..calls {
            let answer = floodgate.should_rate_limit(&requests[(n % SUBJECTS) as usize]).await;
            assert!(answer.is_ok(), "ShouldRateLimit answers");
        }
        let ns = started.elapsed().as_nanos() as f64 / calls as f64;
        println!("{label} #{round}: {ns:.0} ns/call");
    }
}

/// Encoded request → decoded → decided → encoded answer, as the server's
/// codec and handler do it.
async fn time_wire(floodgate: &Floodgate, label: &str, calls: u64, messages: &[Vec<u8>]) {
    let mut out = Vec::with_capacity(256);
    for round in 1..=3 {
        let started = Instant::now();
        for n in 0..calls {
            let request = RateLimitRequest::decode(&messages[(n % SUBJECTS) as usize]).expect("a valid request");
            let answer = floodgate.should_rate_limit(&request.to_domain()).await.expect("ShouldRateLimit answers");
            out.clear();
            RateLimitResponse(answer).encode(&mut out);
        }
        let ns = started.elapsed().as_nanos() as f64 / calls as f64;
        println!("{label} #{round}: {ns:.0} ns/call");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls = std::env::args().nth(1).map_or(CALLS, |n| n.parse().expect("calls per round"));
    let dir = rules_dir();
    let mut settings = Settings::for_profile(Profile::Loadtest);
    settings.rls_options = RlsOptions { path: Some(dir.clone()), ..RlsOptions::default() };
    let floodgate =
        Floodgate::new(AnyStore::Memory(MemoryStore::new()), service_options(&settings), Arc::new(SystemClock));
    floodgate.rls_rules().reload().expect("the rules load");
    let subjects: Vec<String> = (0..SUBJECTS).map(|n| format!("s{n}")).collect();
    let rules: Vec<RlsRequest<'_>> = subjects
        .iter()
        .map(|subject| {
            RlsRequest::new("d5", 0)
                .with_descriptor([entry("remote_address", subject)])
                .with_descriptor([entry("path", "/api/v7/chat")])
        })
        .collect();
    // The user_type descriptor alone (Level 1 through Envoy's API): its
    // rate-limit step runs, capacity is 0 here so Level 1 refuses it after.
    let user_type: Vec<RlsRequest<'_>> = subjects
        .iter()
        .map(|subject| {
            RlsRequest::new("chat", 0).with_descriptor([entry("user_type", "registered"), entry("subject", subject)])
        })
        .collect();
    let messages: Vec<Vec<u8>> = subjects
        .iter()
        .map(|subject| {
            ProstRateLimitRequest {
                domain: "d5".to_owned(),
                descriptors: [("remote_address", subject.as_str()), ("path", "/api/v7/chat")]
                    .into_iter()
                    .map(|(key, value)| RateLimitDescriptor {
                        entries: vec![rate_limit_descriptor::Entry { key: key.to_owned(), value: value.to_owned() }],
                    })
                    .collect(),
                hits_addend: 0,
            }
            .encode_to_vec()
        })
        .collect();
    time(&floodgate, "1,000 rules, 2 descriptors", calls, &rules).await;
    time_wire(&floodgate, "1,000 rules, 2 descriptors, from the wire", calls, &messages).await;
    time(&floodgate, "user_type, 1 descriptor", calls, &user_type).await;
    let _ = std::fs::remove_dir_all(dir);
}
