//! Envoy's rate-limit service (issue 8): the real server on 127.0.0.1:0,
//! a real tonic client of `envoy.service.ratelimit.v3.RateLimitService`,
//! every scenario on both stores. The clock is a manual one (Redis scripts
//! take the caller's time), so durations are exact, not timed.

use crate::common;

use std::sync::Arc;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::{self, FileConfig, Profile};
use floodgate::core::rls::{self, RlsConfig};
use floodgate::store::TimeSource;
use floodgate_client::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, rate_limit::Unit};
use floodgate_client::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use floodgate_client::pb::{Decision, ProcessStatus, UserType};
use floodgate_client::{RateLimitClient, rate_limit_request};
use tonic::Code as GrpcCode;

/// The `[rls]` table the tests run with (shared with src/core/rls's unit tests).
const RULES: &str = include_str!("../fixtures/rls/chat.toml");

const START_MS: u64 = 1_800_000_000_000;

struct Rls {
    server: Server,
    clock: Arc<ManualClock>,
    rls: RateLimitClient,
    c: Clients,
}

fn rules() -> Arc<rls::Rules> {
    let config: RlsConfig = toml::from_str(RULES).expect("RULES is TOML");
    Arc::new(config::rls_rules(&config).expect("RULES are valid"))
}

async fn start_rls(backend: Backend, profile: Profile) -> Rls {
    let mut s = settings(profile, "");
    s.rls = rules();
    s.redis_time = TimeSource::Caller;
    let clock = Arc::new(ManualClock::at_ms(START_MS));
    let server = backend_server(backend, s, clock.clone()).await;
    let client = connect(&server, Some(FRONTEND)).await;
    let c = clients(&server).await;
    Rls { rls: client.rate_limit(), server, clock, c }
}

async fn ask(r: &mut Rls, request: RateLimitRequest) -> RateLimitResponse {
    r.rls.should_rate_limit(request).await.expect("ShouldRateLimit answers").into_inner()
}

fn secs(status: &DescriptorStatus) -> (i64, i32) {
    let d = status.duration_until_reset.expect("duration_until_reset is set");
    (d.seconds, d.nanos)
}

fn header<'a>(response: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    response.response_headers_to_add.iter().find(|h| h.key == name).map(|h| h.value.as_str())
}

async fn a_descriptor_over_its_limit_is_over_limit_until_it_resets(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    let one = || rate_limit_request("chat", &[&[("remote_address", "10.0.0.1")]], 0);
    // 3 per minute, burst 3: each hit leaves one fewer and 20 s more to full.
    for (remaining, until_full) in [(2, 20), (1, 40), (0, 60)] {
        let answer = ask(&mut r, one()).await;
        assert_eq!(answer.overall_code(), Code::Ok);
        let status = &answer.statuses[0];
        assert_eq!((status.code(), status.limit_remaining, secs(status)), (Code::Ok, remaining, (until_full, 0)));
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit()), (3, Unit::Minute));
        assert!(answer.response_headers_to_add.is_empty());
    }
    let over = ask(&mut r, one()).await;
    assert_eq!(over.overall_code(), Code::OverLimit);
    assert_eq!(over.statuses.len(), 1);
    let status = &over.statuses[0];
    assert_eq!((status.code(), status.limit_remaining, secs(status)), (Code::OverLimit, 0, (60, 0)));
    // The next hit is possible after one interval (20 s); the counter is full after 60 s.
    assert_eq!(header(&over, "retry-after"), Some("20"));
    assert_eq!(header(&over, "x-floodgate-decision"), Some("rate_limited"));
    // Each value is counted apart.
    let other = ask(&mut r, rate_limit_request("chat", &[&[("remote_address", "10.0.0.2")]], 0)).await;
    assert_eq!(other.overall_code(), Code::Ok);
    // A refused hit consumed nothing: 7.5 s later the counter is 7.5 s closer to full.
    r.clock.advance_ms(7_500);
    let still = ask(&mut r, one()).await;
    assert_eq!((still.overall_code(), secs(&still.statuses[0])), (Code::OverLimit, (52, 500_000_000)));
    assert_eq!(header(&still, "retry-after"), Some("13"), "12.5 s rounds up");
    r.clock.advance_ms(12_500);
    let again = ask(&mut r, one()).await;
    assert_eq!(again.overall_code(), Code::Ok);
    assert_eq!((again.statuses[0].limit_remaining, secs(&again.statuses[0])), (0, (60, 0)));
}

