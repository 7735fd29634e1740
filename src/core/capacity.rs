//! The seed's eight-step capacity calculation and the per-user-type limits
//! derived from it (docs/architecture.md §2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::UserType;

/// Tolerance for float products that should be whole numbers (0.6 × 10
/// is 6.000000000000001, 0.7 × 30 is 20.999999999999996): floors are taken
/// after adding it, so a limit never loses a slot to rounding.
const FLOOR_EPSILON: f64 = 1e-9;

/// The configured numbers that capacity is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacityConfig {
    /// Step 1: concurrent chat tasks one process runs.
    pub concurrent_per_process: u32,
    /// Expected chat REST processes per instance (for deficit reporting).
    pub processes_per_instance: u32,
    /// Share of concurrency held back, in [0, 1).
    pub capacity_buffer: f64,
    /// Queue slots per concurrent slot.
    pub queue_multiplier: u32,
}

/// Fractions of the system total at which each user type is refused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Fraction of the system total at which anonymous users are refused.
    pub anonymous: f64,
    /// Fraction of the system total at which registered users are refused.
    pub registered: f64,
    /// The hard limit, which privileged users are held to.
    pub hard_limit: f64,
}

/// Steps 2–6 for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceCapacity {
    /// The instance the processes report from.
    pub instance_id: String,
    /// Step 2: its healthy chat REST processes.
    pub healthy_processes: u64,
    /// Step 3: healthy processes × concurrent per process.
    pub total_concurrent: u64,
    /// Step 4: total concurrency less the buffer.
    pub effective: u64,
    /// Step 5: effective × queue multiplier.
    pub queue_capacity: u64,
    /// Step 6: effective + queue capacity.
    pub total: u64,
}

/// The whole calculation: per-instance steps and the system total `T`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityCalculation {
    /// The settings the steps used.
    pub config: CapacityConfig,
    /// Steps 2–6 per instance.
    pub instances: Vec<InstanceCapacity>,
    /// Steps 7–8: the sum over instances, `T`.
    pub system_total: u64,
}

/// `floor(x)` that tolerates float noise just under a whole number.
fn floor_tolerant(x: f64) -> u64 {
    if x <= 0.0 { 0 } else { (x + FLOOR_EPSILON).floor() as u64 }
}

/// Steps 3–6 for an instance with `healthy` chat REST processes.
pub fn instance_capacity(config: &CapacityConfig, instance_id: &str, healthy: u64) -> InstanceCapacity {
    let total_concurrent = u64::from(config.concurrent_per_process) * healthy;
    let effective = floor_tolerant(total_concurrent as f64 * (1.0 - config.capacity_buffer));
    let queue_capacity = total_concurrent * u64::from(config.queue_multiplier);
    InstanceCapacity {
        instance_id: instance_id.to_owned(),
        healthy_processes: healthy,
        total_concurrent,
        effective,
        queue_capacity,
        total: effective + queue_capacity,
    }
}

/// Runs the eight steps over the healthy chat REST process count of each
/// instance. Instances with no healthy process are not detected (step 7).
pub fn calculate(config: &CapacityConfig, healthy_by_instance: &BTreeMap<String, u64>) -> CapacityCalculation {
    let instances: Vec<InstanceCapacity> = healthy_by_instance
        .iter()
        .filter(|(_, healthy)| **healthy > 0)
        .map(|(id, healthy)| instance_capacity(config, id, *healthy))
        .collect();
    let system_total = instances.iter().map(|i| i.total).sum();
    CapacityCalculation { config: *config, instances, system_total }
}

impl CapacityCalculation {
    /// Step 2 summed over instances.
    pub fn healthy_processes(&self) -> u64 {
        self.instances.iter().map(|i| i.healthy_processes).sum()
    }

    /// Step 3 summed over instances.
    pub fn total_concurrent(&self) -> u64 {
        self.instances.iter().map(|i| i.total_concurrent).sum()
    }

    /// Step 4 summed over instances.
    pub fn effective(&self) -> u64 {
        self.instances.iter().map(|i| i.effective).sum()
    }

    /// Step 5 summed over instances.
    pub fn queue_capacity(&self) -> u64 {
        self.instances.iter().map(|i| i.queue_capacity).sum()
    }

    /// The seed's `step_1_config` … `step_8_system_total` sentences.
    pub fn breakdown(&self) -> Breakdown {
        let c = &self.config;
        let per_instance = {
            let mut totals: Vec<u64> = self.instances.iter().map(|i| i.total).collect();
            totals.dedup();
            match totals.as_slice() {
                [] => "0".to_owned(),
                [one] => one.to_string(),
                many => many.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
            }
        };
        Breakdown {
            step_1_config: format!("{} concurrent per process", c.concurrent_per_process),
            step_2_processes: format!("{} healthy chat REST processes", self.healthy_processes()),
            step_3_total_concurrent: format!("{} total concurrent capacity", self.total_concurrent()),
            step_4_effective: format!(
                "{} effective (after {}% buffer)",
                self.effective(),
                format_percent(c.capacity_buffer)
            ),
            step_5_queue: format!("{} queue capacity ({}x multiplier)", self.queue_capacity(), c.queue_multiplier),
            step_6_total_per_instance: format!("{per_instance} total capacity per instance"),
            step_7_instances: format!("{} instances detected", self.instances.len()),
            step_8_system_total: format!("{} total system capacity", self.system_total),
        }
    }
}

