//! `/metrics` by the Prometheus conventions (issue: operators can see it,
//! point 4): the real server's exposition read by a real text parser, and
//! a scrape's cost on a real Redis, which must not grow with the history.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::{RedisServer, cli};
use common::*;
use floodgate::app::App;
use floodgate::clock::ManualClock;
use floodgate::config::{Profile, StoreUrl};
use floodgate::core::analytics::{CELLS, HISTORY_MINUTES, cell};
use floodgate::core::{Decision, Transport};
use floodgate::store::{AnalyticsStore, RedisOptions, RedisStore};
use floodgate_client::pb::{ProcessStatus, UserType};
use prometheus_parse::{Sample, Scrape, Value};

async fn scrape(server: &Server) -> (String, Scrape) {
    let reply = http::get(server.http, "/metrics", None).await;
    assert_eq!(reply.status, 200);
    let parsed = Scrape::parse(reply.body.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text");
    (reply.body, parsed)
}

fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = find(scrape, name, labels);
    assert_eq!(samples.len(), 1, "one sample {name}{labels:?}");
    match samples[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is not a single value"),
    }
}

/// The RPC histogram's count for one method and code.
fn calls(scrape: &Scrape, method: &str, code: &str) -> f64 {
    let samples = find(scrape, "floodgate_rpc_duration_seconds", &[("method", method), ("grpc_code", code)]);
    samples
        .iter()
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn the_exposition_follows_the_prometheus_conventions() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    c.admission.check_capacity(check(UserType::Registered, "ok")).await.unwrap();
    c.admission.enqueue_atomic(enqueue(UserType::Registered, "ok")).await.unwrap();
    // A bad request (INVALID_ARGUMENT) and a wrong token (UNAUTHENTICATED).
    assert!(c.admission.check_capacity(check(UserType::Registered, "")).await.is_err());
    let mut stranger = connect(&server, Some("not-a-token")).await.admission();
    assert!(stranger.check_capacity(check(UserType::Registered, "x")).await.is_err());
    let (text, scrape) = scrape(&server).await;

    // Counters, and only counters, end in _total; the parser types every
    // sample from its family's TYPE line (histograms' _sum and _count stay untyped).
    for s in &scrape.samples {
        match &s.value {
            Value::Counter(_) => assert!(s.metric.ends_with("_total"), "counter {} lacks _total", s.metric),
            Value::Gauge(_) | Value::Histogram(_) | Value::Summary(_) => {
                assert!(!s.metric.ends_with("_total"), "{} is not a counter but ends in _total", s.metric)
            }
            Value::Untyped(_) => assert!(
                ["_sum", "_count"].iter().any(|end| s.metric.ends_with(end))
                    && text.contains(&format!(
                        "# TYPE {} histogram\n",
                        s.metric.trim_end_matches("_sum").trim_end_matches("_count")
                    )),
                "{} has no type",
                s.metric
            ),
        }
    }
    // Families without samples yet (no rule loaded) are named by the conventions too.
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').expect("TYPE name kind");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
    }
    // No percent any more: ratios are 0-1 and the capacity gauge is not a _total.
    assert!(!text.contains("percent"), "{text}");
    assert_eq!(value(&scrape, "floodgate_capacity_system", &[]), 14.0);
    assert_eq!(value(&scrape, "floodgate_utilization_ratio", &[]), 1.0 / 14.0);
    assert_eq!(value(&scrape, "floodgate_pressure_ratio", &[]), 1.0 / 14.0);

    let build = find(&scrape, "floodgate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]);
    assert_eq!(build.len(), 1, "{text}");
    assert!(matches!(build[0].value, Value::Gauge(v) if v == 1.0));
    // Issue 23: the cargo profile is `build_profile`, not to be read as the runtime profile.
    let cargo_profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    assert_eq!(build[0].labels.get("build_profile"), Some(cargo_profile), "{text}");
    assert_eq!(build[0].labels.get("profile"), None, "{text}");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value(&scrape, "process_start_time_seconds", &[]);
    assert!(started <= now + 1.0 && started > now - 24.0 * 3600.0, "started {started}, now {now}");
    assert!(value(&scrape, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&scrape, "process_resident_memory_bytes", &[]) > 1e6);
    let open = value(&scrape, "process_open_fds", &[]);
    assert!(open > 0.0 && open <= value(&scrape, "process_max_fds", &[]));

    // The RPC histogram by service, method and gRPC status code.
    let check_ok = find(&scrape, "floodgate_rpc_duration_seconds", &[("method", "CheckCapacity"), ("grpc_code", "OK")]);
    assert_eq!(check_ok.len(), 1);
    assert_eq!(check_ok[0].labels.get("service"), Some("floodgate.v1.Admission"));
    assert_eq!(calls(&scrape, "CheckCapacity", "OK"), 1.0);
    assert_eq!(calls(&scrape, "CheckCapacity", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(calls(&scrape, "CheckCapacity", "UNAUTHENTICATED"), 1.0);
    assert_eq!(calls(&scrape, "EnqueueAtomic", "OK"), 1.0);
    assert_eq!(calls(&scrape, "Heartbeat", "OK"), 1.0);
    // Buckets reach past LeaseTasks' 20 s long polls.
    let Value::Histogram(buckets) = &check_ok[0].value else { panic!("histogram") };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert!(bounds.contains(&20.0) && bounds.contains(&30.0) && bounds.contains(&0.0001), "{bounds:?}");
}

#[tokio::test]
async fn a_long_poll_is_timed_to_its_end() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    let mut poll = lease(1, 30_000);
    poll.wait_ms = 300;
    assert!(c.workers.lease_tasks(poll).await.unwrap().into_inner().tasks.is_empty());
    let (_, scrape) = scrape(&server).await;
    let samples = find(&scrape, "floodgate_rpc_duration_seconds", &[("method", "LeaseTasks"), ("grpc_code", "OK")]);
    let Value::Histogram(buckets) = &samples[0].value else { panic!("histogram") };
    // The wait is in the measure: nothing under 0.25 s, the call in a higher bucket.
    let under = |bound: f64| buckets.iter().find(|b| b.less_than == bound).map(|b| b.count);
    assert_eq!(under(0.25), Some(0.0));
    assert_eq!(under(30.0), Some(1.0));
}

#[tokio::test]
async fn throttle_ratios_are_shares_of_one() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // Production anonymous: burst 5, so the sixth check of one subject is refused.
    for _ in 0..6 {
        c.admission.check_capacity(check(UserType::Anonymous, "same")).await.unwrap();
    }
    // The scrape reads what housekeeping has flushed (about once a second).
    let mut ratio = 0.0;
    for _ in 0..100 {
        ratio = value(&scrape(&server).await.1, "floodgate_throttle_ratio", &[("window", "1h")]);
        if ratio > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ratio, 1.0 / 6.0);
    assert_eq!(value(&scrape(&server).await.1, "floodgate_throttle_ratio", &[("window", "24h")]), 1.0 / 6.0);
}