async fn two_descriptors_are_both_decided_and_the_worst_wins(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    let both = || rate_limit_request("chat", &[&[("remote_address", "a")], &[("path", "/landing/chat")]], 0);
    for _ in 0..3 {
        let answer = ask(&mut r, both()).await;
        assert_eq!(answer.overall_code(), Code::Ok);
        assert_eq!(answer.statuses.len(), 2);
    }
    let answer = ask(&mut r, both()).await;
    assert_eq!(answer.overall_code(), Code::OverLimit);
    let (address, path) = (&answer.statuses[0], &answer.statuses[1]);
    assert_eq!(address.code(), Code::OverLimit);
    assert_eq!(path.code(), Code::Ok);
    let limit = path.current_limit.as_ref().unwrap();
    assert_eq!((limit.name.as_str(), limit.requests_per_unit, limit.unit()), ("chat landing", 10, Unit::Second));
    // 10 per second (one per 100 ms), three taken: the refused request took nothing.
    assert_eq!((path.limit_remaining, secs(path)), (7, (0, 300_000_000)));
    let path_only = ask(&mut r, rate_limit_request("chat", &[&[("path", "/landing/chat")]], 0)).await;
    assert_eq!(path_only.statuses[0].limit_remaining, 6);
    // Order does not matter: the worst still wins.
    let reversed = rate_limit_request("chat", &[&[("path", "/landing/chat")], &[("remote_address", "a")]], 0);
    let answer = ask(&mut r, reversed).await;
    assert_eq!(answer.overall_code(), Code::OverLimit);
    assert_eq!((answer.statuses[0].code(), answer.statuses[1].code()), (Code::Ok, Code::OverLimit));
}

async fn unknown_domains_and_descriptors_are_ok(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    for request in [
        rate_limit_request("no-such-domain", &[&[("remote_address", "a")]], 0),
        rate_limit_request("chat", &[&[("no_such_key", "x")]], 0),
        rate_limit_request("chat", &[&[("remote_address", "a"), ("deeper", "than any rule")]], 0),
        rate_limit_request("chat", &[&[("path", "/other")]], 0), // unlimited
    ] {
        for _ in 0..5 {
            let answer = ask(&mut r, request.clone()).await;
            assert_eq!(answer.overall_code(), Code::Ok, "{request:?}");
            assert_eq!(answer.statuses.len(), 1);
            assert_eq!(answer.statuses[0].code(), Code::Ok);
            assert!(answer.statuses[0].current_limit.is_none(), "no limit applies to {request:?}");
        }
    }
}

async fn hits_addend_five_uses_five(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    let tokens = |hits| rate_limit_request("chat", &[&[("tokens", "user-1")]], hits);
    // 10 per hour: one every 6 minutes.
    let first = ask(&mut r, tokens(5)).await;
    assert_eq!((first.overall_code(), first.statuses[0].limit_remaining), (Code::Ok, 5));
    assert_eq!(secs(&first.statuses[0]), (30 * 60, 0));
    let second = ask(&mut r, tokens(5)).await;
    assert_eq!((second.overall_code(), second.statuses[0].limit_remaining), (Code::Ok, 0));
    let third = ask(&mut r, tokens(1)).await;
    assert_eq!(third.overall_code(), Code::OverLimit);
    assert_eq!(header(&third, "retry-after"), Some("360"));
    // hits_addend 0 means 1.
    let fresh = ask(&mut r, rate_limit_request("chat", &[&[("tokens", "user-2")]], 0)).await;
    assert_eq!(fresh.statuses[0].limit_remaining, 9);
    // More hits than the burst can never pass, and take nothing.
    let huge = ask(&mut r, rate_limit_request("chat", &[&[("tokens", "user-2")]], 11)).await;
    assert_eq!((huge.overall_code(), huge.statuses[0].limit_remaining), (Code::OverLimit, 9));
}

async fn shadow_mode_counts_but_never_refuses(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    let trial = || rate_limit_request("chat", &[&[("plan", "trial")]], 0);
    let first = ask(&mut r, trial()).await;
    assert_eq!((first.overall_code(), first.statuses[0].limit_remaining), (Code::Ok, 0));
    let second = ask(&mut r, trial()).await;
    assert_eq!(second.overall_code(), Code::Ok, "shadow mode lets it through");
    assert_eq!((second.statuses[0].code(), second.statuses[0].limit_remaining), (Code::Ok, 0));
    assert!(second.response_headers_to_add.is_empty());
    let metrics = r.server.operations.metrics_text().await.unwrap();
    assert!(metrics.contains("floodgate_rls_shadow_over_limit_total 1\n"), "{metrics}");
}

