//! envoyproxy/ratelimit's YAML rules (issue 14): the peer's published
//! example and its documented matching answered through a real tonic
//! client on both stores, the per-rule counters, live reload, and the
//! bad-file refusals of `check-config --rls-config`. Counting clocks are
//! manual (durations exact); reloads are polled, never timed.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::process::BIN;
use common::*;
use floodgate::clock::{ManualClock, SystemClock};
use floodgate::config::Profile;
use floodgate::config::RlsOptions;
use floodgate::store::TimeSource;
use floodgate_client::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, rate_limit::Unit};
use floodgate_client::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use floodgate_client::{RateLimitClient, rate_limit_request};

const START_MS: u64 = 1_800_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rls").join(name)
}

struct Rls {
    server: Server,
    clock: Arc<ManualClock>,
    rls: RateLimitClient,
}

async fn start_rls(backend: Backend, options: RlsOptions) -> Rls {
    let mut s = settings(Profile::Development, "");
    s.rls_options = options;
    s.redis_time = TimeSource::Caller;
    let clock = Arc::new(ManualClock::at_ms(START_MS));
    let server = backend_server(backend, s, clock.clone()).await;
    let rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    Rls { server, clock, rls }
}

fn path(name: &str) -> RlsOptions {
    RlsOptions { path: Some(fixture(name)), ..RlsOptions::default() }
}

async fn ask(rls: &mut RateLimitClient, request: RateLimitRequest) -> RateLimitResponse {
    rls.should_rate_limit(request).await.expect("ShouldRateLimit answers").into_inner()
}

fn one(domain: &str, entries: &[(&str, &str)]) -> RateLimitRequest {
    rate_limit_request(domain, &[entries], 0)
}

fn header<'a>(response: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    response.response_headers_to_add.iter().find(|h| h.key == name).map(|h| h.value.as_str())
}

/// (code, requests_per_unit and unit of current_limit, limit_remaining).
fn status(s: &DescriptorStatus) -> (Code, Option<(u32, Unit)>, u32) {
    (s.code(), s.current_limit.as_ref().map(|l| (l.requests_per_unit, l.unit())), s.limit_remaining)
}

async fn first(r: &mut Rls, domain: &str, entries: &[(&str, &str)]) -> (Code, Option<(u32, Unit)>, u32) {
    let answer = ask(&mut r.rls, one(domain, entries)).await;
    status(&answer.statuses[0])
}

async fn metrics(server: &Server) -> String {
    http::get(server.http, "/metrics", None).await.body
}

/// The value of one sample, `name{labels}` written as in the exposition.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse::<f64>().ok().map(|v| v as u64))
}

fn rule(name: &str, domain: &str, rule: &str) -> String {
    format!("floodgate_rls_rule_{name}_total{{domain=\"{domain}\",rule=\"{rule}\"}}")
}

const M: Unit = Unit::Minute;

async fn the_peer_example_answers_as_the_peer_documents(backend: Backend) {
    let mut r = start_rls(backend, path("peer")).await;
    // Nested exact values: 1 per minute.
    let nested = [("source_cluster", "proxy"), ("destination_cluster", "mock")];
    assert_eq!(first(&mut r, "rl", &nested).await, (Code::Ok, Some((1, M)), 0));
    assert_eq!(first(&mut r, "rl", &nested).await, (Code::OverLimit, Some((1, M)), 0));
    // The first entry alone matches a rule without a limit: nothing applies.
    assert_eq!(first(&mut r, "rl", &[("source_cluster", "proxy")]).await, (Code::Ok, None, 0));
    // Key-only at both levels, each value counted apart: 2 then 3 per minute.
    assert_eq!(first(&mut r, "rl", &[("foo", "a")]).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, "rl", &[("foo", "b")]).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, "rl", &[("foo", "a"), ("bar", "x")]).await, (Code::Ok, Some((3, M)), 2));
    // requests_per_unit 0: refused at once, and no retry-after (it never passes).
    let banned = ask(&mut r.rls, one("rl", &[("foo", "a"), ("bar", "banned")])).await;
    assert_eq!(banned.overall_code(), Code::OverLimit);
    assert_eq!(status(&banned.statuses[0]), (Code::OverLimit, Some((0, M)), 0));
    assert_eq!(header(&banned, "retry-after"), None);
    assert_eq!(header(&banned, "x-floodgate-decision"), Some("rate_limited"));
    // Unlimited rules (nested and top-level): OK with limit_remaining MaxUint32.
    assert_eq!(first(&mut r, "rl", &[("foo", "a"), ("bay", "z")]).await, (Code::Ok, None, u32::MAX));
    assert_eq!(first(&mut r, "rl", &[("qux", "anything")]).await, (Code::Ok, None, u32::MAX));
    // Per second under a key-only parent.
    let second = [("foo", "a"), ("baz", "1")];
    assert_eq!(first(&mut r, "rl", &second).await, (Code::Ok, Some((1, Unit::Second)), 0));
    assert_eq!(first(&mut r, "rl", &second).await.0, Code::OverLimit);
    r.clock.advance_ms(1_000);
    assert_eq!(first(&mut r, "rl", &second).await.0, Code::Ok);
    // Shadow mode: over its 1 per minute but let through, and counted.
    let shady = [("foo", "a"), ("baz", "shady")];
    assert_eq!(first(&mut r, "rl", &shady).await.0, Code::Ok);
    let shadow = ask(&mut r.rls, one("rl", &shady)).await;
    assert_eq!((shadow.overall_code(), shadow.statuses[0].code()), (Code::Ok, Code::Ok));
    // The other file of the directory is its own domain.
    for _ in 0..5 {
        assert_eq!(first(&mut r, "mongo_cps", &[("database", "users")]).await.0, Code::Ok);
    }
    assert_eq!(first(&mut r, "mongo_cps", &[("database", "users")]).await, (Code::OverLimit, Some((5, M)), 0));
    assert_eq!(first(&mut r, "mongo_cps", &[("database", "other")]).await, (Code::Ok, None, 0));
    // hits_addend above the limit can never pass: no retry-after.
    let heavy = ask(&mut r.rls, rate_limit_request("rl", &[&[("foo", "heavy")]], 3)).await;
    assert_eq!((heavy.overall_code(), header(&heavy, "retry-after")), (Code::OverLimit, None));
    let fits = ask(&mut r.rls, rate_limit_request("rl", &[&[("foo", "heavy")]], 2)).await;
    assert_eq!(fits.overall_code(), Code::Ok, "a refused request consumed nothing");
    let again = ask(&mut r.rls, rate_limit_request("rl", &[&[("foo", "heavy")]], 1)).await;
    assert_eq!(header(&again, "retry-after"), Some("30"), "an ordinary refusal keeps retry-after");

    // Per-rule counters in hits, named by the peer's stats keys.
    let text = metrics(&r.server).await;
    let n = |name: &str, key: &str| sample(&text, &rule(name, "rl", key));
    assert_eq!(n("hits", "source_cluster_proxy.destination_cluster_mock"), Some(2));
    assert_eq!(n("over_limit", "source_cluster_proxy.destination_cluster_mock"), Some(1));
    assert_eq!(n("within_limit", "source_cluster_proxy.destination_cluster_mock"), Some(1));
    // foo: a, b, then heavy 3 (over), 2 (within; the second above 80 % of 2), 1 (over).
    assert_eq!(n("hits", "foo"), Some(8));
    assert_eq!(n("over_limit", "foo"), Some(4));
    assert_eq!(n("within_limit", "foo"), Some(4));
    assert_eq!(n("near_limit", "foo"), Some(1));
    assert_eq!(n("over_limit", "foo.bar_banned"), Some(1));
    assert_eq!(n("shadow_mode", "foo.baz_shady"), Some(1));
    assert_eq!(n("over_limit", "foo.baz_shady"), Some(1));
    assert_eq!(n("within_limit", "foo.baz_shady"), Some(1));
    assert_eq!(sample(&text, &rule("over_limit", "mongo_cps", "database_users")), Some(1));
    assert_eq!(sample(&text, "floodgate_rls_config_version"), Some(1));
    assert_eq!(sample(&text, "floodgate_rls_config_load_errors_total"), Some(0));
    // One series per rule, not per value: `foo` with values a, b, heavy is one line.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("floodgate_rls_rule_hits_total{domain=\"rl\",rule=\"foo\"")).count(),
        1
    );
}

