//! `floodgate.v1.Admission`: converts and calls the service's two levels.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb::{self, admission_server};
use super::{decision_to_pb, transport, user_type};
use crate::core::admission::Verdict;
use crate::grpc::OrStatus;
use crate::service::ServiceError;
use crate::service::{AdmissionRequest, EnqueueRequest, Floodgate};

/// The Admission service over a shared [`Floodgate`].
pub struct AdmissionService {
    floodgate: Arc<Floodgate>,
}

impl AdmissionService {
    /// Serves `floodgate`.
    pub fn new(floodgate: Arc<Floodgate>) -> AdmissionService {
        AdmissionService { floodgate }
    }
}

fn admission_request(
    user: i32,
    subject: String,
    session_id: String,
    transport_raw: i32,
    route: String,
    request_id: String,
) -> Result<AdmissionRequest, ServiceError> {
    Ok(AdmissionRequest {
        user_type: user_type(user)?,
        subject,
        session_id,
        transport: transport(transport_raw)?,
        route,
        request_id,
    })
}

fn check_response(v: Verdict) -> pb::CheckCapacityResponse {
    pb::CheckCapacityResponse {
        decision: decision_to_pb(v.decision).into(),
        http_status: v.decision.http_status().into(),
        retry_after_ms: v.retry_after_ms,
        reason: v.reason,
        pressure_ratio: v.pressure_ratio,
    }
}

#[tonic::async_trait]
impl admission_server::Admission for AdmissionService {
    async fn check_capacity(
        &self,
        request: Request<pb::CheckCapacityRequest>,
    ) -> Result<Response<pb::CheckCapacityResponse>, Status> {
        let r = request.into_inner();
        let request =
            admission_request(r.user_type, r.subject, r.session_id, r.transport, r.route, r.request_id).or_status()?;
        let verdict = self.floodgate.check_capacity(&request).await.or_status()?;
        Ok(Response::new(check_response(verdict)))
    }

    async fn enqueue_atomic(
        &self,
        request: Request<pb::EnqueueAtomicRequest>,
    ) -> Result<Response<pb::EnqueueAtomicResponse>, Status> {
        let r = request.into_inner();
        let admission =
            admission_request(r.user_type, r.subject, r.session_id, r.transport, r.route, r.request_id).or_status()?;
        let answer = self
            .floodgate
            .enqueue_atomic(EnqueueRequest { admission, payload: r.payload, idempotency_key: r.idempotency_key })
            .await
            .or_status()?;
        let v = answer.verdict;
        Ok(Response::new(pb::EnqueueAtomicResponse {
            decision: decision_to_pb(v.decision).into(),
            http_status: v.decision.http_status().into(),
            retry_after_ms: v.retry_after_ms,
            reason: v.reason,
            pressure_ratio: v.pressure_ratio,
            task_id: answer.task_id.unwrap_or_default(),
            queue_position: answer.queue_position,
        }))
    }
}
