//! Rate-limit state sharded over a Redis Cluster (issue 15), on a real
//! Cluster of three primaries with a replica each that every test starts
//! on free ports: rate-limit keys spread over every primary, GCRA stays
//! exact per subject across floodgate replicas, and a primary that dies
//! fails only the keys it serves.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::redis::{Cluster, Node, wait_until};
use common::*;
use floodgate::config::{Profile, StoreUrl};
use floodgate::core::UserType as CoreUserType;
use floodgate::core::gcra::{GcraOutcome, RateLimit};
use floodgate::store::{RateLimiter, RedisOptions, RedisStore, TimeSource};
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};
use floodgate_client::rate_limit_request;
use tonic::Code;

/// A store on the cluster; calls may take seconds on a loaded 2-core
/// machine running six Redis nodes, so the timeout is generous.
async fn store(cluster: &Cluster, time: TimeSource) -> RedisStore {
    let options = RedisOptions { time, timeout: Duration::from_secs(10), ..RedisOptions::default() };
    RedisStore::connect(&cluster.url(), options).await.unwrap()
}

/// A value every node's count must be within 25 % of.
fn within_a_quarter_of(n: u64, even: u64) -> bool {
    n * 4 >= even * 3 && n * 4 <= even * 5
}

#[tokio::test]
async fn rate_limit_keys_of_ten_thousand_subjects_spread_over_all_three_primaries() {
    let cluster = Cluster::start_with_replicas(3, 1, None);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let before: Vec<u64> = primaries.iter().map(|n| n.calls("evalsha") + n.calls("eval")).collect();
    let store = store(&cluster, TimeSource::Server).await;
    // One a minute: a key outlives the test (a key expires when its subject is idle again).
    let limit = RateLimit { per_minute: 1, burst: 5 };
    let subjects: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    for chunk in subjects.chunks(200) {
        let calls = chunk.iter().map(|s| store.rate_limit(CoreUserType::Registered, s, limit, 1, 0));
        for outcome in futures_util::future::join_all(calls).await {
            assert!(matches!(outcome.unwrap(), GcraOutcome::Allowed { .. }), "a first request is allowed");
        }
    }
    let keys: Vec<u64> = primaries.iter().map(|n| n.cli(&["DBSIZE"]).parse().unwrap()).collect();
    let scripts: Vec<u64> =
        primaries.iter().zip(&before).map(|(n, b)| n.calls("evalsha") + n.calls("eval") - b).collect();
    assert_eq!(keys.iter().sum::<u64>(), 10_000, "one key per subject: {keys:?}");
    for (n, calls) in keys.iter().zip(&scripts) {
        assert!(within_a_quarter_of(*n, 10_000 / 3), "keys per primary {keys:?}");
        assert!(*calls > 0, "every primary runs scripts: {scripts:?}");
    }
    // A subject's key is where the Cluster says its slot lives.
    let key = "floodgate:v2:rate:registered:{user-42}";
    assert_eq!(cluster.owner(key).cli(&["EXISTS", key]), "1");
}

/// Three stores (three floodgate replicas' connections and batchers) hammer
/// the same subjects at one instant (the caller's clock): each subject
/// admits exactly its burst, wherever its key lives.
#[tokio::test]
async fn gcra_is_exact_per_subject_across_three_replicas_on_the_cluster() {
    let cluster = Cluster::start_with_replicas(3, 1, None);
    let stores = [
        store(&cluster, TimeSource::Caller).await,
        store(&cluster, TimeSource::Caller).await,
        store(&cluster, TimeSource::Caller).await,
    ];
    let limit = RateLimit { per_minute: 60, burst: 7 };
    let now = 1_800_000_000_000_000u64;
    let subjects: Vec<String> = (0..60).map(|i| format!("racer-{i}")).collect();
    let calls = subjects.iter().flat_map(|s| {
        stores.iter().flat_map(move |store| {
            (0..10).map(move |_| async move {
                (s.clone(), store.rate_limit(CoreUserType::Anonymous, s, limit, 1, now).await.unwrap())
            })
        })
    });
    let mut allowed = std::collections::HashMap::<String, u32>::new();
    for (subject, outcome) in futures_util::future::join_all(calls).await {
        if matches!(outcome, GcraOutcome::Allowed { .. }) {
            *allowed.entry(subject).or_default() += 1;
        }
    }
    for subject in &subjects {
        assert_eq!(allowed.get(subject).copied(), Some(7), "{subject}: 30 requests at once, burst 7");
    }
    let holding: Vec<u64> = cluster.primaries().iter().map(|n| n.cli(&["DBSIZE"]).parse().unwrap()).collect();
    assert!(holding.iter().all(|n| *n > 0), "the subjects live on every primary: {holding:?}");
}