async fn wildcards_replaces_and_detailed_metric_match_as_the_peer(backend: Backend) {
    let mut r = start_rls(backend, path("features.yaml")).await;
    let d = "features";
    // `foo*`: the star matches an empty run, and any run.
    assert_eq!(first(&mut r, d, &[("wild", "foo")]).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, d, &[("wild", "foobar")]).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, d, &[("wild", "barfoo")]).await, (Code::Ok, None, 0));
    // Stars in the middle, several of them; exact wins over wildcard, wildcard over key-only.
    assert_eq!(first(&mut r, d, &[("path", "/api/v1/users/7")]).await, (Code::Ok, Some((1, M)), 0));
    assert_eq!(first(&mut r, d, &[("path", "/api//users/")]).await, (Code::Ok, Some((1, M)), 0));
    assert_eq!(first(&mut r, d, &[("path", "/api/exact/users/1")]).await, (Code::Ok, Some((5, M)), 4));
    assert_eq!(first(&mut r, d, &[("path", "/api/v1/groups/7")]).await, (Code::Ok, Some((10, M)), 9));
    // replaces: `beta` in the same request removes the limit named `free`.
    let both = rate_limit_request(d, &[&[("tier", "free")], &[("tier_override", "beta")]], 0);
    for _ in 0..3 {
        let answer = ask(&mut r.rls, both.clone()).await;
        assert_eq!(answer.overall_code(), Code::Ok);
        assert_eq!(status(&answer.statuses[0]), (Code::Ok, None, 0));
        assert_eq!(status(&answer.statuses[1]).1, Some((100, M)));
    }
    // Without `beta`, `free` counts from zero: nothing was taken from it.
    assert_eq!(first(&mut r, d, &[("tier", "free")]).await, (Code::Ok, Some((2, M)), 1));
    // detailed_metric: one series per value.
    for client in ["alpha", "alpha", "beta"] {
        assert_eq!(first(&mut r, d, &[("client", client)]).await.0, Code::Ok);
    }
    let text = metrics(&r.server).await;
    assert_eq!(sample(&text, &rule("hits", d, "client_alpha")), Some(2));
    assert_eq!(sample(&text, &rule("hits", d, "client_beta")), Some(1));
    assert_eq!(sample(&text, &rule("hits", d, "client")), None, "a detailed rule has no aggregate series");
    assert_eq!(sample(&text, &rule("hits", d, "wild_foo*")), Some(2));
    assert_eq!(sample(&text, &rule("hits", d, "path_/api/*/users/*")), Some(2));
    assert_eq!(sample(&text, &rule("hits", d, "tier_free")), Some(1), "replaced hits are not counted");
    assert_eq!(sample(&text, &rule("hits", d, "tier_override_beta")), Some(3));
}

common::on_both_stores!(
    the_peer_example_answers_as_the_peer_documents,
    wildcards_replaces_and_detailed_metric_match_as_the_peer,
    the_peers_runtime_layout_mixed_case_units_and_user_type_rules_answer,
);

