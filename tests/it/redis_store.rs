//! The Redis store across replicas and failures (issue: shared state in
//! Redis). Every test starts its own redis-server on a free port. What
//! every backend must do, role by role, is `store_contract`'s.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::Process;
use common::redis::{Monitor, RedisServer};
use common::*;
use floodgate::config::{Profile, StoreUrl};
use floodgate::store::TimeSource;
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};
use floodgate_client::{Client, Code};

// ---- the scripts themselves ----

/// The enqueue script run twice with the same arguments — what a client
/// resend does (a Cluster retry after a dropped connection) — admits its
/// tasks once and answers the second run as the first.
#[tokio::test]
async fn a_resent_enqueue_call_admits_its_tasks_once() {
    let redis = RedisServer::start();
    let script = ::redis::Script::new(&format!(
        "{}\n{}",
        include_str!("../../src/store/lua/prelude.lua"),
        include_str!("../../src/store/lua/enqueue.lua")
    ));
    let keys: Vec<String> = [
        "queue:anonymous",
        "queue:registered",
        "queue:privileged",
        "lease_expiry",
        "task_meta",
        "task_payload",
        "sequence",
    ]
    .iter()
    .map(|k| format!("{{floodgate}}:v2:{k}"))
    .collect();
    let mut connection = ::redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut call = script.prepare_invoke();
        for key in &keys {
            call.key(key);
        }
        call.arg("1000");
        for id in ["t1", "t2"] {
            call.key(&keys[6]).arg(1).arg(10).arg(id).arg("payload").arg("");
        }
        replies.push(call.invoke_async::<Vec<String>>(&mut connection).await.unwrap());
    }
    assert_eq!(replies[0], ["1", "t1", "1", "1", "1", "t2", "2", "2"]);
    // Same tasks, same positions; the load already counts them.
    assert_eq!(replies[1], ["1", "t1", "1", "2", "1", "t2", "2", "2"]);
    let queued: Vec<String> =
        ::redis::cmd("LRANGE").arg(&keys[1]).arg(0).arg(-1).query_async(&mut connection).await.unwrap();
    assert_eq!(queued, ["t1", "t2"]);
}

// ---- exactness across replicas ----

const BIG: &str = "concurrent_per_process = 50";

async fn replicas(url: &str, n: usize) -> Vec<Server> {
    replicas_on(url, n, std::sync::Arc::new(floodgate::clock::SystemClock), TimeSource::Server).await
}

/// `n` replicas sharing the Redis at `url`, on `clock`; the scripts read
/// `time` (the caller's time, to share a manual clock with the replicas).
async fn replicas_on(
    url: &str,
    n: usize,
    clock: std::sync::Arc<dyn floodgate::clock::Clock>,
    time: TimeSource,
) -> Vec<Server> {
    let mut servers = Vec::new();
    for _ in 0..n {
        let mut s = settings(Profile::Production, BIG);
        s.store = StoreUrl::Redis(url.to_owned());
        s.redis_time = time;
        // A thousand calls at once on a loaded 2-core machine (six nodes on a Cluster).
        s.redis_timeout_ms = 10_000;
        servers.push(start_with(s, clock.clone()).await);
    }
    servers
}

