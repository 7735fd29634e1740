//! `floodgate admin …` against the real server: every subcommand as a table
//! and as `--json`, with the seed's worker heartbeat (capacity 14), and the
//! one-line errors for a wrong token and an unreachable server.

use crate::common;

use std::process::{Command, Output};

use common::*;
use floodgate::config::Profile;
use floodgate_client::pb::{ProcessStatus, UserType};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");

/// Runs `floodgate admin --target … --token TOKEN ARGS` off the runtime
/// that serves the server.
async fn admin(server: &Server, token: &str, args: &[&str]) -> Output {
    admin_at(&format!("http://{}", server.grpc), token, args).await
}

/// Runs `floodgate admin --target TARGET --token TOKEN ARGS`.
async fn admin_at(target: &str, token: &str, args: &[&str]) -> Output {
    let target = target.to_owned();
    let mut command = Command::new(BIN);
    command.args(["admin", "--target", &target, "--token", token]).args(args);
    command.env_remove("FLOODGATE_ADMIN_TARGET").env_remove("FLOODGATE_ADMIN_TOKEN");
    tokio::task::spawn_blocking(move || command.output().expect("floodgate runs")).await.unwrap()
}

/// The standard output of a command that must succeed.
async fn text(server: &Server, args: &[&str]) -> String {
    let out = admin(server, ADMIN, args).await;
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The `--json` answer of a command that must succeed.
async fn json(server: &Server, args: &[&str]) -> Value {
    let out = text(server, &[args, &["--json"]].concat()).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The server after the seed's worker heartbeat: one instance, one healthy chat REST process.
async fn seeded() -> Server {
    let server = start(Profile::Production, "").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    server
}

fn change_file(text: &str, extension: &str) -> common::process::TempFile {
    let file = common::process::temp_file(text);
    let path = file.0.with_extension(format!("change.{extension}"));
    std::fs::copy(&file.0, &path).unwrap();
    common::process::TempFile(path)
}

#[tokio::test]
async fn capacity_shows_the_seeds_eight_steps_and_limits() {
    let server = seeded().await;
    let table = text(&server, &["capacity"]).await;
    assert!(table.contains("8     14 total system capacity"), "{table}");
    assert!(table.contains("system total 14; limits: anonymous 8, registered 11, privileged 13"), "{table}");
    let doc = json(&server, &["capacity"]).await;
    assert_eq!(doc["calculations_breakdown"]["step_8_system_total"], "14 total system capacity");
    assert_eq!(doc["configuration"]["concurrent_per_process"], 5);
    assert_eq!(doc["totals"]["system_total"], 14);
    // The seed's shape: a list of groups per instance, no proto wrapper.
    assert_eq!(doc["actual_processes"]["processes_per_instance"]["home-instance-1"][0]["healthy_processes"], 1);
}

#[tokio::test]
async fn status_shows_processes_queues_and_capacity() {
    let server = seeded().await;
    let table = text(&server, &["status"]).await;
    assert!(table.contains("load 0 of capacity 14"), "{table}");
    assert!(table.contains("home-instance-1  chat_rest"), "{table}");
    assert!(table.contains("circuits: 4 closed, 0 open, 0 half-open"), "{table}");
    let doc = json(&server, &["status"]).await;
    assert_eq!(doc["enhanced_queue_stats"]["weighted_max_capacity"], 14);
    assert_eq!(doc["enhanced_queue_stats"]["accepting_anonymous"], true);
    assert_eq!(doc["instances"]["home-instance-1"]["chat_rest"]["healthy_processes"], 1);
}

#[tokio::test]
async fn breakers_and_reset_show_each_circuit() {
    let server = seeded().await;
    let table = text(&server, &["breakers"]).await;
    assert!(table.starts_with("CIRCUIT "), "{table}");
    assert!(table.contains("\nstorage         closed"), "{table}");
    let doc = json(&server, &["breakers"]).await;
    assert_eq!(doc["summary"]["total_circuits"], 4);
    assert_eq!(doc["circuits"]["backpressure"]["state"], "closed");
    assert_eq!(text(&server, &["reset", "storage"]).await, "circuit storage: closed\n");
    let doc = json(&server, &["reset", "rate_limiter"]).await;
    assert_eq!((doc["circuit_name"].as_str(), doc["state"].as_str()), (Some("rate_limiter"), Some("closed")));
    let unknown = admin(&server, ADMIN, &["reset", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).starts_with("floodgate admin: NotFound"));
}

#[tokio::test]
async fn alerts_list_the_active_alerts() {
    // No heartbeat: the seed's critical alert for zero healthy processes.
    let server = start(Profile::Production, "").await;
    server.operations.evaluate_alerts().await.unwrap();
    let table = text(&server, &["alerts"]).await;
    assert!(table.contains("critical  no_healthy_chat_rest_processes"), "{table}");
    let doc = json(&server, &["alerts"]).await;
    let codes: Vec<&str> = doc["alerts"].as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"no_healthy_chat_rest_processes"), "{codes:?}");
}

