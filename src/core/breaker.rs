//! The circuit-breaker state machine (docs/architecture.md §6): Closed → Open after
//! `failure_threshold` failures within `window`; Open → Half-open after
//! `recovery_timeout` (or, for queue-aware circuits, as soon as pressure
//! falls below `recovery_pressure`); Half-open admits `half_open_max_calls`
//! probes and closes after `success_threshold` successes, or reopens on a
//! failure. Only system failures are recorded here: callers never record
//! 429, 401 or 403.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Millis;

/// Tuning of one circuit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures within `window_ms` that open the circuit.
    pub failure_threshold: u32,
    /// The window failures are counted over.
    pub window_ms: Millis,
    /// How long an open circuit waits before it goes half-open.
    pub recovery_timeout_ms: Millis,
    /// Probes a half-open circuit lets through at once.
    pub half_open_max_calls: u32,
    /// Successful probes that close a half-open circuit.
    pub success_threshold: u32,
    /// Queue-aware early recovery: an open circuit goes half-open as soon
    /// as the pressure ratio is below this (None: time only).
    pub recovery_pressure: Option<f64>,
}

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused until the recovery timeout.
    Open,
    /// A few probe calls decide whether it closes or opens again.
    HalfOpen,
}

impl BreakerState {
    /// The seed's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 half-open, 2 open (the metric's encoding).
    pub fn level(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// A state change, for logs and info alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// The seed's per-circuit fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStats {
    /// Where the circuit stands.
    pub state: BreakerState,
    /// Failures recorded since start or the last reset.
    pub failure_count: u64,
    /// Calls seen since start or reset.
    pub total_requests: u64,
    /// Failures in the current window.
    pub current_window_failures: u64,
    /// Failures in a row.
    pub consecutive_failures: u64,
    /// When the circuit last opened (ms since the epoch), if open.
    pub opened_at: Option<Millis>,
}

/// Time left before an open circuit goes half-open by its recovery
/// timeout (0 when due), for the console's countdown; None unless open.
/// [`Breaker::tick`] makes the transition itself.
pub fn half_open_in(stats: &BreakerStats, recovery_timeout_ms: Millis, now_ms: Millis) -> Option<Millis> {
    match (stats.state, stats.opened_at) {
        (BreakerState::Open, Some(opened_at)) => {
            Some(opened_at.saturating_add(recovery_timeout_ms).saturating_sub(now_ms))
        }
        _ => None,
    }
}

/// What a circuit admits: per-state data lives in the state's variant, so
/// a closed circuit has no `opened_at` and only a half-open one counts probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open {
        opened_at: Millis,
    },
    HalfOpen {
        opened_at: Millis,
        /// Which half-open round this is (a probe of an earlier round
        /// gives nothing back to this one).
        round: u64,
        /// Probes let through and not yet given back.
        probes: u32,
        successes: u32,
    },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn opened_at(self) -> Option<Millis> {
        match self {
            Phase::Closed => None,
            Phase::Open { opened_at } | Phase::HalfOpen { opened_at, .. } => Some(opened_at),
        }
    }
}

/// What [`Breaker::allow`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// The circuit is open: the call must not go through.
    Refused,
    /// A call through a closed circuit.
    Call,
    /// A half-open probe of round `round`: it must end in a success, a
    /// failure or [`Breaker::release`], or the slot stays taken.
    Probe {
        /// The half-open round the probe belongs to.
        round: u64,
    },
}

impl Ticket {
    /// Whether the call may go through.
    pub fn is_allowed(self) -> bool {
        self != Ticket::Refused
    }
}

/// One circuit.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    phase: Phase,
    /// Failure times within the window (at most `failure_threshold` kept).
    recent_failures: VecDeque<Millis>,
    failure_count: u64,
    total_requests: u64,
    consecutive_failures: u64,
    /// Half-open rounds begun so far.
    rounds: u64,
}

