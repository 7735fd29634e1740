//! The named circuit breakers of docs/architecture.md §6, shared by both levels. The hot
//! path reads an atomic state mirror and takes a circuit's lock only when it
//! is not closed or a failure is recorded. A call that passes a circuit
//! holds a [`Permit`]; what it reports is decided by `core::feedback`, and a
//! permit dropped without a report (early return, cancelled call) gives its
//! half-open probe slot back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::core::Millis;
use crate::core::breaker::{Breaker, BreakerState, BreakerStats, BreakersConfig, Circuit, Ticket, Transition};
use crate::core::feedback::{self, Call, Feedback};

struct Shared {
    /// Mirror of the state for lock-free reads (BreakerState::level).
    level: AtomicU8,
    /// Set when a failure was recorded while closed, so that the next
    /// success clears `consecutive_failures` under the lock.
    dirty: AtomicBool,
    /// Requests let through while closed (not under the lock).
    closed_requests: AtomicU64,
    inner: Mutex<Breaker>,
}

/// A change worth an info alert and a log line.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitEvent {
    /// Which circuit changed.
    pub circuit: Circuit,
    /// From which state to which.
    pub transition: Transition,
}

/// All circuits of this replica.
pub struct Breakers {
    circuits: Vec<Shared>,
    enabled: AtomicBool,
    /// Reset generations already applied, per circuit name.
    generations: Mutex<BTreeMap<String, u64>>,
    events: Mutex<Vec<CircuitEvent>>,
}

use crate::sync::lock;

impl Breakers {
    /// Closed circuits with `config`.
    pub fn new(config: &BreakersConfig) -> Breakers {
        Breakers {
            circuits: Circuit::ALL
                .iter()
                .map(|c| Shared {
                    level: AtomicU8::new(0),
                    dirty: AtomicBool::new(false),
                    closed_requests: AtomicU64::new(0),
                    inner: Mutex::new(Breaker::new(config.of(*c))),
                })
                .collect(),
            enabled: AtomicBool::new(config.enabled),
            generations: Mutex::new(BTreeMap::new()),
            events: Mutex::new(Vec::new()),
        }
    }

    fn shared(&self, circuit: Circuit) -> &Shared {
        &self.circuits[Circuit::ALL.iter().position(|c| *c == circuit).unwrap_or(0)]
    }

    fn note(&self, circuit: Circuit, shared: &Shared, breaker: &Breaker, transition: Option<Transition>) {
        shared.level.store(breaker.state().level(), Ordering::Release);
        if let Some(transition) = transition {
            tracing::warn!(
                circuit = circuit.name(),
                from = transition.from.as_str(),
                to = transition.to.as_str(),
                "circuit breaker transition"
            );
            lock(&self.events).push(CircuitEvent { circuit, transition });
        }
    }

