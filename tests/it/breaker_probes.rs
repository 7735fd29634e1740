//! A half-open probe is given back however a call ends (issue 12, point 1):
//! a call cancelled while the store is answering cannot hold the circuit's
//! only probe slot.

use crate::common;

use std::sync::Arc;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::Profile;
use floodgate::core::{Decision, Transport, UserType};
use floodgate::service::ServiceError;
use floodgate::service::{AdmissionRequest, EnqueueRequest};

/// One probe slot, opened by one overload refusal, half-open after 1 s.
const ONE_PROBE: &str = "[breakers.backpressure]\nfailure_threshold = 1\nrecovery_timeout_ms = 1000\nhalf_open_max_calls = 1\nsuccess_threshold = 1\nrecovery_pressure = 0.0\n";

fn anonymous(subject: &str) -> AdmissionRequest {
    AdmissionRequest {
        user_type: UserType::Anonymous,
        subject: subject.into(),
        session_id: String::new(),
        transport: Transport::Rest,
        route: "/landing/chat".into(),
        request_id: String::new(),
    }
}

fn task(subject: &str) -> EnqueueRequest {
    EnqueueRequest { admission: anonymous(subject), payload: b"chat".to_vec(), idempotency_key: String::new() }
}

#[tokio::test]
async fn a_cancelled_level_one_call_gives_its_probe_back() {
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = backend_server(Backend::Redis, settings(Profile::Production, ONE_PROBE), clock.clone()).await;
    let floodgate = server.floodgate.clone();
    // No healthy process: T = 0, so a refusal is overload and opens the circuit.
    let first = floodgate.check_capacity(&anonymous("a")).await.unwrap();
    assert_eq!(first.decision, Decision::Backpressure);
    let open = floodgate.check_capacity(&anonymous("b")).await.unwrap();
    assert_eq!(open.decision, Decision::CircuitOpen);

    clock.advance_ms(1_000);
    // The probe goes out, then the caller gives up while Redis answers.
    let probe = anonymous("c");
    let cancelled = tokio::select! {
        biased;
        _ = floodgate.check_capacity(&probe) => false,
        () = std::future::ready(()) => true,
    };
    assert!(cancelled, "the call was still waiting on the store when dropped");

    // The slot is free again: the next call probes (and, still at T = 0, reopens).
    let next = floodgate.check_capacity(&anonymous("d")).await.unwrap();
    assert_eq!(next.decision, Decision::Backpressure, "not CircuitOpen: the cancelled probe was released");
    let reopened = floodgate.check_capacity(&anonymous("e")).await.unwrap();
    assert_eq!(reopened.decision, Decision::CircuitOpen);
}

#[tokio::test]
async fn a_cancelled_level_two_call_gives_its_probe_back() {
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = backend_server(Backend::Redis, settings(Profile::Production, ONE_PROBE), clock.clone()).await;
    let floodgate = server.floodgate.clone();
    // No healthy process: T = 0, so the store refuses and the refusal is overload.
    let first = floodgate.enqueue_atomic(task("a")).await.unwrap();
    assert_eq!(first.verdict.decision, Decision::Backpressure);
    let open = floodgate.enqueue_atomic(task("b")).await.unwrap();
    assert_eq!(open.verdict.decision, Decision::CircuitOpen);

    clock.advance_ms(1_000);
    // The probe goes out, then the caller gives up while Redis answers.
    let cancelled = tokio::select! {
        biased;
        _ = floodgate.enqueue_atomic(task("c")) => false,
        () = std::future::ready(()) => true,
    };
    assert!(cancelled, "the call was still waiting on the store when dropped");

    let next = floodgate.enqueue_atomic(task("d")).await.unwrap();
    assert_eq!(next.verdict.decision, Decision::Backpressure, "not CircuitOpen: the cancelled probe was released");
    let reopened = floodgate.enqueue_atomic(task("e")).await.unwrap();
    assert_eq!(reopened.verdict.decision, Decision::CircuitOpen);
}

#[tokio::test]
async fn an_open_storage_circuit_gives_the_backpressure_probe_back() {
    // The storage circuit opens on one failure and stays open; backpressure
    // half-opens after 1 s with one probe slot.
    let breakers = format!("{ONE_PROBE}[breakers.storage]\nfailure_threshold = 1\nrecovery_timeout_ms = 600000\n");
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let mut server = backend_server(Backend::Redis, settings(Profile::Production, &breakers), clock.clone()).await;
    let floodgate = server.floodgate.clone();
    server.redis.as_mut().expect("a Redis backend").kill();
    // A failed enqueue is a failure for both circuits: both open.
    let failed = floodgate.enqueue_atomic(task("a")).await.unwrap_err();
    assert!(matches!(failed, ServiceError::Unavailable(_)), "{failed:?}");
    assert_eq!(floodgate.breaker_state("storage"), Some("open"));
    assert_eq!(floodgate.breaker_state("backpressure"), Some("open"));

    clock.advance_ms(1_000);
    // Backpressure lets its one probe through; the open storage circuit ends
    // the call before the store, and the probe's slot must come back.
    for attempt in ["b", "c"] {
        let refused = floodgate.enqueue_atomic(task(attempt)).await.unwrap_err();
        assert!(
            matches!(&refused, ServiceError::Unavailable(e) if e.to_string().contains("storage circuit open")),
            "{attempt}: {refused:?} (a leaked probe would answer CircuitOpen)"
        );
    }
}
