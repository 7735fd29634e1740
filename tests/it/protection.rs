//! Circuit breakers, throttling analytics and alerts end to end (issue:
//! breakers, analytics and alerts).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::{Profile, StoreUrl};
use floodgate::core::breaker::BreakerState;
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};

const FAST_BREAKER: &str =
    "[breakers.backpressure]\nfailure_threshold = 3\nrecovery_timeout_ms = 300\nrecovery_pressure = 0.0\n";

async fn circuit(c: &mut Clients, name: &str) -> pb::Circuit {
    let list = c.admin.list_circuit_breakers(pb::ListCircuitBreakersRequest {}).await.unwrap().into_inner();
    list.circuits[name].clone()
}

async fn finish(c: &mut Clients, n: u32) {
    let tasks = c.workers.lease_tasks(lease(n, 30_000)).await.unwrap().into_inner().tasks;
    assert_eq!(tasks.len(), n as usize);
    for t in tasks {
        c.workers.complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id }).await.unwrap();
    }
}

#[tokio::test]
async fn overload_refusals_open_the_circuit_and_it_recovers_through_half_open() {
    // Recovery waits on floodgate's clock, not the machine's: a loaded
    // machine cannot make the circuit half-open early or late.
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = start_with(settings(Profile::Production, FAST_BREAKER), clock.clone()).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // Refusals at the anonymous threshold are policy: they never open it.
    for i in 0..8 {
        c.admission.enqueue_atomic(enqueue(UserType::Anonymous, &format!("a{i}"))).await.unwrap();
    }
    for i in 0..5 {
        let r =
            c.admission.enqueue_atomic(enqueue(UserType::Anonymous, &format!("over{i}"))).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Backpressure);
    }
    assert_eq!(circuit(&mut c, "backpressure").await.state, "closed");
    // Fill to the hard limit (13 of 14): now refusals are overload.
    for i in 0..5 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Privileged, &format!("p{i}"))).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Admit);
    }
    for i in 0..3 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("r{i}"))).await.unwrap().into_inner();
        assert_eq!(r.decision(), Decision::Backpressure);
    }
    let open = circuit(&mut c, "backpressure").await;
    assert_eq!((open.state.as_str(), open.current_window_failures), ("open", 3));
    assert!(open.opened_at.is_some());

    // Non-privileged traffic is refused without touching the store;
    // privileged traffic passes the circuit (and meets the hard limit).
    finish(&mut c, 5).await; // load 8: registered would fit
    let refused = c.admission.enqueue_atomic(enqueue(UserType::Registered, "r")).await.unwrap().into_inner();
    assert_eq!((refused.decision(), refused.http_status), (Decision::CircuitOpen, 503));
    assert!(refused.retry_after_ms > 0);
    let level_one = c.admission.check_capacity(check(UserType::Registered, "r")).await.unwrap().into_inner();
    assert_eq!(level_one.decision(), Decision::CircuitOpen);
    assert_eq!(load(&server).await, 8, "nothing was enqueued while open");
    let privileged = c.admission.enqueue_atomic(enqueue(UserType::Privileged, "p")).await.unwrap().into_inner();
    assert_eq!(privileged.decision(), Decision::Admit);

    // Not yet: recovery_timeout (300 ms) has not passed on the clock.
    clock.advance_ms(299);
    let early = c.admission.enqueue_atomic(enqueue(UserType::Registered, "early")).await.unwrap().into_inner();
    assert_eq!(early.decision(), Decision::CircuitOpen);
    // After recovery_timeout: half-open probes; two successes close it.
    clock.advance_ms(1);
    let probe = c.admission.enqueue_atomic(enqueue(UserType::Registered, "probe1")).await.unwrap().into_inner();
    assert_eq!(probe.decision(), Decision::Admit);
    assert_eq!(circuit(&mut c, "backpressure").await.state, "half_open");
    c.admission.enqueue_atomic(enqueue(UserType::Registered, "probe2")).await.unwrap();
    let closed = circuit(&mut c, "backpressure").await;
    assert_eq!((closed.state.as_str(), closed.opened_at), ("closed", None));
}

