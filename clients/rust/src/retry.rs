//! The deadline and retry loop every typed call runs in: `UNAVAILABLE` is
//! retried with jittered exponential backoff, only for calls that are safe
//! to repeat, and never past the call's deadline.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{AuthChannel, Client};
use crate::error::Error;

/// How a call that is safe to repeat is retried on `UNAVAILABLE`.
///
/// Retried: `CheckCapacity` (reserves nothing), `Heartbeat` (an upsert), the
/// admin reads, and `EnqueueAtomic` **only with an idempotency key**
/// (floodgate answers a repeated key with the first answer and enqueues
/// nothing; without a key a retry could enqueue the chat twice). Never
/// retried: `LeaseTasks` (a lost answer leaves tasks leased to nobody until
/// the lease expires), `CompleteTask`, `ExtendLease`, config changes and
/// circuit resets. Every attempt and pause stays inside the call's deadline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The pause before the first retry (jittered down to half of it).
    pub initial_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
    /// How much the pause grows after each failed attempt.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 4 attempts, pauses from 50 ms doubling up to 1 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is sent once.
    pub const fn none() -> Self {
        RetryPolicy { max_attempts: 1, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO, multiplier: 1.0 }
    }

    /// The pause after failed attempt number `attempt` (1-based), before
    /// jitter: `initial × multiplier^(attempt-1)`, at most `max_backoff`.
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_backoff).min(self.max_backoff)
    }

    /// The jittered pause: uniformly between half the ceiling and the
    /// ceiling, so that frontends refused together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        // A fresh RandomState is randomly keyed: jitter without a rand dependency.
        let unit = (RandomState::new().hash_one(attempt) >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + unit / 2.0)
    }
}

impl Client {
    /// Runs `attempt` with the deadline `deadline`, retrying `UNAVAILABLE`
    /// when `retry` says the call is safe to repeat.
    pub(crate) async fn call<Resp, F, Fut>(
        &self,
        method: &'static str,
        retry: bool,
        deadline: Duration,
        mut attempt: F,
    ) -> Result<Resp, Error>
    where
        F: FnMut(AuthChannel, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let started = Instant::now();
        let ends = started + deadline;
        let max_attempts = if retry { self.retry.max_attempts.max(1) } else { 1 };
        let mut attempts = 0;
        loop {
            let remaining = ends.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout { method, attempts, deadline });
            }
            attempts += 1;
            let status = match tokio::time::timeout(remaining, attempt(self.channel.clone(), remaining)).await {
                Err(_elapsed) => return Err(Error::Timeout { method, attempts, deadline }),
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
            };
            if status.code() == tonic::Code::Unavailable && attempts < max_attempts {
                let pause = self.retry.backoff(attempts);
                // A pause that would end past the deadline leaves no time
                // for another attempt: give up now with the real cause.
                if Instant::now() + pause < ends {
                    tokio::time::sleep(pause).await;
                    continue;
                }
            }
            return Err(Error::from_status(method, status, attempts, deadline));
        }
    }
}

/// A request with the attempt's deadline sent as `grpc-timeout`, so that
/// floodgate stops working on it when the caller has stopped waiting.
pub(crate) fn with_deadline<T>(message: T, remaining: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(remaining);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_pause_up_to_the_maximum() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<_> = (1..=6).map(|a| policy.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1000]);
    }

    #[test]
    fn jittered_backoff_stays_between_half_the_ceiling_and_the_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..=6 {
            for _ in 0..100 {
                let pause = policy.backoff(attempt);
                let ceiling = policy.backoff_ceiling(attempt);
                assert!(pause >= ceiling / 2 && pause <= ceiling, "{pause:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
            }
        }
    }

    #[test]
    fn no_retries_means_one_attempt() {
        assert_eq!(RetryPolicy::none().max_attempts, 1);
    }
}