/// Production profile, one healthy chat REST process with capacity 5:
/// T = 14, the anonymous limit is 8.
async fn user_type_anonymous_is_refused_at_the_threshold_like_check_capacity(backend: Backend) {
    let mut r = start_rls(backend, Profile::Production).await;
    r.c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let anonymous = |subject: &str| {
        rate_limit_request(
            "chat",
            &[&[("user_type", "anonymous"), ("subject", subject)], &[("remote_address", subject)]],
            0,
        )
    };
    for i in 0..8 {
        let rls = ask(&mut r, anonymous(&format!("rls-{i}"))).await;
        let check = r.c.admission.check_capacity(check(UserType::Anonymous, &format!("check-{i}"))).await.unwrap();
        assert_eq!((rls.overall_code(), check.into_inner().decision()), (Code::Ok, Decision::Admit), "load {i}");
        let admitted = r.c.admission.enqueue_atomic(enqueue(UserType::Anonymous, &format!("task-{i}"))).await.unwrap();
        assert_eq!(admitted.into_inner().decision(), Decision::Admit);
    }
    assert_eq!(load(&r.server).await, 8);

    let refused = ask(&mut r, anonymous("late")).await;
    assert_eq!(refused.overall_code(), Code::OverLimit);
    assert_eq!(refused.statuses[0].code(), Code::OverLimit);
    assert_eq!(refused.statuses[1].code(), Code::Ok, "the address descriptor is under its limit");
    assert_eq!(header(&refused, "x-floodgate-decision"), Some("backpressure"));
    assert_eq!(header(&refused, "retry-after"), Some("1"), "backpressure_retry_after_ms 1000");
    let level_one = refused.statuses[0].current_limit.as_ref().unwrap();
    assert_eq!((level_one.requests_per_unit, level_one.unit()), (10, Unit::Minute));
    let check = r.c.admission.check_capacity(check(UserType::Anonymous, "late-check")).await.unwrap().into_inner();
    assert_eq!(check.decision(), Decision::Backpressure);
    // Registered users still fit below 11.
    let registered = rate_limit_request("chat", &[&[("user_type", "registered"), ("subject", "member")]], 0);
    assert_eq!(ask(&mut r, registered).await.overall_code(), Code::Ok);

    // The refusal went nowhere near the address counter: it is still untouched.
    let again = ask(&mut r, rate_limit_request("chat", &[&[("remote_address", "late")]], 0)).await;
    assert_eq!(again.statuses[0].limit_remaining, 2);
    // Counted like CheckCapacity's decisions (Envoy's have no transport).
    let metrics = r.server.operations.metrics_text().await.unwrap();
    let counted = "floodgate_decisions_total{level=\"1\",decision=\"backpressure\",user_type=\"anonymous\",transport=\"unspecified\"} 1\n";
    assert!(metrics.contains(counted), "{metrics}");
    assert!(metrics.contains("floodgate_rls_answers_total{code=\"over_limit\"} 1\n"), "{metrics}");
}

async fn user_type_shares_the_level_one_rate_limit_with_check_capacity(backend: Backend) {
    let mut r = start_rls(backend, Profile::Production).await;
    r.c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // Anonymous: 10 per minute, burst 5, keyed by subject (here the address).
    let anonymous = || rate_limit_request("chat", &[&[("user_type", "anonymous"), ("remote_address", "10.9.9.9")]], 0);
    for remaining in (0..5).rev() {
        let answer = ask(&mut r, anonymous()).await;
        assert_eq!((answer.overall_code(), answer.statuses[0].limit_remaining), (Code::Ok, remaining));
    }
    let limited = ask(&mut r, anonymous()).await;
    assert_eq!(limited.overall_code(), Code::OverLimit);
    assert_eq!(header(&limited, "x-floodgate-decision"), Some("rate_limited"));
    assert_eq!(header(&limited, "retry-after"), Some("6"));
    assert_eq!(secs(&limited.statuses[0]), (30, 0), "full again in 5 × 6 s");
    let check = r.c.admission.check_capacity(check(UserType::Anonymous, "10.9.9.9")).await.unwrap().into_inner();
    assert_eq!((check.decision(), check.retry_after_ms), (Decision::RateLimited, 6_000));
    r.clock.advance_ms(6_000);
    assert_eq!(ask(&mut r, anonymous()).await.overall_code(), Code::Ok);
}

