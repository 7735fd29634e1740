//! The Redis store over TLS (`rediss://`), on a Redis Cluster and behind
//! Redis Sentinel, each on servers this test starts on free ports, with the
//! real floodgate binary: admit, lease and complete through gRPC.

use crate::common;

use std::time::{Duration, Instant};

use common::pki::Pki;
use common::process::Process;
use common::redis::{Cluster, Node, SentinelSet, TlsFiles, free_port, wait_until};
use common::*;
use floodgate::store::{RedisOptions, RedisStore, RedisTlsFiles, Store, StoreError};
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};
use floodgate_client::{Client, Code};

/// A CA, a server certificate for 127.0.0.1 / localhost and a client
/// certificate, as files.
/// What a TLS redis-server of this PKI serves.
fn server_files(pki: &Pki, require_client_cert: bool) -> TlsFiles {
    TlsFiles { ca: pki.ca(), cert: pki.dir.join("server.pem"), key: pki.dir.join("server.key"), require_client_cert }
}

/// A TLS-only redis-server of this PKI on a free port.
fn tls_server(pki: &Pki, require_client_cert: bool) -> Node {
    Node::start("redis-tls", Some(&server_files(pki, require_client_cert)), &[])
}

/// Runtime settings for these tests: one healthy process of C = 9 gives
/// 7 effective + 18 queue = 25 slots, registered limit floor(0.8 × 25) = 20;
/// workers stay healthy for the whole test; refusals never open the
/// backpressure circuit.
const RUNTIME: &str = "[runtime]\nconcurrent_per_process = 9\nstale_after_ms = 120000\nexpire_after_ms = 300000\n\
                       [runtime.breakers.backpressure]\nfailure_threshold = 1000000\n";

struct Roles {
    admission: floodgate_client::AdmissionClient,
    workers: floodgate_client::WorkersClient,
}

async fn roles(floodgate: &Process) -> Roles {
    let client = Client::connect(&floodgate.grpc, None).await.unwrap();
    Roles {
        admission: client.with_token(Some(FRONTEND)).unwrap().admission(),
        workers: client.with_token(Some(WORKER)).unwrap().workers(),
    }
}

/// Heartbeats until the store answers and one enqueue is admitted (the
/// capacity snapshot refreshes every 250 ms); returns that task's id.
async fn first_admission(c: &mut Roles, subject: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        match c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await {
            Ok(_) => match c.admission.enqueue_atomic(enqueue(UserType::Registered, subject)).await {
                Ok(r) if r.get_ref().decision() == Decision::Admit => return r.into_inner().task_id,
                Ok(r) => last = format!("{:?}", r.into_inner()),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("floodgate never admitted through Redis: {last}");
}

/// Leases until `task_id` comes back, then completes it.
async fn lease_and_complete(c: &mut Roles, task_id: &str) {
    let tasks = c.workers.lease_tasks(lease(100, 30_000)).await.unwrap().into_inner().tasks;
    let task = tasks.iter().find(|t| t.task_id == task_id).unwrap_or_else(|| panic!("{task_id} not in {tasks:?}"));
    c.workers
        .complete_task(pb::CompleteTaskRequest { task_id: task.task_id.clone(), lease_id: task.lease_id.clone() })
        .await
        .unwrap();
    // Completed: a second complete of the same lease is refused.
    let again = c
        .workers
        .complete_task(pb::CompleteTaskRequest { task_id: task.task_id.clone(), lease_id: task.lease_id.clone() })
        .await;
    assert!(again.is_err(), "completed twice");
}

/// `n` admissions (they must all be admitted); their task ids.
async fn admit(c: &mut Roles, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("{prefix}-{i}"))).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit);
        ids.push(r.into_inner().task_id);
    }
    ids
}

/// Every task of `ids` comes back from one lease.
async fn assert_all_leasable(c: &mut Roles, ids: impl IntoIterator<Item = &String>, when: &str) {
    let tasks = c.workers.lease_tasks(lease(100, 30_000)).await.unwrap().into_inner().tasks;
    let leased: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    for id in ids {
        assert!(leased.contains(&id.as_str()), "{id} lost {when}; leased {leased:?}");
    }
}