impl Breaker {
    /// A closed circuit.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            phase: Phase::Closed,
            recent_failures: VecDeque::new(),
            failure_count: 0,
            total_requests: 0,
            consecutive_failures: 0,
            rounds: 0,
        }
    }

    /// Current state (without applying time-based transitions).
    pub fn state(&self) -> BreakerState {
        self.phase.state()
    }

    /// New tuning; the state is kept.
    pub fn reconfigure(&mut self, config: BreakerConfig) {
        self.config = config;
    }

    fn forget_old(&mut self, now: Millis) {
        while self.recent_failures.front().is_some_and(|t| now.saturating_sub(*t) >= self.config.window_ms) {
            self.recent_failures.pop_front();
        }
    }

    fn go(&mut self, to: BreakerState, now: Millis) -> Option<Transition> {
        let from = self.state();
        if from == to {
            return None;
        }
        self.phase = match to {
            BreakerState::Open => Phase::Open { opened_at: now },
            BreakerState::HalfOpen => {
                self.rounds += 1;
                let opened_at = self.phase.opened_at().unwrap_or(now);
                Phase::HalfOpen { opened_at, round: self.rounds, probes: 0, successes: 0 }
            }
            BreakerState::Closed => {
                self.recent_failures.clear();
                self.consecutive_failures = 0;
                Phase::Closed
            }
        };
        Some(Transition { from, to })
    }

    /// Applies the time- and pressure-based Open → Half-open transition.
    pub fn tick(&mut self, now: Millis, pressure_ratio: f64) -> Option<Transition> {
        let Phase::Open { opened_at } = self.phase else { return None };
        let waited = now.saturating_sub(opened_at) >= self.config.recovery_timeout_ms;
        let relieved = self.config.recovery_pressure.is_some_and(|p| pressure_ratio < p);
        if waited || relieved { self.go(BreakerState::HalfOpen, now) } else { None }
    }

    /// Whether a call may go through now; counts it as a request when it may.
    /// Closed: always. Open: never. Half-open: up to `half_open_max_calls`
    /// probes out at once. A probe's slot is held until it reports, so the
    /// caller must hold it in a guard that releases it when dropped
    /// (`protection::Permit`); no timeout is needed to recover lost probes.
    pub fn allow(&mut self, now: Millis, pressure_ratio: f64) -> (Ticket, Option<Transition>) {
        let transition = self.tick(now, pressure_ratio);
        let max = self.config.half_open_max_calls;
        let ticket = match &mut self.phase {
            Phase::Closed => Ticket::Call,
            Phase::Open { .. } => Ticket::Refused,
            Phase::HalfOpen { probes, round, .. } if *probes < max => {
                *probes += 1;
                Ticket::Probe { round: *round }
            }
            Phase::HalfOpen { .. } => Ticket::Refused,
        };
        if ticket.is_allowed() {
            self.total_requests += 1;
        }
        (ticket, transition)
    }

    /// A probe of `round` ended without telling whether the system is
    /// healthy (rate limited, cancelled, stopped by another circuit): its
    /// slot is given back if its round is still running.
    pub fn release(&mut self, round: u64) {
        if let Phase::HalfOpen { round: current, probes, .. } = &mut self.phase
            && *current == round
        {
            *probes = probes.saturating_sub(1);
        }
    }

    /// A call that went through succeeded.
    pub fn record_success(&mut self, now: Millis) -> Option<Transition> {
        self.consecutive_failures = 0;
        if let Phase::HalfOpen { successes, .. } = &mut self.phase {
            *successes += 1;
            if *successes >= self.config.success_threshold {
                return self.go(BreakerState::Closed, now);
            }
        }
        None
    }

    /// A system failure: counts towards opening; reopens a half-open circuit.
    pub fn record_failure(&mut self, now: Millis) -> Option<Transition> {
        self.failure_count += 1;
        self.consecutive_failures += 1;
        match self.phase {
            Phase::HalfOpen { .. } => self.go(BreakerState::Open, now),
            Phase::Open { .. } => None,
            Phase::Closed => {
                self.forget_old(now);
                self.recent_failures.push_back(now);
                while self.recent_failures.len() > self.config.failure_threshold as usize {
                    self.recent_failures.pop_front();
                }
                if self.recent_failures.len() >= self.config.failure_threshold as usize {
                    self.go(BreakerState::Open, now)
                } else {
                    None
                }
            }
        }
    }

    /// Operator reset: back to Closed, counters of the window cleared.
    pub fn reset(&mut self, now: Millis) -> Option<Transition> {
        let transition = self.go(BreakerState::Closed, now);
        self.recent_failures.clear();
        self.consecutive_failures = 0;
        transition
    }

    /// The seed's fields as of `now`.
    pub fn stats(&mut self, now: Millis) -> BreakerStats {
        self.forget_old(now);
        BreakerStats {
            state: self.state(),
            failure_count: self.failure_count,
            total_requests: self.total_requests,
            current_window_failures: self.recent_failures.len() as u64,
            consecutive_failures: self.consecutive_failures,
            opened_at: self.phase.opened_at(),
        }
    }
}

