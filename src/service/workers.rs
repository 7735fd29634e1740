//! The worker calls: heartbeats, and the lease cycle (lease, complete, extend).

use std::time::Duration;

use serde::Serialize;

use super::ServiceError;
use super::{Floodgate, MAX_PROCESS_LOAD, check_id, check_process_id, check_range};
use crate::core::Millis;
use crate::core::health::{self, Health, ProcessRecord};
use crate::store::{LeaseHolder, LeaseRequest, LeasedTask, ProcessRegistry, TaskQueue};

/// What a heartbeat is answered with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeartbeatAck {
    /// What floodgate concludes about the process.
    pub health: Health,
    /// When the next heartbeat is due.
    pub heartbeat_interval_ms: Millis,
    /// The system total capacity now.
    pub system_capacity: u64,
}

/// A worker asking for tasks.
#[derive(Debug, Clone)]
pub struct LeaseQuery {
    /// The worker's instance.
    pub instance_id: String,
    /// The worker process.
    pub process_id: String,
    /// Most tasks it wants.
    pub max_tasks: u32,
    /// How long it will hold them.
    pub lease_ms: Millis,
    /// How long to wait for a task when none is queued.
    pub wait_ms: Millis,
}

impl Floodgate {
    /// Records a heartbeat and refreshes capacity at once, so a new worker
    /// is usable by the next request. The record's `last_seen_ms` is
    /// ignored: it is stamped with the receive time here.
    pub async fn heartbeat(&self, mut record: ProcessRecord) -> Result<HeartbeatAck, ServiceError> {
        check_process_id("instance_id", &record.instance_id)?;
        check_process_id("process_id", &record.process_id)?;
        check_id("service_type", &record.service_type, true)?;
        check_id("service_name", &record.service_name, true)?;
        let max = u64::from(MAX_PROCESS_LOAD);
        check_range("capacity", u64::from(record.capacity), 1, max)?;
        check_range("load", u64::from(record.load), 0, max)?;
        let runtime = self.runtime();
        let now = self.clock.now_ms();
        record.last_seen_ms = now;
        let health = health::classify(&record, now, runtime.health_timing());
        self.store.heartbeat(record, now).await?;
        let snapshot = self.refresh_snapshot().await?;
        Ok(HeartbeatAck {
            health,
            heartbeat_interval_ms: runtime.heartbeat_interval_ms,
            system_capacity: snapshot.calculation.system_total,
        })
    }

    /// Leases tasks, long-polling up to `wait_ms` while none is ready.
    pub async fn lease_tasks(&self, query: LeaseQuery) -> Result<Vec<LeasedTask>, ServiceError> {
        check_process_id("instance_id", &query.instance_id)?;
        check_process_id("process_id", &query.process_id)?;
        let runtime = self.runtime();
        check_range("max_tasks", u64::from(query.max_tasks), 1, u64::from(runtime.max_tasks_per_lease))?;
        check_range("lease_ms", query.lease_ms, 1, runtime.max_lease_ms)?;
        check_range("wait_ms", query.wait_ms, 0, runtime.max_wait_ms)?;
        let request = LeaseRequest {
            max_tasks: query.max_tasks,
            lease_ms: query.lease_ms,
            max_deliveries: runtime.max_deliveries,
            holder: LeaseHolder { instance_id: query.instance_id, process_id: query.process_id },
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(query.wait_ms);
        loop {
            // Register interest before looking, so an enqueue between the
            // look and the wait still wakes us.
            let ready = self.task_ready.notified();
            let tasks = match self.store.lease(request.clone(), self.clock.now_ms()).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    // A wake this call took is another waiter's now.
                    self.task_ready.notify_one();
                    return Err(e.into());
                }
            };
            if !tasks.is_empty() {
                // Pass the wake on: tasks enqueued while this call looked
                // stored only one wake between them.
                self.task_ready.notify_one();
                return Ok(tasks);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(tasks);
            }
            // Tasks enqueued through another instance (shared store) wake
            // nobody here, so poll as well.
            let poll = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(poll, ready).await;
        }
    }

    /// Completes a leased task, freeing its capacity.
    pub async fn complete_task(&self, task_id: &str, lease_id: &str) -> Result<(), ServiceError> {
        check_id("task_id", task_id, true)?;
        check_id("lease_id", lease_id, true)?;
        if self.store.complete(task_id, lease_id, self.clock.now_ms()).await? {
            Ok(())
        } else {
            Err(ServiceError::FailedPrecondition(format!(
                "task {task_id} is not leased under this lease_id (wrong, expired or already completed)"
            )))
        }
    }

    /// Extends a held lease; answers the new expiry.
    pub async fn extend_lease(&self, task_id: &str, lease_id: &str, lease_ms: Millis) -> Result<Millis, ServiceError> {
        check_id("task_id", task_id, true)?;
        check_id("lease_id", lease_id, true)?;
        check_range("lease_ms", lease_ms, 1, self.runtime().max_lease_ms)?;
        self.store.extend(task_id, lease_id, lease_ms, self.clock.now_ms()).await?.ok_or_else(|| {
            ServiceError::FailedPrecondition(format!(
                "task {task_id} is not leased under this lease_id (wrong or expired)"
            ))
        })
    }
}
