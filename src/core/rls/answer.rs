//! The statuses, limits and headers Envoy reads from one decided request.

use super::config::Unit;
use super::plan::{Check, Plan, Planned, kept};
use super::rules::{Rate, Tally};
use crate::core::admission::Verdict;
use crate::core::gcra::{GcraOutcome, RateLimit, Spacing};
use crate::core::{Decision, UserType};

// ---- statuses ----

/// A descriptor's (and the request's) code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Within the limit (or no limit).
    Ok,
    /// Over the limit.
    OverLimit,
}

/// The limit reported as `current_limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedLimit {
    /// The limit's name.
    pub name: String,
    /// Requests allowed per unit.
    pub requests_per_unit: u32,
    /// The unit.
    pub unit: Unit,
}

/// One descriptor's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Within or over the limit.
    pub code: Code,
    /// The matched rule's limit (absent without one).
    pub current_limit: Option<ReportedLimit>,
    /// Requests the counter still allows right now.
    pub limit_remaining: u32,
    /// Until the counter is back to its full burst, µs.
    pub until_reset_us: u64,
    /// What the matched rule counts for this request.
    pub tally: Tally,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// OVER_LIMIT when any enforced descriptor is over its limit.
    pub overall: Code,
    /// One status per descriptor, in order.
    pub statuses: Vec<Status>,
    /// Added to Envoy's response when over the limit: `retry-after`
    /// (seconds; not when the request can never pass) and
    /// `x-floodgate-decision`; with [`PlanOptions::ratelimit_headers`](super::PlanOptions::ratelimit_headers),
    /// `RateLimit-Limit`, `-Remaining` and `-Reset` on every answer.
    pub response_headers: Vec<(&'static str, String)>,
    /// What happened to the request, for analytics and metrics.
    pub decision: Decision,
    /// Descriptors over their limit in shadow mode (let through).
    pub shadow_over_limit: u32,
}

/// A counter's state after a decision: (remaining, µs until full).
/// `kept` says whether an allowed outcome's new arrival time was stored.
pub fn counter_state(outcome: GcraOutcome, check: &Check, now_us: u64, kept: bool) -> (u64, u64) {
    let Spacing { interval_us, tolerance_us } = check.spacing;
    let taken = interval_us.saturating_mul(u64::from(check.cost));
    // The arrival time the key holds after this decision.
    let tat = match outcome {
        GcraOutcome::Allowed { tat } if kept => tat,
        GcraOutcome::Allowed { tat } => tat.saturating_sub(taken),
        // new_tat = tat + taken = now + tolerance + retry_after
        GcraOutcome::Limited { retry_after_us } => (now_us + tolerance_us + retry_after_us).saturating_sub(taken),
    }
    .max(now_us);
    ((now_us + tolerance_us).saturating_sub(tat) / interval_us.max(1), tat - now_us)
}

/// Level 1's part of an answer.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionOutcome<'v> {
    /// Level 1's verdict.
    pub verdict: &'v Verdict,
    /// The user type's rate limit, when Level 1 checked it.
    pub rate: Option<RateLimit>,
    /// The request's user type.
    pub user_type: UserType,
}

/// The part of `hits` above `permille` of the counter's burst
/// (envoyproxy/ratelimit's near-limit ratio, 0.8 by default), given the
/// requests it still allows after this decision.
pub(super) fn near_limit(hits: u32, remaining: u64, check: &Check, kept: bool, permille: u16) -> u32 {
    let burst = check.spacing.tolerance_us / check.spacing.interval_us.max(1);
    let hits64 = u64::from(hits);
    let used = burst.saturating_sub(remaining);
    // Kept: `used` includes this request's hits; not kept: it would add them.
    let (before, after) = if kept { (used.saturating_sub(hits64), used) } else { (used, used + hits64) };
    let threshold = burst * u64::from(permille) / 1000;
    let near = if after > threshold { after - before.max(threshold) } else { 0 };
    u32::try_from(near.min(hits64)).unwrap_or(hits)
}

