//! `floodgate.v1.Admin`: the operator surface over gRPC. Each answer is
//! the service's document converted field for field.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb::{self, admin_server};
use crate::service::{CapacityReport, Floodgate};

/// The Admin service over a shared [`Floodgate`].
pub struct AdminService {
    floodgate: Arc<Floodgate>,
}

impl AdminService {
    /// Serves `floodgate`.
    pub fn new(floodgate: Arc<Floodgate>) -> AdminService {
        AdminService { floodgate }
    }
}

/// The capacity document in proto form.
pub fn capacity_to_pb(report: CapacityReport) -> pb::CapacityCalculation {
    let c = report.configuration;
    let steps = |name: &str| report.calculations_breakdown.get(name).cloned().unwrap_or_default();
    let t = report.totals;
    pb::CapacityCalculation {
        configuration: Some(pb::CapacityConfiguration {
            concurrent_per_process: c.concurrent_per_process,
            processes_per_instance: c.processes_per_instance,
            capacity_buffer: c.capacity_buffer,
            queue_multiplier: c.queue_multiplier,
        }),
        actual_processes: Some(pb::ActualProcesses {
            instances_found: report.actual_processes.instances_found,
            processes_per_instance: report
                .actual_processes
                .processes_per_instance
                .into_iter()
                .map(|(instance, groups)| {
                    let groups = groups
                        .into_iter()
                        .map(|g| pb::ProcessGroupCount {
                            service_type: g.service_type,
                            service_name: g.service_name,
                            healthy_processes: g.healthy_processes as u32,
                            is_chat_rest: g.is_chat_rest,
                        })
                        .collect();
                    (instance, pb::ProcessGroupCounts { groups })
                })
                .collect(),
        }),
        calculations_breakdown: Some(pb::CalculationsBreakdown {
            step_1_config: steps("step_1_config"),
            step_2_processes: steps("step_2_processes"),
            step_3_total_concurrent: steps("step_3_total_concurrent"),
            step_4_effective: steps("step_4_effective"),
            step_5_queue: steps("step_5_queue"),
            step_6_total_per_instance: steps("step_6_total_per_instance"),
            step_7_instances: steps("step_7_instances"),
            step_8_system_total: steps("step_8_system_total"),
        }),
        totals: Some(pb::CapacityTotals {
            healthy_chat_rest_processes: t.healthy_chat_rest_processes,
            total_concurrent: t.total_concurrent,
            effective: t.effective,
            queue_capacity: t.queue_capacity,
            total_per_instance: t.total_per_instance,
            instances: t.instances,
            system_total: t.system_total,
            anonymous_limit: t.anonymous_limit,
            registered_limit: t.registered_limit,
            privileged_limit: t.privileged_limit,
        }),
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented yet; see GetCapacityCalculation"))
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn get_capacity_calculation(
        &self,
        _request: Request<pb::GetCapacityCalculationRequest>,
    ) -> Result<Response<pb::CapacityCalculation>, Status> {
        let report = self.floodgate.capacity_calculation().await?;
        Ok(Response::new(capacity_to_pb(report)))
    }

    async fn get_system_status(
        &self,
        _: Request<pb::GetSystemStatusRequest>,
    ) -> Result<Response<pb::SystemStatus>, Status> {
        Err(not_yet("GetSystemStatus"))
    }

    async fn list_circuit_breakers(
        &self,
        _: Request<pb::ListCircuitBreakersRequest>,
    ) -> Result<Response<pb::CircuitBreakers>, Status> {
        Err(not_yet("ListCircuitBreakers"))
    }

    async fn reset_circuit_breaker(
        &self,
        _: Request<pb::ResetCircuitBreakerRequest>,
    ) -> Result<Response<pb::ResetCircuitBreakerResponse>, Status> {
        Err(not_yet("ResetCircuitBreaker"))
    }

    async fn validate_config(
        &self,
        _: Request<pb::ConfigChange>,
    ) -> Result<Response<pb::ValidateConfigResponse>, Status> {
        Err(not_yet("ValidateConfig"))
    }

    async fn update_config(&self, _: Request<pb::ConfigChange>) -> Result<Response<pb::UpdateConfigResponse>, Status> {
        Err(not_yet("UpdateConfig"))
    }

    async fn get_throttling_stats(
        &self,
        _: Request<pb::GetThrottlingStatsRequest>,
    ) -> Result<Response<pb::ThrottlingStats>, Status> {
        Err(not_yet("GetThrottlingStats"))
    }

    async fn list_alerts(&self, _: Request<pb::ListAlertsRequest>) -> Result<Response<pb::Alerts>, Status> {
        Err(not_yet("ListAlerts"))
    }

    async fn get_environment(
        &self,
        _: Request<pb::GetEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        Err(not_yet("GetEnvironment"))
    }
}
