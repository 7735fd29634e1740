//! `RateLimiter`: Level 1's GCRA steps and Envoy's all-or-nothing checks
//! agree with the Rust core (`core::gcra`, `core::rls::decide_all`) step
//! for step, on both backends.

use super::{Stores, contract};

use floodgate::core::UserType;
use floodgate::core::gcra::{self, GcraOutcome, RateLimit, Spacing};
use floodgate::core::rls::{self, Check};
use floodgate::store::{RateKey, RateLimiter};

contract!(
    gcra_script_matches_the_core_step_for_step,
    the_rls_script_and_the_memory_store_agree_with_the_core,
    subjects_and_user_types_keep_apart_arrival_times,
    a_user_key_in_a_batch_is_level_ones_key_and_a_descriptor_is_not,
);

const START_US: u64 = 1_800_000_000_000_000;

// ---- Level 1: one step at a time ----

/// (rate limit, requests as (µs since start, cost)).
fn gcra_scenarios() -> Vec<(RateLimit, Vec<(u64, u32)>)> {
    let burst = |n| (0..n).map(|_| (0, 1)).collect::<Vec<_>>();
    vec![
        (RateLimit { per_minute: 10, burst: 5 }, burst(7)),
        (
            RateLimit { per_minute: 60, burst: 1 },
            vec![(0, 1), (999_999, 1), (1_000_000, 1), (1_500_000, 1), (2_000_000, 1)],
        ),
        (RateLimit { per_minute: 600, burst: 20 }, vec![(0, 5), (0, 10), (0, 6), (0, 5), (100_000, 1), (200_000, 2)]),
        (RateLimit { per_minute: 6_000_000, burst: 3 }, (0..50).map(|i| (i * 7, 1)).collect()),
        (RateLimit { per_minute: 1, burst: 2 }, vec![(0, 1), (0, 1), (0, 1), (59_999_999, 1), (60_000_000, 1)]),
    ]
}

async fn run_gcra<S: RateLimiter>(
    store: &S,
    subject: &str,
    limit: RateLimit,
    steps: &[(u64, u32)],
) -> Vec<GcraOutcome> {
    let mut out = Vec::new();
    for (offset, cost) in steps {
        out.push(store.rate_limit(UserType::Anonymous, subject, limit, *cost, START_US + offset).await.unwrap());
    }
    out
}

fn gcra_reference(limit: RateLimit, steps: &[(u64, u32)]) -> Vec<GcraOutcome> {
    let mut tat = None;
    steps
        .iter()
        .map(|(offset, cost)| {
            let outcome = gcra::check(tat, START_US + offset, limit, *cost);
            if let GcraOutcome::Allowed { tat: t } = outcome {
                tat = Some(t);
            }
            outcome
        })
        .collect()
}

async fn gcra_script_matches_the_core_step_for_step(stores: Stores) {
    let store = stores.fresh().await;
    for (i, (limit, steps)) in gcra_scenarios().into_iter().enumerate() {
        let subject = format!("scenario-{i}");
        assert_eq!(run_gcra(&store, &subject, limit, &steps).await, gcra_reference(limit, &steps), "scenario {i}");
    }
}

/// A subject's arrival time is its own and its user type's: another
/// subject, or the same subject of another user type, starts afresh.
async fn subjects_and_user_types_keep_apart_arrival_times(stores: Stores) {
    let store = stores.fresh().await;
    let limit = RateLimit { per_minute: 60, burst: 2 };
    let step = |user_type, subject| store.rate_limit(user_type, subject, limit, 1, START_US);
    let allowed = |o: GcraOutcome| matches!(o, GcraOutcome::Allowed { .. });
    assert!(allowed(step(UserType::Anonymous, "a").await.unwrap()));
    assert!(allowed(step(UserType::Anonymous, "a").await.unwrap()));
    assert_eq!(
        step(UserType::Anonymous, "a").await.unwrap(),
        GcraOutcome::Limited { retry_after_us: limit.spacing().interval_us }
    );
    assert_eq!(step(UserType::Anonymous, "b").await.unwrap(), GcraOutcome::Allowed { tat: START_US + 1_000_000 });
    assert_eq!(step(UserType::Registered, "a").await.unwrap(), GcraOutcome::Allowed { tat: START_US + 1_000_000 });
}

// ---- Envoy: one request's checks together, all or nothing ----

