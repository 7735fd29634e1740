//! End to end on the embedded store: the real server on 127.0.0.1:0 and
//! real tonic clients (issue: the data plane).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::Profile;
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};
use tonic::Code;

async fn seed_server(backend: Backend) -> (Server, Clients) {
    let server = start_on(backend, Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    (server, c)
}

async fn admit(c: &mut Clients, user_type: UserType, subject: &str) -> pb::EnqueueAtomicResponse {
    c.admission.enqueue_atomic(enqueue(user_type, subject)).await.unwrap().into_inner()
}

async fn capacity_calculation_reproduces_the_seed_example(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    let calc = c.admin.get_capacity_calculation(pb::GetCapacityCalculationRequest {}).await.unwrap().into_inner();
    let config = calc.configuration.unwrap();
    assert_eq!((config.concurrent_per_process, config.processes_per_instance, config.capacity_buffer), (5, 1, 0.2));
    let b = calc.calculations_breakdown.unwrap();
    assert_eq!(b.step_1_config, "5 concurrent per process");
    assert_eq!(b.step_2_processes, "1 healthy chat REST processes");
    assert_eq!(b.step_3_total_concurrent, "5 total concurrent capacity");
    assert_eq!(b.step_4_effective, "4 effective (after 20% buffer)");
    assert_eq!(b.step_5_queue, "10 queue capacity (2x multiplier)");
    assert_eq!(b.step_6_total_per_instance, "14 total capacity per instance");
    assert_eq!(b.step_7_instances, "1 instances detected");
    assert_eq!(b.step_8_system_total, "14 total system capacity");
    let actual = calc.actual_processes.unwrap();
    assert_eq!(actual.instances_found, ["home-instance-1"]);
    let groups = &actual.processes_per_instance["home-instance-1"].groups;
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].healthy_processes, groups[0].is_chat_rest), (1, true));
    let t = calc.totals.unwrap();
    assert_eq!((t.anonymous_limit, t.registered_limit, t.privileged_limit, t.system_total), (8, 11, 13, 14));
}

async fn thresholds_admit_eight_anonymous_eleven_registered_thirteen_privileged(backend: Backend) {
    let (server, mut c) = seed_server(backend).await;
    for i in 0..8 {
        let r = admit(&mut c, UserType::Anonymous, &format!("anon-{i}")).await;
        assert_eq!(r.decision(), Decision::Admit, "anonymous #{i}");
        assert!(!r.task_id.is_empty());
        assert_eq!(r.queue_position, i + 1);
    }
    let refused = admit(&mut c, UserType::Anonymous, "anon-8").await;
    assert_eq!(refused.decision(), Decision::Backpressure);
    assert_eq!(refused.http_status, 503);
    assert!(refused.retry_after_ms > 0);
    assert!(refused.task_id.is_empty());
    assert_eq!(load(&server).await, 8);

    for i in 0..3 {
        assert_eq!(admit(&mut c, UserType::Registered, &format!("reg-{i}")).await.decision(), Decision::Admit);
    }
    assert_eq!(load(&server).await, 11);
    assert_eq!(admit(&mut c, UserType::Registered, "reg-3").await.decision(), Decision::Backpressure);
    for i in 0..2 {
        assert_eq!(admit(&mut c, UserType::Privileged, &format!("priv-{i}")).await.decision(), Decision::Admit);
    }
    assert_eq!(load(&server).await, 13);
    for user_type in [UserType::Anonymous, UserType::Registered, UserType::Privileged] {
        assert_eq!(admit(&mut c, user_type, "late").await.decision(), Decision::Backpressure);
    }

    // Completing one leased task frees exactly one slot.
    let task = c.workers.lease_tasks(lease(1, 10_000)).await.unwrap().into_inner().tasks.remove(0);
    assert_eq!(load(&server).await, 13, "a leased task still counts");
    c.workers.complete_task(pb::CompleteTaskRequest { task_id: task.task_id, lease_id: task.lease_id }).await.unwrap();
    assert_eq!(load(&server).await, 12);
    assert_eq!(admit(&mut c, UserType::Privileged, "freed").await.decision(), Decision::Admit);
    assert_eq!(admit(&mut c, UserType::Privileged, "again").await.decision(), Decision::Backpressure);
}