/// Subjects whose rate-limit key lives on `node`'s slots (`on`) or elsewhere.
fn subjects_by_owner(cluster: &Cluster, node: &Node, on: bool, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("subject-{i}"))
        .filter(|s| (cluster.owner(&format!("{{{s}}}")).port == node.port) == on)
        .take(n)
        .collect()
}

/// A counter of a floodgate's `/metrics`, by its series (name and labels).
/// A scrape reads the admission state from the store, so right after a
/// failover it may answer 503 while the cluster client refreshes its
/// topology; the scrape is retried for up to ten seconds.
async fn counter(server: &Server, series: &str) -> u64 {
    let mut last = None;
    for _ in 0..100 {
        let reply = common::http::get(server.http, "/metrics", Some(ADMIN)).await;
        let count = reply
            .body
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|n| n.parse().ok());
        if let (200, Some(count)) = (reply.status, count) {
            return count;
        }
        last = Some((reply.status, reply.body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {series} in ten seconds of scrapes; the last answer: {last:?}");
}

const RATE_LIMIT_ERRORS: &str = "floodgate_store_errors_total{operation=\"rate_limit\"}";
const RATE_LIMIT_SHARD_ERRORS: &str = "floodgate_store_shard_errors_total{operation=\"rate_limit\"}";

/// The `rate_limiter` circuit as `/admin/circuit-breakers` shows it
/// (retried like [`counter`]).
async fn rate_limiter_circuit(server: &Server) -> serde_json::Value {
    let mut last = None;
    for _ in 0..100 {
        let reply = common::http::get(server.http, "/admin/circuit-breakers", Some(ADMIN)).await;
        if reply.status == 200 {
            return reply.json()["circuits"]["rate_limiter"].clone();
        }
        last = Some((reply.status, reply.body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no circuit breakers in ten seconds; the last answer: {last:?}");
}

/// A primary that serves rate-limit keys (not the admission slot) is
/// SIGKILLed while a floodgate admits tasks and answers Level 1 both for
/// subjects on the other primaries (healthy) and on the dead one (doomed),
/// the doomed ones also through Envoy's ShouldRateLimit.
/// Every admitted task is delivered; the healthy subjects never fail open;
/// the doomed subjects fail open (Envoy's: UNAVAILABLE) while their primary
/// is down (each failure one shard's) and get store answers again once the Cluster has promoted
/// its replica; and the `rate_limiter` circuit is never told of a failure,
/// so it never opens for everyone.
///
/// A fail-open answer is seen in the answer itself: every healthy subject
/// used up its one request a minute in the store before the kill, so the
/// store refuses it; the local limiter, which has never seen it, admits.
///
/// Regressions: with Redis's default `cluster-require-full-coverage yes`
/// every node answered CLUSTERDOWN for every key between the primary being
/// marked failed and its replica's promotion, and a few of the healthy
/// subjects' calls (8 of about 5,000) failed open; and the doomed
/// subjects' failures counted against `rate_limiter`, which opened after
/// five of them and sent every subject to the local limiter.
#[tokio::test]
async fn a_primary_killed_under_load_loses_no_task_and_fails_open_only_for_its_own_keys() {
    let mut cluster = Cluster::start_with_replicas(3, 1, None);
    let admission_port = cluster.owner("{floodgate}").port;
    let victim_port =
        cluster.primaries().iter().map(|n| n.port).find(|p| *p != admission_port).expect("a second primary");
    let victim = cluster.nodes.iter().find(|n| n.port == victim_port).unwrap();
    let healthy = subjects_by_owner(&cluster, victim, false, 40);
    let doomed = subjects_by_owner(&cluster, victim, true, 5);

    // Healthy subjects are anonymous (one a minute), doomed ones registered
    // (not limited at this rate); production breakers open `rate_limiter` after five
    // failures. No local shield: every check asks the store.
    let runtime = "concurrent_per_process = 1000\n\
                   [rate_limits.anonymous]\nper_minute = 1\nburst = 1\n\
                   [rate_limits.registered]\nper_minute = 6000000\nburst = 1000\n";
    let mut s = settings(Profile::Production, runtime);
    s.store = StoreUrl::Redis(cluster.url());
    s.redis_timeout_ms = 10_000;
    s.local_shield_capacity = Some(0);
    let server = start_with(s, Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let direct = store(&cluster, TimeSource::Server).await;
    let limit = RateLimit { per_minute: 6_000_000, burst: 1_000 };

    // Each healthy subject's one request of the minute, taken in the store.
    for subject in &healthy {
        let r = c.admission.check_capacity(check(UserType::Anonymous, subject)).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit, "{subject}'s first request");
        let r = c.admission.check_capacity(check(UserType::Anonymous, subject)).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::RateLimited, "{subject}'s second request");
    }
    // From here the store refuses every healthy subject for a minute; the
    // healthy load stops sending after 50 s so that no token comes back
    // while it runs (a bound on the load, not on what the test asserts).
    let refused_until = std::time::Instant::now() + Duration::from_secs(50);

    // Load: admissions, Level-1 checks of healthy subjects (any admitted
    // one failed open) and of doomed subjects, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let (checks, healthy_admitted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let admitted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut loops = Vec::new();
    for l in 0..4 {
        let (mut admission, stop, admitted) = (c.admission.clone(), stop.clone(), admitted.clone());
        loops.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // An error is a refusal (Level 2 fails closed), never a loss.
                if let Ok(r) = admission.enqueue_atomic(enqueue(UserType::Privileged, &format!("l{l}-{i}"))).await
                    && r.get_ref().decision() == Decision::Admit
                {
                    admitted.lock().unwrap().push(r.into_inner().task_id);
                }
            }
        }));
    }
    for l in 0..4 {
        let (mut admission, stop, checks, healthy_admitted, healthy) =
            (c.admission.clone(), stop.clone(), checks.clone(), healthy_admitted.clone(), healthy.clone());
        loops.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) || std::time::Instant::now() > refused_until {
                    return;
                }
                let subject = &healthy[(i * 4 + l) % healthy.len()];
                let r = admission.check_capacity(check(UserType::Anonymous, subject)).await.unwrap();
                if r.get_ref().decision() != Decision::RateLimited {
                    healthy_admitted.fetch_add(1, Ordering::Relaxed);
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for l in 0..2 {
        let (mut admission, stop, doomed) = (c.admission.clone(), stop.clone(), doomed.clone());
        loops.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let subject = &doomed[(i * 2 + l) % doomed.len()];
                // Answered, from the store or the local limiter (and
                // refused as backpressure once the admissions fill the queue).
                let r = admission.check_capacity(check(UserType::Registered, subject)).await.unwrap();
                assert_ne!(r.get_ref().http_status, 0);
            }
        }));
    }
    // Envoy's ShouldRateLimit with Level 1's descriptor for doomed
    // subjects: the same store call path for RLS, failing as UNAVAILABLE.
    let rls_unavailable = Arc::new(AtomicU64::new(0));
    let mut envoy = connect(&server, Some(FRONTEND)).await.rate_limit();
    {
        let (mut envoy, stop, doomed, rls_unavailable) =
            (envoy.clone(), stop.clone(), doomed.clone(), rls_unavailable.clone());
        loops.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let subject = doomed[i % doomed.len()].as_str();
                let request = rate_limit_request("chat", &[&[("user_type", "registered"), ("subject", subject)]], 0);
                if let Err(e) = envoy.should_rate_limit(request).await {
                    assert_eq!(e.code(), Code::Unavailable, "{e}");
                    rls_unavailable.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let counted = |n: u64| {
        let checks = checks.clone();
        async move {
            while checks.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    counted(200).await;
    let errors_before_the_kill = counter(&server, RATE_LIMIT_ERRORS).await;

    cluster.nodes.iter_mut().find(|n| n.port == victim_port).unwrap().kill();
    let checks_at_the_kill = checks.load(Ordering::Relaxed);
    // The dead primary's subjects fail (fail open at Level 1) until the
    // Cluster promotes its replica, then get store answers again.
    let mut failed = 0;
    let mut recovered = false;
    for round in 0..600 {
        let subject = &doomed[round % doomed.len()];
        match direct.rate_limit(CoreUserType::Registered, subject, limit, 1, 0).await {
            Err(_) => failed += 1,
            Ok(_) if failed > 0 => {
                recovered = true;
                break;
            }
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed > 0, "the dead primary's keys failed while it was down");
    assert!(recovered, "the dead primary's keys came back after the failover");
    let checks_through_the_outage = checks.load(Ordering::Relaxed) - checks_at_the_kill;
    // Through the floodgate too: a round of doomed checks that adds no
    // store error (its cluster client may take a moment longer to learn
    // the new primary than `direct`'s did).
    let mut answered_by_the_store = false;
    for _ in 0..100 {
        let before = counter(&server, RATE_LIMIT_ERRORS).await;
        let mut envoy_answered = true;
        for subject in &doomed {
            c.admission.check_capacity(check(UserType::Registered, subject)).await.unwrap();
            let request = rate_limit_request("chat", &[&[("user_type", "registered"), ("subject", subject)]], 0);
            envoy_answered &= envoy.should_rate_limit(request).await.is_ok();
        }
        if envoy_answered && counter(&server, RATE_LIMIT_ERRORS).await == before {
            answered_by_the_store = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }

    assert_eq!(errors_before_the_kill, 0, "no store error before the kill");
    assert!(answered_by_the_store, "the doomed subjects get store answers again after the failover");
    let (checked, fail_open) = (checks.load(Ordering::Relaxed), healthy_admitted.load(Ordering::Relaxed));
    let (errors, shard_errors) =
        (counter(&server, RATE_LIMIT_ERRORS).await, counter(&server, RATE_LIMIT_SHARD_ERRORS).await);
    let circuit = rate_limiter_circuit(&server).await;
    eprintln!(
        "healthy subjects: {fail_open} fail-open answers of {checked} checks ({checks_through_the_outage} \
         during the outage); rate-limit store errors {errors}, one shard's {shard_errors} (Envoy UNAVAILABLE \
         {}); rate_limiter {circuit}",
        rls_unavailable.load(Ordering::Relaxed)
    );
    assert!(checks_through_the_outage > 0, "the healthy subjects were answered during the outage");
    assert_eq!(fail_open, 0, "{fail_open} of {checked} checks of the healthy primaries' subjects failed open");
    assert!(errors > 0, "the doomed subjects failed open while their primary was down");
    let rls_unavailable = rls_unavailable.load(Ordering::Relaxed);
    assert!(rls_unavailable > 0, "Envoy's requests for the doomed subjects failed while their primary was down");
    assert_eq!(shard_errors, errors, "every rate-limit store error was one shard's");
    assert_eq!(circuit["failure_count"], 0, "rate_limiter was never told of a failure: {circuit}");
    assert_eq!(circuit["state"], "closed", "{circuit}");
    assert_eq!(circuit["opened_at"], serde_json::Value::Null, "{circuit}");
    let admitted: HashSet<String> = admitted.lock().unwrap().iter().cloned().collect();
    assert!(admitted.len() > 20, "the load ran ({} admitted)", admitted.len());
    let mut delivered = HashSet::new();
    loop {
        let tasks = c.workers.lease_tasks(lease(100, 60_000)).await.unwrap().into_inner().tasks;
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            delivered.insert(t.task_id.clone());
            c.workers
                .complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id })
                .await
                .unwrap();
        }
    }
    let missing: Vec<_> = admitted.difference(&delivered).collect();
    assert!(missing.is_empty(), "{} admitted tasks not delivered: {missing:?}", missing.len());
}

/// The node on `port`.
fn node(cluster: &Cluster, port: u16) -> &Node {
    cluster.nodes.iter().find(|n| n.port == port).expect("a node of this cluster")
}

/// The replica of the primary on `port`.
fn replica_of(cluster: &Cluster, port: u16) -> &Node {
    let port = port.to_string();
    cluster
        .nodes
        .iter()
        .find(|n| n.role() == "slave" && n.info("replication", "master_port").as_deref() == Some(port.as_str()))
        .expect("every primary has a replica")
}

/// `redis_min_replicas = 1` on the Cluster: an admission is on the replica
/// of the admission slot's primary when EnqueueAtomic answers; a replica
/// lost on a rate-limit shard changes nothing; the admission primary's
/// replica lost makes EnqueueAtomic fail closed. Regression: the cluster
/// client sent WAIT to every primary and answered the fewest replicas, so
/// a replica lost on any shard failed every admission.
#[tokio::test]
async fn admissions_wait_for_the_admission_primarys_replica_on_the_cluster() {
    let mut cluster = Cluster::start_with_replicas(3, 1, None);
    let admission_port = cluster.owner("{floodgate}").port;
    let other_port =
        cluster.primaries().iter().map(|n| n.port).find(|p| *p != admission_port).expect("a second primary");
    let (admission_replica, other_replica) =
        (replica_of(&cluster, admission_port).port, replica_of(&cluster, other_port).port);

    let mut s = settings(Profile::Production, "concurrent_per_process = 1000");
    s.store = StoreUrl::Redis(cluster.url());
    s.redis_timeout_ms = 10_000;
    s.redis_min_replicas = 1;
    let server = start_with(s, Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();

    for i in 0..3 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("r-{i}"))).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit);
        let id = r.into_inner().task_id;
        // No waiting here: WAIT already made sure.
        let on_replica = node(&cluster, admission_replica).cli_readonly(&["HEXISTS", "{floodgate}:v2:task_meta", &id]);
        assert_eq!(on_replica, "1", "{id} not on the admission primary's replica when admitted");
    }

    cluster.nodes.iter_mut().find(|n| n.port == other_replica).unwrap().kill();
    wait_until(20, "the rate-limit primary to notice", || {
        node(&cluster, other_port).info("replication", "connected_slaves").as_deref() == Some("0")
    });
    let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, "other-shard-unreplicated")).await.unwrap();
    assert_eq!(r.get_ref().decision(), Decision::Admit, "a replica lost on another shard fails no admission");

    cluster.nodes.iter_mut().find(|n| n.port == admission_replica).unwrap().kill();
    wait_until(20, "the admission primary to notice", || {
        node(&cluster, admission_port).info("replication", "connected_slaves").as_deref() == Some("0")
    });
    let err = c.admission.enqueue_atomic(enqueue(UserType::Registered, "unreplicated")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // Level 1 does not wait for replicas.
    let check = c.admission.check_capacity(check(UserType::Registered, "unreplicated")).await.unwrap();
    assert_eq!(check.get_ref().decision(), Decision::Admit);
}