/// Requests of (µs since start, dry run, checks as (key, per minute, burst, cost, enforce)).
type Scenario = Vec<(u64, bool, Vec<(&'static str, u32, u32, u32, bool)>)>;

fn scenarios() -> Vec<Scenario> {
    vec![
        // A full key refuses the request; its other key is not consumed.
        vec![
            (0, false, vec![("a", 60, 2, 1, true)]),
            (0, false, vec![("a", 60, 2, 1, true)]),
            (0, false, vec![("b", 60, 2, 1, true), ("a", 60, 2, 1, true)]),
            (0, false, vec![("b", 60, 2, 2, true)]),
            (1_000_000, false, vec![("a", 60, 2, 1, true), ("b", 60, 2, 1, true)]),
        ],
        // Shadow checks never refuse; dry runs write nothing; a key twice sees itself.
        vec![
            (0, false, vec![("s", 1, 1, 1, false), ("t", 6, 3, 1, true)]),
            (0, false, vec![("s", 1, 1, 1, false), ("t", 6, 3, 1, true)]),
            (0, true, vec![("t", 6, 3, 1, true)]),
            (0, false, vec![("t", 6, 3, 1, true), ("t", 6, 3, 1, true)]),
            (9_999_999, false, vec![("t", 6, 3, 1, true)]),
            (10_000_000, false, vec![("t", 6, 3, 1, true)]),
        ],
        // Costs above the burst never pass.
        vec![(0, false, vec![("c", 600, 5, 6, true)]), (0, false, vec![("c", 600, 5, 5, true)])],
    ]
}

fn check_of(per_minute: u32, burst: u32, cost: u32, enforce: bool) -> Check {
    Check { spacing: gcra::RateLimit { per_minute, burst }.spacing(), cost, enforce }
}

async fn run_on<S: RateLimiter>(store: &S, prefix: &str, scenario: &Scenario) -> Vec<Vec<GcraOutcome>> {
    let mut out = Vec::new();
    for (offset, dry_run, checks) in scenario {
        let keys: Vec<String> = checks.iter().map(|(k, ..)| format!("{prefix}{k}")).collect();
        let batch: Vec<(RateKey<'_>, Check)> = checks
            .iter()
            .zip(&keys)
            .map(|((_, pm, b, cost, enforce), key)| (RateKey::Descriptor(key), check_of(*pm, *b, *cost, *enforce)))
            .collect();
        let result = store.rate_limit_all(&batch, *dry_run, START_US + offset).await.unwrap();
        assert_eq!(result.now_us, START_US + offset, "the caller's clock");
        out.push(result.outcomes);
    }
    out
}

fn reference(scenario: &Scenario) -> Vec<Vec<GcraOutcome>> {
    let mut table: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    scenario
        .iter()
        .map(|(offset, dry_run, checks)| {
            let batch: Vec<(&str, Check)> =
                checks.iter().map(|(k, pm, b, cost, enforce)| (*k, check_of(*pm, *b, *cost, *enforce))).collect();
            let (outcomes, writes) = rls::decide_all(&batch, |k| table.get(k).copied(), START_US + offset, *dry_run);
            table.extend(writes);
            outcomes
        })
        .collect()
}

async fn the_rls_script_and_the_memory_store_agree_with_the_core(stores: Stores) {
    let store = stores.fresh().await;
    for (i, scenario) in scenarios().iter().enumerate() {
        let prefix = format!("scenario-{i}:");
        assert_eq!(run_on(&store, &prefix, scenario).await, reference(scenario), "scenario {i}");
    }
    // The last scenario's first request costs more than the burst.
    let spacing: Spacing = gcra::RateLimit { per_minute: 600, burst: 5 }.spacing();
    assert_eq!(reference(&scenarios()[2])[0], [GcraOutcome::Limited { retry_after_us: spacing.interval_us }]);
}

/// `RateKey::User` in a batch is the very key `rate_limit` steps (Level 1
/// and Envoy's user-type descriptor share one budget); a descriptor counter
/// of the same name is another key.
async fn a_user_key_in_a_batch_is_level_ones_key_and_a_descriptor_is_not(stores: Stores) {
    let store = stores.fresh().await;
    let limit = RateLimit { per_minute: 60, burst: 1 };
    let check = Check { spacing: limit.spacing(), cost: 1, enforce: true };
    let user = [(RateKey::User(UserType::Registered, "u"), check)];
    let descriptor = [(RateKey::Descriptor("u"), check)];
    let allowed = GcraOutcome::Allowed { tat: START_US + 1_000_000 };
    assert_eq!(store.rate_limit(UserType::Registered, "u", limit, 1, START_US).await.unwrap(), allowed);
    let refused = store.rate_limit_all(&user, false, START_US).await.unwrap();
    assert_eq!(refused.outcomes, [GcraOutcome::Limited { retry_after_us: 1_000_000 }], "Level 1 took the budget");
    assert_eq!(store.rate_limit_all(&descriptor, false, START_US).await.unwrap().outcomes, [allowed]);
    // And the other way round: the batch's step is Level 1's.
    let later = START_US + 5_000_000;
    assert_eq!(
        store.rate_limit_all(&user, false, later).await.unwrap().outcomes,
        [GcraOutcome::Allowed { tat: later + 1_000_000 }]
    );
    assert_eq!(
        store.rate_limit(UserType::Registered, "u", limit, 1, later).await.unwrap(),
        GcraOutcome::Limited { retry_after_us: 1_000_000 }
    );
}
