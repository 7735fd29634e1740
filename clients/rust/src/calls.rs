//! The typed calls: each says whether it is safe to retry and runs in
//! [`Client::call`](crate::Client)'s deadline and retry loop.

use std::time::{Duration, SystemTime};

use crate::connection::Client;
use crate::error::Error;
use crate::pb;
use crate::retry::with_deadline;
use crate::types::{Admission, CapacityCheck, Enqueue, Heartbeat, HeartbeatAck, Lease, LeasedTask, Verdict, unix_ms};

impl Client {
    /// Level 1 (`CheckCapacity`, frontend token): the rate limit, then the
    /// immediate backpressure check. Reserves nothing, so `UNAVAILABLE` is
    /// retried within the deadline.
    pub async fn check_capacity(&self, check: CapacityCheck) -> Result<Verdict, Error> {
        let request = check.request;
        let response = self
            .call("CheckCapacity", true, self.timeout, |channel, remaining| {
                let request = with_deadline(request.clone(), remaining);
                async move { pb::admission_client::AdmissionClient::new(channel).check_capacity(request).await }
            })
            .await?;
        Ok(Verdict::from(response))
    }

    /// Level 2 (`EnqueueAtomic`, frontend token): re-checks the live load
    /// and, only if the user type still fits, enqueues the chat task, in one
    /// atomic step. Retried on `UNAVAILABLE` only when the request carries
    /// an idempotency key ([`Enqueue::idempotency_key`]): floodgate answers a
    /// repeated key with the first answer, so the task is enqueued once.
    pub async fn enqueue_atomic(&self, enqueue: Enqueue) -> Result<Admission, Error> {
        let request = enqueue.request;
        let retry = !request.idempotency_key.is_empty();
        let response = self
            .call("EnqueueAtomic", retry, self.timeout, |channel, remaining| {
                let request = with_deadline(request.clone(), remaining);
                async move { pb::admission_client::AdmissionClient::new(channel).enqueue_atomic(request).await }
            })
            .await?;
        Ok(Admission::from(response))
    }

    /// `Heartbeat` (worker token): reports the process's health, load and
    /// capacity. An upsert, so retried on `UNAVAILABLE`.
    pub async fn heartbeat(&self, heartbeat: Heartbeat) -> Result<HeartbeatAck, Error> {
        let request = heartbeat.request;
        let response = self
            .call("Heartbeat", true, self.timeout, |channel, remaining| {
                let request = with_deadline(request.clone(), remaining);
                async move { pb::workers_client::WorkersClient::new(channel).heartbeat(request).await }
            })
            .await?;
        Ok(HeartbeatAck::from(response))
    }

    /// `LeaseTasks` (worker token): up to `max_tasks` tasks, privileged
    /// first, long-polling the lease's `wait`. The deadline is the client's
    /// timeout plus that wait. Not retried: a lost answer would leave tasks
    /// leased to nobody until their lease expires.
    pub async fn lease_tasks(&self, lease: Lease) -> Result<Vec<LeasedTask>, Error> {
        let request = lease.request;
        let deadline = self.timeout + Duration::from_millis(request.wait_ms);
        let response = self
            .call("LeaseTasks", false, deadline, |channel, remaining| {
                let request = with_deadline(request.clone(), remaining);
                async move { pb::workers_client::WorkersClient::new(channel).lease_tasks(request).await }
            })
            .await?;
        Ok(response.tasks.into_iter().map(LeasedTask::from).collect())
    }

    /// `CompleteTask` (worker token): the task is done and frees its
    /// capacity. [`Error::Rejected`] when the lease is no longer held.
    pub async fn complete_task(&self, task_id: &str, lease_id: &str) -> Result<(), Error> {
        let request = pb::CompleteTaskRequest { task_id: task_id.into(), lease_id: lease_id.into() };
        self.call("CompleteTask", false, self.timeout, |channel, remaining| {
            let request = with_deadline(request.clone(), remaining);
            async move { pb::workers_client::WorkersClient::new(channel).complete_task(request).await }
        })
        .await?;
        Ok(())
    }

    /// `ExtendLease` (worker token): keeps a held lease for `lease` from now;
    /// answers the new expiry.
    pub async fn extend_lease(&self, task_id: &str, lease_id: &str, lease: Duration) -> Result<SystemTime, Error> {
        let request = pb::ExtendLeaseRequest {
            task_id: task_id.into(),
            lease_id: lease_id.into(),
            lease_ms: crate::types::millis(lease),
        };
        let response = self
            .call("ExtendLease", false, self.timeout, |channel, remaining| {
                let request = with_deadline(request.clone(), remaining);
                async move { pb::workers_client::WorkersClient::new(channel).extend_lease(request).await }
            })
            .await?;
        Ok(unix_ms(response.lease_expires_at_ms))
    }

    /// `GetSystemStatus` (admin token): `/monitoring/system` as a message. A read, retried.
    pub async fn system_status(&self) -> Result<pb::SystemStatus, Error> {
        self.call("GetSystemStatus", true, self.timeout, |channel, remaining| {
            let request = with_deadline(pb::GetSystemStatusRequest {}, remaining);
            async move { pb::admin_client::AdminClient::new(channel).get_system_status(request).await }
        })
        .await
    }

    /// `GetCapacityCalculation` (admin token): the eight-step capacity
    /// calculation from a fresh snapshot. A read, retried.
    pub async fn capacity_calculation(&self) -> Result<pb::CapacityCalculation, Error> {
        self.call("GetCapacityCalculation", true, self.timeout, |channel, remaining| {
            let request = with_deadline(pb::GetCapacityCalculationRequest {}, remaining);
            async move { pb::admin_client::AdminClient::new(channel).get_capacity_calculation(request).await }
        })
        .await
    }

    /// `ListCircuitBreakers` (admin token). A read, retried.
    pub async fn circuit_breakers(&self) -> Result<pb::CircuitBreakers, Error> {
        self.call("ListCircuitBreakers", true, self.timeout, |channel, remaining| {
            let request = with_deadline(pb::ListCircuitBreakersRequest {}, remaining);
            async move { pb::admin_client::AdminClient::new(channel).list_circuit_breakers(request).await }
        })
        .await
    }

    /// `ResetCircuitBreaker` (admin token): closes the named circuit on
    /// every floodgate instance. Not retried. [`Error::Rejected`] for an
    /// unknown circuit.
    pub async fn reset_circuit_breaker(&self, circuit_name: &str) -> Result<pb::ResetCircuitBreakerResponse, Error> {
        let request = pb::ResetCircuitBreakerRequest { circuit_name: circuit_name.into() };
        self.call("ResetCircuitBreaker", false, self.timeout, |channel, remaining| {
            let request = with_deadline(request.clone(), remaining);
            async move { pb::admin_client::AdminClient::new(channel).reset_circuit_breaker(request).await }
        })
        .await
    }
}