#[tokio::test]
async fn global_shadow_mode_lets_everything_through_and_counts_it() {
    let options = RlsOptions { shadow_mode: true, ..path("peer") };
    let mut r = start_rls(Backend::Memory, options).await;
    let banned = ask(&mut r.rls, one("rl", &[("foo", "a"), ("bar", "banned")])).await;
    assert_eq!((banned.overall_code(), banned.statuses[0].code()), (Code::Ok, Code::Ok));
    assert!(banned.response_headers_to_add.is_empty());
    for _ in 0..3 {
        assert_eq!(first(&mut r, "rl", &[("foo", "a")]).await.0, Code::Ok);
    }
    let text = metrics(&r.server).await;
    assert_eq!(sample(&text, &rule("shadow_mode", "rl", "foo.bar_banned")), Some(1));
    assert_eq!(sample(&text, &rule("shadow_mode", "rl", "foo")), Some(1));
}

#[tokio::test]
async fn ratelimit_headers_describe_the_descriptor_closest_to_its_limit() {
    let options = RlsOptions { ratelimit_headers: true, ..path("peer") };
    let mut r = start_rls(Backend::Memory, options).await;
    let request = || rate_limit_request("rl", &[&[("foo", "a")], &[("foo", "a"), ("bar", "b")]], 0);
    let answer = ask(&mut r.rls, request()).await;
    assert_eq!(answer.overall_code(), Code::Ok);
    assert_eq!(header(&answer, "RateLimit-Limit"), Some("2"));
    assert_eq!(header(&answer, "RateLimit-Remaining"), Some("1"));
    assert_eq!(header(&answer, "RateLimit-Reset"), Some("30"));
    ask(&mut r.rls, request()).await;
    let over = ask(&mut r.rls, request()).await;
    assert_eq!(over.overall_code(), Code::OverLimit);
    assert_eq!(
        (header(&over, "RateLimit-Remaining"), header(&over, "RateLimit-Reset"), header(&over, "retry-after")),
        (Some("0"), Some("60"), Some("30"))
    );
}

#[tokio::test]
async fn the_debug_view_lists_domains_rules_stats_keys_and_sources() {
    let r = start_rls(Backend::Memory, path("peer")).await;
    assert_eq!(http::get(r.server.http, "/debug/rls-config", None).await.status, 401);
    let view = http::get(r.server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    assert_eq!(view["version"], 1);
    let domains = view["domains"].as_array().unwrap();
    let names: Vec<&str> = domains.iter().map(|d| d["domain"].as_str().unwrap()).collect();
    assert_eq!(names, ["mongo_cps", "rl"]);
    assert!(domains[1]["source"].as_str().unwrap().ends_with("peer/example.yaml"), "{view}");
    let rules: Vec<(&str, &str)> = domains[1]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["stats_key"].as_str().unwrap(), r["limit"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [
            ("foo", "2/minute"),
            ("foo.bar", "3/minute"),
            ("foo.bar_banned", "0/minute"),
            ("foo.bay", "unlimited"),
            ("foo.baz", "1/second"),
            ("foo.baz_shady", "1/minute"),
            ("qux", "unlimited"),
            ("source_cluster_proxy.destination_cluster_mock", "1/minute"),
        ]
    );
}

/// The same view over gRPC (`Admin/GetRlsConfig`), admin role only: field
/// for field what `/debug/rls-config` serves.
#[tokio::test]
async fn the_admin_rpc_lists_the_same_rules_as_the_debug_route() {
    let r = start_rls(Backend::Memory, path("peer")).await;
    let client = connect(&r.server, None).await;
    for (token, code) in [
        (None, floodgate_client::Code::Unauthenticated),
        (Some(FRONTEND), floodgate_client::Code::PermissionDenied),
        (Some(WORKER), floodgate_client::Code::PermissionDenied),
    ] {
        let mut admin = client.with_token(token).unwrap().admin();
        let refused = admin.get_rls_config(floodgate_client::pb::GetRlsConfigRequest {}).await.unwrap_err();
        assert_eq!(refused.code(), code, "{token:?}");
    }
    let mut admin = client.with_token(Some(ADMIN)).unwrap().admin();
    let config = admin.get_rls_config(floodgate_client::pb::GetRlsConfigRequest {}).await.unwrap().into_inner();
    assert_eq!((config.version, config.load_errors, config.shadow_mode), (1, 0, false));
    assert!(config.path.as_deref().is_some_and(|p| p.ends_with("rls/peer")), "{config:?}");
    assert!(config.loaded_at_ms > 0);
    let rl = config.domains.iter().find(|d| d.domain == "rl").expect("domain rl");
    assert!(rl.source.ends_with("peer/example.yaml"), "{}", rl.source);
    let banned = rl.rules.iter().find(|r| r.stats_key == "foo.bar_banned").expect("the banned rule");
    assert_eq!((banned.domain.as_str(), banned.limit.as_str()), ("rl", "0/minute"));

    // Field for field the HTTP document.
    let domains: Vec<serde_json::Value> = config
        .domains
        .iter()
        .map(|d| {
            let rules: Vec<serde_json::Value> = d
                .rules
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "domain": r.domain, "stats_key": r.stats_key, "limit": r.limit, "name": r.name,
                        "shadow_mode": r.shadow_mode, "detailed_metric": r.detailed_metric, "replaces": r.replaces,
                    })
                })
                .collect();
            serde_json::json!({ "domain": d.domain, "source": d.source, "rules": rules })
        })
        .collect();
    let grpc = serde_json::json!({
        "path": config.path, "version": config.version, "loaded_at_ms": config.loaded_at_ms,
        "load_errors": config.load_errors, "shadow_mode": config.shadow_mode,
        "ratelimit_headers": config.ratelimit_headers, "domains": domains,
        "last_load": config.last_load.as_ref().map(|l| serde_json::json!({
            "at_ms": l.at_ms, "ok": l.ok, "version": l.version, "file": l.file,
            "problems": l.problems.iter().map(|p| serde_json::json!({ "key_path": p.key_path, "message": p.message }))
                .collect::<Vec<_>>(),
        })),
    });
    assert_eq!(grpc, http::get(r.server.http, "/debug/rls-config", Some(ADMIN)).await.json());
}