    /// Lets a call guarded by `circuit` through, or None while it is open
    /// (or half-open with every probe out). The permit reports the call's
    /// outcome; dropped without a report, it gives a probe slot back.
    pub fn allow(&self, circuit: Circuit, now: Millis, pressure_ratio: f64) -> Option<Permit<'_>> {
        let permit = |probe| Some(Permit { breakers: self, circuit, probe });
        if !self.enabled.load(Ordering::Relaxed) {
            return permit(None);
        }
        let shared = self.shared(circuit);
        if shared.level.load(Ordering::Acquire) == BreakerState::Closed.level() {
            shared.closed_requests.fetch_add(1, Ordering::Relaxed);
            return permit(None);
        }
        let mut breaker = lock(&shared.inner);
        let (ticket, transition) = breaker.allow(now, pressure_ratio);
        self.note(circuit, shared, &breaker, transition);
        match ticket {
            Ticket::Refused => None,
            Ticket::Call => permit(None),
            Ticket::Probe { round } => permit(Some(round)),
        }
    }

    /// Gives back a half-open probe slot of `round`.
    fn release(&self, circuit: Circuit, round: u64) {
        lock(&self.shared(circuit).inner).release(round);
    }

    /// The guarded call succeeded.
    fn success(&self, circuit: Circuit, now: Millis) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let shared = self.shared(circuit);
        let closed = shared.level.load(Ordering::Acquire) == BreakerState::Closed.level();
        if closed && !shared.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut breaker = lock(&shared.inner);
        let transition = breaker.record_success(now);
        self.note(circuit, shared, &breaker, transition);
    }

    /// The guarded call failed for a system reason (never for 429/401/403).
    fn failure(&self, circuit: Circuit, now: Millis) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let shared = self.shared(circuit);
        let mut breaker = lock(&shared.inner);
        let transition = breaker.record_failure(now);
        shared.dirty.store(true, Ordering::Release);
        self.note(circuit, shared, &breaker, transition);
    }

    /// Closes a circuit (operator reset).
    pub fn reset(&self, circuit: Circuit, now: Millis) {
        let shared = self.shared(circuit);
        let mut breaker = lock(&shared.inner);
        let transition = breaker.reset(now);
        self.note(circuit, shared, &breaker, transition);
    }

    /// Resets the circuits whose cluster-wide reset generation moved.
    pub fn apply_generations(&self, generations: &BTreeMap<String, u64>, now: Millis) {
        let mut seen = lock(&self.generations);
        for (name, generation) in generations {
            let known = seen.entry(name.clone()).or_insert(0);
            if *generation > *known {
                *known = *generation;
                if let Some(circuit) = Circuit::from_name(name) {
                    self.reset(circuit, now);
                }
            }
        }
    }

    /// Records a generation this replica produced, so it is not applied twice.
    pub fn mark_generation(&self, circuit: Circuit, generation: u64) {
        let mut seen = lock(&self.generations);
        let known = seen.entry(circuit.name().to_owned()).or_insert(0);
        *known = (*known).max(generation);
    }

    /// New tuning (live config); states are kept.
    pub fn reconfigure(&self, config: &BreakersConfig) {
        self.enabled.store(config.enabled, Ordering::Relaxed);
        for circuit in Circuit::ALL {
            lock(&self.shared(circuit).inner).reconfigure(config.of(circuit));
        }
    }

    /// Time-based transitions (Open → Half-open) without waiting for a call.
    pub fn tick(&self, now: Millis, pressure_ratio: f64) {
        for circuit in Circuit::ALL {
            let shared = self.shared(circuit);
            if shared.level.load(Ordering::Acquire) == BreakerState::Open.level() {
                let mut breaker = lock(&shared.inner);
                let transition = breaker.tick(now, pressure_ratio);
                self.note(circuit, shared, &breaker, transition);
            }
        }
    }

    /// The seed's per-circuit fields of this replica.
    pub fn stats(&self, now: Millis) -> BTreeMap<String, BreakerStats> {
        Circuit::ALL.iter().map(|c| (c.name().to_owned(), self.circuit_stats(*c, now))).collect()
    }

    /// One circuit's fields on this replica, as of `now`.
    pub fn circuit_stats(&self, circuit: Circuit, now: Millis) -> BreakerStats {
        let shared = self.shared(circuit);
        let mut stats = lock(&shared.inner).stats(now);
        stats.total_requests += shared.closed_requests.load(Ordering::Relaxed);
        stats
    }

    /// Names of open circuits.
    pub fn open_circuits(&self) -> Vec<String> {
        Circuit::ALL
            .iter()
            .filter(|c| self.shared(**c).level.load(Ordering::Acquire) == BreakerState::Open.level())
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// Transitions since the last call.
    pub fn take_events(&self) -> Vec<CircuitEvent> {
        std::mem::take(&mut *lock(&self.events))
    }
}

/// A call let through one circuit (tower's permit pattern). It reports
/// the call's [`Feedback`] once; dropped unreported, a half-open probe's slot
/// is given back, so no early return or cancelled future can leak one.
/// Holds no allocation and takes a lock only for a half-open probe or a
/// recorded failure.
#[must_use = "a permit reports the call's outcome; dropping it releases the probe"]
pub struct Permit<'a> {
    breakers: &'a Breakers,
    circuit: Circuit,
    /// The half-open round, when this call is a probe.
    probe: Option<u64>,
}

