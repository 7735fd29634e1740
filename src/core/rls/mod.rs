//! Envoy's rate-limit service (RLS v3) as pure rules: descriptor rules per
//! domain in the spirit of envoyproxy/ratelimit, how a request's
//! descriptors match them, the all-or-nothing GCRA decision of one request
//! (the reference both stores follow) and the statuses Envoy reads.

/// Longest domain or descriptor key.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest descriptor value (paths, addresses, ids).
pub const MAX_VALUE_BYTES: usize = 1_024;
/// Most descriptors in one request.
pub const MAX_DESCRIPTORS: usize = 64;
/// Most entries in one descriptor.
pub const MAX_ENTRIES: usize = 16;
/// Largest `hits_addend` (keeps the GCRA arithmetic exact in Lua's doubles).
pub const MAX_HITS_ADDEND: u32 = 1_000_000;
/// Longest time a burst may stand for (interval × burst), µs: 400 days.
pub const MAX_TOLERANCE_US: u64 = 400 * 86_400_000_000;

/// The descriptor key that makes a descriptor floodgate's Level 1 admission check.
pub const USER_TYPE_KEY: &str = "user_type";

mod answer;
mod config;
mod plan;
mod rules;

pub use answer::{AdmissionOutcome, Answer, Code, ReportedLimit, Status, answer, counter_state};
pub use config::{DescriptorConfig, DomainConfig, Invalid, RateLimitConfig, Replace, RlsConfig, Unit};
pub use plan::{AdmissionEntries, Check, Checks, Entry, Plan, Planned, RlsRequest, Writes, decide_all, kept};
pub use rules::{
    DEFAULT_NEAR_LIMIT_PERMILLE, Limit, Pattern, PlanOptions, Rate, RuleStats, RuleView, Rules, StatsFor, StatsHandle,
    Tally, counter_key,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use super::answer::near_limit;
    use crate::core::admission::{self, Verdict};
    use crate::core::gcra::{GcraOutcome, RateLimit, Spacing};
    use crate::core::{Decision, Transport, UserType};
    use proptest::prelude::*;

    fn entries<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Entry<'a>> {
        pairs.iter().map(|&(key, value)| Entry { key, value }).collect()
    }

    fn rules(toml: &str) -> Rules {
        let config: RlsConfig = toml::from_str(toml).expect("valid TOML");
        Rules::compile(&config).expect("valid rules")
    }

    /// The `chat` rules tests/it/rls.rs runs with too.
    const CHAT: &str = include_str!("../../../tests/fixtures/rls/chat.toml");

    #[test]
    fn the_exact_value_wins_over_the_key_and_only_the_last_entry_counts() {
        let r = rules(CHAT);
        let rate = |l: Option<&Limit>| match l {
            Some(Limit::Rate(rate)) => (rate.requests_per_unit, rate.unit),
            other => panic!("expected a rate, got {other:?}"),
        };
        assert_eq!(rate(r.find("chat", &entries(&[("remote_address", "1.2.3.4")]))), (3, Unit::Minute));
        assert_eq!(rate(r.find("chat", &entries(&[("path", "/landing/chat")]))), (10, Unit::Second));
        assert_eq!(
            rate(r.find("chat", &entries(&[("path", "/landing/chat"), ("remote_address", "a")]))),
            (100, Unit::Hour)
        );
        assert_eq!(r.find("chat", &entries(&[("path", "/other")])), Some(&Limit::Unlimited));
        // A longer descriptor than any rule, an unknown key or domain: no limit.
        assert_eq!(r.find("chat", &entries(&[("path", "/other"), ("remote_address", "a")])), None);
        assert_eq!(r.find("chat", &entries(&[("user", "x")])), None);
        assert_eq!(r.find("other", &entries(&[("remote_address", "a")])), None);
    }

    #[test]
    fn bad_rules_name_their_field() {
        let config: RlsConfig = toml::from_str(
            r#"
            [[domains]]
            domain = "chat"
            [[domains.descriptors]]
            key = "a"
            rate_limit = { requests_per_unit = 3 }
            [[domains.descriptors]]
            key = "b"
            rate_limit = { unit = "second" }
            [[domains.descriptors]]
            key = "c"
            rate_limit = { unlimited = true, unit = "second" }
            [[domains.descriptors]]
            key = "d"
            [[domains.descriptors]]
            key = "d"
            [[domains]]
            domain = "chat"
            "#,
        )
        .unwrap();
        let fields: Vec<String> = Rules::compile(&config).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "rls.domains[0].descriptors[0].rate_limit.unit",
                "rls.domains[0].descriptors[1].rate_limit.requests_per_unit",
                "rls.domains[0].descriptors[2].rate_limit",
                "rls.domains[0].descriptors[4]",
                "rls.domains[1].domain",
            ]
        );
    }

    #[test]
    fn units_become_spacing_and_burst_defaults_to_the_rate() {
        let rate = Rate {
            unit: Unit::Minute,
            requests_per_unit: 3,
            burst: 3,
            shadow_mode: false,
            name: String::new(),
            stats_key: "k".into(),
            detailed_metric: false,
            replaces: Vec::new(),
            stats: StatsHandle::default(),
        };
        assert_eq!(rate.spacing(), Spacing { interval_us: 20_000_000, tolerance_us: 60_000_000 });
        let r = rules(CHAT);
        let Some(Limit::Rate(hourly)) = r.find("chat", &entries(&[("path", "/landing/chat"), ("remote_address", "a")]))
        else {
            panic!("no hourly rule");
        };
        assert_eq!(hourly.spacing(), Spacing { interval_us: 36_000_000, tolerance_us: 180_000_000 });
    }

    #[test]
    fn units_are_read_in_any_case_as_the_peer_upper_cases_them() {
        for (text, unit) in [
            ("minute", Unit::Minute),
            ("Minute", Unit::Minute),
            ("SECOND", Unit::Second),
            ("hOuR", Unit::Hour),
            ("Day", Unit::Day),
        ] {
            let config: RateLimitConfig =
                serde_norway::from_str(&format!("unit: {text}\nrequests_per_unit: 1\n")).unwrap();
            assert_eq!(config.unit, Some(unit), "{text}");
        }
        let err = serde_norway::from_str::<RateLimitConfig>("unit: Fortnight\n").unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `Fortnight`, expected one of `second`, `minute`, `hour`, `day`"),
            "{err}"
        );
    }

    #[test]
    fn requests_per_unit_takes_any_uint32_and_names_missing_and_out_of_range_apart() {
        let read =
            |n: &str| serde_norway::from_str::<RateLimitConfig>(&format!("unit: second\nrequests_per_unit: {n}\n"));
        assert_eq!(read("4294967295").unwrap().requests_per_unit, Some(u32::MAX));
        assert_eq!(read("0").unwrap().requests_per_unit, Some(0));
        for bad in ["4294967296", "-1"] {
            let err = read(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad} is out of range: must be a whole number 0..=4294967295")), "{err}");
        }
        let missing: RlsConfig = toml::from_str(
            "[[domains]]\ndomain = \"d\"\n[[domains.descriptors]]\nkey = \"k\"\nrate_limit = { unit = \"second\" }\n",
        )
        .unwrap();
        let errors = Rules::compile(&missing).unwrap_err();
        assert_eq!(errors[0].field, "rls.domains[0].descriptors[0].rate_limit.requests_per_unit");
        assert!(errors[0].message.starts_with("is required with a unit"), "{}", errors[0].message);
    }

    #[test]
    fn user_type_is_level_one_in_floodgates_domains_and_an_ordinary_key_in_yaml_ones() {
        let text = "domain: d\ndescriptors:\n  - key: user_type\n    value: gold\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";
        let domain: DomainConfig = serde_norway::from_str(text).unwrap();
        let yaml =
            Rules::compile_domains(&[(String::new(), &domain)], true, &mut |_, _| StatsHandle::default()).unwrap();
        let gold = RlsRequest::new("d", 0).with_descriptor(entries(&[("user_type", "gold")]));
        let plan = yaml.plan(&gold).expect("any user_type value is an ordinary value in a YAML domain");
        assert!(plan.admission.is_none());
        assert!(matches!(plan.descriptors[0], Planned::Limited { .. }));
        // In floodgate's own domains such a rule could never match: refused at load.
        let errors =
            Rules::compile_domains(&[("rls.domains[0]".into(), &domain)], false, &mut |_, _| StatsHandle::default())
                .unwrap_err();
        assert_eq!(errors[0].field, "rls.domains[0].descriptors[0].key");
        // And a request there (or to an unknown domain) still asks Level 1.
        let own = RlsRequest::new("other", 0).with_descriptor(entries(&[("user_type", "anonymous")]));
        assert!(yaml.plan(&own).unwrap().admission.is_some());
    }

    #[test]
    fn a_rate_faster_than_one_per_microsecond_holds_as_written() {
        // 100,000,000 hits per second (a byte budget through hits_addend):
        // counted in µs of the second, so 1,000,000 hits cost 10 ms.
        let r = rules(
            "[[domains]]\ndomain = \"d\"\n[[domains.descriptors]]\nkey = \"k\"\nrate_limit = { unit = \"second\", requests_per_unit = 100000000 }\n",
        );
        let Some(Limit::Rate(rate)) = r.find("d", &entries(&[("k", "v")])) else { panic!("no rate") };
        assert_eq!(rate.spacing(), Spacing { interval_us: 1, tolerance_us: 1_000_000 });
        assert_eq!((rate.cost(1_000_000), rate.cost(1), rate.hits_of(10_000)), (10_000, 1, 1_000_000));
        // A full second's budget passes at once, the next hit does not; a
        // tenth of a second later a tenth of the budget passes again.
        let request = RlsRequest::new("d", 1_000_000).with_descriptor(entries(&[("k", "v")]));
        let plan = r.plan(&request).unwrap();
        let mut table = HashMap::new();
        let check = plan.checks(None)[0].1;
        for _ in 0..100 {
            assert!(matches!(run(&mut table, &[("k", check)], 0, false)[0], GcraOutcome::Allowed { .. }));
        }
        assert!(matches!(run(&mut table, &[("k", check)], 0, false)[0], GcraOutcome::Limited { .. }));
        for _ in 0..10 {
            assert!(matches!(run(&mut table, &[("k", check)], 100_000, false)[0], GcraOutcome::Allowed { .. }));
        }
        assert!(matches!(run(&mut table, &[("k", check)], 100_000, false)[0], GcraOutcome::Limited { .. }));
        // Statuses speak in hits: after one request, 99,000,000 left.
        let mut fresh = HashMap::new();
        let checks = plan.checks(None);
        let outcomes = run(&mut fresh, &[("k", checks[0].1)], 0, false);
        let answer = answer(&plan, &checks, &outcomes, 0, false, None);
        assert_eq!(answer.statuses[0].limit_remaining, 99_000_000);
        // The largest rate per hour too: 4294967295 per hour.
        let hourly = Rate { unit: Unit::Hour, requests_per_unit: u32::MAX, burst: u32::MAX, ..rate.clone() };
        assert_eq!(hourly.spacing(), Spacing { interval_us: 1, tolerance_us: 3_600_000_000 });
        assert_eq!(hourly.hits_of(3_600_000_000), u64::from(u32::MAX));
    }

    fn request<'a>(descriptors: &[&[(&'a str, &'a str)]], hits: u32) -> RlsRequest<'a> {
        descriptors.iter().fold(RlsRequest::new("chat", hits), |r, d| r.with_descriptor(entries(d)))
    }

    #[test]
    fn bad_requests_name_their_field() {
        let r = rules(CHAT);
        let field = |req: RlsRequest| r.plan(&req).unwrap_err().field;
        let mut no_domain = request(&[&[("a", "b")]], 0);
        no_domain.domain = "";
        assert_eq!(field(no_domain), "domain");
        assert_eq!(field(request(&[], 0)), "descriptors");
        assert_eq!(field(request(&[&[("a", "b")], &[]], 0)), "descriptors[1].entries");
        assert_eq!(field(request(&[&[("", "b")]], 0)), "descriptors[0].entries[0].key");
        assert_eq!(field(request(&[&[("user_type", "admin")]], 0)), "descriptors[0].user_type");
        assert_eq!(
            field(request(&[&[("user_type", "anonymous")], &[("user_type", "registered")]], 0)),
            "descriptors[1].entries"
        );
        assert_eq!(field(request(&[&[("a", "b")]], MAX_HITS_ADDEND + 1)), "hits_addend");
    }

    #[test]
    fn plans_count_each_value_apart_and_find_the_admission_descriptor() {
        let r = rules(CHAT);
        let req = request(
            &[
                &[("remote_address", "1.2.3.4")],
                &[("unknown", "x")],
                &[("path", "/x")],
                &[("user_type", "anonymous"), ("remote_address", "9.9.9.9"), ("transport", "websocket")],
            ],
            0,
        );
        let plan = r.plan(&req).unwrap();
        assert_eq!(plan.hits, 1, "hits_addend 0 means 1");
        assert!(
            matches!(&plan.descriptors[0], Planned::Limited { counter, .. } if counter == "4:chat14:remote_address7:1.2.3.4")
        );
        assert_eq!(plan.descriptors[1..], [Planned::NoRule, Planned::Unlimited, Planned::Admission]);
        let a = plan.admission.as_ref().unwrap();
        assert_eq!(
            (a.index, a.user_type, a.subject.as_str(), a.transport),
            (3, UserType::Anonymous, "9.9.9.9", Transport::Websocket)
        );
        // Without subject or remote_address, the domain is the one subject.
        let plan = r.plan(&request(&[&[("user_type", "registered")]], 0)).unwrap();
        assert_eq!(plan.admission.unwrap().subject, "chat");
    }

    #[test]
    fn counter_keys_cannot_collide_through_separators() {
        assert_ne!(counter_key("d", &entries(&[("a", "b:c")])), counter_key("d", &entries(&[("a:b", "c")])));
        assert_ne!(
            counter_key("d", &entries(&[("a", "1"), ("b", "2")])),
            counter_key("d", &entries(&[("a", "1b"), ("", "2")]))
        );
    }

    #[test]
    fn counter_keys_prefix_each_part_with_its_decimal_length() {
        let long = "k".repeat(123);
        assert_eq!(counter_key("d", &entries(&[(long.as_str(), "")])), format!("1:d123:{long}0:"));
        assert_eq!(counter_key("", &entries(&[("path", "/0123456789")])), "0:4:path11:/0123456789");
    }

    const THREE_PER_MINUTE: Check =
        Check { spacing: Spacing { interval_us: 20_000_000, tolerance_us: 60_000_000 }, cost: 1, enforce: true };
    const SHADOW: Check = Check { enforce: false, ..THREE_PER_MINUTE };

    fn run(
        table: &mut HashMap<&'static str, u64>,
        checks: &[(&'static str, Check)],
        now: u64,
        dry: bool,
    ) -> Vec<GcraOutcome> {
        let (outcomes, writes) = decide_all(checks, |k| table.get(k).copied(), now, dry);
        table.extend(writes);
        outcomes
    }

    #[test]
    fn a_refused_request_consumes_nothing() {
        let mut table = HashMap::new();
        for _ in 0..3 {
            run(&mut table, &[("full", THREE_PER_MINUTE)], 0, false);
        }
        let outcomes = run(&mut table, &[("fresh", THREE_PER_MINUTE), ("full", THREE_PER_MINUTE)], 0, false);
        assert!(matches!(outcomes[0], GcraOutcome::Allowed { .. }));
        assert_eq!(outcomes[1], GcraOutcome::Limited { retry_after_us: 20_000_000 });
        assert!(!table.contains_key("fresh"), "the allowed descriptor was not consumed");
        // A shadow descriptor over its limit refuses nothing.
        let outcomes = run(&mut table, &[("fresh", THREE_PER_MINUTE), ("full", SHADOW)], 0, false);
        assert!(matches!(outcomes[1], GcraOutcome::Limited { .. }));
        assert_eq!(table["fresh"], 20_000_000);
        // A dry run writes nothing.
        run(&mut table, &[("dry", THREE_PER_MINUTE)], 0, true);
        assert!(!table.contains_key("dry"));
    }

    #[test]
    fn checks_sharing_a_key_see_each_other() {
        let mut table = HashMap::new();
        let outcomes = run(&mut table, &[("k", THREE_PER_MINUTE), ("k", THREE_PER_MINUTE)], 0, false);
        assert_eq!(outcomes, [GcraOutcome::Allowed { tat: 20_000_000 }, GcraOutcome::Allowed { tat: 40_000_000 }]);
        assert_eq!(table["k"], 40_000_000);
    }

    #[test]
    fn counter_state_reports_remaining_and_time_to_full() {
        let c = THREE_PER_MINUTE;
        let now = 1_000;
        // First hit: two left, full again in one interval.
        assert_eq!(counter_state(GcraOutcome::Allowed { tat: now + 20_000_000 }, &c, now, true), (2, 20_000_000));
        // Not kept: as if it never happened.
        assert_eq!(counter_state(GcraOutcome::Allowed { tat: now + 20_000_000 }, &c, now, false), (3, 0));
        // Over the limit after three hits at `now`: nothing left, full in 60 s.
        assert_eq!(counter_state(GcraOutcome::Limited { retry_after_us: 20_000_000 }, &c, now, false), (0, 60_000_000));
    }

    fn verdict(decision: Decision, retry_after_ms: u64) -> Verdict {
        Verdict { decision, retry_after_ms, reason: String::new(), pressure_ratio: 0.0 }
    }

    #[test]
    fn the_worst_descriptor_wins_with_retry_after_and_decision_headers() {
        let r = rules(CHAT);
        let req = request(&[&[("remote_address", "a")], &[("user_type", "registered")]], 0);
        let plan = r.plan(&req).unwrap();
        let limit = RateLimit { per_minute: 60, burst: 20 };
        let checks = plan.checks(Some(limit));
        assert_eq!(checks.len(), 2);
        let admitted = admission::admitted(0.0);
        let a = Some(AdmissionOutcome { verdict: &admitted, rate: Some(limit), user_type: UserType::Registered });
        let limited = [GcraOutcome::Limited { retry_after_us: 2_500_000 }, GcraOutcome::Allowed { tat: 1_000_000 }];
        let ans = answer(&plan, &checks, &limited, 0, false, a);
        assert_eq!(ans.overall, Code::OverLimit);
        assert_eq!((ans.statuses[0].code, ans.statuses[1].code), (Code::OverLimit, Code::Ok));
        assert_eq!(ans.decision, Decision::RateLimited);
        assert_eq!(
            ans.response_headers,
            [("retry-after", "3".to_owned()), ("x-floodgate-decision", "rate_limited".to_owned())]
        );
        assert_eq!(
            ans.statuses[1].current_limit.as_ref().map(|l| (l.requests_per_unit, l.unit)),
            Some((60, Unit::Minute))
        );

        // Backpressure refuses through the admission descriptor.
        let refused = verdict(Decision::Backpressure, 1_000);
        let a = Some(AdmissionOutcome { verdict: &refused, rate: Some(limit), user_type: UserType::Registered });
        let allowed = [GcraOutcome::Allowed { tat: 20_000_000 }, GcraOutcome::Allowed { tat: 1_000_000 }];
        let ans = answer(&plan, &checks, &allowed, 0, true, a);
        assert_eq!(
            (ans.overall, ans.statuses[0].code, ans.statuses[1].code),
            (Code::OverLimit, Code::Ok, Code::OverLimit)
        );
        assert_eq!(ans.statuses[1].until_reset_us, 1_000_000);
        assert_eq!(ans.response_headers[1].1, "backpressure");
        assert_eq!(ans.statuses[0].limit_remaining, 3, "nothing consumed");

        // All under the limit: OK and no headers.
        let ans = answer(
            &plan,
            &checks,
            &allowed,
            0,
            false,
            Some(AdmissionOutcome { verdict: &admitted, rate: Some(limit), user_type: UserType::Registered }),
        );
        assert_eq!((ans.overall, ans.decision), (Code::Ok, Decision::Admit));
        assert!(ans.response_headers.is_empty());
    }

    /// A naive reference for `*` matching: any split of the value.
    fn naive_match(pattern: &str, value: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == value,
            Some((head, tail)) => {
                value.starts_with(head)
                    && (head.len()..=value.len()).any(|i| value.is_char_boundary(i) && naive_match(tail, &value[i..]))
            }
        }
    }

    #[test]
    fn stars_match_any_run_including_none() {
        let p = |s: &str| Pattern::new(s).expect("has a star");
        assert!(p("foo*").matches("foo") && p("foo*").matches("foobar") && !p("foo*").matches("fo"));
        assert!(p("*bar").matches("bar") && !p("*bar").matches("bars"));
        assert!(p("/api/*/users/*").matches("/api//users/") && p("/api/*/users/*").matches("/api/v1/users/7"));
        assert!(!p("/api/*/users/*").matches("/api/v1/groups/7"));
        assert!(p("a*b*a").matches("aba") && !p("a*b*a").matches("ab") && !p("aa*aa").matches("aaa"));
        assert!(p("*").matches("") && p("**").matches("x"));
        assert_eq!(Pattern::new("plain"), None);
    }

    const FEATURES: &str = r#"
        [[domains]]
        domain = "d"
        descriptors = [
            { key = "k", value = "a*", rate_limit = { unit = "minute", requests_per_unit = 1 } },
            { key = "k", value = "ab", rate_limit = { unit = "minute", requests_per_unit = 2 } },
            { key = "k", rate_limit = { unit = "minute", requests_per_unit = 3 } },
            { key = "block", rate_limit = { unit = "minute", requests_per_unit = 0 } },
            { key = "tier", value = "free", rate_limit = { unit = "minute", requests_per_unit = 2, name = "free" } },
            { key = "over", rate_limit = { unit = "minute", requests_per_unit = 9, name = "over", replaces = [{ name = "free" }] } },
        ]
    "#;

    #[test]
    fn exact_wins_over_wildcard_which_wins_over_key_only() {
        let r = rules(FEATURES);
        let per_minute = |v: &str| match r.find("d", &entries(&[("k", v)])) {
            Some(Limit::Rate(rate)) => (rate.requests_per_unit, rate.stats_key.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(per_minute("ab"), (2, "k_ab".to_owned()));
        assert_eq!(per_minute("abc"), (1, "k_a*".to_owned()));
        assert_eq!(per_minute("a"), (1, "k_a*".to_owned()));
        assert_eq!(per_minute("b"), (3, "k".to_owned()));
    }

    #[test]
    fn replaced_limits_and_zero_limits_are_planned_apart() {
        let r = rules(FEATURES);
        let req = RlsRequest::new("d", 0)
            .with_descriptor(entries(&[("tier", "free")]))
            .with_descriptor(entries(&[("over", "x")]))
            .with_descriptor(entries(&[("block", "x")]));
        let plan = r.plan(&req).unwrap();
        assert_eq!(plan.descriptors[0], Planned::Replaced);
        assert!(matches!(plan.descriptors[1], Planned::Limited { rate, .. } if rate.name == "over"));
        assert!(matches!(plan.descriptors[2], Planned::RefusesAll { rate } if rate.requests_per_unit == 0));
        let checks = plan.checks(None);
        assert_eq!(checks.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        let ans = answer(&plan, &checks, &[GcraOutcome::Allowed { tat: 6_666_666 }], 0, false, None);
        assert_eq!(ans.overall, Code::OverLimit);
        assert_eq!(
            ans.statuses[0],
            Status {
                code: Code::Ok,
                current_limit: None,
                limit_remaining: 0,
                until_reset_us: 0,
                tally: Tally::default()
            }
        );
        assert_eq!(ans.statuses[2].tally, Tally { hits: 1, over_limit: 1, ..Tally::default() });
        assert_eq!(
            ans.response_headers,
            [("x-floodgate-decision", "rate_limited".to_owned())],
            "no retry-after: it never passes"
        );
    }

    #[test]
    fn near_limit_counts_the_hits_above_eighty_percent() {
        // Burst 10: threshold 8. Used 7 before, 3 more hits: 1 within-only, 2 near.
        let check = Check { spacing: Spacing { interval_us: 1, tolerance_us: 10 }, cost: 3, enforce: true };
        assert_eq!(near_limit(3, 0, &check, true, 800), 2);
        assert_eq!(near_limit(3, 3, &check, true, 800), 0, "used 7 after: under the threshold");
        assert_eq!(near_limit(3, 1, &check, false, 800), 3, "not kept: 9 used, 3 more all above 8");
    }

    #[test]
    fn the_near_limit_ratio_is_a_setting() {
        // Burst 10, ratio 0.5: threshold 5. Used 7 after 3 hits (4 before): 2 near.
        let check = Check { spacing: Spacing { interval_us: 1, tolerance_us: 10 }, cost: 3, enforce: true };
        assert_eq!(near_limit(3, 3, &check, true, 500), 2);
        assert_eq!(near_limit(3, 3, &check, true, 800), 0);
        assert_eq!(near_limit(3, 3, &check, true, 1000), 0, "ratio 1: nothing within the limit is near it");
        assert_eq!(PlanOptions::default().near_limit_permille, 800, "the peer's default 0.8");
    }

    proptest! {
        #[test]
        fn patterns_agree_with_the_naive_star_match(pattern in "[ab*]{1,6}", value in "[ab]{0,8}") {
            if let Some(p) = Pattern::new(&pattern) {
                prop_assert_eq!(p.matches(&value), naive_match(&pattern, &value), "{} vs {}", pattern, value);
            }
        }
    }

    proptest! {
        /// Whatever the requests, a counter never allows more than burst +
        /// elapsed / interval hits, and a refused request changes no key.
        #[test]
        fn no_counter_runs_past_its_limit_and_refusals_change_nothing(
            steps in proptest::collection::vec((0u64..5_000_000, 0usize..3, 0usize..3, 1u32..4, any::<bool>()), 1..200),
        ) {
            let keys = ["a", "b", "c"];
            let mut table: HashMap<&'static str, u64> = HashMap::new();
            let mut allowed = [0u64; 3];
            let mut now = 0;
            for (gap, k1, k2, cost, shadow) in steps {
                now += gap;
                let second = if shadow { SHADOW } else { THREE_PER_MINUTE };
                let checks = [(keys[k1], Check { cost, ..THREE_PER_MINUTE }), (keys[k2], second)];
                let before = table.clone();
                let outcomes = run(&mut table, &checks, now, false);
                if kept(checks.iter().map(|(_, c)| c), &outcomes, false) {
                    for ((key, check), outcome) in checks.iter().zip(&outcomes) {
                        if matches!(outcome, GcraOutcome::Allowed { .. }) {
                            allowed[keys.iter().position(|k| k == key).unwrap()] += u64::from(check.cost);
                        }
                    }
                } else {
                    prop_assert_eq!(&before, &table);
                }
            }
            for n in allowed {
                prop_assert!(n <= 3 + now / 20_000_000);
            }
        }
    }
}