#[tokio::test]
async fn throttling_shows_every_window_or_one_in_detail() {
    let server = start(Profile::Production, "[rate_limits.anonymous]\nper_minute = 1\nburst = 1").await;
    let mut c = clients(&server).await;
    c.workers.heartbeat(heartbeat("home-instance-1", "p1", ProcessStatus::Healthy)).await.unwrap();
    for _ in 0..3 {
        c.admission.check_capacity(check(UserType::Anonymous, "s1")).await.unwrap();
    }
    server.operations.housekeeping().await.unwrap();
    let table = text(&server, &["throttling"]).await;
    assert!(table.contains("\n1h      3         2          66.7%  2    0"), "{table}");
    assert!(table.contains("\n24h     3         2"), "{table}");
    let doc = json(&server, &["throttling"]).await;
    assert_eq!(doc["throttling_by_period"]["1h"]["rate_limit_429"], 2);
    let detail = text(&server, &["throttling", "--window", "1h"]).await;
    assert!(detail.starts_with("window 1h: 3 requests, 2 throttled (66.7%)"), "{detail}");
    let doc = json(&server, &["throttling", "--window", "6h"]).await;
    assert_eq!(doc["total_requests"], 3);
}

#[tokio::test]
async fn config_show_validate_and_apply() {
    let server = seeded().await;
    let table = text(&server, &["config", "show"]).await;
    let line = table.lines().find(|l| l.starts_with("runtime.concurrent_per_process ")).expect("listed");
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["runtime.concurrent_per_process", "5", "profile"]);
    let doc = json(&server, &["config", "show"]).await;
    assert_eq!(doc["values"]["config_version"]["value"], "0");

    // A config file's [runtime] table, or a JSON body as the HTTP route takes it.
    let toml = change_file(
        "profile = \"production\"\n[runtime]\nconcurrent_per_process = 8\ncapacity_buffer = 0.15\n",
        "toml",
    );
    let path = toml.0.display().to_string();
    assert!(text(&server, &["config", "validate", &path]).await.contains("valid: system capacity would be 22"));
    let doc = json(&server, &["config", "validate", &path]).await;
    assert_eq!((doc["valid"].as_bool(), doc["preview"]["totals"]["system_total"].as_u64()), (Some(true), Some(22)));

    let bad = change_file(r#"{"concurrent_per_process": -1}"#, "json");
    let out = admin(&server, ADMIN, &["config", "validate", &bad.0.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FIELD"), "errors as a table");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("floodgate admin: the change was refused: concurrent_per_process: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let applied = text(&server, &["config", "apply", &path]).await;
    assert!(applied.contains("applied version 1: system capacity 22"), "{applied}");
    let json_change = change_file(r#"{"concurrent_per_process": 10}"#, "json");
    let doc = json(&server, &["config", "apply", &json_change.0.display().to_string()]).await;
    assert_eq!((doc["applied"].as_bool(), doc["version"].as_u64()), (Some(true), Some(2)));
    // C=10, buffer 0.15: 8 effective + 20 queue.
    assert_eq!(doc["capacity"]["totals"]["system_total"], 28);
}

#[tokio::test]
async fn rls_config_lists_domains_sources_and_rules() {
    let mut s = settings(Profile::Production, "");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rls/peer");
    s.rls_options = floodgate::config::RlsOptions { path: Some(rules.clone()), ..Default::default() };
    let server = start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await;
    let table = text(&server, &["rls-config"]).await;
    assert!(table.starts_with(&format!("YAML rules from {}: version 1,", rules.display())), "{table}");
    assert!(table.contains("global shadow mode no; RateLimit headers no"), "{table}");
    assert!(table.contains("mongo_cps  2      "), "{table}");
    assert!(table.contains("peer/config.yaml"), "{table}");
    let row = table.lines().find(|l| l.contains("foo.bar_banned")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["rl", "foo.bar_banned", "0/minute"]);
    let shady = table.lines().find(|l| l.contains("foo.baz_shady")).unwrap_or_else(|| panic!("{table}"));
    assert!(shady.ends_with("shadow"), "{shady}");

    // --json is the /debug/rls-config document.
    let doc = json(&server, &["rls-config"]).await;
    assert_eq!(doc, http::get(server.http, "/debug/rls-config", Some(ADMIN)).await.json());
    assert_eq!(doc["domains"][0]["domain"], "mongo_cps");

    // Without --rls-config: the config file's rules only, none here.
    let server = seeded().await;
    let table = text(&server, &["rls-config"]).await;
    assert_eq!(
        table,
        "no --rls-config: the config file's [rls] rules only\nglobal shadow mode no; RateLimit headers no\nno domain configured\n"
    );
}

#[tokio::test]
async fn a_wrong_token_is_one_error_line_and_exit_one() {
    let server = seeded().await;
    for token in ["wrong-token", FRONTEND] {
        let out = admin(&server, token, &["status"]).await;
        assert_eq!(out.status.code(), Some(1), "{token}");
        assert!(out.stdout.is_empty(), "{token}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let expected = if token == FRONTEND { "permission denied" } else { "the admin token was refused" };
        assert!(stderr.starts_with(&format!("floodgate admin: {expected}")), "{stderr}");
        assert!(!stderr.contains(token), "the token is never echoed: {stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_one_error_line_and_exit_one() {
    let port = common::redis::free_port();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["admin", "status"])
            .env("FLOODGATE_ADMIN_TARGET", format!("http://127.0.0.1:{port}"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("floodgate admin: cannot reach floodgate at http://127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_https_target_is_reached_with_the_ca_file() {
    let pki = common::pki::Pki::new("floodgate");
    let mut s = settings(Profile::Production, "");
    s.tls = Some(floodgate::tls::TlsFiles {
        cert: pki.dir.join("server.pem"),
        key: pki.dir.join("server.key"),
        client_ca: None,
    });
    let server = start_with(s, std::sync::Arc::new(floodgate::clock::SystemClock)).await;
    let target = format!("https://localhost:{}", server.grpc.port());
    let ca = pki.path("ca.pem");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().expect("floodgate runs"))
    };
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = ["admin", "--target", &target, "--token", ADMIN].map(String::from).to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push("breakers".into());
        args
    };
    let out = run(args(&["--ca-file", &ca])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("storage"));
    let out = run(args(&[])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --ca-file"));
}

#[tokio::test]
async fn a_bare_host_port_target_is_reached_over_plaintext() {
    // Issue 23: `--target 127.0.0.1:50051` as grpcurl and the clients take it.
    let server = seeded().await;
    let out = admin_at(&server.grpc.to_string(), ADMIN, &["status"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