/// The seed's eight steps as sentences, one field per step (serialised in
/// step order under the seed's keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    /// Step 1: concurrent tasks per process.
    pub step_1_config: String,
    /// Step 2: healthy chat REST processes.
    pub step_2_processes: String,
    /// Step 3: total concurrency.
    pub step_3_total_concurrent: String,
    /// Step 4: concurrency less the buffer.
    pub step_4_effective: String,
    /// Step 5: queue capacity.
    pub step_5_queue: String,
    /// Step 6: each instance's total.
    pub step_6_total_per_instance: String,
    /// Step 7: instances detected.
    pub step_7_instances: String,
    /// Step 8: the system total `T`.
    pub step_8_system_total: String,
}

/// 0.2 → "20", 0.155 → "15.5": percent without float noise.
pub fn format_percent(fraction: f64) -> String {
    let percent = (fraction * 10_000.0).round() / 100.0;
    let text = format!("{percent:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `fraction` in percent, as a number: 0.2 → 20, 0.07 → 7 (not
/// 7.000000000000001), 2/3 → 66.666…. The product's float noise (an ulp or
/// two) is removed; nothing else is rounded.
pub fn as_percent(fraction: f64) -> f64 {
    let percent = fraction * 100.0;
    // The nearest billionth, taken only when it is within the product's
    // rounding error: a decimal fraction comes back as its decimal percent.
    let short = (percent * 1e9).round() / 1e9;
    if (short - percent).abs() <= 4.0 * f64::EPSILON * percent.abs() { short } else { percent }
}

/// The load each user type may fill the system to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Load up to which anonymous users are admitted.
    pub anonymous: u64,
    /// Load up to which registered users are admitted.
    pub registered: u64,
    /// Load up to which privileged users are admitted (the hard limit).
    pub privileged: u64,
}

impl Limits {
    /// `floor(threshold × T)` for each user type.
    pub fn from_thresholds(thresholds: &Thresholds, system_total: u64) -> Limits {
        let t = system_total as f64;
        Limits {
            anonymous: floor_tolerant(thresholds.anonymous * t),
            registered: floor_tolerant(thresholds.registered * t),
            privileged: floor_tolerant(thresholds.hard_limit * t),
        }
    }

    /// The limit a request of `user_type` is held to.
    pub fn for_user(&self, user_type: UserType) -> u64 {
        match user_type {
            UserType::Anonymous => self.anonymous,
            UserType::Registered => self.registered,
            UserType::Privileged => self.privileged,
        }
    }
}

/// `L / T`, or 1.0 when there is no capacity at all.
pub fn pressure_ratio(load: u64, system_total: u64) -> f64 {
    if system_total == 0 { 1.0 } else { load as f64 / system_total as f64 }
}

/// Load over the system total `T` (above 1 when over-full); with no
/// capacity, 1 when anything is loaded and 0 otherwise.
pub fn utilization(load: u64, system_total: u64) -> f64 {
    if system_total == 0 { f64::from(u8::from(load > 0)) } else { load as f64 / system_total as f64 }
}

/// [`utilization`] in percent (what the alert threshold reads), computed as
/// `L × 100 / T` so that a whole percentage stays whole.
pub fn utilization_percent(load: u64, system_total: u64) -> f64 {
    if system_total == 0 { 100.0 * utilization(load, 0) } else { load as f64 * 100.0 / system_total as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed_config() -> CapacityConfig {
        CapacityConfig {
            concurrent_per_process: 5,
            processes_per_instance: 1,
            capacity_buffer: 0.2,
            queue_multiplier: 2,
        }
    }

    const SEED_THRESHOLDS: Thresholds = Thresholds { anonymous: 0.6, registered: 0.8, hard_limit: 0.95 };

    fn one_instance(healthy: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([("home-instance-1".to_owned(), healthy)])
    }

    #[test]
    fn seed_example_gives_fourteen_with_the_seed_sentences() {
        let calc = calculate(&seed_config(), &one_instance(1));
        assert_eq!(calc.system_total, 14);
        let steps = calc.breakdown();
        assert_eq!(
            [
                steps.step_1_config,
                steps.step_2_processes,
                steps.step_3_total_concurrent,
                steps.step_4_effective,
                steps.step_5_queue,
                steps.step_6_total_per_instance,
                steps.step_7_instances,
                steps.step_8_system_total,
            ],
            [
                "5 concurrent per process",
                "1 healthy chat REST processes",
                "5 total concurrent capacity",
                "4 effective (after 20% buffer)",
                "10 queue capacity (2x multiplier)",
                "14 total capacity per instance",
                "1 instances detected",
                "14 total system capacity",
            ]
        );
    }

    #[test]
    fn the_breakdown_serialises_under_the_seed_keys_in_step_order() {
        let json = serde_json::to_value(calculate(&seed_config(), &one_instance(1)).breakdown()).expect("JSON");
        let keys: Vec<&str> = json.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "step_1_config",
                "step_2_processes",
                "step_3_total_concurrent",
                "step_4_effective",
                "step_5_queue",
                "step_6_total_per_instance",
                "step_7_instances",
                "step_8_system_total",
            ]
        );
        assert_eq!(json["step_8_system_total"], "14 total system capacity");
    }

    #[test]
    fn seed_limits_are_eight_eleven_thirteen() {
        let limits = Limits::from_thresholds(&SEED_THRESHOLDS, 14);
        assert_eq!(limits, Limits { anonymous: 8, registered: 11, privileged: 13 });
    }

    #[test]
    fn ten_concurrent_on_one_process_gives_twenty_eight() {
        let config = CapacityConfig { concurrent_per_process: 10, ..seed_config() };
        assert_eq!(calculate(&config, &one_instance(1)).system_total, 28);
    }

    #[test]
    fn instances_without_healthy_processes_are_not_detected() {
        let mut healthy = one_instance(2);
        healthy.insert("down".to_owned(), 0);
        let calc = calculate(&seed_config(), &healthy);
        assert_eq!(calc.instances.len(), 1);
        assert_eq!(calc.system_total, 28);
        assert_eq!(calc.breakdown().step_7_instances, "1 instances detected");
    }

    #[test]
    fn unequal_instances_list_each_total() {
        let healthy = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let calc = calculate(&seed_config(), &healthy);
        assert_eq!(calc.system_total, 14 + 28);
        assert_eq!(calc.breakdown().step_6_total_per_instance, "14/28 total capacity per instance");
    }

    #[test]
    fn no_capacity_means_full_pressure() {
        assert_eq!(pressure_ratio(0, 0), 1.0);
        assert_eq!(pressure_ratio(7, 14), 0.5);
    }

    #[test]
    fn utilization_is_load_over_capacity_and_full_without_capacity() {
        assert_eq!((utilization(7, 14), utilization_percent(7, 14)), (0.5, 50.0));
        assert_eq!(utilization_percent(9, 10), 90.0, "exactly 90, not above it");
        assert_eq!((utilization(0, 0), utilization_percent(0, 0)), (0.0, 0.0));
        assert_eq!((utilization(3, 0), utilization_percent(3, 0)), (1.0, 100.0));
    }

    #[test]
    fn percent_formatting_has_no_float_noise() {
        assert_eq!(format_percent(0.2), "20");
        assert_eq!(format_percent(0.15), "15");
        assert_eq!(format_percent(0.155), "15.5");
        assert_eq!(format_percent(0.0), "0");
    }

    #[test]
    fn a_fraction_in_percent_keeps_its_digits_without_float_noise() {
        assert_eq!(as_percent(0.2), 20.0);
        assert_eq!(as_percent(0.07), 7.0, "0.07 × 100 is 7.000000000000001 in floats");
        assert_eq!(as_percent(0.155), 15.5);
        assert_eq!(as_percent(0.0), 0.0);
        let two_thirds = as_percent(2.0 / 3.0);
        assert!((two_thirds - 200.0 / 3.0).abs() < 1e-12, "not rounded: {two_thirds}");
        let fine = as_percent(0.123456);
        assert!((fine - 12.3456).abs() < 1e-12, "not rounded to two decimals: {fine}");
    }

    proptest! {
        #[test]
        fn capacity_is_monotone_in_healthy_processes(
            c in 1u32..200, buffer in 0.0f64..0.99, mult in 0u32..5, p in 0u64..100,
        ) {
            let config = CapacityConfig { concurrent_per_process: c, processes_per_instance: 1, capacity_buffer: buffer, queue_multiplier: mult };
            let fewer = calculate(&config, &one_instance(p)).system_total;
            let more = calculate(&config, &one_instance(p + 1)).system_total;
            prop_assert!(more >= fewer);
        }

        #[test]
        fn limits_are_ordered_and_within_total(
            t in 0u64..100_000, a in 0.0f64..=1.0, r in 0.0f64..=1.0, h in 0.0f64..=1.0,
        ) {
            let mut v = [a, r, h];
            v.sort_by(f64::total_cmp);
            let limits = Limits::from_thresholds(&Thresholds { anonymous: v[0], registered: v[1], hard_limit: v[2] }, t);
            prop_assert!(limits.anonymous <= limits.registered);
            prop_assert!(limits.registered <= limits.privileged);
            prop_assert!(limits.privileged <= t);
        }
    }
}