async fn check_capacity_follows_the_same_thresholds(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    for i in 0..8 {
        admit(&mut c, UserType::Anonymous, &format!("a{i}")).await;
    }
    let anon = c.admission.check_capacity(check(UserType::Anonymous, "fresh")).await.unwrap().into_inner();
    assert_eq!((anon.decision(), anon.http_status), (Decision::Backpressure, 503));
    assert!((anon.pressure_ratio - 8.0 / 14.0).abs() < 1e-9);
    let reg = c.admission.check_capacity(check(UserType::Registered, "fresh")).await.unwrap().into_inner();
    assert_eq!((reg.decision(), reg.http_status), (Decision::Admit, 200));
}

async fn leases_go_by_priority_then_fifo(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    for (user_type, name) in [
        (UserType::Anonymous, "a1"),
        (UserType::Registered, "r1"),
        (UserType::Anonymous, "a2"),
        (UserType::Privileged, "p1"),
        (UserType::Registered, "r2"),
        (UserType::Privileged, "p2"),
    ] {
        assert_eq!(admit(&mut c, user_type, name).await.decision(), Decision::Admit);
    }
    let mut order = Vec::new();
    for _ in 0..3 {
        let tasks = c.workers.lease_tasks(lease(2, 10_000)).await.unwrap().into_inner().tasks;
        order.extend(tasks.into_iter().map(|t| String::from_utf8(t.payload).unwrap()));
    }
    assert_eq!(order, ["p1", "p2", "r1", "r2", "a1", "a2"]);
}

async fn two_hundred_concurrent_enqueues_admit_exactly_the_limit(backend: Backend) {
    let (server, mut c) = seed_server(backend).await;
    for round in 0..25 {
        // Keep the worker alive however slow the rounds are (stale_after is 15 s).
        c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
        let admitted = concurrent_enqueues(std::slice::from_ref(&c.admission), round, 200).await;
        assert_eq!(admitted, 11, "round {round}");
        assert_eq!(load(&server).await, 11);
        // Drain for the next round.
        let tasks = c.workers.lease_tasks(lease(100, 10_000)).await.unwrap().into_inner().tasks;
        assert_eq!(tasks.len(), 11);
        for t in tasks {
            c.workers
                .complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id })
                .await
                .unwrap();
        }
        assert_eq!(load(&server).await, 0);
    }
}

async fn system_total(c: &mut Clients) -> u64 {
    let calc = c.admin.get_capacity_calculation(pb::GetCapacityCalculationRequest {}).await.unwrap().into_inner();
    calc.totals.unwrap().system_total
}

async fn silent_processes_go_stale_and_leave_capacity(backend: Backend) {
    // Production: stale_after 15 s, judged on the manual clock (the
    // scripts' too), so the instant is exact, not slept for.
    let (server, clock) = manual_server(backend, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    assert_eq!(system_total(&mut c).await, 14);
    clock.advance_ms(14_999);
    assert_eq!(system_total(&mut c).await, 14, "heard from within stale_after");
    clock.advance_ms(1);
    assert_eq!(system_total(&mut c).await, 0, "a process silent for stale_after must leave the capacity");
    let refused = admit(&mut c, UserType::Privileged, "nobody-home").await;
    assert_eq!(refused.decision(), Decision::Backpressure);
    assert_eq!(refused.reason, "no healthy chat REST processes");
}

async fn unhealthy_leaves_at_once_and_degraded_still_counts(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    let ack =
        c.workers.heartbeat(heartbeat("home-instance-1", "p2", ProcessStatus::Degraded)).await.unwrap().into_inner();
    assert_eq!((ack.health.as_str(), ack.system_capacity), ("degraded", 28));
    let ack =
        c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Unhealthy)).await.unwrap().into_inner();
    assert_eq!((ack.health.as_str(), ack.system_capacity), ("unhealthy", 14));
    assert_eq!(system_total(&mut c).await, 14);
    // A process at its own capacity is degraded, and still counts.
    let mut full = heartbeat("home-instance-1", "p3", ProcessStatus::Healthy);
    full.load = 5;
    let ack = c.workers.heartbeat(full).await.unwrap().into_inner();
    assert_eq!((ack.health.as_str(), ack.system_capacity), ("degraded", 28));
}

/// A server on `backend` whose clock (and, on Redis, the scripts' clock)
/// moves only when the test says, so lease expiry is exact, not slept for.
async fn manual_server(backend: Backend, overrides: &str) -> (Server, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let mut settings = settings(Profile::Production, overrides);
    // Scripts take the manual clock's time instead of Redis TIME.
    settings.redis_time = floodgate::store::TimeSource::Caller;
    (backend_server(backend, settings, clock.clone()).await, clock)
}