/// Waits until every replica's snapshot shows `total`.
async fn wait_for_capacity(servers: &[Server], total: u64) {
    for _ in 0..200 {
        if servers.iter().all(|s| s.floodgate.snapshot().calculation.system_total == total) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("replicas never agreed on capacity {total}");
}

async fn drain(c: &mut Clients) {
    loop {
        let tasks = c.workers.lease_tasks(lease(100, 30_000)).await.unwrap().into_inner().tasks;
        if tasks.is_empty() {
            return;
        }
        for t in tasks {
            c.workers
                .complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id })
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn three_replicas_admit_exactly_the_limit_under_a_thousand_concurrent_calls() {
    let redis = RedisServer::start();
    three_replicas_admit_exactly_the_limit(&redis.url(), 20).await;
}

/// The same on a Cluster of three primaries with a replica each: the
/// admission state keeps its one slot, so the race is closed the same way.
#[tokio::test]
async fn three_replicas_admit_exactly_the_limit_on_a_cluster() {
    let cluster = common::redis::Cluster::start_with_replicas(3, 1, None);
    three_replicas_admit_exactly_the_limit(&cluster.url(), 5).await;
}

async fn three_replicas_admit_exactly_the_limit(url: &str, rounds: usize) {
    let servers = replicas(url, 3).await;
    let mut all = Vec::new();
    for s in &servers {
        all.push(clients(s).await);
    }
    all[0].workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // C=50, one process: 40 effective + 100 queue = 140; registered limit floor(0.8 × 140) = 112.
    wait_for_capacity(&servers, 140).await;
    for round in 0..rounds {
        // Keep the worker alive however slow the rounds are (stale_after is 15 s).
        all[0].workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
        let admission: Vec<_> = all.iter().map(|c| c.admission.clone()).collect();
        let admitted = concurrent_enqueues(&admission, round, 1_000).await;
        assert_eq!(admitted, 112, "round {round}");
        assert_eq!(load(&servers[1]).await, 112);
        drain(&mut all[2]).await;
    }
}

#[tokio::test]
async fn the_last_slot_raced_by_two_replicas_goes_to_exactly_one() {
    let redis = RedisServer::start();
    the_last_slot_goes_to_exactly_one(&redis.url(), 20).await;
}

#[tokio::test]
async fn the_last_slot_raced_on_a_cluster_goes_to_exactly_one() {
    let cluster = common::redis::Cluster::start_with_replicas(3, 1, None);
    the_last_slot_goes_to_exactly_one(&cluster.url(), 5).await;
}

async fn the_last_slot_goes_to_exactly_one(url: &str, rounds: usize) {
    let servers = replicas(url, 2).await;
    let (mut a, mut b) = (clients(&servers[0]).await, clients(&servers[1]).await);
    a.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    wait_for_capacity(&servers, 140).await;
    for round in 0..rounds {
        a.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
        for i in 0..111 {
            let r = a.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("fill-{i}"))).await.unwrap();
            assert_eq!(r.into_inner().decision(), Decision::Admit);
        }
        let (mut x, mut y) = (a.admission.clone(), b.admission.clone());
        let (ra, rb) = tokio::join!(
            x.enqueue_atomic(enqueue(UserType::Registered, "racer-a")),
            y.enqueue_atomic(enqueue(UserType::Registered, "racer-b"))
        );
        let winners = [ra.unwrap().into_inner(), rb.unwrap().into_inner()]
            .iter()
            .filter(|r| r.decision() == Decision::Admit)
            .count();
        assert_eq!(winners, 1, "round {round}");
        drain(&mut b).await;
    }
}

// ---- nothing admitted is lost ----

#[tokio::test]
async fn a_dead_workers_leases_come_back_to_another_worker() {
    let redis = RedisServer::start();
    // Both replicas and the scripts on one manual clock: the leases expire
    // when the test moves it, not after a real wait.
    let clock = std::sync::Arc::new(floodgate::clock::ManualClock::at_ms(1_800_000_000_000));
    let servers = replicas_on(&redis.url(), 2, clock.clone(), TimeSource::Caller).await;
    let (mut a, mut b) = (clients(&servers[0]).await, clients(&servers[1]).await);
    a.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    wait_for_capacity(&servers, 140).await;
    let mut admitted = HashSet::new();
    for i in 0..10 {
        admitted.insert(
            a.admission
                .enqueue_atomic(enqueue(UserType::Registered, &format!("t{i}")))
                .await
                .unwrap()
                .into_inner()
                .task_id,
        );
    }
    {
        // This worker leases everything and dies without completing.
        let doomed = connect(&servers[0], Some(WORKER)).await;
        let held = doomed.workers().lease_tasks(lease(100, 300)).await.unwrap().into_inner().tasks;
        assert_eq!(held.len(), 10);
    }
    clock.advance_ms(300); // the leases' expiry instant
    let mut recovered = HashSet::new();
    while recovered.len() < 10 {
        let tasks = b.workers.lease_tasks(lease(100, 30_000)).await.unwrap().into_inner().tasks;
        assert!(!tasks.is_empty(), "expired leases must come back");
        for t in tasks {
            assert_eq!(t.delivery_count, 2);
            recovered.insert(t.task_id.clone());
            b.workers
                .complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id })
                .await
                .unwrap();
        }
    }
    assert_eq!(recovered, admitted);
    assert_eq!(load(&servers[1]).await, 0);
}