async fn bad_requests_are_invalid_argument(backend: Backend) {
    let mut r = start_rls(backend, Profile::Development).await;
    let cases = [
        (rate_limit_request("", &[&[("remote_address", "a")]], 0), "domain"),
        (rate_limit_request("chat", &[], 0), "descriptors"),
        (rate_limit_request("chat", &[&[("remote_address", "a")], &[]], 0), "descriptors[1].entries"),
        (rate_limit_request("chat", &[&[("", "a")]], 0), "descriptors[0].entries[0].key"),
        (rate_limit_request("chat", &[&[("user_type", "admin")]], 0), "descriptors[0].user_type"),
    ];
    for (request, field) in cases {
        let err = r.rls.should_rate_limit(request).await.unwrap_err();
        assert_eq!(err.code(), GrpcCode::InvalidArgument, "{field}");
        assert!(err.message().starts_with(&format!("{field}:")), "{field}: {}", err.message());
    }
    // Nothing was counted: the good descriptor of a bad request took nothing.
    let answer = ask(&mut r, rate_limit_request("chat", &[&[("remote_address", "a")]], 0)).await;
    assert_eq!(answer.statuses[0].limit_remaining, 2);
}

// Every behaviour above runs on both stores from one test body.
common::on_both_stores!(
    a_descriptor_over_its_limit_is_over_limit_until_it_resets,
    two_descriptors_are_both_decided_and_the_worst_wins,
    unknown_domains_and_descriptors_are_ok,
    hits_addend_five_uses_five,
    shadow_mode_counts_but_never_refuses,
    user_type_anonymous_is_refused_at_the_threshold_like_check_capacity,
    user_type_shares_the_level_one_rate_limit_with_check_capacity,
    bad_requests_are_invalid_argument,
);

// ---- Redis: one script call per request; failures are UNAVAILABLE ----

#[tokio::test]
async fn one_script_call_per_should_rate_limit_on_redis() {
    let redis = common::redis::RedisServer::start();
    let mut s = settings(Profile::Loadtest, "");
    s.rls = rules();
    s.store = floodgate::config::StoreUrl::Redis(redis.url());
    s.snapshot_refresh_ms = 3_600_000; // keep background refreshes out of the count
    let server = start_with(s, Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    let request = |i: usize| {
        let address = format!("10.0.{}.{}", i / 256, i % 256);
        let subject = format!("user-{i}");
        rate_limit_request(
            "chat",
            &[
                &[("remote_address", &address)],
                &[("tokens", &subject)],
                &[("user_type", "registered"), ("subject", &subject)],
                &[("no_such_key", "x")],
            ],
            0,
        )
    };
    // Warm the script cache (the first EVALSHA of a script may need a SCRIPT LOAD).
    rls.should_rate_limit(request(100_000)).await.unwrap();
    let calls = |stats: &[(String, u64)], name: &str| stats.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
    // Every command but the INFO that reads the stats.
    let all_calls = |stats: &[(String, u64)]| stats.iter().filter(|(n, _)| n != "info").map(|(_, c)| *c).sum::<u64>();
    // The first housekeeping round runs at startup; wait until Redis is quiet
    // (the next round is an hour away), so that only our calls are counted.
    let mut quiet = redis.command_calls();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = redis.command_calls();
        if all_calls(&now) == all_calls(&quiet) {
            break;
        }
        quiet = now;
    }
    let before = redis.command_calls();
    for i in 0..100 {
        let answer = rls.should_rate_limit(request(i)).await.unwrap().into_inner();
        assert_eq!(answer.statuses.len(), 4);
    }
    let after = redis.command_calls();
    assert_eq!(calls(&after, "evalsha") - calls(&before, "evalsha"), 100, "one script per ShouldRateLimit");
    // commandstats also counts the GET/SET a script runs: 3 checks each read a key and write it.
    let reads_and_writes =
        (calls(&after, "get") - calls(&before, "get")) + (calls(&after, "set") - calls(&before, "set"));
    assert_eq!(reads_and_writes, 600, "{after:?}");
    // Inside each script: one TIME, then a GET and a SET per check.
    assert_eq!(calls(&after, "time") - calls(&before, "time"), 100);
    assert_eq!(all_calls(&after) - all_calls(&before), 800, "no call besides the script: {after:?}");

    // Requests that match no rule never reach Redis.
    let before = redis.command_calls();
    for _ in 0..20 {
        rls.should_rate_limit(rate_limit_request("other", &[&[("remote_address", "a")]], 0)).await.unwrap();
    }
    assert_eq!(calls(&redis.command_calls(), "evalsha"), calls(&before, "evalsha"));
}