// ---- live reload ----

/// A private directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("floodgate-rls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes through a temporary file and a rename, as editors and Kubernetes do.
    fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn domain_file(domain: &str, per_minute: u32) -> String {
    format!(
        "domain: {domain}\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: minute\n      requests_per_unit: {per_minute}\n"
    )
}

/// Polls until `ok` holds; fails after 20 s (a bound against hanging, not a timing claim).
async fn eventually<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

async fn limit_of(rls: &mut RateLimitClient, domain: &str, value: &str) -> Option<u32> {
    let answer = ask(rls, one(domain, &[("k", value)])).await;
    answer.statuses[0].current_limit.as_ref().map(|l| l.requests_per_unit)
}

#[tokio::test]
async fn changed_bad_and_new_files_reload_live() {
    let dir = TempDir::new("reload");
    dir.write("a.yaml", &domain_file("live", 1));
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let server = start_with(s, Arc::new(SystemClock)).await;
    let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    assert_eq!(limit_of(&mut rls, "live", "v0").await, Some(1));

    // A changed file: the new limit is answered (each poll a new value, so
    // no counter left by the old limit is in the way).
    dir.write("a.yaml", &domain_file("live", 100));
    let mut n = 0;
    eventually("the changed limit is answered", || {
        n += 1;
        let value = format!("v{n}");
        let mut rls = rls.clone();
        async move { limit_of(&mut rls, "live", &value).await == Some(100) }
    })
    .await;

    // A bad file: counted, logged, and the rules in force stay.
    dir.write("a.yaml", "domain: live\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n");
    let http = server.http;
    eventually("the load error is counted", || async move {
        sample(&metrics_at(http).await, "floodgate_rls_config_load_errors_total") == Some(1)
    })
    .await;
    assert_eq!(limit_of(&mut rls, "live", "after-bad").await, Some(100));
    assert_eq!(server.floodgate.rls_rules().version(), 2);

    // A new file in the directory: a new domain is served (once the bad one is mended).
    dir.write("a.yaml", &domain_file("live", 7));
    dir.write("b.yaml", &domain_file("added", 3));
    eventually("the new domain is served", || {
        let mut rls = rls.clone();
        async move { limit_of(&mut rls, "added", "x").await == Some(3) }
    })
    .await;
    assert_eq!(limit_of(&mut rls, "live", "after-new").await, Some(7));
    assert_eq!(sample(&metrics_at(http).await, "floodgate_rls_config_load_errors_total"), Some(1));
    server.stop().await;
}