#[tokio::test]
async fn an_idempotent_retry_gets_its_first_answer_while_the_circuit_is_open() {
    // The clock stands still: the circuit cannot half-open behind the test's back.
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = start_with(settings(Profile::Production, FAST_BREAKER), clock).await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let mut first = enqueue(UserType::Registered, "retry-me");
    first.idempotency_key = "order-7".into();
    let admitted = c.admission.enqueue_atomic(first.clone()).await.unwrap().into_inner();
    assert_eq!(admitted.decision(), Decision::Admit);
    for i in 0..12 {
        c.admission.enqueue_atomic(enqueue(UserType::Privileged, &format!("p{i}"))).await.unwrap();
    }
    for i in 0..3 {
        c.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("r{i}"))).await.unwrap();
    }
    assert_eq!(circuit(&mut c, "backpressure").await.state, "open");
    let retry = c.admission.enqueue_atomic(first).await.unwrap().into_inner();
    assert_eq!((retry.decision(), retry.task_id), (Decision::Admit, admitted.task_id));
}

#[tokio::test]
async fn rate_limits_never_trip_a_circuit() {
    let server = start(Profile::Production, "[breakers.backpressure]\nfailure_threshold = 2\n").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    let mut limited = 0;
    for _ in 0..20 {
        let r = c.admission.check_capacity(check(UserType::Anonymous, "spammer")).await.unwrap().into_inner();
        limited += usize::from(r.decision() == Decision::RateLimited);
    }
    assert_eq!(limited, 15);
    for name in ["backpressure", "rate_limiter", "authentication", "storage"] {
        let c = circuit(&mut c, name).await;
        assert_eq!((c.state.as_str(), c.failure_count), ("closed", 0), "{name}");
    }
}

#[tokio::test]
async fn unknown_circuit_names_are_not_found() {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    let err = c
        .admin
        .reset_circuit_breaker(pb::ResetCircuitBreakerRequest { circuit_name: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), floodgate_client::Code::NotFound);
}

/// Regression: the reset answered a literal `Closed` whatever the breakers
/// said; its answer is now the circuit read back after the reset (the
/// lifetime failure count kept, the window's failures cleared).
#[tokio::test]
async fn a_reset_answers_the_circuit_as_the_breakers_read_it_after_the_reset() {
    // No worker: T = 0, so every anonymous request is an overload failure.
    let server =
        start(Profile::Development, "[breakers.backpressure]\nfailure_threshold = 2\nrecovery_timeout_ms = 600000")
            .await;
    let mut c = clients(&server).await;
    for i in 0..3 {
        c.admission.check_capacity(check(UserType::Anonymous, &format!("anon-{i}"))).await.unwrap();
    }
    assert_eq!(server.floodgate.breaker_state("backpressure"), Some("open"));
    let reset = server.operations.reset_circuit_breaker("backpressure").await.unwrap();
    assert_eq!(reset.circuit_name, "backpressure");
    assert_eq!(reset.circuit.state, BreakerState::Closed);
    assert_eq!(reset.circuit.failure_count, 2, "read from the breaker: the lifetime count is kept");
    assert_eq!((reset.circuit.current_window_failures, reset.circuit.consecutive_failures), (0, 0));
    assert_eq!(reset.circuit.opened_at, None);
    let read = server.operations.circuit_breakers().await.unwrap().circuits["backpressure"];
    assert_eq!(reset.circuit, read, "the answer is what the breakers hold");
    // The edges answer the state read.
    let answer = c
        .admin
        .reset_circuit_breaker(pb::ResetCircuitBreakerRequest { circuit_name: "backpressure".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.circuit_name.as_str(), answer.state.as_str()), ("backpressure", "closed"));
}

