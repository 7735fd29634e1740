//! Records every decision off the hot path: lock-free pending counters and
//! a small heavy-hitter table of throttled sessions, flushed to the store
//! about once a second (one pipeline on Redis).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::core::analytics::{self, CELLS, Cells, SpaceSaving};
use crate::core::{Decision, Millis, Transport, UserType};
use crate::store::{AnalyticsStore, StoreResult};

/// Throttled sessions tracked between two flushes.
pub const PENDING_SESSIONS: usize = 256;

/// Pending analytics of this replica.
pub struct Recorder {
    enabled: AtomicBool,
    pending: [AtomicU64; CELLS],
    sessions: Mutex<SpaceSaving>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new(enabled: bool) -> Recorder {
        Recorder {
            enabled: AtomicBool::new(enabled),
            pending: std::array::from_fn(|_| AtomicU64::new(0)),
            sessions: Mutex::new(SpaceSaving::new(PENDING_SESSIONS)),
        }
    }

    /// Turns recording on or off (live config).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Counts one decision; throttled ones also count for their session.
    pub fn record(&self, decision: Decision, user_type: UserType, transport: Transport, session: &str) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        self.pending[analytics::cell(decision, user_type, transport)].fetch_add(1, Ordering::Relaxed);
        if decision != Decision::Admit && !session.is_empty() {
            crate::sync::lock(&self.sessions).offer(session, 1);
        }
    }

    /// Moves pending counts into the store, attributed to the minute of `now`.
    /// On failure the counts are put back for the next flush.
    pub async fn flush<S: AnalyticsStore>(&self, store: &S, now: Millis) -> StoreResult<()> {
        let mut cells: Cells = [0; CELLS];
        for (cell, pending) in cells.iter_mut().zip(&self.pending) {
            *cell = pending.swap(0, Ordering::Relaxed);
        }
        let sessions = crate::sync::lock(&self.sessions).drain();
        if cells.iter().all(|n| *n == 0) && sessions.is_empty() {
            return Ok(());
        }
        let result = store.flush_analytics(now / 60_000, cells, sessions.clone()).await;
        if result.is_err() {
            for (cell, pending) in cells.iter().zip(&self.pending) {
                pending.fetch_add(*cell, Ordering::Relaxed);
            }
            let mut table = crate::sync::lock(&self.sessions);
            for (session, n) in sessions {
                table.offer(&session, n);
            }
        }
        result
    }

    /// Sessions held locally (for memory-bound checks in tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn pending_sessions(&self) -> usize {
        crate::sync::lock(&self.sessions).len()
    }
}
