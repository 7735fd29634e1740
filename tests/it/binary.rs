//! The `floodgate` binary itself: check-config, startup refusals, graceful
//! shutdown on SIGTERM, and server reflection as grpcurl uses it.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;
use floodgate_client::{Client, pb};

use common::process::{BIN, Process, temp_file};

fn check_config(text: &str) -> (bool, String) {
    let file = temp_file(text);
    let out = Command::new(BIN).arg("check-config").arg(&file.0).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn check_config_accepts_a_valid_file() {
    let (ok, out) =
        check_config("profile = \"production\"\n[runtime]\nconcurrent_per_process = 8\ncapacity_buffer = 0.15\n");
    assert!(ok, "{out}");
    assert!(out.contains("valid (production profile)"), "{out}");
}

#[test]
fn check_config_names_the_bad_field() {
    for (text, field) in [
        ("[runtime]\ncapacity_buffer = 1.5\n", "capacity_buffer"),
        ("[runtime]\nanonymous_threshold = 0.9\n", "anonymous_threshold"),
        ("[runtime]\nconcurrent_per_proces = 3\n", "concurrent_per_proces"),
        ("[runtime]\nconcurrent_per_process = \"five\"\n", "concurrent_per_process"),
        ("[runtime.rate_limits.anonymous]\nper_minute = 0\n", "rate_limits.anonymous.per_minute"),
        ("profil = \"production\"\n", "profil"),
    ] {
        let (ok, out) = check_config(text);
        assert!(!ok, "{text} must be refused");
        assert!(out.contains(field), "{text}: output {out:?} must name {field}");
    }
}

#[test]
fn production_refuses_to_start_without_tokens() {
    let out = Command::new(BIN)
        .args(["serve", "--profile", "production", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env_remove("FLOODGATE_ADMIN_TOKENS")
        .env_remove("FLOODGATE_FRONTEND_TOKENS")
        .env_remove("FLOODGATE_WORKER_TOKENS")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refuses to start without caller tokens"));
}

#[tokio::test]
async fn sigterm_finishes_in_flight_calls_and_exits_zero() {
    let mut server = Process::spawn("memory", "");
    let client = Client::connect(&server.grpc, Some(WORKER)).await.unwrap();
    let mut workers = client.workers();
    let long_poll = tokio::spawn(async move {
        workers
            .lease_tasks(pb::LeaseTasksRequest {
                instance_id: "i".into(),
                process_id: "p".into(),
                max_tasks: 1,
                lease_ms: 1_000,
                wait_ms: 1_500,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    let answer = long_poll.await.unwrap();
    assert!(answer.is_ok(), "the in-flight long poll must finish: {answer:?}");
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let server = start(floodgate::config::Profile::Production, "").await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await.unwrap();

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["floodgate.v1.Admission", "floodgate.v1.Workers", "floodgate.v1.Admin", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "floodgate.v1.Admission".into(),
        )),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        response.message_response,
        Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
    ));
}
