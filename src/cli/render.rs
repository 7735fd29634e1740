//! How `floodgate admin` shows each answer: aligned tables for people, or
//! JSON in the seed's document shapes for scripts.

use std::fmt::Write;

use super::erased::Json;
use crate::grpc::pb;

/// The throttling windows, shortest first.
pub(super) const WINDOWS: [&str; 5] = ["1h", "3h", "6h", "12h", "24h"];

/// The answer as pretty JSON. The proto wraps two of the seed's maps in a
/// message (`{"groups": …}`); the wrapper is dropped so the document has
/// the seed's shape.
pub(super) fn json(value: &dyn Json) -> String {
    let mut value = value.to_json();
    unwrap_groups(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn unwrap_groups(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 1
                && let Some(inner) = map.remove("groups")
            {
                *value = inner;
                unwrap_groups(value);
                return;
            }
            map.values_mut().for_each(unwrap_groups);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_groups),
        _ => {}
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// GetSystemStatus: queues and capacity, process groups, circuits, alerts.
pub(super) fn status(s: &pb::SystemStatus) -> String {
    let q = s.enhanced_queue_stats.unwrap_or_default();
    let mut out = format!(
        "load {} of capacity {} (pressure {:.2}); accepting anonymous {}, registered {}, privileged {}\n\
         queued privileged {}, registered {}, anonymous {}; leased {}; dead letters {}\n\n",
        q.total_queue,
        q.weighted_max_capacity,
        q.pressure_ratio,
        yes_no(q.accepting_anonymous),
        yes_no(q.accepting_registered),
        yes_no(q.accepting_privileged),
        q.queued_privileged,
        q.queued_registered,
        q.queued_anonymous,
        q.leased,
        q.dead_letters,
    );
    let mut instances: Vec<_> = s.instances.iter().collect();
    instances.sort_by(|a, b| a.0.cmp(b.0));
    let mut rows = Vec::new();
    for (instance, status) in instances {
        let mut groups: Vec<_> = status.groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        for (group, g) in groups {
            rows.push([
                instance.clone(),
                group.clone(),
                g.actual_processes.to_string(),
                g.healthy_processes.to_string(),
                g.load.to_string(),
                g.capacity.to_string(),
                g.health.clone(),
            ]);
        }
    }
    if rows.is_empty() {
        out.push_str("no process has sent a heartbeat\n");
    } else {
        out.push_str(&table(["INSTANCE", "GROUP", "PROCESSES", "HEALTHY", "LOAD", "CAPACITY", "HEALTH"], &rows));
    }
    if let Some(summary) = s.circuit_breakers.as_ref().and_then(|b| b.summary) {
        let _ = writeln!(
            out,
            "\ncircuits: {} closed, {} open, {} half-open",
            summary.closed_circuits, summary.open_circuits, summary.half_open_circuits
        );
    }
    let _ = writeln!(out, "alerts: {}", s.alerts.len());
    out
}

/// GetCapacityCalculation: the eight steps, then the totals and limits.
pub(super) fn capacity(c: &pb::CapacityCalculation) -> String {
    let b = c.calculations_breakdown.clone().unwrap_or_default();
    let steps = [
        b.step_1_config,
        b.step_2_processes,
        b.step_3_total_concurrent,
        b.step_4_effective,
        b.step_5_queue,
        b.step_6_total_per_instance,
        b.step_7_instances,
        b.step_8_system_total,
    ];
    let rows: Vec<[String; 2]> = steps.into_iter().enumerate().map(|(i, step)| [(i + 1).to_string(), step]).collect();
    let mut out = table(["STEP", "CALCULATION"], &rows);
    let t = c.totals.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "\nsystem total {}; limits: anonymous {}, registered {}, privileged {}",
        t.system_total, t.anonymous_limit, t.registered_limit, t.privileged_limit
    );
    out
}

/// ListCircuitBreakers: one row per circuit.
pub(super) fn breakers(b: &pb::CircuitBreakers) -> String {
    let mut circuits: Vec<_> = b.circuits.iter().collect();
    circuits.sort_by(|x, y| x.0.cmp(y.0));
    let rows: Vec<[String; 7]> = circuits
        .into_iter()
        .map(|(name, c)| {
            [
                name.clone(),
                c.state.clone(),
                c.failure_count.to_string(),
                c.total_requests.to_string(),
                c.current_window_failures.to_string(),
                c.consecutive_failures.to_string(),
                c.opened_at.map_or("-".to_owned(), |t| t.to_string()),
            ]
        })
        .collect();
    table(["CIRCUIT", "STATE", "FAILURES", "REQUESTS", "WINDOW_FAILURES", "CONSECUTIVE", "OPENED_AT_MS"], &rows)
}

/// ListAlerts: one row per active alert.
pub(super) fn alerts(a: &pb::Alerts) -> String {
    if a.alerts.is_empty() {
        return "no active alerts\n".to_owned();
    }
    let rows: Vec<[String; 4]> = a
        .alerts
        .iter()
        .map(|a| [a.severity.clone(), a.code.clone(), a.since_ms.to_string(), a.message.clone()])
        .collect();
    table(["SEVERITY", "CODE", "SINCE_MS", "MESSAGE"], &rows)
}

/// GetThrottlingStats: one row per window.
pub(super) fn throttling(s: &pb::ThrottlingStats) -> String {
    let rows: Vec<[String; 7]> = WINDOWS
        .iter()
        .filter_map(|w| s.throttling_by_period.get(*w).map(|p| (w, p)))
        .map(|(w, p)| {
            [
                (*w).to_owned(),
                p.total_requests.to_string(),
                p.total_throttled.to_string(),
                format!("{:.1}%", p.throttle_rate),
                p.rate_limit_429.to_string(),
                p.backpressure_503.to_string(),
                p.circuit_open_503.to_string(),
            ]
        })
        .collect();
    table(["WINDOW", "REQUESTS", "THROTTLED", "RATE", "429", "BACKPRESSURE_503", "CIRCUIT_OPEN_503"], &rows)
}

/// One window in detail.
pub(super) fn throttling_window(window: &str, p: &pb::ThrottlingPeriod) -> String {
    let mut out = format!(
        "window {window}: {} requests, {} throttled ({:.1}%): 429 {}, backpressure 503 {}, circuit open 503 {}\n",
        p.total_requests, p.total_throttled, p.throttle_rate, p.rate_limit_429, p.backpressure_503, p.circuit_open_503
    );
    let mut per_user: Vec<_> = p.throughput_per_hour_by_user_type.iter().collect();
    per_user.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<[String; 2]> = per_user.into_iter().map(|(u, t)| [u.clone(), format!("{t:.1}")]).collect();
    out.push('\n');
    out.push_str(&table(["USER_TYPE", "ADMITTED_PER_HOUR"], &rows));
    if !p.top_sessions.is_empty() {
        let rows: Vec<[String; 2]> =
            p.top_sessions.iter().map(|s| [s.session_id.clone(), s.throttled.to_string()]).collect();
        out.push('\n');
        out.push_str(&table(["SESSION", "THROTTLED"], &rows));
    }
    out
}

/// GetEnvironment: every setting, its value and its source.
pub(super) fn environment(e: &pb::Environment) -> String {
    let mut values: Vec<_> = e.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<[String; 3]> =
        values.into_iter().map(|(k, v)| [k.clone(), v.value.clone(), v.source.clone()]).collect();
    table(["SETTING", "VALUE", "SOURCE"], &rows)
}

/// GetRlsConfig: where the rules come from, each domain's source, then
/// one row per rule with its stats key (the metrics' `rule` label).
pub(super) fn rls_config(c: &pb::RlsConfig) -> String {
    let mut out = match &c.path {
        Some(path) => format!(
            "YAML rules from {path}: version {}, loaded at {} ms, {} load errors\n",
            c.version, c.loaded_at_ms, c.load_errors
        ),
        None => "no --rls-config: the config file's [rls] rules only\n".to_owned(),
    };
    if let Some(last) = &c.last_load {
        if last.ok {
            let _ = writeln!(out, "last load at {} ms: ok, version {} in force", last.at_ms, last.version);
        } else {
            let _ = writeln!(
                out,
                "last load at {} ms: FAILED in {} (version {} stays in force)",
                last.at_ms,
                last.file.as_deref().unwrap_or_default(),
                last.version
            );
            for p in &last.problems {
                let at = if p.key_path.is_empty() { String::new() } else { format!("{}: ", p.key_path) };
                let _ = writeln!(out, "  {at}{}", p.message);
            }
        }
    }
    let _ = writeln!(
        out,
        "global shadow mode {}; RateLimit headers {}",
        yes_no(c.shadow_mode),
        yes_no(c.ratelimit_headers)
    );
    if c.domains.is_empty() {
        out.push_str("no domain configured\n");
        return out;
    }
    let sources: Vec<[String; 3]> =
        c.domains.iter().map(|d| [d.domain.clone(), d.rules.len().to_string(), d.source.clone()]).collect();
    out.push('\n');
    out.push_str(&table(["DOMAIN", "RULES", "SOURCE"], &sources));
    let flag = |on: bool, name: &str| if on { Some(name.to_owned()) } else { None };
    let rules: Vec<[String; 5]> = c
        .domains
        .iter()
        .flat_map(|d| &d.rules)
        .map(|r| {
            let flags: Vec<String> = [flag(r.shadow_mode, "shadow"), flag(r.detailed_metric, "detailed")]
                .into_iter()
                .flatten()
                .chain(r.replaces.iter().map(|name| format!("replaces {name:?}")))
                .collect();
            [r.domain.clone(), r.stats_key.clone(), r.limit.clone(), r.name.clone(), flags.join(", ")]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(["DOMAIN", "RULE", "LIMIT", "NAME", "FLAGS"], &rules));
    out
}

/// The field errors on one line.
pub(super) fn field_errors(errors: &[pb::FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message.replace('\n', " "))).collect::<Vec<_>>().join("; ")
}

fn errors_and_warnings(errors: &[pb::FieldError], warnings: &[String]) -> String {
    let mut out = String::new();
    if !errors.is_empty() {
        let rows: Vec<[String; 2]> = errors.iter().map(|e| [e.field.clone(), e.message.clone()]).collect();
        out.push_str(&table(["FIELD", "ERROR"], &rows));
    }
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

fn system_total(c: &Option<pb::CapacityCalculation>) -> u64 {
    c.as_ref().and_then(|c| c.totals.as_ref()).map_or(0, |t| t.system_total)
}

/// ValidateConfig: valid with the previewed capacity, or the field errors.
pub(super) fn review(r: &pb::ValidateConfigResponse) -> String {
    let mut out = errors_and_warnings(&r.errors, &r.warnings);
    if r.valid {
        let _ = writeln!(out, "valid: system capacity would be {}", system_total(&r.preview));
    }
    out
}

/// UpdateConfig: the version applied, or the field errors.
pub(super) fn update(u: &pb::UpdateConfigResponse) -> String {
    let mut out = errors_and_warnings(&u.errors, &u.warnings);
    if u.applied {
        let _ = writeln!(out, "applied version {}: system capacity {}", u.version, system_total(&u.capacity));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let rows = [["storage".to_owned(), "open".to_owned()], ["rate_limiter".to_owned(), "closed".to_owned()]];
        assert_eq!(
            table(["CIRCUIT", "STATE"], &rows),
            "CIRCUIT       STATE\nstorage       open\nrate_limiter  closed\n"
        );
    }

    #[test]
    fn json_drops_the_protos_groups_wrapper_to_keep_the_seeds_shape() {
        let mut value = serde_json::json!({"instances": {"i1": {"groups": {"chat_rest": {"load": 0}}}}});
        unwrap_groups(&mut value);
        assert_eq!(value, serde_json::json!({"instances": {"i1": {"chat_rest": {"load": 0}}}}));
    }
}