/// EnqueueAtomic → LeaseTasks → CompleteTask through floodgate.
async fn round_trip(floodgate: &Process) -> Roles {
    let mut c = roles(floodgate).await;
    let task_id = first_admission(&mut c, "round-trip").await;
    lease_and_complete(&mut c, &task_id).await;
    c
}

// ---- TLS ----

#[tokio::test]
async fn tls_with_a_custom_ca_admits_leases_and_completes() {
    let pki = Pki::new("floodgate");
    let redis = tls_server(&pki, false);
    let config = format!("redis_ca_file = {:?}\n{RUNTIME}", pki.path("ca.pem"));
    let floodgate = Process::spawn(&format!("rediss://127.0.0.1:{}/0", redis.port), &config);
    round_trip(&floodgate).await;
    // The keys really are on the TLS server.
    let keys = redis.cli(&["DBSIZE"]);
    assert!(keys.parse::<u64>().unwrap() > 0, "DBSIZE {keys}");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new("floodgate");
    let redis = tls_server(&pki, true);
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));
    let floodgate = Process::spawn_with_env(
        &url,
        RUNTIME,
        &[
            ("FLOODGATE_REDIS_CA_FILE", ca.as_str()),
            ("FLOODGATE_REDIS_CLIENT_CERT", cert.as_str()),
            ("FLOODGATE_REDIS_CLIENT_KEY", key.as_str()),
        ],
    );
    round_trip(&floodgate).await;
    // Without the client certificate the server refuses the handshake.
    let anonymous = Process::spawn_with_env(&url, RUNTIME, &[("FLOODGATE_REDIS_CA_FILE", ca.as_str())]);
    let mut c = roles(&anonymous).await;
    let err = c.admission.enqueue_atomic(enqueue(UserType::Registered, "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test]
async fn tls_refuses_a_server_the_ca_did_not_sign() {
    let (pki, other) = (Pki::new("floodgate"), Pki::new("floodgate"));
    let redis = tls_server(&pki, false);
    // The CA comes from the environment this time (FLOODGATE_REDIS_CA_FILE).
    let ca = other.ca().display().to_string();
    let floodgate = Process::spawn_with_env(
        &format!("rediss://127.0.0.1:{}/0", redis.port),
        RUNTIME,
        &[("FLOODGATE_REDIS_CA_FILE", ca.as_str())],
    );
    let mut c = roles(&floodgate).await;
    // Lazy: floodgate is up, but nothing reaches Redis.
    for _ in 0..3 {
        let err = c.admission.enqueue_atomic(enqueue(UserType::Registered, "x")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
}

// ---- Cluster ----

#[tokio::test]
async fn cluster_admits_exactly_the_limit_and_keeps_every_key_in_one_slot() {
    let cluster = Cluster::start(3, None);
    let floodgate = Process::spawn(&cluster.url(), RUNTIME);
    let mut c = round_trip(&floodgate).await;

    let check = c.admission.check_capacity(check(UserType::Registered, "checker")).await.unwrap().into_inner();
    assert_eq!(check.decision(), Decision::Admit, "{check:?}");

    // Exactness: 60 concurrent check-and-enqueues against a limit of 20.
    let calls = (0..60).map(|i| {
        let mut admission = c.admission.clone();
        tokio::spawn(async move {
            admission.enqueue_atomic(enqueue(UserType::Registered, &format!("racer-{i}"))).await.unwrap().into_inner()
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    let admitted = answers.iter().filter(|a| a.as_ref().unwrap().decision() == Decision::Admit).count();
    assert_eq!(admitted, 20);

    // Every admission key of the deployment lives on the one node that
    // serves the {floodgate} hash tag's slot (rate-limit keys, like the
    // checker's, spread by subject: tests/it/redis_cluster.rs).
    let admission_keys = |n: &Node| n.cli(&["KEYS", "{floodgate}:*"]).lines().filter(|l| !l.is_empty()).count() as u64;
    let holding: Vec<u64> = cluster.nodes.iter().map(admission_keys).collect();
    assert_eq!(holding.iter().filter(|n| **n > 0).count(), 1, "keys per node: {holding:?}");
    let slot = cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", "{floodgate}:anything"]);
    let owner = cluster.nodes.iter().zip(&holding).find(|(_, n)| **n > 0).unwrap().0;
    assert_eq!(owner.cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot]), holding.iter().sum::<u64>().to_string());

    // delete_all_keys (the tests' reset) works on a Cluster too.
    let store = RedisStore::connect(&cluster.url(), RedisOptions::default()).await.unwrap();
    assert_eq!(store.queue_stats().await.unwrap().load(), 20);
    store.delete_all_keys().await.unwrap();
    assert_eq!(store.queue_stats().await.unwrap().load(), 0);
}

#[tokio::test]
async fn tls_cluster_admits_leases_and_completes() {
    let pki = Pki::new("floodgate");
    let cluster = Cluster::start(3, Some(&server_files(&pki, false)));
    let config = format!("redis_ca_file = {:?}\n{RUNTIME}", pki.path("ca.pem"));
    let floodgate = Process::spawn(&cluster.url(), &config);
    round_trip(&floodgate).await;
    let holding: Vec<u64> = cluster.nodes.iter().map(|n| n.cli(&["DBSIZE"]).parse().unwrap()).collect();
    assert_eq!(holding.iter().filter(|n| **n > 0).count(), 1, "keys per node: {holding:?}");
}

// ---- Sentinel ----

#[tokio::test]
async fn sentinel_follows_the_master_through_a_failover() {
    let set = SentinelSet::start(None);
    let floodgate = Process::spawn(&set.url(), RUNTIME);
    let mut c = round_trip(&floodgate).await;

    // Tasks admitted before the failover, replicated before it starts.
    let before = admit(&mut c, "before", 5).await;
    set.wait_replicated();
    let old = set.master_port();
    // (Blocking here is fine: floodgate runs in its own process.)
    let promoted = set.failover();
    assert_ne!(promoted, old);

    // Floodgate finds the new master by itself: admissions resume.
    let after = first_admission(&mut c, "after-failover").await;
    // They land on the new master (the old one is a read-only replica now).
    assert_eq!(set.node(promoted).cli(&["ROLE"]).lines().next(), Some("master"));
    assert_all_leasable(&mut c, before.iter().chain([&after]), "in the failover").await;
}

#[tokio::test]
async fn sentinel_follows_the_master_when_it_dies() {
    let mut set = SentinelSet::start(None);
    let floodgate = Process::spawn(&set.url(), RUNTIME);
    let mut c = round_trip(&floodgate).await;
    let before = admit(&mut c, "before", 5).await;
    set.wait_replicated();
    let old = set.master_port();
    set.node_mut(old).kill();
    // Meanwhile EnqueueAtomic fails closed (UNAVAILABLE), never half-admits.
    let err = c.admission.enqueue_atomic(enqueue(UserType::Registered, "during")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let promoted = set.wait_promoted(old);

    let after = first_admission(&mut c, "after-death").await;
    assert_all_leasable(&mut c, before.iter().chain([&after]), "when the master died").await;
    assert_eq!(set.node(promoted).cli(&["ROLE"]).lines().next(), Some("master"));
}

/// A Sentinel that accepts connections and never answers, listed first:
/// each lookup waits on it longer than a call may wait, so the lookup must
/// outlive the calls that started it, or the store would stay down.
#[tokio::test]
async fn a_silent_sentinel_listed_first_does_not_keep_the_store_down() {
    let set = SentinelSet::start(None);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let url = set.url().replacen("127.0.0.1:", &format!("127.0.0.1:{silent_port},127.0.0.1:"), 1);
    assert!(url.starts_with(&format!("redis+sentinel://127.0.0.1:{silent_port},127.0.0.1:")), "{url}");
    let floodgate = Process::spawn(&url, RUNTIME);
    round_trip(&floodgate).await;
}

#[tokio::test]
async fn tls_sentinel_admits_leases_and_completes() {
    let pki = Pki::new("floodgate");
    let set = SentinelSet::start(Some(&server_files(&pki, false)));
    let config = format!("redis_ca_file = {:?}\n{RUNTIME}", pki.path("ca.pem"));
    let floodgate = Process::spawn(&set.url(), &config);
    round_trip(&floodgate).await;
    assert!(set.master.cli(&["DBSIZE"]).parse::<u64>().unwrap() > 0);
}

// ---- replicated admissions ----

/// `redis_min_replicas = 1`: an admission is answered only once a replica
/// holds it (the replica has the task the moment the answer arrives), and
/// with no replica left `EnqueueAtomic` fails closed instead of admitting
/// what a failover could lose.
#[tokio::test]
async fn admissions_wait_for_the_replicas_they_are_configured_to_reach() {
    let master = Node::start("redis-master", None, &[]);
    let mut replica =
        Node::start("redis-replica", None, &["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
    wait_until(20, "the replica in sync", || {
        replica.info("replication", "master_link_status").as_deref() == Some("up")
    });
    let config = format!("redis_min_replicas = 1\n{RUNTIME}");
    let floodgate = Process::spawn(&format!("redis://127.0.0.1:{}/0", master.port), &config);
    let mut c = roles(&floodgate).await;
    let first = first_admission(&mut c, "replicated").await;
    for i in 0..3 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("r-{i}"))).await.unwrap();
        assert_eq!(r.get_ref().decision(), Decision::Admit);
        let id = r.into_inner().task_id;
        // No waiting here: WAIT already made sure.
        assert_eq!(
            replica.cli(&["HEXISTS", "{floodgate}:v2:task_meta", &id]),
            "1",
            "{id} not on the replica when admitted"
        );
    }
    lease_and_complete(&mut c, &first).await;

    replica.kill();
    wait_until(20, "the master to notice", || master.info("replication", "connected_slaves").as_deref() == Some("0"));
    let err = c.admission.enqueue_atomic(enqueue(UserType::Registered, "unreplicated")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // Level 1 does not wait for replicas.
    let check = c.admission.check_capacity(check(UserType::Registered, "unreplicated")).await.unwrap();
    assert_eq!(check.get_ref().decision(), Decision::Admit);
}

// ---- startup ----

#[test]
fn startup_refuses_bad_redis_settings_naming_the_field() {
    let pki = Pki::new("floodgate");
    let ca = pki.ca().display().to_string();
    let min_replicas = pki.path("min_replicas.toml");
    std::fs::write(&min_replicas, "redis_min_replicas = 1\n").unwrap();
    for (args, expected) in [
        (vec!["--store", "redis-cluster://127.0.0.1:7000/2"], "store: "),
        (vec!["--store", "redis+sentinel://127.0.0.1:26379"], "names the master"),
        (vec!["--store", "redis-sentinel://127.0.0.1:26379/m"], "redis+sentinel://"),
        (vec!["--store", "rediss://127.0.0.1:6380/0", "--redis-ca-file", "/nonexistent/ca.pem"], "redis_ca_file"),
        (vec!["--store", "redis://127.0.0.1:6379/0", "--redis-ca-file", &ca], "only used with a TLS store URL"),
        (vec!["--store", "rediss://127.0.0.1:6380/0", "--redis-client-cert", &ca], "redis_client_key"),
        (vec!["--store", "memory", "--config", &min_replicas], "redis_min_replicas"),
    ] {
        let out = std::process::Command::new(common::process::BIN)
            .arg("serve")
            .args(&args)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .output()
            .expect("floodgate runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} must contain {expected:?}");
    }
}

// ---- lazy connections ----

// No wall-clock assertion (it flaked on a loaded machine): every call goes
// through `Link::bounded`, so it ends within the timeout or the test hangs
// and the runner's slow-test timeout reports it.
#[tokio::test]
async fn every_topology_opens_lazily_and_fails_fast_while_redis_is_down() {
    let nobody = free_port();
    let options = RedisOptions { timeout: Duration::from_millis(300), ..RedisOptions::default() };
    for url in [
        format!("redis-cluster://127.0.0.1:{nobody}/"),
        format!("redis+sentinel://127.0.0.1:{nobody}/mymaster/0"),
        format!("rediss://127.0.0.1:{nobody}/0"),
        format!("rediss-cluster://127.0.0.1:{nobody}"),
        format!("rediss+sentinel://127.0.0.1:{nobody}/mymaster"),
    ] {
        let store = RedisStore::connect(&url, options.clone()).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let err = store.queue_stats().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{url}: {err}");
    }
    // A CA file that cannot be read is refused when the store opens.
    let options = RedisOptions {
        tls: RedisTlsFiles { ca: Some("/nonexistent/ca.pem".into()), ..Default::default() },
        ..RedisOptions::default()
    };
    let err = RedisStore::connect(&format!("rediss://127.0.0.1:{nobody}/0"), options).await.err().unwrap();
    assert!(err.to_string().contains("redis_ca_file"), "{err}");
}