/// Builds the answer from the checks' outcomes (aligned with `checks`),
/// decided at `now_us`, and Level 1's verdict when the request carried a
/// `user_type` descriptor. The worst descriptor wins: any enforcing
/// descriptor over its limit, or a Level 1 refusal, makes it OVER_LIMIT.
pub fn answer(
    plan: &Plan<'_>,
    checks: &[(usize, Check)],
    outcomes: &[GcraOutcome],
    now_us: u64,
    dry_run: bool,
    admission: Option<AdmissionOutcome<'_>>,
) -> Answer {
    let kept = kept(checks.iter().map(|(_, c)| c), outcomes, dry_run);
    let hits = plan.hits;
    let mut statuses: Vec<Status> = plan
        .descriptors
        .iter()
        .map(|planned| Status {
            code: Code::Ok,
            current_limit: None,
            // envoyproxy/ratelimit answers an unlimited rule with MaxUint32.
            limit_remaining: if *planned == Planned::Unlimited { u32::MAX } else { 0 },
            until_reset_us: 0,
            tally: Tally::default(),
        })
        .collect();
    let mut retry_after_us = 0u64;
    let mut over = false;
    // A refusal that waiting cannot lift (more hits than the limit holds,
    // or a limit of 0) gets no retry-after.
    let mut never_passes = false;
    let mut shadow_over_limit = 0;
    let reported = |rate: &Rate| ReportedLimit {
        name: rate.name.clone(),
        requests_per_unit: rate.requests_per_unit,
        unit: rate.unit,
    };
    for ((i, check), outcome) in checks.iter().zip(outcomes) {
        let (units, until_reset_us) = counter_state(*outcome, check, now_us, kept);
        // A rate faster than one per µs counts µs of its unit, not hits.
        let remaining = plan.descriptors[*i].rate().map_or(units, |rate| rate.hits_of(units));
        let status = &mut statuses[*i];
        status.limit_remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
        status.until_reset_us = until_reset_us;
        if let Planned::Limited { rate, .. } = &plan.descriptors[*i] {
            status.current_limit = Some(reported(rate));
            status.tally.hits = hits;
            match outcome {
                GcraOutcome::Limited { retry_after_us: retry } => {
                    status.tally.over_limit = hits;
                    if check.enforce {
                        status.code = Code::OverLimit;
                        over = true;
                        retry_after_us = retry_after_us.max(*retry);
                        never_passes |= check.spacing.interval_us.saturating_mul(u64::from(check.cost))
                            > check.spacing.tolerance_us;
                    } else {
                        status.tally.shadow_mode = hits;
                        shadow_over_limit += 1;
                    }
                }
                GcraOutcome::Allowed { .. } => {
                    status.tally.within_limit = hits;
                    let near = near_limit(check.cost, units, check, kept, plan.options.near_limit_permille);
                    status.tally.near_limit = if check.cost == hits {
                        near
                    } else {
                        let scaled = u64::from(near) * u64::from(hits) / u64::from(check.cost.max(1));
                        u32::try_from(scaled).unwrap_or(hits)
                    };
                }
            }
        }
    }
    for (planned, status) in plan.descriptors.iter().zip(statuses.iter_mut()) {
        if let Planned::RefusesAll { rate } = planned {
            status.current_limit = Some(reported(rate));
            status.tally = Tally { hits, over_limit: hits, ..Tally::default() };
            if rate.shadow_mode || plan.options.shadow_mode {
                status.tally.shadow_mode = hits;
                shadow_over_limit += 1;
            } else {
                status.code = Code::OverLimit;
                over = true;
                never_passes = true;
            }
        }
    }
    let mut decision = if over { Decision::RateLimited } else { Decision::Admit };
    if let (Some(a), Some(entries)) = (admission, &plan.admission) {
        let status = &mut statuses[entries.index];
        status.current_limit = a.rate.map(|r| ReportedLimit {
            name: format!("floodgate {} users", a.user_type.as_str()),
            requests_per_unit: r.per_minute,
            unit: Unit::Minute,
        });
        if a.verdict.decision != Decision::Admit {
            status.code = Code::OverLimit;
            status.limit_remaining = 0;
            if a.verdict.decision != Decision::RateLimited {
                // Refused by load, not by a counter: it clears when load falls.
                status.until_reset_us = a.verdict.retry_after_ms * 1_000;
            }
            retry_after_us = retry_after_us.max(a.verdict.retry_after_ms * 1_000);
            decision = a.verdict.decision;
            over = true;
        }
    }
    let mut response_headers = Vec::new();
    if over {
        if !never_passes {
            response_headers.push(("retry-after", retry_after_us.div_ceil(1_000_000).max(1).to_string()));
        }
        response_headers.push(("x-floodgate-decision", decision.as_str().to_owned()));
    }
    if plan.options.ratelimit_headers {
        ratelimit_headers(&statuses, &mut response_headers);
    }
    Answer {
        overall: if over { Code::OverLimit } else { Code::Ok },
        statuses,
        response_headers,
        decision,
        shadow_over_limit,
    }
}

/// The IETF draft's `RateLimit-Limit`, `RateLimit-Remaining` and
/// `RateLimit-Reset` (seconds) of the descriptor closest to its limit, as
/// envoyproxy/ratelimit's `LIMIT_RESPONSE_HEADERS_ENABLED` sets them.
fn ratelimit_headers(statuses: &[Status], headers: &mut Vec<(&'static str, String)>) {
    let closest =
        statuses.iter().filter_map(|s| s.current_limit.as_ref().map(|l| (s, l))).min_by_key(|(s, _)| s.limit_remaining);
    if let Some((status, limit)) = closest {
        headers.push(("RateLimit-Limit", limit.requests_per_unit.to_string()));
        headers.push(("RateLimit-Remaining", status.limit_remaining.to_string()));
        headers.push(("RateLimit-Reset", status.until_reset_us.div_ceil(1_000_000).to_string()));
    }
}