#[tokio::test]
async fn a_replica_killed_mid_load_loses_no_admitted_task() {
    let redis = RedisServer::start();
    let victim = Process::spawn(&redis.url(), "[runtime]\nconcurrent_per_process = 1000\n");
    let survivor = Process::spawn(&redis.url(), "[runtime]\nconcurrent_per_process = 1000\n");
    let to_victim = Client::connect(&victim.grpc, Some(ADMIN)).await.unwrap();
    to_victim.workers().heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();

    let admitted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut loops = Vec::new();
    for l in 0..16 {
        let (mut admission, admitted) = (to_victim.admission(), admitted.clone());
        loops.push(tokio::spawn(async move {
            for i in 0.. {
                match admission.enqueue_atomic(enqueue(UserType::Privileged, &format!("l{l}-{i}"))).await {
                    Ok(r) if r.get_ref().decision() == Decision::Admit => {
                        admitted.lock().unwrap().push(r.into_inner().task_id)
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    victim.signal("KILL");
    for l in loops {
        l.await.unwrap();
    }
    let admitted: HashSet<String> = admitted.lock().unwrap().iter().cloned().collect();
    assert!(admitted.len() > 50, "the load ran ({} admitted)", admitted.len());

    let to_survivor = Client::connect(&survivor.grpc, Some(WORKER)).await.unwrap();
    let mut leased = HashSet::new();
    loop {
        let tasks = to_survivor.workers().lease_tasks(lease(100, 60_000)).await.unwrap().into_inner().tasks;
        if tasks.is_empty() {
            break;
        }
        leased.extend(tasks.into_iter().map(|t| t.task_id));
    }
    let missing: Vec<_> = admitted.difference(&leased).collect();
    assert!(missing.is_empty(), "{} admitted tasks lost: {missing:?}", missing.len());
}

/// A production-profile server (with `config`) on `redis`, on the system
/// clock, and one healthy chat worker's heartbeat.
async fn server_on(redis: &RedisServer, config: &str) -> (Server, Clients) {
    let mut s = settings(Profile::Production, config);
    s.store = StoreUrl::Redis(redis.url());
    let server = start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    (server, c)
}

#[tokio::test]
async fn redis_killed_and_restarted_with_aof_keeps_every_admitted_task() {
    let mut redis = RedisServer::start_durable();
    let (_server, mut c) = server_on(&redis, BIG).await;
    let mut admitted = HashSet::new();
    for i in 0..50 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("d{i}"))).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Admit);
        admitted.insert(r.task_id);
    }
    redis.kill();
    redis.restart();
    let mut leased = HashSet::new();
    for _ in 0..100 {
        match c.workers.lease_tasks(lease(100, 60_000)).await {
            Ok(r) => {
                let tasks = r.into_inner().tasks;
                if tasks.is_empty() && !leased.is_empty() {
                    break;
                }
                leased.extend(tasks.into_iter().map(|t| t.task_id));
            }
            Err(e) => assert_eq!(e.code(), Code::Unavailable, "while reconnecting: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leased, admitted);
}

// ---- Redis down: Level 1 fails open, Level 2 fails closed, both recover ----

async fn admission_health(client: &Client) -> tonic_health::pb::health_check_response::ServingStatus {
    let request = tonic_health::pb::HealthCheckRequest { service: "floodgate.v1.Admission".into() };
    client.health().check(request).await.unwrap().into_inner().status()
}

#[tokio::test]
async fn with_redis_down_level_one_fails_open_level_two_closed_and_both_recover() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut redis = RedisServer::start();
    let (server, mut c) = server_on(&redis, "").await;
    let probe = connect(&server, None).await;
    assert_eq!(admission_health(&probe).await, ServingStatus::Serving);

    redis.kill();
    let level_one = c.admission.check_capacity(check(UserType::Registered, "u1")).await.unwrap().into_inner();
    assert_eq!(level_one.decision(), Decision::Admit, "fail open against the last snapshot");
    let level_two = c.admission.enqueue_atomic(enqueue(UserType::Registered, "u1")).await.unwrap_err();
    assert_eq!(level_two.code(), Code::Unavailable, "fail closed");
    // The local limiter still limits: production registered burst is 20.
    let mut limited = 0;
    for _ in 0..25 {
        let r = c.admission.check_capacity(check(UserType::Registered, "u2")).await.unwrap().into_inner();
        limited += usize::from(r.decision() == Decision::RateLimited);
    }
    assert_eq!(limited, 5);
    let mut status = ServingStatus::Serving;
    for _ in 0..100 {
        status = admission_health(&probe).await;
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, ServingStatus::NotServing);

    redis.restart();
    for _ in 0..200 {
        if admission_health(&probe).await == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admission_health(&probe).await, ServingStatus::Serving);
    // The restarted (non-durable) Redis is empty: the worker heartbeats again.
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, "back")).await.unwrap().into_inner();
    assert_eq!(r.decision(), Decision::Admit);
}

/// The `rate_limiter` circuit as `/admin/circuit-breakers` shows it; the
/// document reads the other replicas' views from the store, so a store
/// that has just come back may take a few tries.
async fn rate_limiter_circuit(server: &Server) -> serde_json::Value {
    for _ in 0..100 {
        let reply = common::http::get(server.http, "/admin/circuit-breakers", Some(ADMIN)).await;
        if reply.status == 200 {
            return reply.json()["circuits"]["rate_limiter"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no circuit breakers document in ten seconds");
}

/// Issue 15: one dead Cluster shard no longer counts against
/// `rate_limiter`, but a dead store still does. Every rate-limit call
/// failing opens the circuit (production: five failures), and the requests
/// after it fail open without asking the store.
#[tokio::test]
async fn with_the_whole_store_down_rate_limit_failures_open_the_rate_limiter_circuit() {
    let mut redis = RedisServer::start();
    let (server, mut c) = server_on(&redis, "").await;
    let r = c.admission.check_capacity(check(UserType::Registered, "before")).await.unwrap().into_inner();
    assert_eq!(r.decision(), Decision::Admit);
    assert_eq!(rate_limiter_circuit(&server).await["failure_count"], 0);

    redis.kill();
    for i in 0..10 {
        let r = c.admission.check_capacity(check(UserType::Registered, &format!("u{i}"))).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit, "fail open");
    }
    // Read once the store is back: the metrics and the admin document
    // read the store too. The circuit stays open for its recovery timeout
    // (production: 30 s), and no rate-limit call ran since.
    redis.restart();
    let circuit = rate_limiter_circuit(&server).await;
    let metrics = common::http::get(server.http, "/metrics", Some(ADMIN)).await.body;
    assert!(metrics.contains("floodgate_store_errors_total{operation=\"rate_limit\"} 5\n"), "{metrics}");
    assert!(metrics.contains("floodgate_store_shard_errors_total{operation=\"rate_limit\"} 0\n"), "{metrics}");
    // Opened at the fifth failure (its lifetime count); the calls after
    // it skipped the store.
    assert_eq!((circuit["state"].as_str(), circuit["failure_count"].as_u64()), (Some("open"), Some(5)), "{circuit}");
}

// ---- round trips: one script call per decision ----

#[tokio::test]
async fn one_script_call_per_enqueue_and_at_most_one_per_check() {
    let redis = RedisServer::start();
    let mut s = settings(Profile::Loadtest, "");
    s.store = StoreUrl::Redis(redis.url());
    s.snapshot_refresh_ms = 3_600_000; // keep background refreshes out of the count
    let server = start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // Warm the script cache (the first EVALSHA of a script may need a SCRIPT LOAD).
    c.admission.enqueue_atomic(enqueue(UserType::Registered, "warm")).await.unwrap();
    c.admission.check_capacity(check(UserType::Registered, "warm")).await.unwrap();
    // commandstats also counts the commands a script runs, so count the
    // calls a client can make: EVALSHA, EVAL, SCRIPT LOAD and plain reads.
    let calls = |stats: &[(String, u64)], name: &str| stats.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
    let client_calls = |stats: &[(String, u64)]| {
        ["evalsha", "eval", "script|load", "lrange", "keys", "hgetall"].iter().map(|n| calls(stats, n)).sum::<u64>()
    };
    let evalsha = |stats: &[(String, u64)]| calls(stats, "evalsha");

    let before = redis.command_calls();
    for i in 0..100 {
        c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("e{i}"))).await.unwrap();
    }
    let after = redis.command_calls();
    assert_eq!(evalsha(&after) - evalsha(&before), 100);
    assert_eq!(client_calls(&after) - client_calls(&before), 100, "no call besides the script: {after:?}");

    let before = redis.command_calls();
    for i in 0..100 {
        c.admission.check_capacity(check(UserType::Registered, &format!("c{i}"))).await.unwrap();
    }
    let after = redis.command_calls();
    assert_eq!(evalsha(&after) - evalsha(&before), 100, "one GCRA script per CheckCapacity");
    assert_eq!(client_calls(&after) - client_calls(&before), 100, "no call besides the script: {after:?}");
}

/// Issue 15's local shield: a flood of one over-limit subject costs a
/// handful of store calls, and the shield refuses exactly what the store
/// refuses (the same run with the shield off admits the same count).
/// A floodgate on `redis` with the shield of `capacity` (0 = off) and a
/// key prefix of its own, its worker heartbeat in. Its clock stands still
/// (scripts take the caller's time): runs with and without the shield see
/// the same instant however long the machine takes, so they must agree.
async fn shielded_server(redis: &RedisServer, capacity: usize) -> (Server, Clients) {
    let mut s = settings(Profile::Production, "");
    s.store = StoreUrl::Redis(redis.url());
    s.redis_prefix = format!("{{shield-{capacity}}}");
    s.redis_time = TimeSource::Caller;
    // 10,000 calls on a loaded machine: a store timeout would fail open.
    s.redis_timeout_ms = 10_000;
    s.local_shield_capacity = Some(capacity);
    s.rls = shield_rules();
    let clock = std::sync::Arc::new(floodgate::clock::ManualClock::at_ms(1_800_000_000_000));
    let server = start_with(s, clock).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    (server, c)
}

/// One Envoy rule: 3 requests a minute per client address.
fn shield_rules() -> std::sync::Arc<floodgate::core::rls::Rules> {
    let rules = "[[domains]]\ndomain = \"chat\"\n[[domains.descriptors]]\nkey = \"remote_address\"\n\
                 rate_limit = { unit = \"minute\", requests_per_unit = 3 }\n";
    let config: floodgate::core::rls::RlsConfig = toml::from_str(rules).unwrap();
    std::sync::Arc::new(floodgate::config::rls_rules(&config).unwrap())
}

// The store calls for the flooded key are counted with MONITOR (every GET
// a script runs on it), not with commandstats: housekeeping's scripts run
// once a second, so a slow machine's longer loop would count them too.
// With the clock standing still: the burst's admissions, one refusal, and
// the shield answers every later request.
#[tokio::test]
async fn a_flood_of_one_refused_subject_costs_a_handful_of_store_calls() {
    let redis = RedisServer::start();
    let monitor = Monitor::start(redis.port);
    let mut admitted = Vec::new();
    for capacity in [100_000, 0] {
        let (server, mut c) = shielded_server(&redis, capacity).await;
        let key = format!("shield-{capacity}:v2:rate:anonymous:{{flooder}}");
        let mut ok = 0;
        for _ in 0..10_000 {
            let answer = c.admission.check_capacity(check(UserType::Anonymous, "flooder")).await.unwrap().into_inner();
            if answer.http_status == 200 {
                ok += 1;
            }
        }
        let store_calls = monitor.count(&["\"GET\"", &format!("\"{key}\"")]);
        if capacity > 0 {
            // Production: anonymous 10/min with a burst of 5.
            assert_eq!(store_calls, 6, "the burst and one refusal reach the store with the shield on");
            assert!(
                server.floodgate.shield_hits() >= 10_000 - store_calls as u64,
                "every other request is a shield hit"
            );
        } else {
            assert!(store_calls >= 10_000, "every request asks the store with the shield off: {store_calls}");
        }
        admitted.push(ok);
    }
    // With the shield the burst passes and nothing more. Without it the
    // store may admit more: its keys expire by Redis's real clock while the
    // test's clock stands still (a slow run outlives them), never fewer.
    assert_eq!(admitted[0], 5, "the burst passes with the shield");
    assert!(admitted[0] <= admitted[1], "the shield admitted more than the store: {admitted:?}");
}

/// The same for Envoy's ShouldRateLimit: one over-limit descriptor flooded
/// 10,000 times costs a handful of store calls, and the shield admits no
/// request the store would refuse.
#[tokio::test]
async fn a_flood_of_one_over_limit_descriptor_costs_a_handful_of_store_calls() {
    use floodgate_client::envoy::service::ratelimit::v3::rate_limit_response::Code as RlsCode;
    let redis = RedisServer::start();
    let monitor = Monitor::start(redis.port);
    let mut admitted = Vec::new();
    for capacity in [100_000, 0] {
        let (server, _c) = shielded_server(&redis, capacity).await;
        let mut rls = connect(&server, Some(FRONTEND)).await.rate_limit();
        let flood = floodgate_client::rate_limit_request("chat", &[&[("remote_address", "10.9.9.9")]], 0);
        let mut ok = 0;
        for _ in 0..10_000 {
            let answer = rls.should_rate_limit(flood.clone()).await.unwrap().into_inner();
            if answer.overall_code() == RlsCode::Ok {
                ok += 1;
            }
        }
        let store_calls = monitor.count(&["\"GET\"", &format!("shield-{capacity}:v2:rls:{{"), "10.9.9.9"]);
        if capacity > 0 {
            // 3 a minute: the burst and one refusal.
            assert_eq!(store_calls, 4, "the burst and one refusal reach the store with the shield on");
            assert!(
                server.floodgate.shield_hits() >= 10_000 - store_calls as u64,
                "every other request is a shield hit"
            );
        } else {
            assert!(store_calls >= 10_000, "every request asks the store with the shield off: {store_calls}");
        }
        // Another address is decided by the store as before.
        let other = floodgate_client::rate_limit_request("chat", &[&[("remote_address", "10.9.9.10")]], 0);
        assert_eq!(rls.should_rate_limit(other).await.unwrap().into_inner().overall_code(), RlsCode::Ok);
        admitted.push(ok);
    }
    assert_eq!(admitted[0], 3, "the burst passes with the shield");
    assert!(admitted[0] <= admitted[1], "the shield admitted more than the store: {admitted:?}");
}
