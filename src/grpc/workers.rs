//! `floodgate.v1.Workers`: heartbeats and the task lease cycle.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb::{self, workers_server};
use super::{process_status, user_type_to_pb};
use crate::core::health::ProcessRecord;
use crate::grpc::OrStatus;
use crate::service::{Floodgate, LeaseQuery};

/// The Workers service over a shared [`Floodgate`].
pub struct WorkersService {
    floodgate: Arc<Floodgate>,
}

impl WorkersService {
    /// Serves `floodgate`.
    pub fn new(floodgate: Arc<Floodgate>) -> WorkersService {
        WorkersService { floodgate }
    }
}

#[tonic::async_trait]
impl workers_server::Workers for WorkersService {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let record = ProcessRecord {
            status: process_status(r.status).or_status()?,
            instance_id: r.instance_id,
            process_id: r.process_id,
            service_type: r.service_type,
            service_name: r.service_name,
            load: r.load,
            capacity: r.capacity,
            last_seen_ms: 0,
        };
        let ack = self.floodgate.heartbeat(record).await.or_status()?;
        Ok(Response::new(pb::HeartbeatResponse {
            health: ack.health.as_str().to_owned(),
            heartbeat_interval_ms: ack.heartbeat_interval_ms,
            system_capacity: ack.system_capacity,
        }))
    }

    async fn lease_tasks(
        &self,
        request: Request<pb::LeaseTasksRequest>,
    ) -> Result<Response<pb::LeaseTasksResponse>, Status> {
        let r = request.into_inner();
        let tasks = self
            .floodgate
            .lease_tasks(LeaseQuery {
                instance_id: r.instance_id,
                process_id: r.process_id,
                max_tasks: r.max_tasks,
                lease_ms: r.lease_ms,
                wait_ms: r.wait_ms,
            })
            .await
            .or_status()?;
        let tasks = tasks
            .into_iter()
            .map(|t| pb::LeasedTask {
                task_id: t.task_id,
                lease_id: t.lease_id,
                payload: t.payload,
                user_type: user_type_to_pb(t.user_type).into(),
                enqueued_at_ms: t.enqueued_at_ms,
                delivery_count: t.delivery_count,
                lease_expires_at_ms: t.lease_expires_at_ms,
            })
            .collect();
        Ok(Response::new(pb::LeaseTasksResponse { tasks }))
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let r = request.into_inner();
        self.floodgate.complete_task(&r.task_id, &r.lease_id).await.or_status()?;
        Ok(Response::new(pb::CompleteTaskResponse {}))
    }

    async fn extend_lease(
        &self,
        request: Request<pb::ExtendLeaseRequest>,
    ) -> Result<Response<pb::ExtendLeaseResponse>, Status> {
        let r = request.into_inner();
        let lease_expires_at_ms = self.floodgate.extend_lease(&r.task_id, &r.lease_id, r.lease_ms).await.or_status()?;
        Ok(Response::new(pb::ExtendLeaseResponse { lease_expires_at_ms }))
    }
}