async fn metrics_at(addr: std::net::SocketAddr) -> String {
    http::get(addr, "/metrics", None).await.body
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_reloaded() {
    // Kubernetes mounts a ConfigMap as `name -> ..data/name` and swaps the
    // `..data` link to a new timestamped directory in one rename.
    let dir = TempDir::new("configmap");
    let version = |tag: &str, per_minute: u32| {
        let v = dir.0.join(format!("..{tag}"));
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("rules.yaml"), domain_file("cm", per_minute)).unwrap();
        let link = dir.0.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{tag}"), &link).unwrap();
        std::fs::rename(&link, dir.0.join("..data")).unwrap();
    };
    version("v1", 4);
    std::os::unix::fs::symlink("..data/rules.yaml", dir.0.join("rules.yaml")).unwrap();
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let server = start_with(s, Arc::new(SystemClock)).await;
    let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    assert_eq!(limit_of(&mut rls, "cm", "a").await, Some(4));
    version("v2", 9);
    eventually("the swapped ConfigMap is answered", || {
        let mut rls = rls.clone();
        async move { limit_of(&mut rls, "cm", "b").await == Some(9) }
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_bad_file_at_start_refuses_to_start_naming_it() {
    let dir = TempDir::new("start");
    dir.write("a.yaml", "domain: x\ndescriptors:\n  - kee: a\n");
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let err = floodgate::app::App::bind(s).await.err().expect("a bad rule file refuses the start").to_string();
    assert!(err.contains("a.yaml") && err.contains("descriptors[0]: unknown field `kee`"), "{err}");
}

// ---- the bad-file table: check-config --rls-config ----

fn check_config(path: &Path) -> (i32, String, String) {
    let out = Command::new(BIN).arg("check-config").arg("--rls-config").arg(path).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_peer_examples_and_refuses_bad_files_naming_file_and_key_path() {
    let (code, stdout, _) = check_config(&fixture("peer"));
    assert_eq!(code, 0);
    assert!(stdout.contains("valid Envoy rules (domains: mongo_cps, rl)"), "{stdout}");
    let rule = |body: &str| format!("domain: d\ndescriptors:\n{body}");
    let table: &[(&str, String, &[&str])] = &[
        ("unknown key", rule("  - key: a\n    rate_limt: {}\n"), &["descriptors[0]", "unknown field `rate_limt`"]),
        (
            "unknown nested key",
            rule("  - key: a\n    descriptors:\n      - key: b\n        rate_limit:\n          units: second\n"),
            &["descriptors[0].descriptors[0].rate_limit", "unknown field `units`"],
        ),
        ("missing domain", "descriptors:\n  - key: a\n".into(), &["missing field `domain`"]),
        ("empty domain", "domain: \"\"\n".into(), &["domain: must be 1..=256 bytes"]),
        ("missing key", rule("  - value: a\n"), &["descriptors[0]", "missing field `key`"]),
        ("duplicate key in a rule", rule("  - key: a\n    key: b\n"), &["descriptors[0]", "duplicate field `key`"]),
        (
            "duplicate rules",
            rule("  - key: a\n    value: v\n  - key: a\n    value: v\n"),
            &["descriptors[1]: a sibling rule already has key \"a\" and value \"v\""],
        ),
        (
            "bad unit",
            rule("  - key: a\n    rate_limit:\n      unit: fortnight\n      requests_per_unit: 1\n"),
            &["descriptors[0].rate_limit.unit", "unknown variant `fortnight`"],
        ),
        (
            "missing unit",
            rule("  - key: a\n    rate_limit:\n      requests_per_unit: 1\n"),
            &["descriptors[0].rate_limit.unit: is required"],
        ),
        (
            "unlimited with a unit",
            rule("  - key: a\n    rate_limit:\n      unlimited: true\n      unit: second\n"),
            &["descriptors[0].rate_limit: unlimited excludes unit"],
        ),
        (
            "replaces naming itself",
            rule(
                "  - key: a\n    rate_limit:\n      name: n\n      unit: second\n      requests_per_unit: 1\n      replaces:\n        - name: n\n",
            ),
            &["descriptors[0].rate_limit.replaces[0].name: a limit cannot replace itself"],
        ),
        (
            "replaces naming nothing",
            rule(
                "  - key: a\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n      replaces:\n        - name: \"\"\n",
            ),
            &["descriptors[0].rate_limit.replaces[0].name: must name a limit"],
        ),
        ("not YAML", "domain: [\n".into(), &[]),
    ];
    let dir = TempDir::new("table");
    for (what, text, expected) in table {
        dir.write("bad.yaml", text);
        let (code, _, stderr) = check_config(&dir.0.join("bad.yaml"));
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.contains(&format!("{}: ", dir.0.join("bad.yaml").display())), "{what} names the file: {stderr}");
        for part in *expected {
            assert!(stderr.contains(part), "{what}: expected {part:?} in {stderr}");
        }
    }
    // The peer's quota example uses `quota_mode`, which floodgate does not support.
    let (code, _, stderr) = check_config(&fixture("unsupported"));
    assert_eq!(code, 1);
    assert!(stderr.contains("quota.yaml: descriptors[0]: unknown field `quota_mode`"), "{stderr}");
    // One domain, one file.
    let dir = TempDir::new("twice");
    dir.write("a.yaml", &domain_file("same", 1));
    dir.write("b.yaml", &domain_file("same", 2));
    let (code, _, stderr) = check_config(&dir.0);
    assert_eq!(code, 1);
    assert!(stderr.contains("b.yaml: domain: \"same\" is also configured in"), "{stderr}");
    assert!(stderr.contains("a.yaml"), "{stderr}");
}

#[tokio::test]
async fn toml_and_yaml_rules_serve_together_but_a_domain_has_one_source() {
    let toml_rules = |domain: &str| {
        let text = format!(
            "[[domains]]\ndomain = \"{domain}\"\n[[domains.descriptors]]\nkey = \"k\"\nrate_limit = {{ unit = \"hour\", requests_per_unit = 4 }}\n"
        );
        let config: floodgate::core::rls::RlsConfig = toml::from_str(&text).unwrap();
        Arc::new(floodgate::config::rls_rules(&config).unwrap())
    };
    let mut s = settings(Profile::Development, "");
    s.rls = toml_rules("chat");
    s.rls_options = path("peer");
    let server = start_with(s, Arc::new(SystemClock)).await;
    let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    assert_eq!(limit_of(&mut rls, "chat", "a").await, Some(4));
    assert_eq!(first_limit(&mut rls, "mongo_cps", ("database", "users")).await, Some(5));
    server.stop().await;

    let mut s = settings(Profile::Development, "");
    s.rls = toml_rules("rl");
    s.rls_options = path("peer");
    let err = floodgate::app::App::bind(s).await.err().expect("one domain, two sources").to_string();
    assert!(err.contains("example.yaml: domain: \"rl\" is also configured in the TOML config"), "{err}");
}

async fn first_limit(rls: &mut RateLimitClient, domain: &str, entry: (&str, &str)) -> Option<u32> {
    let answer = ask(rls, one(domain, &[entry])).await;
    answer.statuses[0].current_limit.as_ref().map(|l| l.requests_per_unit)
}

/// Ten domains of 100 rules each, a quarter of them wildcards, a quarter
/// nested: the rule set the benchmark reloads under load.
fn write_thousand_rules(dir: &TempDir, per_second: u32) {
    for d in 0..10 {
        let mut text = format!("domain: d{d}\ndescriptors:\n");
        let limit = format!("    rate_limit:\n      unit: second\n      requests_per_unit: {per_second}\n");
        for i in 0..50 {
            text += &format!("  - key: path\n    value: /exact/{i}\n{limit}");
        }
        for i in 0..25 {
            text += &format!("  - key: path\n    value: /wild/{i}/*/x*\n{limit}");
        }
        text += &format!("  - key: path\n{limit}");
        for i in 0..24 {
            text += &format!(
                "  - key: tenant\n    value: t{i}\n    descriptors:\n      - key: user\n        rate_limit:\n          unit: second\n          requests_per_unit: {per_second}\n"
            );
        }
        dir.write(&format!("d{d}.yaml"), &text);
    }
}

#[tokio::test]
async fn reloading_a_thousand_rules_under_load_drops_no_request() {
    let dir = TempDir::new("thousand");
    write_thousand_rules(&dir, 1_000_000);
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let server = start_with(s, Arc::new(SystemClock)).await;
    assert_eq!(server.floodgate.rls_rules().current().view().len(), 1_000);
    let rls = connect(&server, Some(FRONTEND)).await.rate_limit();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4u32 {
        let (mut rls, stop) = (rls.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut answered, mut unmatched) = (0u64, 0u64);
            let mut n = worker;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || answered < 50 {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let domain = format!("d{}", n % 10);
                let request = match n % 3 {
                    0 => one(&domain, &[("path", &format!("/exact/{}", n % 50))]),
                    1 => one(&domain, &[("path", &format!("/wild/{}/a/b/x{n}", n % 25))]),
                    _ => one(&domain, &[("tenant", &format!("t{}", n % 24)), ("user", &format!("u{n}"))]),
                };
                let answer = rls.should_rate_limit(request).await.expect("no request fails during reloads");
                let answer = answer.into_inner();
                assert_eq!(answer.overall_code(), Code::Ok);
                answered += 1;
                unmatched += u64::from(answer.statuses[0].current_limit.is_none());
            }
            (answered, unmatched)
        }));
    }
    for (i, per_second) in [999_999, 1_000_000, 999_998, 1_000_000, 999_997].into_iter().enumerate() {
        write_thousand_rules(&dir, per_second);
        let rules = server.floodgate.rls_rules().clone();
        let want = i as u64 + 2;
        eventually("the rewritten rules are loaded", || {
            let rules = rules.clone();
            async move { rules.version() >= want }
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        let (answered, unmatched) = task.await.expect("load task");
        assert_eq!(unmatched, 0, "every request matched a rule, before, during and after each swap");
        total += answered;
    }
    assert!(total >= 200, "{total}");
    assert_eq!(server.floodgate.rls_rules().load_errors(), 0);
    server.stop().await;
}

// ---- migrating teams' own files (issue 22) ----

/// The peer's runtime layout: `RUNTIME_ROOT/RUNTIME_SUBDIRECTORY` (the
/// directory floodgate is pointed at) holding `config/` (`RUNTIME_APPDIRECTORY`).
fn peer_layout(tag: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.0.join("config")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.0.join("config").join(name), text).unwrap();
    }
    dir
}

