//! `floodgate.v1.Admin`: the operator surface over gRPC. Each answer is
//! an `operations` document converted field for field.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use std::collections::{BTreeMap, HashMap};

use super::pb::{self, admin_server};
use crate::alerting::AlertView;
use crate::config::FieldError;
use crate::core::analytics::PeriodStats;
use crate::grpc::OrStatus;
use crate::operations::{CapacityReport, CircuitBreakersView, Operations, SystemStatus};
use crate::rls_rules::RulesView;
use crate::service::ServiceError;

/// The Admin service over a shared [`Operations`].
pub struct AdminService {
    operations: Arc<Operations>,
}

impl AdminService {
    /// Serves `operations`.
    pub fn new(operations: Arc<Operations>) -> AdminService {
        AdminService { operations }
    }
}

/// The capacity document in proto form.
pub fn capacity_to_pb(report: CapacityReport) -> pb::CapacityCalculation {
    let c = report.configuration;
    let steps = report.calculations_breakdown;
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
            step_1_config: steps.step_1_config,
            step_2_processes: steps.step_2_processes,
            step_3_total_concurrent: steps.step_3_total_concurrent,
            step_4_effective: steps.step_4_effective,
            step_5_queue: steps.step_5_queue,
            step_6_total_per_instance: steps.step_6_total_per_instance,
            step_7_instances: steps.step_7_instances,
            step_8_system_total: steps.step_8_system_total,
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

fn period_to_pb(p: PeriodStats) -> pb::ThrottlingPeriod {
    pb::ThrottlingPeriod {
        total_requests: p.total_requests,
        total_throttled: p.total_throttled,
        throttle_rate: p.throttle_rate,
        rate_limit_429: p.rate_limit_429,
        backpressure_503: p.backpressure_503,
        circuit_open_503: p.circuit_open_503,
        throughput_per_hour_by_user_type: p.throughput_per_hour_by_user_type.into_iter().collect(),
        throughput_per_hour_by_transport: p.throughput_per_hour_by_transport.into_iter().collect(),
        top_sessions: p
            .top_sessions
            .into_iter()
            .map(|s| pb::ThrottledSession { session_id: s.session_id, throttled: s.throttled })
            .collect(),
    }
}

fn periods_to_pb(periods: BTreeMap<String, PeriodStats>) -> HashMap<String, pb::ThrottlingPeriod> {
    periods.into_iter().map(|(k, v)| (k, period_to_pb(v))).collect()
}

fn breakers_to_pb(view: CircuitBreakersView) -> pb::CircuitBreakers {
    let s = view.summary;
    pb::CircuitBreakers {
        summary: Some(pb::CircuitSummary {
            total_circuits: s.total_circuits,
            open_circuits: s.open_circuits,
            half_open_circuits: s.half_open_circuits,
            closed_circuits: s.closed_circuits,
        }),
        circuits: view
            .circuits
            .into_iter()
            .map(|(name, c)| {
                let circuit = pb::Circuit {
                    state: c.state.as_str().to_owned(),
                    failure_count: c.failure_count,
                    total_requests: c.total_requests,
                    current_window_failures: c.current_window_failures,
                    consecutive_failures: c.consecutive_failures,
                    opened_at: c.opened_at,
                };
                (name, circuit)
            })
            .collect(),
    }
}

fn alerts_to_pb(alerts: Vec<AlertView>) -> Vec<pb::Alert> {
    alerts
        .into_iter()
        .map(|a| pb::Alert {
            severity: a.severity.as_str().to_owned(),
            code: a.code,
            message: a.message,
            since_ms: a.since_ms,
        })
        .collect()
}

fn errors_to_pb(errors: Vec<FieldError>) -> Vec<pb::FieldError> {
    errors.into_iter().map(|e| pb::FieldError { field: e.field, message: e.message }).collect()
}

fn status_to_pb(s: SystemStatus) -> pb::SystemStatus {
    let q = s.enhanced_queue_stats;
    let m = s.capacity_transparency.capacity_metrics;
    pb::SystemStatus {
        instances: s
            .instances
            .into_iter()
            .map(|(id, groups)| {
                let groups = groups
                    .into_iter()
                    .map(|(name, g)| {
                        let group = pb::ProcessGroupStatus {
                            processes: g.processes,
                            actual_processes: g.actual_processes,
                            healthy_processes: g.healthy_processes,
                            load: g.load,
                            capacity: g.capacity,
                            health: g.health,
                            is_chat_rest: g.is_chat_rest,
                        };
                        (name, group)
                    })
                    .collect();
                (id, pb::InstanceStatus { groups })
            })
            .collect(),
        global_stats: s
            .global_stats
            .into_iter()
            .map(|(name, g)| {
                let stats = pb::GlobalGroupStats {
                    expected: g.expected,
                    actual: g.actual,
                    healthy: g.healthy,
                    load: g.load,
                    capacity: g.capacity,
                    utilization_percent: g.utilization_percent,
                };
                (name, stats)
            })
            .collect(),
        enhanced_queue_stats: Some(pb::EnhancedQueueStats {
            total_queue: q.total_queue,
            weighted_max_capacity: q.weighted_max_capacity,
            pressure_ratio: q.pressure_ratio,
            accepting_anonymous: q.accepting_anonymous,
            accepting_registered: q.accepting_registered,
            accepting_privileged: q.accepting_privileged,
            queued_privileged: q.queued_privileged,
            queued_registered: q.queued_registered,
            queued_anonymous: q.queued_anonymous,
            leased: q.leased,
            dead_letters: q.dead_letters,
        }),
        throttling_by_period: periods_to_pb(s.throttling_by_period),
        capacity_transparency: Some(pb::CapacityTransparency {
            capacity_metrics: Some(pb::CapacityMetrics {
                configuration: Some(pb::CapacityMetricsConfiguration {
                    configured_concurrent_per_process: m.configuration.configured_concurrent_per_process,
                    configured_processes_per_instance: m.configuration.configured_processes_per_instance,
                    capacity_buffer_percent: m.configuration.capacity_buffer_percent,
                }),
                actual_runtime: Some(pb::CapacityMetricsActualRuntime {
                    actual_healthy_processes_per_instance: m.actual_runtime.actual_healthy_processes_per_instance,
                    actual_total_capacity_per_instance: m.actual_runtime.actual_total_capacity_per_instance,
                }),
                health_metrics: Some(pb::HealthMetrics {
                    process_health_ratio: m.health_metrics.process_health_ratio,
                    processes_vs_configured: Some(pb::ProcessesVsConfigured {
                        process_deficit: m.health_metrics.processes_vs_configured.process_deficit,
                        expected_processes: m.health_metrics.processes_vs_configured.expected_processes,
                        actual_processes: m.health_metrics.processes_vs_configured.actual_processes,
                    }),
                }),
            }),
            performance_warnings: s.capacity_transparency.performance_warnings,
        }),
        circuit_breakers: Some(breakers_to_pb(s.circuit_breakers)),
        alerts: alerts_to_pb(s.alerts),
    }
}

/// The loaded Envoy rules (the `/debug/rls-config` document) in proto form.
pub fn rls_config_to_pb(view: RulesView) -> pb::RlsConfig {
    pb::RlsConfig {
        path: view.path,
        version: view.version,
        loaded_at_ms: view.loaded_at_ms,
        load_errors: view.load_errors,
        shadow_mode: view.shadow_mode,
        ratelimit_headers: view.ratelimit_headers,
        last_load: view.last_load.map(|l| pb::RlsLoad {
            at_ms: l.at_ms,
            ok: l.ok,
            version: l.version,
            file: l.file,
            problems: l
                .problems
                .into_iter()
                .map(|p| pb::RlsLoadProblem { key_path: p.key_path, message: p.message })
                .collect(),
        }),
        domains: view
            .domains
            .into_iter()
            .map(|d| pb::RlsDomain {
                domain: d.domain,
                source: d.source,
                rules: d
                    .rules
                    .into_iter()
                    .map(|r| pb::RlsRule {
                        domain: r.domain,
                        stats_key: r.stats_key,
                        limit: r.limit,
                        name: r.name,
                        shadow_mode: r.shadow_mode,
                        detailed_metric: r.detailed_metric,
                        replaces: r.replaces,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The proto change as the same JSON object the HTTP body carries.
fn change_to_json(c: pb::ConfigChange) -> Result<serde_json::Value, Status> {
    let mut object = if c.runtime_json.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<serde_json::Value>(&c.runtime_json) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(super::status(&ServiceError::invalid("runtime_json", "must be a JSON object"))),
        }
    };
    let mut put = |key: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            object.insert(key.to_owned(), value);
        }
    };
    put("concurrent_per_process", c.concurrent_per_process.map(Into::into));
    put("processes_per_instance", c.processes_per_instance.map(Into::into));
    put("capacity_buffer", c.capacity_buffer.map(Into::into));
    put("queue_multiplier", c.queue_multiplier.map(Into::into));
    put("anonymous_threshold", c.anonymous_threshold.map(Into::into));
    put("registered_threshold", c.registered_threshold.map(Into::into));
    put("hard_limit_threshold", c.hard_limit_threshold.map(Into::into));
    Ok(serde_json::Value::Object(object))
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn get_capacity_calculation(
        &self,
        _request: Request<pb::GetCapacityCalculationRequest>,
    ) -> Result<Response<pb::CapacityCalculation>, Status> {
        let report = self.operations.capacity_calculation().await.or_status()?;
        Ok(Response::new(capacity_to_pb(report)))
    }

    async fn get_system_status(
        &self,
        _: Request<pb::GetSystemStatusRequest>,
    ) -> Result<Response<pb::SystemStatus>, Status> {
        Ok(Response::new(status_to_pb(self.operations.system_status().await.or_status()?)))
    }

    async fn list_circuit_breakers(
        &self,
        _: Request<pb::ListCircuitBreakersRequest>,
    ) -> Result<Response<pb::CircuitBreakers>, Status> {
        Ok(Response::new(breakers_to_pb(self.operations.circuit_breakers().await.or_status()?)))
    }

    async fn reset_circuit_breaker(
        &self,
        request: Request<pb::ResetCircuitBreakerRequest>,
    ) -> Result<Response<pb::ResetCircuitBreakerResponse>, Status> {
        let reset = self.operations.reset_circuit_breaker(&request.into_inner().circuit_name).await.or_status()?;
        let state = reset.circuit.state.as_str().to_owned();
        Ok(Response::new(pb::ResetCircuitBreakerResponse { circuit_name: reset.circuit_name, state }))
    }

    async fn validate_config(
        &self,
        request: Request<pb::ConfigChange>,
    ) -> Result<Response<pb::ValidateConfigResponse>, Status> {
        let review = self.operations.review_config(&change_to_json(request.into_inner())?);
        Ok(Response::new(pb::ValidateConfigResponse {
            valid: review.valid,
            errors: errors_to_pb(review.errors),
            warnings: review.warnings,
            preview: review.preview.map(capacity_to_pb),
        }))
    }

    async fn update_config(
        &self,
        request: Request<pb::ConfigChange>,
    ) -> Result<Response<pb::UpdateConfigResponse>, Status> {
        let update = self.operations.update_config(&change_to_json(request.into_inner())?).await.or_status()?;
        Ok(Response::new(pb::UpdateConfigResponse {
            applied: update.applied,
            version: update.version,
            errors: errors_to_pb(update.errors),
            warnings: update.warnings,
            capacity: update.capacity.map(capacity_to_pb),
        }))
    }

    async fn get_throttling_stats(
        &self,
        _: Request<pb::GetThrottlingStatsRequest>,
    ) -> Result<Response<pb::ThrottlingStats>, Status> {
        let periods = self.operations.throttling_stats().await.or_status()?;
        Ok(Response::new(pb::ThrottlingStats { throttling_by_period: periods_to_pb(periods) }))
    }

    async fn list_alerts(&self, _: Request<pb::ListAlertsRequest>) -> Result<Response<pb::Alerts>, Status> {
        Ok(Response::new(pb::Alerts { alerts: alerts_to_pb(self.operations.alerts()) }))
    }

    async fn get_environment(
        &self,
        _: Request<pb::GetEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        let values = self
            .operations
            .environment()
            .into_iter()
            .map(|(k, v)| (k, pb::EnvironmentValue { value: v.value, source: v.source }))
            .collect();
        Ok(Response::new(pb::Environment { values }))
    }

    async fn get_rls_config(&self, _: Request<pb::GetRlsConfigRequest>) -> Result<Response<pb::RlsConfig>, Status> {
        Ok(Response::new(rls_config_to_pb(self.operations.rls_config())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::capacity::{self, CapacityConfig};
    use crate::operations::{ActualProcessesView, CapacityConfigurationView, CapacityTotals};

    /// A capacity document over two unequal instances (every step's
    /// sentence differs from every other's).
    fn report() -> CapacityReport {
        let config = CapacityConfig {
            concurrent_per_process: 5,
            processes_per_instance: 2,
            capacity_buffer: 0.2,
            queue_multiplier: 2,
        };
        let healthy = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let calc = capacity::calculate(&config, &healthy);
        CapacityReport {
            configuration: CapacityConfigurationView {
                concurrent_per_process: 5,
                processes_per_instance: 2,
                capacity_buffer: 0.2,
                queue_multiplier: 2,
            },
            actual_processes: ActualProcessesView {
                instances_found: vec!["a".into(), "b".into()],
                processes_per_instance: BTreeMap::new(),
            },
            calculations_breakdown: calc.breakdown(),
            totals: CapacityTotals {
                healthy_chat_rest_processes: 3,
                total_concurrent: 15,
                effective: 12,
                queue_capacity: 30,
                total_per_instance: vec![14, 28],
                instances: 2,
                system_total: 42,
                anonymous_limit: 25,
                registered_limit: 33,
                privileged_limit: 39,
            },
        }
    }

    #[test]
    fn capacity_steps_reach_the_proto_field_by_field() {
        let document = report().calculations_breakdown;
        let steps = capacity_to_pb(report()).calculations_breakdown.expect("the breakdown");
        let sent = [
            steps.step_1_config,
            steps.step_2_processes,
            steps.step_3_total_concurrent,
            steps.step_4_effective,
            steps.step_5_queue,
            steps.step_6_total_per_instance,
            steps.step_7_instances,
            steps.step_8_system_total,
        ];
        let expected = [
            document.step_1_config,
            document.step_2_processes,
            document.step_3_total_concurrent,
            document.step_4_effective,
            document.step_5_queue,
            document.step_6_total_per_instance,
            document.step_7_instances,
            document.step_8_system_total,
        ];
        assert_eq!(sent, expected);
        assert_eq!(sent[5], "14/28 total capacity per instance");
        assert_eq!(sent[7], "42 total system capacity");
        assert!(sent.iter().all(|s| !s.is_empty()), "no step left empty: {sent:?}");
    }
}
