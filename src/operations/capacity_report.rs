//! The seed's `/debug/capacity-calculation` document, for the capacity in
//! force and for a config under review.

use std::collections::BTreeMap;

use super::{ActualProcessesView, CapacityConfigurationView, CapacityReport, CapacityTotals, GroupCount, Operations};
use crate::config::RuntimeConfig;
use crate::core::capacity::{self, Limits};
use crate::core::health;
use crate::service::ServiceError;
use crate::service::Snapshot;

impl Operations {
    /// The seed's capacity-calculation document, from a fresh snapshot.
    pub async fn capacity_calculation(&self) -> Result<CapacityReport, ServiceError> {
        let snapshot = self.floodgate.refresh_snapshot().await?;
        Ok(self.capacity_report(&snapshot))
    }

    /// The capacity document of a snapshot under the config in force.
    pub(super) fn capacity_report(&self, snapshot: &Snapshot) -> CapacityReport {
        self.report_from(&self.floodgate.runtime(), snapshot)
    }

    /// The capacity document `runtime` would give over the snapshot's processes.
    pub(super) fn capacity_report_for(&self, runtime: &RuntimeConfig, snapshot: &Snapshot) -> CapacityReport {
        let healthy =
            health::healthy_chat_rest_by_instance(&snapshot.processes, snapshot.taken_at_ms, runtime.health_timing());
        let calculation = capacity::calculate(&runtime.capacity(), &healthy);
        let limits = Limits::from_thresholds(&runtime.thresholds(), calculation.system_total);
        let candidate = Snapshot { calculation, limits, processes: snapshot.processes.clone(), ..(*snapshot).clone() };
        self.report_from(runtime, &candidate)
    }

    /// The capacity document of a snapshot computed under `runtime`.
    fn report_from(&self, runtime: &RuntimeConfig, snapshot: &Snapshot) -> CapacityReport {
        let calc = &snapshot.calculation;
        let now = snapshot.taken_at_ms;
        let mut groups: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
        for record in &snapshot.processes {
            let healthy = health::classify(record, now, runtime.health_timing()).counts_for_capacity();
            let count = groups
                .entry(record.instance_id.clone())
                .or_default()
                .entry((record.service_type.clone(), record.service_name.clone()))
                .or_default();
            *count += u64::from(healthy);
        }
        let processes_per_instance = groups
            .into_iter()
            .map(|(instance, groups)| {
                let counts = groups
                    .into_iter()
                    .map(|((service_type, service_name), healthy_processes)| GroupCount {
                        is_chat_rest: health::is_chat_rest(&service_type, &service_name),
                        service_type,
                        service_name,
                        healthy_processes,
                    })
                    .collect();
                (instance, counts)
            })
            .collect();
        CapacityReport {
            configuration: CapacityConfigurationView {
                concurrent_per_process: calc.config.concurrent_per_process,
                processes_per_instance: calc.config.processes_per_instance,
                capacity_buffer: calc.config.capacity_buffer,
                queue_multiplier: calc.config.queue_multiplier,
            },
            actual_processes: ActualProcessesView {
                instances_found: calc.instances.iter().map(|i| i.instance_id.clone()).collect(),
                processes_per_instance,
            },
            calculations_breakdown: calc.breakdown(),
            totals: CapacityTotals {
                healthy_chat_rest_processes: calc.healthy_processes(),
                total_concurrent: calc.total_concurrent(),
                effective: calc.effective(),
                queue_capacity: calc.queue_capacity(),
                total_per_instance: calc.instances.iter().map(|i| i.total).collect(),
                instances: calc.instances.len() as u64,
                system_total: calc.system_total,
                anonymous_limit: snapshot.limits.anonymous,
                registered_limit: snapshot.limits.registered,
                privileged_limit: snapshot.limits.privileged,
            },
        }
    }
}