/// The cast of the hung-primary tests: the primary to stop (not the
/// admission slot's), a subject on another primary, subjects on it, and a
/// server with a worker.
struct HungPrimary<'c> {
    victim: &'c Node,
    /// Anonymous (one a minute): once its request is used, only the store
    /// can answer RateLimited; a fail-open admits.
    healthy: String,
    doomed: Vec<String>,
    server: Server,
    c: Clients,
}

/// [`HungPrimary`] with `doomed` subjects on the victim, a server on the
/// Cluster with store timeout `timeout_ms` and no local shield.
async fn hung_primary(cluster: &Cluster, doomed: usize, timeout_ms: u64) -> HungPrimary<'_> {
    let admission_port = cluster.owner("{floodgate}").port;
    let victim = cluster.primaries().into_iter().find(|n| n.port != admission_port).expect("a second primary");
    let mut s = settings(Profile::Production, "[rate_limits.anonymous]\nper_minute = 1\nburst = 1\n");
    s.store = StoreUrl::Redis(cluster.url());
    s.redis_timeout_ms = timeout_ms;
    s.local_shield_capacity = Some(0);
    let server = start_with(s, Arc::new(floodgate::clock::SystemClock)).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    HungPrimary {
        victim,
        healthy: subjects_by_owner(cluster, victim, false, 1).remove(0),
        doomed: subjects_by_owner(cluster, victim, true, doomed),
        server,
        c,
    }
}