/// Rule files as the peer's users write them: mixed-case units, a limit at
/// the top of uint32's range, a rule keyed `user_type`.
const MIGRATED: &str = "\
domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      unit: Minute
      requests_per_unit: 2
  - key: user_type
    value: premium
    rate_limit:
      unit: SECOND
      requests_per_unit: 1
  - key: bytes
    rate_limit:
      unit: second
      requests_per_unit: 4294967295
";

async fn the_peers_runtime_layout_mixed_case_units_and_user_type_rules_answer(backend: Backend) {
    let dir = peer_layout(&format!("migrated-{backend:?}"), &[("edge.yaml", MIGRATED)]);
    let mut r = start_rls(backend, RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() }).await;
    // `unit: Minute` is a minute.
    let address = [("remote_address", "10.0.0.1")];
    assert_eq!(first(&mut r, "edge", &address).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, "edge", &address).await, (Code::Ok, Some((2, M)), 0));
    assert_eq!(first(&mut r, "edge", &address).await, (Code::OverLimit, Some((2, M)), 0));
    // `user_type` in a YAML domain is an ordinary key: its rule applies,
    // any value is accepted, and floodgate's Level 1 is not asked.
    let premium = [("user_type", "premium")];
    assert_eq!(first(&mut r, "edge", &premium).await, (Code::Ok, Some((1, Unit::Second)), 0));
    assert_eq!(first(&mut r, "edge", &premium).await, (Code::OverLimit, Some((1, Unit::Second)), 0));
    let other = ask(&mut r.rls, one("edge", &[("user_type", "gold")])).await;
    assert_eq!((other.overall_code(), status(&other.statuses[0])), (Code::Ok, (Code::Ok, None, 0)));
    r.clock.advance_ms(1_000);
    assert_eq!(first(&mut r, "edge", &premium).await.0, Code::Ok);
    // 4294967295 per second, counted in hits_addend (a byte budget): a
    // million hits pass and leave the rest of the second's budget.
    let bytes = ask(&mut r.rls, rate_limit_request("edge", &[&[("bytes", "tenant-a")]], 1_000_000)).await;
    let (code, limit, remaining) = status(&bytes.statuses[0]);
    assert_eq!((code, limit), (Code::Ok, Some((u32::MAX, Unit::Second))));
    // The counter keeps µs of the second: 1,000,000 hits cost 233 µs
    // (rounded up), so the rest is known to within one µs's worth (4,295 hits).
    let left = u32::MAX - 1_000_000;
    assert!((left - 4_295..=left).contains(&remaining), "{remaining}");
    let d = http::get(r.server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    assert_eq!(d["domains"][0]["source"], dir.0.join("config/edge.yaml").display().to_string());
    r.server.stop().await;
}

