//! Envoy's `ShouldRateLimit`: descriptor rules and Level 1 decided together.

use smallvec::SmallVec;

use super::Floodgate;
use super::ServiceError;
use super::admission::{AdmissionRequest, LevelOne};
use crate::core::Decision;
use crate::core::admission::Verdict;
use crate::core::breaker::Circuit;
use crate::core::feedback::{Call, StoreOutcome, StoreStep};
use crate::core::rls::{self, RlsRequest};
use crate::protection::Permits;
use crate::store::{RateBatch, RateKey, Store, StoreError};

impl Floodgate {
    /// Envoy's `ShouldRateLimit`. The request's descriptors are decided
    /// together: those matching a configured rule by GCRA, and a
    /// `user_type` descriptor by Level 1 exactly as [`Floodgate::check_capacity`]
    /// (and counted like it). All GCRA checks go to the store in one call
    /// and a refused request consumes nothing. Store failures are errors
    /// (UNAVAILABLE), not a local fallback: Envoy's `failure_mode_deny` decides.
    pub async fn should_rate_limit(&self, request: &RlsRequest<'_>) -> Result<rls::Answer, ServiceError> {
        // A guard, not a clone of the Arc: no shared reference count to touch per request.
        let rules = self.rls.guard();
        let plan = rules
            .plan_with(request, self.rls.plan_options())
            .map_err(|e| ServiceError::invalid(&e.field, e.message))?;
        let admission = plan.admission.as_ref().map(|a| AdmissionRequest {
            user_type: a.user_type,
            subject: a.subject.clone(),
            session_id: String::new(),
            transport: a.transport,
            route: a.route.clone(),
            request_id: String::new(),
        });
        if let Some(admission) = &admission {
            admission.validate()?;
        }
        let now_us = self.clock.now_us();
        let mut level_one = admission.as_ref().map(|a| self.level_one_start(a, now_us));
        // A request Level 1 refuses whatever its rate limit says is decided
        // as a dry run: statuses for every descriptor, nothing consumed.
        let (admission_rate, dry_run) = match &level_one {
            None => (None, false),
            Some(LevelOne::Decided(_)) => (None, true),
            Some(LevelOne::Pending(p)) => (p.rate, p.verdict(None).decision != Decision::Admit),
        };
        let checks = plan.checks(admission_rate);
        // The backpressure permit (if Level 1 passed its circuit) and the
        // rate limiter's, settled together once the batch has answered.
        let mut permits = Permits::default();
        if let Some(LevelOne::Pending(pending)) = &mut level_one {
            permits.backpressure = pending.backpressure.take();
        }
        let (batch, store) = if checks.is_empty() {
            (RateBatch { outcomes: Vec::new(), now_us }, StoreOutcome::Skipped)
        } else {
            let keyed: SmallVec<[(RateKey<'_>, rls::Check); 4]> = checks
                .iter()
                .map(|(i, check)| match (&plan.descriptors[*i], &admission) {
                    (rls::Planned::Limited { counter, .. }, _) => (RateKey::Descriptor(counter), *check),
                    (_, Some(a)) => (RateKey::User(a.user_type, &a.subject), *check),
                    (_, None) => unreachable!("only limited and admission descriptors are checked"),
                })
                .collect();
            // Every check a refusal remembered until its retry time: the
            // store's answer is known (the local shield; it only refuses).
            if let Some(batch) = self.shield.refused_all(&keyed, now_us) {
                (batch, StoreOutcome::Skipped)
            } else {
                let now = now_us / 1_000;
                permits.store = Some(self.breakers.allow(Circuit::RateLimiter, now, 0.0).ok_or_else(|| {
                    ServiceError::Unavailable(StoreError::Unavailable("rate_limiter circuit open".into()))
                })?);
                match self.store.rate_limit_all(&keyed, dry_run, now_us).await {
                    Ok(batch) => {
                        self.shield.remember_all(&keyed, &batch, now_us);
                        (batch, StoreOutcome::Answered)
                    }
                    Err(e) => {
                        self.metrics.store_error("rate_limit", &e);
                        let store = StoreOutcome::failed(e.is_shard_local());
                        permits.settle(Call { step: StoreStep::RateLimit, store, decided: None }, now);
                        return Err(e.into());
                    }
                }
            }
        };
        let verdict = level_one.map(|l| match l {
            LevelOne::Decided(verdict) => verdict,
            LevelOne::Pending(pending) => {
                let index = plan.admission.as_ref().map(|a| a.index);
                let rate = checks.iter().zip(&batch.outcomes).find(|((i, _), _)| Some(*i) == index).map(|(_, o)| *o);
                self.level_one_finish(&pending, rate, store, std::mem::take(&mut permits), now_us / 1_000)
            }
        });
        // Descriptor rules alone: only the rate limiter hears of the call.
        permits.settle(Call { step: StoreStep::RateLimit, store, decided: None }, now_us / 1_000);
        let outcome = match (&verdict, &admission) {
            (Some(verdict), Some(a)) => {
                Some(rls::AdmissionOutcome { verdict, rate: admission_rate, user_type: a.user_type })
            }
            _ => None,
        };
        let answer = rls::answer(&plan, &checks, &batch.outcomes, batch.now_us, dry_run, outcome);
        if let (Some(verdict), Some(a)) = (verdict, &admission) {
            // Counted as what happened to the request: a descriptor over its
            // limit makes an admitted request rate-limited.
            let verdict = if answer.decision == verdict.decision {
                verdict
            } else {
                Verdict {
                    decision: answer.decision,
                    reason: "an Envoy descriptor is over its limit".to_owned(),
                    ..verdict
                }
            };
            self.decided(1, &a.admission_key(), verdict);
        } else {
            crate::rpc_trace::record_decision(answer.decision, None);
        }
        self.metrics.rls(&answer);
        self.rls.record(request, &plan, &answer);
        Ok(answer)
    }
}