async fn expired_leases_are_redelivered_then_dead_lettered(backend: Backend) {
    let (server, clock) = manual_server(backend, "max_deliveries = 2").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    admit(&mut c, UserType::Registered, "job").await;

    let first = c.workers.lease_tasks(lease(1, 100)).await.unwrap().into_inner().tasks.remove(0);
    assert_eq!(first.delivery_count, 1);
    clock.advance_ms(100); // the lease's expiry instant: no longer held
    // The expired lease can no longer complete, and nothing changes.
    let err = c
        .workers
        .complete_task(pb::CompleteTaskRequest { task_id: first.task_id.clone(), lease_id: first.lease_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(load(&server).await, 1);

    let second = c.workers.lease_tasks(lease(1, 100)).await.unwrap().into_inner().tasks.remove(0);
    assert_eq!((second.task_id.as_str(), second.delivery_count), (first.task_id.as_str(), 2));
    assert_ne!(second.lease_id, first.lease_id);
    // A wrong lease id is refused too.
    let err = c
        .workers
        .complete_task(pb::CompleteTaskRequest { task_id: second.task_id.clone(), lease_id: "not-the-lease".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(load(&server).await, 1);

    clock.advance_ms(100);
    assert!(c.workers.lease_tasks(lease(1, 100)).await.unwrap().into_inner().tasks.is_empty());
    let stats = server.floodgate.queue_stats().await.unwrap();
    assert_eq!((stats.load(), stats.dead_letters), (0, 1));
    let dead = server.floodgate.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].task_id, first.task_id);
    // The worker that asked for the lease (`lease` asks as i1/p1) is named.
    let holder = floodgate::store::LeaseHolder { instance_id: "i1".into(), process_id: "p1".into() };
    assert_eq!(dead[0].last_holder, Some(holder));
}

async fn extend_lease_keeps_a_long_task_and_a_wrong_lease_cannot(backend: Backend) {
    let (server, clock) = manual_server(backend, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    admit(&mut c, UserType::Registered, "long").await;
    let t = c.workers.lease_tasks(lease(1, 150)).await.unwrap().into_inner().tasks.remove(0);
    let extended = c
        .workers
        .extend_lease(pb::ExtendLeaseRequest {
            task_id: t.task_id.clone(),
            lease_id: t.lease_id.clone(),
            lease_ms: 10_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(extended.lease_expires_at_ms, 1_800_000_010_000);
    let wrong = c
        .workers
        .extend_lease(pb::ExtendLeaseRequest { task_id: t.task_id.clone(), lease_id: "x".into(), lease_ms: 10_000 })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    clock.advance_ms(9_999); // long past the first lease, just before the extended one
    assert!(c.workers.lease_tasks(lease(1, 100)).await.unwrap().into_inner().tasks.is_empty(), "extended lease held");
    c.workers.complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id }).await.unwrap();
    assert_eq!(load(&server).await, 0);
}

async fn long_poll_wakes_when_a_task_arrives(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    let mut workers = c.workers.clone();
    let waiting = tokio::spawn(async move {
        let mut request = lease(1, 10_000);
        request.wait_ms = 5_000;
        workers.lease_tasks(request).await.unwrap().into_inner().tasks
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    admit(&mut c, UserType::Anonymous, "wake-up").await;
    let tasks = waiting.await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].payload, b"wake-up");
}

async fn the_same_idempotency_key_gives_one_task(backend: Backend) {
    let (server, mut c) = seed_server(backend).await;
    let mut request = enqueue(UserType::Registered, "once");
    request.idempotency_key = "order-42".into();
    let first = c.admission.enqueue_atomic(request.clone()).await.unwrap().into_inner();
    let second = c.admission.enqueue_atomic(request).await.unwrap().into_inner();
    assert_eq!(first.decision(), Decision::Admit);
    assert_eq!(second.decision(), Decision::Admit);
    assert_eq!(second.task_id, first.task_id);
    assert_eq!(second.queue_position, first.queue_position);
    assert_eq!(load(&server).await, 1);
}

async fn a_subject_over_its_rate_is_limited_until_retry_after(backend: Backend) {
    let (server, clock) = manual_server(backend, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // Production: anonymous 10/min, burst 5.
    for i in 0..5 {
        let r = c.admission.check_capacity(check(UserType::Anonymous, "10.0.0.7")).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Admit, "request {i}");
    }
    let limited = c.admission.check_capacity(check(UserType::Anonymous, "10.0.0.7")).await.unwrap().into_inner();
    assert_eq!((limited.decision(), limited.http_status, limited.retry_after_ms), (Decision::RateLimited, 429, 6_000));
    let other = c.admission.check_capacity(check(UserType::Anonymous, "10.0.0.8")).await.unwrap().into_inner();
    assert_eq!(other.decision(), Decision::Admit);
    clock.advance_ms(limited.retry_after_ms - 1);
    let early = c.admission.check_capacity(check(UserType::Anonymous, "10.0.0.7")).await.unwrap().into_inner();
    assert_eq!(early.decision(), Decision::RateLimited);
    clock.advance_ms(1);
    let later = c.admission.check_capacity(check(UserType::Anonymous, "10.0.0.7")).await.unwrap().into_inner();
    assert_eq!(later.decision(), Decision::Admit);
}

async fn privileged_admin_routes_bypass_rate_limits_but_chat_does_not(backend: Backend) {
    let (_server, mut c) = seed_server(backend).await;
    let mut admin_route = check(UserType::Privileged, "root");
    admin_route.route = "/admin/users".into();
    for _ in 0..100 {
        let r = c.admission.check_capacity(admin_route.clone()).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Admit);
    }
    // Privileged chat: 300/min burst 60.
    let decisions: Vec<_> = futures_util::future::join_all((0..61).map(|_| {
        let mut a = c.admission.clone();
        async move { a.check_capacity(check(UserType::Privileged, "root")).await.unwrap().into_inner().decision() }
    }))
    .await;
    assert_eq!(decisions.iter().filter(|d| **d == Decision::RateLimited).count(), 1);
}

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(status.message().starts_with(field), "message {:?} must name {field}", status.message());
}

async fn bad_input_names_the_field_and_changes_nothing(backend: Backend) {
    let (server, mut c) = seed_server(backend).await;
    let capacity_before = system_total(&mut c).await;

    let mut r = enqueue(UserType::Registered, "x");
    r.user_type = 0;
    assert_invalid(c.admission.enqueue_atomic(r).await, "user_type");
    assert_invalid(c.admission.check_capacity(check(UserType::Unspecified, "x")).await, "user_type");
    assert_invalid(c.admission.enqueue_atomic(enqueue(UserType::Registered, "")).await, "subject");
    assert_invalid(c.admission.check_capacity(check(UserType::Registered, "")).await, "subject");
    let mut big = enqueue(UserType::Registered, "big");
    big.payload = vec![0; 64 * 1024 + 1];
    assert_invalid(c.admission.enqueue_atomic(big).await, "payload");
    let mut long_key = enqueue(UserType::Registered, "k");
    long_key.idempotency_key = "k".repeat(300);
    assert_invalid(c.admission.enqueue_atomic(long_key).await, "idempotency_key");

    let mut hb = heartbeat("", "p9", ProcessStatus::Healthy);
    assert_invalid(c.workers.heartbeat(hb.clone()).await, "instance_id");
    hb.instance_id = "i9".into();
    hb.process_id = String::new();
    assert_invalid(c.workers.heartbeat(hb.clone()).await, "process_id");
    hb.process_id = "p9".into();
    hb.load = 2_000_000;
    assert_invalid(c.workers.heartbeat(hb.clone()).await, "load");
    hb.load = 0;
    hb.capacity = 0;
    assert_invalid(c.workers.heartbeat(hb.clone()).await, "capacity");
    hb.capacity = 5;
    hb.status = 0;
    assert_invalid(c.workers.heartbeat(hb).await, "status");

    assert_invalid(c.workers.lease_tasks(lease(1, 0)).await, "lease_ms");
    assert_invalid(c.workers.lease_tasks(lease(1, 600_001)).await, "lease_ms");
    assert_invalid(c.workers.lease_tasks(lease(0, 1_000)).await, "max_tasks");
    assert_invalid(c.workers.lease_tasks(lease(101, 1_000)).await, "max_tasks");
    let mut poll = lease(1, 1_000);
    poll.wait_ms = 1_000_000;
    assert_invalid(c.workers.lease_tasks(poll).await, "wait_ms");
    assert_invalid(
        c.workers.extend_lease(pb::ExtendLeaseRequest { task_id: "t".into(), lease_id: "l".into(), lease_ms: 0 }).await,
        "lease_ms",
    );
    assert_invalid(
        c.workers.complete_task(pb::CompleteTaskRequest { task_id: String::new(), lease_id: "l".into() }).await,
        "task_id",
    );

    assert_eq!(load(&server).await, 0, "no task was enqueued");
    assert_eq!(system_total(&mut c).await, capacity_before, "no process was recorded");
}

#[tokio::test]
async fn callers_need_the_right_token() {
    let (server, _c) = seed_server(Backend::Memory).await;
    let client = connect(&server, None).await;
    let as_ = |token: Option<&str>| client.with_token(token).unwrap();
    let err = as_(None).admission().check_capacity(check(UserType::Registered, "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = as_(Some("forged")).admission().check_capacity(check(UserType::Registered, "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = as_(Some(WORKER)).admission().check_capacity(check(UserType::Registered, "u")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = as_(Some(FRONTEND)).workers().lease_tasks(lease(1, 1_000)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err =
        as_(Some(FRONTEND)).admin().get_capacity_calculation(pb::GetCapacityCalculationRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut admin_on_admission = as_(Some(ADMIN)).admission();
    assert!(admin_on_admission.check_capacity(check(UserType::Registered, "u")).await.is_ok());
}

#[tokio::test]
async fn health_reports_serving_without_a_token() {
    let server = start(Profile::Production, "").await;
    let mut health = connect(&server, None).await.health();
    for service in ["", "floodgate.v1.Admission", "floodgate.v1.Workers"] {
        let r =
            health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test]
async fn http_probes_and_capacity_document() {
    let (server, _c) = seed_server(Backend::Memory).await;
    let body = http_get(server.http, "/healthz", None).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let body = http_get(server.http, "/debug/capacity-calculation", None).await;
    assert!(body.starts_with("HTTP/1.1 401"), "{body}");
    let body = http_get(server.http, "/debug/capacity-calculation", Some(ADMIN)).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let json: serde_json::Value = serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["calculations_breakdown"]["step_8_system_total"], "14 total system capacity");
    assert_eq!(json["configuration"]["capacity_buffer"], 0.2);
    assert_eq!(json["actual_processes"]["instances_found"][0], "home-instance-1");
}

/// A plain HTTP/1.1 GET over a TCP socket: no client library between the test and the shim.
async fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

// Every store behaviour above runs on both stores from one test body.
common::on_both_stores!(
    capacity_calculation_reproduces_the_seed_example,
    thresholds_admit_eight_anonymous_eleven_registered_thirteen_privileged,
    check_capacity_follows_the_same_thresholds,
    leases_go_by_priority_then_fifo,
    two_hundred_concurrent_enqueues_admit_exactly_the_limit,
    silent_processes_go_stale_and_leave_capacity,
    unhealthy_leaves_at_once_and_degraded_still_counts,
    expired_leases_are_redelivered_then_dead_lettered,
    extend_lease_keeps_a_long_task_and_a_wrong_lease_cannot,
    long_poll_wakes_when_a_task_arrives,
    the_same_idempotency_key_gives_one_task,
    a_subject_over_its_rate_is_limited_until_retry_after,
    privileged_admin_routes_bypass_rate_limits_but_chat_does_not,
    bad_input_names_the_field_and_changes_nothing,
);

/// The server's side of every gRPC and HTTP connection has `TCP_NODELAY`
/// on. Regression: the tonic builder's `tcp_nodelay(true)` does not apply
/// to a listener the app binds itself, so Nagle's algorithm held a response
/// written while an earlier one was unacknowledged until the client's
/// delayed ACK (40 ms on Linux): the Redis worker cycle's old p99 tail
/// (BENCHMARKS.md). The server runs in this process, so its sockets are
/// among this process's file descriptors.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start(Profile::Development, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // An HTTP connection kept open after one answer.
    let mut http = tokio::net::TcpStream::connect(server.http).await.unwrap();
    http.write_all(b"GET /ui/session HTTP/1.1\r\nHost: floodgate\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    http.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");

    for (listener, port) in [("gRPC", server.grpc.port()), ("HTTP", server.http.port())] {
        let accepted = accepted_sockets(port);
        assert!(!accepted.is_empty(), "the {listener} client's connection is among this process's sockets");
        for (fd, nodelay) in accepted {
            assert!(nodelay, "accepted {listener} socket (fd {fd}) has Nagle's algorithm on");
        }
    }
}

/// (fd, TCP_NODELAY) of the server's end of each connection to `port` in
/// this process: our port locally and a peer (the listener has none; a
/// client's end has another local port).
#[cfg(target_os = "linux")]
fn accepted_sockets(port: u16) -> Vec<(i32, bool)> {
    use std::os::fd::BorrowedFd;

    let mut accepted = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        // SAFETY: the descriptor is only duplicated; one closed meanwhile
        // makes the duplication fail, which skips it.
        let Ok(owned) = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() else { continue };
        let socket = std::net::TcpStream::from(owned);
        if socket.local_addr().is_ok_and(|a| a.port() == port) && socket.peer_addr().is_ok() {
            accepted.push((fd, socket.nodelay().unwrap()));
        }
    }
    accepted
}
