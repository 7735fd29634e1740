//! The console's routes on the real server (issue 13): the page and its
//! assets without a token, the console's JSON behind the admin check, and
//! what each document says after real heartbeats and decisions. The page
//! itself is tested in a browser by `tests/console/test_console.py`.

use crate::common;

use std::sync::Arc;

use common::http::get;
use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::Profile;
use floodgate_client::pb::{self, ProcessStatus, UserType};

const CONSOLE_JSON: [&str; 5] = [
    "/monitoring/processes",
    "/monitoring/throttling/minutes",
    "/monitoring/circuit-breakers/recovery",
    "/monitoring/queues",
    "/monitoring/runtime-config",
];

/// Clients, after one healthy chat REST process on home-instance-1 (T = 14)
/// is in the snapshot.
async fn with_worker(server: &Server) -> Clients {
    let mut c = clients(server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    server.floodgate.refresh_snapshot().await.unwrap();
    c
}

fn header<'a>(reply: &'a common::http::Reply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn root_redirects_to_the_console_which_loads_without_a_token() {
    let server = start(Profile::Development, "").await;
    let root = get(server.http, "/", None).await;
    assert_eq!(root.status, 303);
    assert_eq!(header(&root, "location"), Some("/ui/"));
    let page = get(server.http, "/ui/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"));
    assert!(header(&page, "content-security-policy").is_some_and(|c| c.contains("script-src 'self'")));
    assert!(page.body.contains(r#"<script src="/ui/app.js" defer></script>"#));
    assert!(!page.body.contains(ADMIN), "no token in the page");
    for (path, kind) in [("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")] {
        let asset = get(server.http, path, None).await;
        assert_eq!(asset.status, 200, "{path}");
        assert!(header(&asset, "content-type").is_some_and(|c| c.starts_with(kind)), "{path}");
    }
    assert_eq!(get(server.http, "/ui/session", None).await.json()["auth_required"], true);
}

#[tokio::test]
async fn console_json_needs_the_admin_token() {
    let server = start(Profile::Development, "").await;
    for path in CONSOLE_JSON {
        assert_eq!(get(server.http, path, None).await.status, 401, "{path} without a token");
        assert_eq!(get(server.http, path, Some("wrong")).await.status, 401, "{path} with a wrong token");
        assert_eq!(get(server.http, path, Some(FRONTEND)).await.status, 403, "{path} with a frontend token");
        assert_eq!(get(server.http, path, Some(ADMIN)).await.status, 200, "{path} with the admin token");
    }
}

#[tokio::test]
async fn processes_list_each_heartbeat_with_its_health_and_age() {
    let server = start(Profile::Development, "").await;
    let mut c = with_worker(&server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p2", ProcessStatus::Unhealthy)).await.unwrap();
    server.floodgate.refresh_snapshot().await.unwrap();
    let view = get(server.http, "/monitoring/processes", Some(ADMIN)).await.json();
    let rows = view["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["process_id"], "p1");
    assert_eq!(rows[0]["group"], "chat_rest");
    assert_eq!(rows[0]["health"], "healthy");
    assert_eq!(rows[1]["health"], "unhealthy");
    assert_eq!(rows[1]["reported_status"], "unhealthy");
    assert!(rows[0]["last_heartbeat_age_ms"].as_u64().unwrap() < view["stale_after_ms"].as_u64().unwrap());
}

#[tokio::test]
async fn the_minute_series_counts_admitted_and_refused_decisions() {
    // Registered users get a burst of 2: the third request is a 429.
    let server = start(Profile::Development, "[rate_limits.registered]\nper_minute = 60\nburst = 2").await;
    let mut c = with_worker(&server).await;
    let mut decisions = Vec::new();
    for _ in 0..3 {
        let answer = c.admission.check_capacity(check(UserType::Registered, "user-1")).await.unwrap().into_inner();
        decisions.push(answer.decision());
    }
    assert_eq!(decisions, [pb::Decision::Admit, pb::Decision::Admit, pb::Decision::RateLimited]);
    server.operations.housekeeping().await.unwrap(); // flushes the local counts
    let view = get(server.http, "/monitoring/throttling/minutes", Some(ADMIN)).await.json();
    let minutes = view["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let sum = |field: &str| minutes.iter().map(|m| m[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("admitted"), sum("refused"), sum("rate_limit_429")), (2, 1, 1));
    let last = minutes.last().unwrap()["minute_start_ms"].as_u64().unwrap();
    assert_eq!(last, view["now_ms"].as_u64().unwrap() / 60_000 * 60_000);
}

#[tokio::test]
async fn an_open_circuit_reports_its_time_to_half_open() {
    // No worker: T = 0, so every non-privileged request is overload.
    let server =
        start(Profile::Development, "[breakers.backpressure]\nfailure_threshold = 2\nrecovery_timeout_ms = 60000")
            .await;
    let mut c = clients(&server).await;
    for _ in 0..3 {
        c.admission.check_capacity(check(UserType::Anonymous, "anon-1")).await.unwrap();
    }
    let view = get(server.http, "/monitoring/circuit-breakers/recovery", Some(ADMIN)).await.json();
    let backpressure = &view["circuits"]["backpressure"];
    assert_eq!(backpressure["state"], "open");
    assert_eq!(backpressure["recovery_timeout_ms"], 60_000);
    let left = backpressure["half_open_in_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 60_000, "{left}");
    assert_eq!(view["circuits"]["storage"]["half_open_in_ms"], serde_json::Value::Null);
}

#[tokio::test]
async fn queues_and_runtime_config_show_the_live_state() {
    let server = start(Profile::Development, "").await;
    let mut c = with_worker(&server).await;
    for subject in ["a", "b"] {
        let answer = c.admission.enqueue_atomic(enqueue(UserType::Anonymous, subject)).await.unwrap().into_inner();
        assert_eq!(answer.decision(), pb::Decision::Admit);
    }
    let queues = get(server.http, "/monitoring/queues", Some(ADMIN)).await.json();
    assert_eq!(queues["queued"]["anonymous"], 2);
    assert_eq!(queues["queued"]["registered"], 0);
    assert_eq!(queues["dead_letters"], 0);
    assert_eq!(queues["recent_dead_letters"], serde_json::json!([]));
    let config = get(server.http, "/monitoring/runtime-config", Some(ADMIN)).await.json();
    assert_eq!(config["version"], "0");
    assert_eq!(config["config"]["concurrent_per_process"], 5);
    assert_eq!(config["config"]["anonymous_threshold"], 0.6);
}

/// The queues panel's oldest task age per class, read in the same store
/// call as the depths: the head of each queue (the next one leased), on a
/// clock that moves only when told, so the ages are exact.
async fn queues_show_each_class_oldest_task_age(backend: Backend) {
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let mut settings = settings(Profile::Development, "");
    // On Redis, the scripts take the manual clock's time instead of Redis TIME.
    settings.redis_time = floodgate::store::TimeSource::Caller;
    let server = backend_server(backend, settings, clock.clone()).await;
    let mut c = with_worker(&server).await;
    let queues = get(server.http, "/monitoring/queues", Some(ADMIN)).await.json();
    assert_eq!(
        queues["oldest_task_age_ms"],
        serde_json::json!({"anonymous": null, "registered": null, "privileged": null})
    );

    for (user_type, subject, then_advance_ms) in [
        (UserType::Anonymous, "first", 3_000),
        (UserType::Anonymous, "second", 0),
        (UserType::Privileged, "staff", 2_000),
    ] {
        let answer = c.admission.enqueue_atomic(enqueue(user_type, subject)).await.unwrap().into_inner();
        assert_eq!(answer.decision(), pb::Decision::Admit, "{subject}");
        clock.advance_ms(then_advance_ms);
    }
    let queues = get(server.http, "/monitoring/queues", Some(ADMIN)).await.json();
    assert_eq!(queues["now_ms"], 1_800_000_005_000u64);
    assert_eq!(queues["queued"]["anonymous"], 2);
    assert_eq!(
        queues["oldest_task_age_ms"],
        serde_json::json!({"anonymous": 5_000, "registered": null, "privileged": 2_000})
    );

    // Leasing takes the privileged task, then the oldest anonymous one:
    // the anonymous queue's head is now the task enqueued 2 s ago.
    let leased = c.workers.lease_tasks(lease(2, 60_000)).await.unwrap().into_inner().tasks;
    assert_eq!(leased.len(), 2);
    let queues = get(server.http, "/monitoring/queues", Some(ADMIN)).await.json();
    assert_eq!(
        queues["oldest_task_age_ms"],
        serde_json::json!({"anonymous": 2_000, "registered": null, "privileged": null})
    );
    assert_eq!(queues["leased"], 2);
}

common::on_both_stores!(queues_show_each_class_oldest_task_age);