impl Permit<'_> {
    /// Reports how the call went.
    pub fn report(mut self, feedback: Feedback, now: Millis) {
        match feedback {
            Feedback::Success => self.breakers.success(self.circuit, now),
            Feedback::Failure => self.breakers.failure(self.circuit, now),
            // Dropping `self` gives the probe slot back.
            Feedback::Release => return,
        }
        self.probe = None;
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(round) = self.probe.take() {
            self.breakers.release(self.circuit, round);
        }
    }
}

/// The permits one admission call holds: `backpressure` (None when the
/// call bypasses it) and its store step's circuit.
#[derive(Default)]
pub(crate) struct Permits<'a> {
    /// The backpressure circuit's permit.
    pub backpressure: Option<Permit<'a>>,
    /// The permit of the call's store-step circuit.
    pub store: Option<Permit<'a>>,
}

impl Permits<'_> {
    /// Reports a finished call to every circuit it passed, as
    /// [`feedback::feedback`] decides.
    pub(crate) fn settle(self, call: Call, now: Millis) {
        let feedback = feedback::feedback(call);
        if let Some(permit) = self.backpressure {
            permit.report(feedback.backpressure, now);
        }
        if let Some(permit) = self.store {
            permit.report(feedback.store, now);
        }
    }
}

/// The cluster's view of one circuit: the worst state any replica reports,
/// counters summed, the earliest `opened_at`.
pub(crate) fn merge_cluster(views: &[BTreeMap<String, BreakerStats>]) -> BTreeMap<String, BreakerStats> {
    let mut merged: BTreeMap<String, BreakerStats> = BTreeMap::new();
    for view in views {
        for (name, s) in view {
            merged
                .entry(name.clone())
                .and_modify(|m| {
                    if s.state.level() > m.state.level() {
                        m.state = s.state;
                    }
                    m.failure_count += s.failure_count;
                    m.total_requests += s.total_requests;
                    m.current_window_failures += s.current_window_failures;
                    m.consecutive_failures = m.consecutive_failures.max(s.consecutive_failures);
                    m.opened_at = match (m.opened_at, s.opened_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                })
                .or_insert(*s);
        }
    }
    for m in merged.values_mut() {
        if m.state == BreakerState::Closed {
            m.opened_at = None;
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(&BreakersConfig::with(2, 1_000))
    }

    #[test]
    fn failures_open_only_their_circuit() {
        let b = breakers();
        b.failure(Circuit::Storage, 0);
        b.failure(Circuit::Storage, 1);
        assert_eq!(b.open_circuits(), ["storage"]);
        assert!(b.allow(Circuit::Storage, 2, 1.0).is_none());
        assert!(b.allow(Circuit::Backpressure, 2, 1.0).is_some());
        let events = b.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].transition.to, BreakerState::Open);
    }

    #[test]
    fn a_new_reset_generation_closes_the_circuit_once() {
        let b = breakers();
        b.failure(Circuit::Backpressure, 0);
        b.failure(Circuit::Backpressure, 0);
        let generations = BTreeMap::from([("backpressure".to_owned(), 1)]);
        b.apply_generations(&generations, 5);
        assert!(b.open_circuits().is_empty());
        b.failure(Circuit::Backpressure, 6);
        b.failure(Circuit::Backpressure, 6);
        b.apply_generations(&generations, 7);
        assert_eq!(b.open_circuits(), ["backpressure"], "the same generation does not reset twice");
    }

    #[test]
    fn closed_requests_are_counted_without_the_lock() {
        let b = breakers();
        for _ in 0..5 {
            assert!(b.allow(Circuit::Backpressure, 0, 0.0).is_some());
        }
        assert_eq!(b.stats(0)["backpressure"].total_requests, 5);
    }

    #[test]
    fn the_cluster_view_takes_the_worst_state() {
        let open = breakers();
        open.failure(Circuit::Storage, 0);
        open.failure(Circuit::Storage, 0);
        let merged = merge_cluster(&[breakers().stats(1), open.stats(1)]);
        assert_eq!(merged["storage"].state, BreakerState::Open);
        assert_eq!(merged["storage"].failure_count, 2);
        assert_eq!(merged["backpressure"].state, BreakerState::Closed);
    }

    /// Opens `circuit` (threshold 2) and lets it half-open (recovery 1 s):
    /// three probe slots.
    fn half_open(b: &Breakers, circuit: Circuit) {
        b.failure(circuit, 0);
        b.failure(circuit, 0);
        b.tick(1_000, 1.0);
        assert_eq!(b.stats(1_000)[circuit.name()].state, BreakerState::HalfOpen);
    }

    fn probes_left(b: &Breakers, circuit: Circuit) -> usize {
        let held: Vec<_> = std::iter::from_fn(|| b.allow(circuit, 1_000, 1.0)).take(10).collect();
        held.len()
    }

    #[test]
    fn a_dropped_probe_gives_its_slot_back() {
        let b = breakers();
        half_open(&b, Circuit::Storage);
        {
            let probe = b.allow(Circuit::Storage, 1_000, 1.0).expect("a probe");
            assert!(probe.is_probe());
            // An early return: the permit goes out of scope unreported.
        }
        assert_eq!(probes_left(&b, Circuit::Storage), 3, "every slot is free again");
    }

    #[test]
    fn reported_probes_keep_their_slot_and_count() {
        let b = breakers();
        half_open(&b, Circuit::Storage);
        b.allow(Circuit::Storage, 1_000, 1.0).expect("a probe").report(Feedback::Success, 1_000);
        assert_eq!(probes_left(&b, Circuit::Storage), 2, "a reported probe used its slot");
        b.allow(Circuit::Backpressure, 1_000, 1.0).expect("closed").report(Feedback::Release, 1_000);
        assert_eq!(b.stats(1_000)["storage"].state, BreakerState::HalfOpen);
    }

    #[test]
    fn a_cancelled_call_gives_its_probe_back() {
        let b = breakers();
        half_open(&b, Circuit::Backpressure);
        let call = async {
            let permit = b.allow(Circuit::Backpressure, 1_000, 1.0);
            // The store never answers: the caller gives up (a cancelled RPC).
            std::future::pending::<()>().await;
            drop(permit);
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        runtime.block_on(async {
            tokio::select! {
                biased;
                () = call => unreachable!("the call never finishes"),
                () = std::future::ready(()) => {}
            }
        });
        assert_eq!(probes_left(&b, Circuit::Backpressure), 3, "the cancelled probe's slot is free");
    }

    #[test]
    fn settle_reports_each_circuit_as_the_core_decides() {
        use crate::core::Decision;
        use crate::core::admission::Pressure;
        use crate::core::capacity::Limits;
        use crate::core::feedback::{StoreOutcome, StoreStep};
        let b = breakers();
        half_open(&b, Circuit::Backpressure);
        half_open(&b, Circuit::Storage);
        let full =
            Pressure { load: 13, system_total: 14, limits: Limits { anonymous: 8, registered: 11, privileged: 13 } };
        let permits = Permits {
            backpressure: b.allow(Circuit::Backpressure, 1_000, 1.0),
            store: b.allow(Circuit::Storage, 1_000, 1.0),
        };
        let call = Call {
            step: StoreStep::Enqueue,
            store: StoreOutcome::Answered,
            decided: Some((Decision::Backpressure, full)),
        };
        permits.settle(call, 1_001);
        let stats = b.stats(1_001);
        assert_eq!(stats["backpressure"].state, BreakerState::Open, "an overload refusal fails the probe");
        assert_eq!(stats["storage"].state, BreakerState::HalfOpen, "the store answered: one success of two");
    }
}