/// The circuits floodgate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Circuit {
    /// Caller-token / identity verification infrastructure.
    Authentication,
    /// The rate-limit store.
    RateLimiter,
    /// System overload: backpressure refusals and enqueue failures.
    Backpressure,
    /// The state store.
    Storage,
}

impl Circuit {
    /// All circuits.
    pub const ALL: [Circuit; 4] =
        [Circuit::Authentication, Circuit::RateLimiter, Circuit::Backpressure, Circuit::Storage];

    /// The seed's name.
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Authentication => "authentication",
            Circuit::RateLimiter => "rate_limiter",
            Circuit::Backpressure => "backpressure",
            Circuit::Storage => "storage",
        }
    }

    /// The circuit with this name.
    pub fn from_name(name: &str) -> Option<Circuit> {
        Circuit::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Tuning of every circuit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakersConfig {
    /// Off: every circuit stays closed and nothing is recorded.
    pub enabled: bool,
    /// Circuit over token checks.
    pub authentication: BreakerConfig,
    /// Circuit over the Level-1 rate-limit store step.
    pub rate_limiter: BreakerConfig,
    /// Circuit over overload refusals.
    pub backpressure: BreakerConfig,
    /// Circuit over the Level-2 enqueue store step.
    pub storage: BreakerConfig,
}

impl BreakersConfig {
    /// The config of one circuit.
    pub fn of(&self, circuit: Circuit) -> BreakerConfig {
        match circuit {
            Circuit::Authentication => self.authentication,
            Circuit::RateLimiter => self.rate_limiter,
            Circuit::Backpressure => self.backpressure,
            Circuit::Storage => self.storage,
        }
    }

    /// Defaults: `failure_threshold` failures within 10 s open a circuit;
    /// backpressure recovers early below half pressure.
    pub fn with(failure_threshold: u32, recovery_timeout_ms: Millis) -> BreakersConfig {
        let base = BreakerConfig {
            failure_threshold,
            window_ms: 10_000,
            recovery_timeout_ms,
            half_open_max_calls: 3,
            success_threshold: 2,
            recovery_pressure: None,
        };
        BreakersConfig {
            enabled: true,
            authentication: base,
            rate_limiter: base,
            backpressure: BreakerConfig { recovery_pressure: Some(0.5), ..base },
            storage: base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        window_ms: 10_000,
        recovery_timeout_ms: 5_000,
        half_open_max_calls: 2,
        success_threshold: 2,
        recovery_pressure: None,
    };

    fn opened() -> Breaker {
        let mut b = Breaker::new(CONFIG);
        b.record_failure(0);
        b.record_failure(1);
        assert_eq!(b.record_failure(2), Some(Transition { from: BreakerState::Closed, to: BreakerState::Open }));
        b
    }

    #[test]
    fn closed_opens_after_threshold_failures_within_the_window() {
        let mut b = Breaker::new(CONFIG);
        b.record_failure(0);
        b.record_failure(1);
        // The first failure leaves the window before the third arrives.
        assert_eq!(b.record_failure(10_000), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.stats(10_000).current_window_failures, 2);
        assert!(b.record_failure(10_000).is_some());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.stats(10_000).opened_at, Some(10_000));
    }

    #[test]
    fn open_refuses_until_the_recovery_timeout_then_half_opens() {
        let mut b = opened();
        assert!(!b.allow(4_999, 1.0).0.is_allowed());
        let (allowed, t) = b.allow(5_002, 1.0);
        assert!(allowed.is_allowed());
        assert_eq!(t, Some(Transition { from: BreakerState::Open, to: BreakerState::HalfOpen }));
    }

    #[test]
    fn half_open_admits_limited_probes_and_closes_after_successes() {
        let mut b = opened();
        assert!(b.allow(6_000, 1.0).0.is_allowed());
        assert!(b.allow(6_000, 1.0).0.is_allowed());
        assert!(!b.allow(6_000, 1.0).0.is_allowed(), "only half_open_max_calls probes");
        assert_eq!(b.record_success(6_001), None);
        assert_eq!(
            b.record_success(6_002),
            Some(Transition { from: BreakerState::HalfOpen, to: BreakerState::Closed })
        );
        assert_eq!(b.stats(6_002).opened_at, None);
    }

    #[test]
    fn released_probes_are_given_back() {
        let mut b = opened();
        for _ in 0..2 {
            let (ticket, _) = b.allow(6_000, 1.0);
            let Ticket::Probe { round } = ticket else { panic!("a probe, got {ticket:?}") };
            b.release(round);
        }
        assert!(b.allow(6_000, 1.0).0.is_allowed(), "released slots can probe again");
    }

    #[test]
    fn probes_out_hold_their_slots_until_released() {
        // No timeout frees a slot: the guard that holds a probe gives it
        // back when dropped (protection::Permit), so none can be lost.
        let mut b = opened();
        let (first, _) = b.allow(6_000, 1.0);
        assert!(b.allow(6_000, 1.0).0.is_allowed());
        assert_eq!(b.allow(60_000, 1.0).0, Ticket::Refused, "both slots are still out");
        let Ticket::Probe { round } = first else { panic!("a probe, got {first:?}") };
        b.release(round);
        assert!(b.allow(60_000, 1.0).0.is_allowed());
    }

    #[test]
    fn a_probe_of_an_earlier_round_gives_nothing_back() {
        let mut b = opened();
        let (old, _) = b.allow(6_000, 1.0);
        b.record_failure(6_001); // reopens; the next round starts at 11_001
        assert_eq!(b.allow(11_001, 1.0).0, Ticket::Probe { round: 2 });
        assert!(b.allow(11_001, 1.0).0.is_allowed());
        let Ticket::Probe { round } = old else { panic!("a probe, got {old:?}") };
        b.release(round);
        assert_eq!(b.allow(11_001, 1.0).0, Ticket::Refused, "round 1's release is not round 2's slot");
    }

    #[test]
    fn a_failing_probe_reopens() {
        let mut b = opened();
        b.allow(6_000, 1.0);
        assert_eq!(b.record_failure(6_001), Some(Transition { from: BreakerState::HalfOpen, to: BreakerState::Open }));
        assert_eq!(b.stats(6_001).opened_at, Some(6_001));
    }

    #[test]
    fn queue_aware_recovery_half_opens_early_when_pressure_falls() {
        let mut slow = opened();
        let mut aware = Breaker::new(BreakerConfig { recovery_pressure: Some(0.5), ..CONFIG });
        for t in 0..3 {
            aware.record_failure(t);
        }
        assert!(!slow.allow(1_000, 0.3).0.is_allowed(), "time-only recovery still waits");
        assert!(!aware.allow(1_000, 0.9).0.is_allowed(), "pressure still high");
        assert!(aware.allow(1_000, 0.3).0.is_allowed(), "pressure fell: probe at once");
        assert_eq!(aware.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn reset_closes_from_any_state() {
        let mut b = opened();
        assert_eq!(b.reset(3), Some(Transition { from: BreakerState::Open, to: BreakerState::Closed }));
        assert_eq!(b.stats(3).current_window_failures, 0);
        assert_eq!(b.stats(3).failure_count, 3, "lifetime count is kept");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allow(u64, f64),
        Success(u64),
        Failure(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..3_000, 0.0f64..1.5).prop_map(|(dt, p)| Op::Allow(dt, p)),
            (0u64..3_000).prop_map(Op::Success),
            (0u64..3_000).prop_map(Op::Failure),
        ]
    }

    proptest! {
        /// No sequence of events goes Open → Closed without Half-open.
        #[test]
        fn never_open_to_closed_without_half_open(
            ops in proptest::collection::vec(op(), 1..400),
            pressure_aware in any::<bool>(),
        ) {
            let config = BreakerConfig { recovery_pressure: pressure_aware.then_some(0.5), ..CONFIG };
            let mut b = Breaker::new(config);
            let mut now = 0;
            for op in ops {
                let transition = match op {
                    Op::Allow(dt, p) => { now += dt; b.allow(now, p).1 }
                    Op::Success(dt) => { now += dt; b.record_success(now) }
                    Op::Failure(dt) => { now += dt; b.record_failure(now) }
                };
                if let Some(t) = transition {
                    prop_assert!(!(t.from == BreakerState::Open && t.to == BreakerState::Closed));
                }
            }
        }
    }
}
