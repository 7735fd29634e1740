//! What stops a running server: a panic in its background task (snapshot
//! refresh, housekeeping, config sync) is reported and ends `serve` with an
//! error, so the process exits non-zero instead of serving on with a
//! capacity snapshot that never refreshes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use floodgate::app::{App, AppError};
use floodgate::clock::{Clock, SystemClock};
use floodgate::config::Profile;

/// The system clock until armed; then every reading panics, as a bug in
/// the background task would.
#[derive(Default)]
struct TripwireClock {
    armed: AtomicBool,
}

impl Clock for TripwireClock {
    fn now_us(&self) -> u64 {
        if self.armed.load(Ordering::SeqCst) {
            panic!("the tripwire clock was read");
        }
        SystemClock.now_us()
    }
}

#[tokio::test]
async fn a_panic_in_the_background_task_stops_the_server_with_an_error() {
    let clock = Arc::new(TripwireClock::default());
    let app = App::bind_with_clock(settings(Profile::Development, ""), clock.clone()).await.expect("binds");
    let served = tokio::spawn(app.serve(std::future::pending()));
    // No call reaches the server: only the background task reads the clock.
    clock.armed.store(true, Ordering::SeqCst);
    // A bound on a hang, not a timing claim: without the supervisor this
    // never returns.
    let result = tokio::time::timeout(Duration::from_secs(60), served)
        .await
        .expect("serve returns after its background task panicked")
        .expect("serve itself does not panic");
    match result {
        Err(AppError::Background(message)) => assert!(message.contains("the tripwire clock was read"), "{message}"),
        other => panic!("expected the background task's panic, got {other:?}"),
    }
}
