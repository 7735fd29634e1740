//! A half-open probe is given back however a call ends (issue 12, point 1):
//! a call cancelled while the store is answering cannot hold the circuit's
//! only probe slot.

mod common;

use std::sync::Arc;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::Profile;
use floodgate::core::{Decision, Transport, UserType};
use floodgate::service::AdmissionRequest;

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