#[tokio::test]
async fn redis_failures_are_unavailable_for_envoy_to_judge() {
    let mut r = start_rls(Backend::Redis, Profile::Development).await;
    let limited = || rate_limit_request("chat", &[&[("remote_address", "a")]], 0);
    assert_eq!(ask(&mut r, limited()).await.overall_code(), Code::Ok);
    r.server.redis.as_mut().expect("a private redis-server").kill();
    let err = r.rls.should_rate_limit(limited()).await.unwrap_err();
    assert_eq!(err.code(), GrpcCode::Unavailable, "{err:?}");
    // What needs no store still answers.
    assert_eq!(ask(&mut r, rate_limit_request("other", &[&[("x", "y")]], 0)).await.overall_code(), Code::Ok);
}

// ---- wiring: auth, health, reflection, the config file ----

#[tokio::test]
async fn envoy_needs_a_frontend_token() {
    let r = start_rls(Backend::Memory, Profile::Development).await;
    let client = connect(&r.server, None).await;
    let request = || rate_limit_request("chat", &[&[("remote_address", "a")]], 0);
    let err = client.rate_limit().should_rate_limit(request()).await.unwrap_err();
    assert_eq!(err.code(), GrpcCode::Unauthenticated);
    let err = client.with_token(Some(WORKER)).unwrap().rate_limit().should_rate_limit(request()).await.unwrap_err();
    assert_eq!(err.code(), GrpcCode::PermissionDenied);
    let admin = client.with_token(Some(ADMIN)).unwrap().rate_limit().should_rate_limit(request()).await;
    assert!(admin.is_ok(), "an admin token may call everything");
}

#[tokio::test]
async fn health_and_reflection_cover_the_rate_limit_service() {
    use tonic_reflection::pb::v1;
    let r = start_rls(Backend::Memory, Profile::Production).await;
    let mut health = connect(&r.server, None).await.health();
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: "envoy.service.ratelimit.v3.RateLimitService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", r.server.grpc)).unwrap().connect().await.unwrap();
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = |request| v1::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let list = ask(v1::server_reflection_request::MessageRequest::ListServices(String::new()));
    let symbol = ask(v1::server_reflection_request::MessageRequest::FileContainingSymbol(
        "envoy.service.ratelimit.v3.RateLimitService".into(),
    ));
    let mut stream = client.server_reflection_info(tokio_stream::iter([list, symbol])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "envoy.service.ratelimit.v3.RateLimitService"), "{names:?}");
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("unexpected reflection answer");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[test]
fn the_config_file_holds_descriptor_rules_and_names_bad_fields() {
    let file: FileConfig = toml::from_str(&RULES.replace("[[domains", "[[rls.domains")).unwrap();
    let rules = config::rls_rules(&file.rls).unwrap();
    assert_eq!(rules.domain_names(), ["chat"]);

    let dir = std::env::temp_dir().join(format!("floodgate-rls-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    let bad = "[[rls.domains]]\ndomain = \"chat\"\n[[rls.domains.descriptors]]\nkey = \"remote_address\"\nrate_limit = { unit = \"fortnight\", requests_per_unit = 3 }\n";
    std::fs::write(&path, bad).unwrap();
    let err = config::check_file(&path, None).unwrap_err().to_string();
    assert!(err.contains("fortnight"), "{err}");
    let bad = "[[rls.domains]]\ndomain = \"chat\"\n[[rls.domains.descriptors]]\nkey = \"remote_address\"\nrate_limit = { unit = \"minute\" }\n";
    std::fs::write(&path, bad).unwrap();
    let err = config::check_file(&path, None).unwrap_err().to_string();
    assert!(err.contains("rls.domains[0].descriptors[0].rate_limit.requests_per_unit"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