#[tokio::test]
async fn a_reset_on_one_replica_closes_the_circuit_on_another() {
    let redis = common::redis::RedisServer::start();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut s = settings(
            Profile::Production,
            "[breakers.backpressure]\nfailure_threshold = 3\nrecovery_timeout_ms = 600000\nrecovery_pressure = 0.0\n",
        );
        s.store = StoreUrl::Redis(redis.url());
        replicas.push(start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await);
    }
    let (mut a, mut b) = (clients(&replicas[0]).await, clients(&replicas[1]).await);
    // No worker: every request is a backpressure refusal. Open the circuit on B.
    for i in 0..3 {
        b.admission.enqueue_atomic(enqueue(UserType::Registered, &format!("x{i}"))).await.unwrap();
    }
    assert_eq!(replicas[1].floodgate.breaker_state("backpressure"), Some("open"));
    // A sees the cluster's view (B publishes about once a second).
    let mut seen_open = false;
    for _ in 0..60 {
        if circuit(&mut a, "backpressure").await.state == "open" {
            seen_open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_open, "A must see B's open circuit");

    a.admin
        .reset_circuit_breaker(pb::ResetCircuitBreakerRequest { circuit_name: "backpressure".into() })
        .await
        .unwrap();
    let mut state = None;
    for _ in 0..60 {
        state = replicas[1].floodgate.breaker_state("backpressure");
        if state == Some("closed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, Some("closed"), "the reset applies on every replica");
}

async fn known_mix(backend: Backend) {
    let server = start_on(backend, Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    // 8 admitted anonymous (WebSocket), then 2 backpressure refusals.
    for i in 0..10 {
        let mut r = enqueue(UserType::Anonymous, &format!("anon-{i}"));
        r.transport = pb::Transport::Websocket.into();
        r.session_id = if i < 8 { format!("ok-{i}") } else { "crowded".into() };
        c.admission.enqueue_atomic(r).await.unwrap();
    }
    // Session "spammer": 5 admitted, then 4 rate limited; "pest": 5 admitted, 1 limited.
    for (session, n) in [("spammer", 9), ("pest", 6)] {
        for _ in 0..n {
            let mut r = check(UserType::Anonymous, session);
            r.session_id = session.into();
            c.admission.check_capacity(r).await.unwrap();
        }
    }
    // 3 registered REST admitted.
    for i in 0..3 {
        c.admission.check_capacity(check(UserType::Registered, &format!("reg-{i}"))).await.unwrap();
    }
    let stats = c.admin.get_throttling_stats(pb::GetThrottlingStatsRequest {}).await.unwrap().into_inner();
    let hour = &stats.throttling_by_period["1h"];
    // Level 1 anonymous checks also meet backpressure: load 8 = anonymous limit 8.
    // So the 10 admitted-by-rate checks of spammer/pest are backpressure refusals.
    assert_eq!(hour.total_requests, 10 + 15 + 3);
    assert_eq!(hour.rate_limit_429, 5);
    assert_eq!(hour.backpressure_503, 2 + 10);
    assert_eq!(hour.total_throttled, 17);
    assert!((hour.throttle_rate - 17.0 * 100.0 / 28.0).abs() < 1e-9);
    assert_eq!(hour.circuit_open_503, 0);
    assert_eq!(hour.throughput_per_hour_by_user_type["anonymous"], 8.0);
    assert_eq!(hour.throughput_per_hour_by_user_type["registered"], 3.0);
    // 8 anonymous enqueues and the 3 registered checks came over WebSocket.
    assert_eq!(hour.throughput_per_hour_by_transport["websocket"], 11.0);
    assert_eq!(hour.throughput_per_hour_by_transport["rest"], 0.0);
    let top: Vec<_> = hour.top_sessions.iter().map(|s| (s.session_id.as_str(), s.throttled)).collect();
    assert_eq!(top, [("spammer", 9), ("pest", 6), ("crowded", 2)]);
    for window in ["1h", "3h", "6h", "12h", "24h"] {
        assert_eq!(stats.throttling_by_period[window].total_requests, 28, "{window}");
    }
    assert_eq!(stats.throttling_by_period["24h"].throughput_per_hour_by_user_type["registered"], 3.0 / 24.0);
}

#[tokio::test]
async fn throttling_stats_count_a_known_mix_exactly_in_memory() {
    known_mix(Backend::Memory).await;
}

#[tokio::test]
async fn throttling_stats_count_a_known_mix_exactly_on_redis() {
    known_mix(Backend::Redis).await;
}

#[tokio::test]
async fn a_hundred_thousand_throttled_sessions_leave_analytics_bounded() {
    // No worker: every request is refused with backpressure and counted
    // for its session. Driven through the service directly (no network).
    let server = start(Profile::Loadtest, "").await;
    let floodgate = server.floodgate.clone();
    for i in 0..100_000 {
        let request = floodgate::service::AdmissionRequest {
            user_type: floodgate::core::UserType::Registered,
            subject: format!("session-{i}"),
            session_id: String::new(),
            transport: floodgate::core::Transport::Rest,
            route: "/landing/chat".into(),
            request_id: String::new(),
        };
        floodgate.check_capacity(&request).await.unwrap();
        if i % 1_000 == 0 {
            // The bound between flushes: PENDING_SESSIONS.
            assert!(floodgate.pending_throttled_sessions() <= floodgate::throttling::PENDING_SESSIONS);
        }
    }
    let stats = server.operations.throttling_stats().await.unwrap();
    assert_eq!(stats["1h"].total_requests, 100_000);
    assert_eq!(stats["1h"].backpressure_503, 100_000);
    // Stored heavy hitters: TOP_SESSIONS per hour bucket; the 100,000
    // sessions fall in one hour bucket, or two when the run crosses an hour.
    // They were tracked (a store that kept none would pass an upper bound),
    // and no more than the bound.
    let top = floodgate::core::analytics::TOP_SESSIONS;
    let tracked = floodgate.tracked_throttled_sessions().await;
    assert!((top..=top * 2).contains(&tracked), "tracked {tracked}, want {top}..={}", top * 2);
    assert_eq!(stats["1h"].top_sessions.len(), floodgate::core::analytics::WINDOW_TOP_SESSIONS);
    assert!(floodgate.pending_throttled_sessions() <= floodgate::throttling::PENDING_SESSIONS);
}

async fn alert_codes(c: &mut Clients) -> Vec<(String, String)> {
    let alerts = c.admin.list_alerts(pb::ListAlertsRequest {}).await.unwrap().into_inner().alerts;
    alerts.into_iter().map(|a| (a.severity, a.code)).collect()
}

/// Waits until the alert list satisfies `holds` (alerts are evaluated about once a second).
async fn wait_for(c: &mut Clients, what: &str, holds: impl Fn(&[(String, String)]) -> bool) {
    let mut codes = Vec::new();
    for _ in 0..100 {
        codes = alert_codes(c).await;
        if holds(&codes) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: alerts are {codes:?}");
}

fn has(codes: &[(String, String)], severity: &str, code: &str) -> bool {
    codes.iter().any(|(s, k)| s == severity && k == code)
}

async fn wait_for_alert(c: &mut Clients, severity: &str, code: &str) {
    wait_for(c, &format!("{severity} {code}"), |codes| has(codes, severity, code)).await;
}

#[tokio::test]
async fn alerts_follow_the_seed_conditions() {
    // Staleness is judged on floodgate's clock: the process goes stale when
    // the test moves the clock, never because a loaded machine was slow.
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = start_with(settings(Profile::Production, "processes_per_instance = 2"), clock.clone()).await;
    let mut c = clients(&server).await;
    wait_for_alert(&mut c, "critical", "no_healthy_chat_rest_processes").await;

    // One process of the two expected: a deficit warning, and the critical clears.
    c.workers.heartbeat(heartbeat("i1", "p1", ProcessStatus::Healthy)).await.unwrap();
    wait_for(&mut c, "deficit without the critical", |codes| {
        has(codes, "warning", "process_deficit") && !has(codes, "critical", "no_healthy_chat_rest_processes")
    })
    .await;

    // Utilization over 90%: 13 of 14 tasks (privileged fills to the hard limit).
    for i in 0..13 {
        let r = c.admission.enqueue_atomic(enqueue(UserType::Privileged, &format!("p{i}"))).await.unwrap();
        assert_eq!(r.into_inner().decision(), Decision::Admit);
    }
    wait_for_alert(&mut c, "critical", "utilization_high").await;

    // A config change is an info alert.
    c.admin.update_config(pb::ConfigChange { concurrent_per_process: Some(6), ..Default::default() }).await.unwrap();
    wait_for_alert(&mut c, "info", "config_applied").await;

    // The worker's heartbeats stop: silent for stale_after (production: 15 s), it is stale and
    // the critical is back.
    clock.advance_ms(15_000);
    wait_for_alert(&mut c, "critical", "no_healthy_chat_rest_processes").await;
}

#[tokio::test]
async fn an_idle_server_with_no_workers_shows_exactly_the_no_healthy_process_alert() {
    // Issue 23: with no capacity the ratios are over zero; the one alert is
    // "no healthy chat REST processes" (no pressure, health or deficit alert).
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = start_with(settings(Profile::Production, "processes_per_instance = 2"), clock.clone()).await;
    let mut c = clients(&server).await;
    wait_for_alert(&mut c, "critical", "no_healthy_chat_rest_processes").await;
    let firing: Vec<_> = alert_codes(&mut c).await.into_iter().filter(|(s, _)| s != "info").collect();
    assert_eq!(firing, [("critical".to_owned(), "no_healthy_chat_rest_processes".to_owned())]);
}