/// Commands a scrape sent to Redis, by name (redis-cli's own INFO left out).
fn commands_of(redis: &RedisServer, before: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut sent: Vec<(String, u64)> = redis
        .command_calls()
        .into_iter()
        .filter(|(name, _)| name != "info")
        .map(|(name, calls)| {
            let earlier = before.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
            (name, calls - earlier)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    sent.sort();
    sent
}

/// Scrapes a floodgate on a private Redis holding `minutes` minutes of
/// decision counts (written through a second store connection, as another
/// replica's flushes would be, at a manual clock), once to
/// warm the cache of settled minutes, then after one more minute has
/// passed; answers the commands of that second scrape and its text.
async fn second_scrape_on_redis(minutes: u64) -> (Vec<(String, u64)>, String, RedisServer) {
    let redis = RedisServer::start();
    let mut settings = settings(Profile::Production, "");
    settings.store = StoreUrl::Redis(redis.url());
    let replica = RedisStore::connect(
        &redis.url(),
        RedisOptions { prefix: settings.redis_prefix.clone(), ..RedisOptions::default() },
    )
    .await
    .expect("a second connection");
    // Half a minute into a minute: the previous one has settled.
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000 / 60_000 * 60_000 + 30_000));
    // Bound but not served: no housekeeping runs behind the test's back.
    let app = App::bind_with_clock(settings, clock.clone()).await.expect("binds");
    let operations = app.operations();
    let now_minute = 1_800_000_000_000 / 60_000;
    let mut refused = [0; CELLS];
    refused[cell(Decision::RateLimited, floodgate::core::UserType::Anonymous, Transport::Rest)] = 1;
    for back in 0..minutes {
        replica.flush_analytics(now_minute - back, refused, Vec::new()).await.unwrap();
    }
    operations.metrics_text().await.expect("first scrape");
    clock.advance_ms(60_000);
    replica.flush_analytics(now_minute + 1, refused, Vec::new()).await.unwrap();
    let before = redis.command_calls();
    let text = operations.metrics_text().await.expect("second scrape");
    (commands_of(&redis, &before), text, redis)
}

#[tokio::test]
async fn a_scrape_never_writes_and_reads_the_same_with_one_minute_or_a_day_of_history() {
    let (short, short_text, _a) = second_scrape_on_redis(1).await;
    let (long, long_text, b) = second_scrape_on_redis(HISTORY_MINUTES).await;
    assert_eq!(short, long, "a day of history costs a scrape what one minute does");
    let reads: u64 = long.iter().map(|(_, n)| n).sum();
    assert!(reads > 0 && reads <= 16, "a bounded handful of commands: {long:?}");
    for (command, _) in &long {
        let flags = cli(b.port, &["COMMAND", "INFO", command]);
        assert!(!flags.lines().any(|l| l.trim() == "write"), "{command} writes: {long:?}");
    }
    // And the windows are right: every minute had one refusal, nothing else.
    let line = |text: &str, window: &str| {
        let series = format!("floodgate_throttle_ratio{{window=\"{window}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(series.as_str())).map(str::to_owned)
    };
    assert_eq!(line(&long_text, "24h").as_deref(), Some("1.0"));
    assert_eq!(line(&short_text, "1h").as_deref(), Some("1.0"));
}