#[test]
fn check_config_reads_the_peers_layout_and_refuses_a_path_with_no_rule_file() {
    let dir = peer_layout("check-layout", &[("edge.yaml", MIGRATED), ("mongo.yml", &domain_file("mongo", 5))]);
    let (code, stdout, stderr) = check_config(&dir.0);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid Envoy rules (domains: edge, mongo)"), "{stdout}");
    // A rule file beside config/ would never be read by the peer: refused, not ignored.
    std::fs::write(dir.0.join("stray.yaml"), domain_file("stray", 1)).unwrap();
    let (code, _, stderr) = check_config(&dir.0);
    assert_eq!(code, 1);
    assert!(stderr.contains("stray.yaml: a rule file beside") && stderr.contains("config"), "{stderr}");
    // An empty directory, an empty config/, a directory of other files: no rule file.
    for (tag, files) in [("none", &[][..]), ("other", &[("README.md", "rules")][..])] {
        let empty = TempDir::new(&format!("check-empty-{tag}"));
        for (name, text) in files {
            std::fs::write(empty.0.join(name), text).unwrap();
        }
        for path in [empty.0.clone(), {
            std::fs::create_dir_all(empty.0.join("config")).unwrap();
            empty.0.clone()
        }] {
            let (code, stdout, stderr) = check_config(&path);
            assert_eq!(code, 1, "{tag}: {stdout}");
            assert!(stderr.contains(&format!("{}: holds no rule file", path.display())), "{tag}: {stderr}");
        }
    }
    // requests_per_unit: missing and out of range say different things.
    let one_rule = |rate: &str| format!("domain: d\ndescriptors:\n  - key: a\n    rate_limit:\n{rate}");
    let files = TempDir::new("check-rpu");
    for (text, expected) in [
        (one_rule("      unit: Hour\n"), "descriptors[0].rate_limit.requests_per_unit: is required with a unit"),
        (
            one_rule("      unit: Hour\n      requests_per_unit: 4294967296\n"),
            "4294967296 is out of range: must be a whole number 0..=4294967295",
        ),
        (one_rule("      unit: hour\n      requests_per_unit: -5\n"), "-5 is out of range"),
    ] {
        files.write("d.yaml", &text);
        let (code, _, stderr) = check_config(&files.0.join("d.yaml"));
        assert_eq!(code, 1, "{text}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
    }
    files.write("d.yaml", &one_rule("      unit: Day\n      requests_per_unit: 4294967295\n"));
    assert_eq!(check_config(&files.0.join("d.yaml")).0, 0);
}

#[tokio::test]
async fn a_rule_path_that_loads_no_domain_is_not_ready_and_says_why() {
    let dir = TempDir::new("not-ready");
    std::fs::create_dir_all(dir.0.join("config")).unwrap();
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let server = start_with(s, Arc::new(SystemClock)).await;
    let ready = http::get(server.http, "/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let reason = ready.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains(&format!("--rls-config {}: holds no rule file", dir.0.display())), "{reason}");
    // A rule file arrives (in the peer's config/): ready.
    std::fs::write(dir.0.join("config/edge.yaml"), MIGRATED).unwrap();
    let http = server.http;
    eventually("ready once a domain is loaded", || async move { http::get(http, "/readyz", None).await.status == 200 })
        .await;
    server.stop().await;
}

/// `floodgate admin rls-config` against `server`, as an operator runs it.
async fn admin_rls_config(server: &Server) -> String {
    let target = format!("http://{}", server.grpc);
    let mut command = Command::new(BIN);
    command.args(["admin", "--target", &target, "--token", ADMIN, "rls-config"]);
    command.env_remove("FLOODGATE_ADMIN_TARGET").env_remove("FLOODGATE_ADMIN_TOKEN");
    let out = tokio::task::spawn_blocking(move || command.output().expect("floodgate runs")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn alert_codes(server: &Server) -> Vec<(String, String, String)> {
    server.operations.evaluate_alerts().await.unwrap();
    let doc = http::get(server.http, "/monitoring/alerts", Some(ADMIN)).await.json();
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (field("severity"), field("code"), field("message"))
        })
        .filter(|(_, code, _)| code.starts_with("rls_"))
        .collect()
}

#[tokio::test]
async fn a_failed_reload_shows_its_file_key_path_and_message_everywhere_and_warns_until_mended() {
    let dir = TempDir::new("last-load");
    dir.write("a.yaml", &domain_file("live", 1));
    let mut s = settings(Profile::Development, "");
    s.rls_options = RlsOptions { path: Some(dir.0.clone()), ..RlsOptions::default() };
    let server = start_with(s, Arc::new(SystemClock)).await;
    let doc = http::get(server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    assert_eq!((doc["last_load"]["ok"].as_bool(), doc["last_load"]["version"].as_u64()), (Some(true), Some(1)));
    assert!(doc["last_load"]["at_ms"].as_u64().is_some_and(|at| at > 0));
    assert_eq!(alert_codes(&server).await, []);
    assert_eq!(sample(&metrics(&server).await, "floodgate_rls_config_last_load_failed"), Some(0));

    dir.write("a.yaml", "domain: live\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n");
    let http = server.http;
    eventually("the failed reload is recorded", || async move {
        let doc = http::get(http, "/debug/rls-config", Some(ADMIN)).await.json();
        doc["last_load"]["ok"] == false
    })
    .await;
    let file = dir.0.join("a.yaml").display().to_string();
    // The debug route: when, which version stays, the file, the key path, the message.
    let doc = http::get(server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    let last = &doc["last_load"];
    assert_eq!((last["version"].as_u64(), last["file"].as_str()), (Some(1), Some(file.as_str())), "{doc}");
    assert_eq!(last["problems"][0]["key_path"], "descriptors[0].rate_limit.unit", "{doc}");
    assert!(
        last["problems"][0]["message"].as_str().unwrap_or_default().starts_with("unknown variant `fortnight`"),
        "{doc}"
    );
    assert_eq!(doc["load_errors"], 1);
    // The Admin API says the same.
    let mut admin = connect(&server, Some(ADMIN)).await.admin();
    let config = admin.get_rls_config(floodgate_client::pb::GetRlsConfigRequest {}).await.unwrap().into_inner();
    let load = config.last_load.expect("last_load");
    assert_eq!((load.ok, load.version, load.file.as_deref()), (false, 1, Some(file.as_str())));
    assert_eq!(load.problems[0].key_path, "descriptors[0].rate_limit.unit");
    // The CLI.
    let table = admin_rls_config(&server).await;
    assert!(table.contains(&format!("FAILED in {file} (version 1 stays in force)")), "{table}");
    assert!(table.contains("  descriptors[0].rate_limit.unit: unknown variant `fortnight`"), "{table}");
    // A warning alert and the gauge the PrometheusRule watches.
    let alerts = alert_codes(&server).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].0.as_str(), alerts[0].1.as_str()), ("warning", "rls_config_reload_failed"));
    assert!(alerts[0].2.contains(&file) && alerts[0].2.contains("descriptors[0].rate_limit.unit"), "{alerts:?}");
    assert_eq!(sample(&metrics(&server).await, "floodgate_rls_config_last_load_failed"), Some(1));

    // Mended: ok again, version 2, and the alert clears.
    dir.write("a.yaml", &domain_file("live", 5));
    eventually("the mended file is loaded", || async move {
        let doc = http::get(http, "/debug/rls-config", Some(ADMIN)).await.json();
        doc["last_load"]["ok"] == true
    })
    .await;
    let doc = http::get(server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    assert_eq!(
        (doc["last_load"]["version"].as_u64(), doc["last_load"]["problems"].as_array().map(Vec::len)),
        (Some(2), Some(0))
    );
    assert_eq!(alert_codes(&server).await, []);
    assert!(admin_rls_config(&server).await.contains("ok, version 2 in force"));
    server.stop().await;
}

const EDGE_PATHS: &str = "\
domain: edge
descriptors:
  - key: path
    value: /login
    rate_limit:
      unit: second
      requests_per_unit: 1
";

#[tokio::test]
async fn files_of_one_domain_merge_with_rls_merge_domains_and_repeated_rules_are_refused() {
    let dir = peer_layout("merge", &[("a-edge.yaml", MIGRATED), ("b-edge-paths.yaml", EDGE_PATHS)]);
    // Without the setting: one domain, one file.
    let (code, _, stderr) = check_config(&dir.0);
    assert_eq!(code, 1);
    assert!(stderr.contains("b-edge-paths.yaml: domain: \"edge\" is also configured in"), "{stderr}");
    assert!(stderr.contains("--rls-merge-domains"), "{stderr}");
    // With it (flag or environment, as the peer's MERGE_DOMAIN_CONFIG=true): one domain.
    let out =
        Command::new(BIN).args(["check-config", "--rls-merge-domains", "--rls-config"]).arg(&dir.0).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid Envoy rules (domains: edge)"));
    let out = Command::new(BIN)
        .env("FLOODGATE_RLS_MERGE_DOMAINS", "true")
        .args(["check-config", "--rls-config"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Served merged: both files' rules answer through a real client.
    let options = RlsOptions { path: Some(dir.0.clone()), merge_domains: true, ..RlsOptions::default() };
    let mut r = start_rls(Backend::Memory, options).await;
    assert_eq!(first(&mut r, "edge", &[("remote_address", "a")]).await, (Code::Ok, Some((2, M)), 1));
    assert_eq!(first(&mut r, "edge", &[("path", "/login")]).await, (Code::Ok, Some((1, Unit::Second)), 0));
    assert_eq!(first(&mut r, "edge", &[("path", "/login")]).await.0, Code::OverLimit);
    let doc = http::get(r.server.http, "/debug/rls-config", Some(ADMIN)).await.json();
    let config = dir.0.join("config");
    assert_eq!(
        doc["domains"][0]["source"],
        format!("{}, {}", config.join("a-edge.yaml").display(), config.join("b-edge-paths.yaml").display())
    );
    r.server.stop().await;

    // A rule repeated across the files (same key and value): refused, naming both.
    std::fs::write(
        config.join("c-again.yaml"),
        "domain: edge\ndescriptors:\n  - key: x\n  - key: path\n    value: /login\n",
    )
    .unwrap();
    let out =
        Command::new(BIN).args(["check-config", "--rls-merge-domains", "--rls-config"]).arg(&dir.0).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "c-again.yaml: descriptors[1]: merging domain \"edge\": {} descriptors[0] already has key \"path\" and value \"/login\"",
        config.join("b-edge-paths.yaml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test]
async fn the_near_limit_ratio_is_a_setting_as_the_peers_near_limit_ratio() {
    // mongo_cps database=users: 5 per minute. At 0.5 the 3rd, 4th and 5th hits are near (0.8: only the 5th).
    for (permille, near) in [(None, 1), (Some(500), 3)] {
        let options = RlsOptions { near_limit_permille: permille, ..path("peer") };
        let mut r = start_rls(Backend::Memory, options).await;
        for _ in 0..5 {
            assert_eq!(first(&mut r, "mongo_cps", &[("database", "users")]).await.0, Code::Ok);
        }
        let text = metrics(&r.server).await;
        assert_eq!(sample(&text, &rule("near_limit", "mongo_cps", "database_users")), Some(near), "{permille:?}");
        r.server.stop().await;
    }
    // The variable, read by serve: a bad value refuses the start naming it.
    let out = Command::new(BIN).env("FLOODGATE_RLS_NEAR_LIMIT_RATIO", "2").args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FLOODGATE_RLS_NEAR_LIMIT_RATIO must be a ratio from 0 to 1")
    );
}