/// A primary that hangs (SIGSTOP: its connections stay open and nothing
/// comes back) while checks for its subjects keep arriving, each in a batch
/// of its own: a check for a subject on another primary is answered by the
/// store while every one of them is still waiting. The store timeout is
/// long (30 s), so the hung checks cannot have ended when the healthy one
/// is answered; before the fix, a batch held one of the batcher's
/// in-flight places until its slowest shard answered, and forty hung
/// batches left the healthy check queued behind them.
#[tokio::test]
async fn a_hung_primary_does_not_hold_up_the_other_shards() {
    let cluster = Cluster::start(3, None);
    let HungPrimary { victim, healthy, doomed, server: _server, mut c } = hung_primary(&cluster, 40, 30_000).await;
    for expected in [Decision::Admit, Decision::RateLimited] {
        let r = c.admission.check_capacity(check(UserType::Anonymous, &healthy)).await.unwrap();
        assert_eq!(r.get_ref().decision(), expected);
    }

    victim.pause();
    // Each doomed check is in flight (its script call sent to the hung
    // primary) before the next one is sent, so each is a batch of its own.
    let ended = Arc::new(AtomicU64::new(0));
    let mut hung = Vec::new();
    for subject in &doomed {
        let (mut admission, ended, subject) = (c.admission.clone(), ended.clone(), subject.clone());
        hung.push(tokio::spawn(async move {
            let _ = admission.check_capacity(check(UserType::Registered, &subject)).await;
            ended.fetch_add(1, Ordering::Relaxed);
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = c.admission.check_capacity(check(UserType::Anonymous, &healthy)).await.unwrap();
    assert_eq!(ended.load(Ordering::Relaxed), 0, "the hung primary's checks were still waiting");
    assert_eq!(r.get_ref().decision(), Decision::RateLimited, "the healthy subject's answer came from the store");

    victim.resume();
    for h in hung {
        h.await.unwrap();
    }
}

/// A hung primary's own keys wait for the store timeout once per short
/// circuit window, not once each: after one of its calls fails while the
/// other primaries answer, further calls for any of its slots fail open at
/// once (no script call sent to it) until the window has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primarys_keys_fail_open_at_once_after_one_timeout() {
    let cluster = Cluster::start(3, None);
    let HungPrimary { victim, healthy, doomed, server, mut c } = hung_primary(&cluster, 21, 1_000).await;
    // One of the doomed subjects answered normally: its primary is known.
    let r = c.admission.check_capacity(check(UserType::Registered, &doomed[0])).await.unwrap();
    assert_eq!(r.get_ref().decision(), Decision::Admit);

    // The other primaries keep answering throughout (the healthy subject's
    // store-made RateLimited), so the victim's failure is one shard's.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (mut admission, stop, healthy) = (c.admission.clone(), stop.clone(), healthy.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = admission.check_capacity(check(UserType::Anonymous, &healthy)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let shard_errors = "floodgate_store_shard_errors_total{operation=\"rate_limit\"}";
    let before = counter(&server, shard_errors).await;
    victim.cli(&["CONFIG", "RESETSTAT"]);
    victim.pause();
    // The first call waits for the timeout; the next twenty, sent one after
    // the other, find the primary short-circuited.
    for subject in &doomed[1..] {
        let r = c.admission.check_capacity(check(UserType::Registered, subject)).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit, "a shard's failure fails open");
    }
    victim.resume();
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    assert_eq!(counter(&server, shard_errors).await - before, 20, "every doomed call failed as one shard's");
    // Calls sent while it was paused ran when it resumed: the first one,
    // and a probe for each window a slow machine let pass (at most a few).
    let reached = victim.calls("evalsha");
    assert!((1..=5).contains(&reached), "{reached} of 20 calls were sent to the hung primary");
}
