//! The Rust client's typed API (`floodgate_client::Client`) against the real
//! server: verdicts, durations, typed errors, the deadline and the retry
//! rules (UNAVAILABLE retried for CheckCapacity, and for EnqueueAtomic only
//! with an idempotency key).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use floodgate::clock::ManualClock;
use floodgate::config::Profile;
use floodgate::grpc::pb as server_pb;
use floodgate_client::{
    CapacityCheck, Client, Code, Decision, Enqueue, Error, Heartbeat, Lease, ProcessStatus, RetryPolicy, Transport,
    UserType,
};
use tokio_stream::wrappers::TcpListenerStream;

async fn typed(addr: std::net::SocketAddr, token: &str) -> Client {
    Client::builder(addr.to_string()).token(token).timeout(Duration::from_secs(5)).connect().await.expect("connects")
}

/// The seed's deployment: one healthy chat REST process of 5, so T = 14
/// and anonymous users fill the queue to 8.
async fn seed_server() -> Server {
    let server = start(Profile::Production, "").await;
    let worker = typed(server.grpc, WORKER).await;
    let ack = worker.heartbeat(Heartbeat::chat_rest("home-instance-1", "p1", 5)).await.expect("heartbeat");
    assert_eq!((ack.system_capacity, ack.health.as_str()), (14, "healthy"));
    server
}

#[tokio::test]
async fn an_admitted_chat_is_enqueued_leased_and_completed() {
    let server = seed_server().await;
    let frontend = typed(server.grpc, FRONTEND).await;
    let worker = typed(server.grpc, WORKER).await;

    let check = CapacityCheck::new(UserType::Registered, "user-42").transport(Transport::Rest).route("/landing/chat");
    let verdict = frontend.check_capacity(check).await.expect("check");
    assert!(verdict.is_admitted());
    assert_eq!(
        (verdict.decision(), verdict.http_status(), verdict.retry_after()),
        (Decision::Admit, 200, Duration::ZERO)
    );

    let admission = frontend.enqueue_atomic(Enqueue::new(UserType::Registered, "user-42", b"hello".to_vec())).await;
    let admission = admission.expect("enqueue");
    assert!(admission.is_admitted());
    assert_eq!((admission.http_status(), admission.queue_position()), (200, 1));
    let task_id = admission.task_id().expect("a task id").to_owned();

    let tasks = worker.lease_tasks(Lease::new("home-instance-1", "p1").max_tasks(5)).await.expect("lease");
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].task_id.as_str(), tasks[0].payload.as_slice()), (task_id.as_str(), &b"hello"[..]));
    assert_eq!((tasks[0].user_type, tasks[0].delivery_count), (Some(UserType::Registered), 1));
    worker.complete_task(&tasks[0].task_id, &tasks[0].lease_id).await.expect("complete");
    assert_eq!(load(&server).await, 0);

    // The lease is gone now: completing again is rejected, not a transport failure.
    let again = worker.complete_task(&tasks[0].task_id, &tasks[0].lease_id).await.unwrap_err();
    assert!(matches!(again, Error::Rejected { code: Code::FailedPrecondition, .. }), "{again:?}");
}

#[tokio::test]
async fn a_subject_over_its_rate_gets_429_with_retry_after_as_a_duration() {
    let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
    let server = backend_server(Backend::Memory, settings(Profile::Production, ""), clock).await;
    typed(server.grpc, WORKER).await.heartbeat(Heartbeat::chat_rest("i1", "p1", 5)).await.expect("heartbeat");
    let frontend = typed(server.grpc, FRONTEND).await;
    // Production: anonymous 10/min, burst 5.
    for i in 0..5 {
        let verdict = frontend.check_capacity(CapacityCheck::new(UserType::Anonymous, "10.0.0.7")).await.unwrap();
        assert!(verdict.is_admitted(), "request {i}");
    }
    let limited = frontend.check_capacity(CapacityCheck::new(UserType::Anonymous, "10.0.0.7")).await.unwrap();
    assert!(!limited.is_admitted());
    assert_eq!(
        (limited.decision(), limited.http_status(), limited.retry_after()),
        (Decision::RateLimited, 429, Duration::from_secs(6))
    );
    assert_eq!(limited.retry_after_secs(), 6);
}

#[tokio::test]
async fn backpressure_refuses_with_503_once_the_user_types_share_is_full() {
    let server = seed_server().await;
    let frontend = typed(server.grpc, FRONTEND).await;
    // T = 14: anonymous users may fill the queue to floor(0.60 × 14) = 8.
    for i in 0..8 {
        let admission =
            frontend.enqueue_atomic(Enqueue::new(UserType::Anonymous, format!("a{i}"), b"x".to_vec())).await.unwrap();
        assert!(admission.is_admitted(), "enqueue {i}");
    }
    let refused = frontend.enqueue_atomic(Enqueue::new(UserType::Anonymous, "a8", b"x".to_vec())).await.unwrap();
    assert!(!refused.is_admitted());
    assert_eq!((refused.verdict().decision(), refused.http_status()), (Decision::Backpressure, 503));
    assert_eq!((refused.task_id(), refused.retry_after()), (None, Duration::from_secs(1)));
    assert_eq!(load(&server).await, 8);
    // Registered users still fit (limit 11).
    let registered = frontend.enqueue_atomic(Enqueue::new(UserType::Registered, "r1", b"x".to_vec())).await.unwrap();
    assert!(registered.is_admitted());
}

#[tokio::test]
async fn with_no_capacity_level_one_answers_backpressure() {
    let server = start(Profile::Production, "").await;
    let frontend = typed(server.grpc, FRONTEND).await;
    let verdict = frontend.check_capacity(CapacityCheck::new(UserType::Registered, "user-1")).await.unwrap();
    assert_eq!((verdict.decision(), verdict.http_status()), (Decision::Backpressure, 503));
    assert!(verdict.retry_after_secs() >= 1);
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_once_the_retries_are_spent() {
    let server = seed_server().await;
    let frontend = typed(server.grpc, FRONTEND).await;
    assert!(frontend.check_capacity(CapacityCheck::new(UserType::Registered, "u")).await.unwrap().is_admitted());
    server.stop().await;

    let err = frontend.check_capacity(CapacityCheck::new(UserType::Registered, "u")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { method: "CheckCapacity", attempts: 4, .. }), "{err:?}");
    assert!(err.is_unreachable());
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.to_string().starts_with("CheckCapacity: floodgate unavailable after 4 attempt(s)"), "{err}");
}

#[tokio::test]
async fn a_retry_that_would_pass_the_deadline_is_not_attempted() {
    let server = seed_server().await;
    let slow_retries = RetryPolicy {
        initial_backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let frontend = typed(server.grpc, FRONTEND).await.with_retry(slow_retries).with_timeout(Duration::from_secs(1));
    server.stop().await;
    // The first pause (15-30 s) would end past the 1 s deadline: give up at once with the cause.
    let err = frontend.check_capacity(CapacityCheck::new(UserType::Registered, "u")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { attempts: 1, .. }), "{err:?}");
}

#[tokio::test]
async fn the_caller_is_refused_for_a_wrong_token_or_role_and_bad_input_is_invalid() {
    let server = seed_server().await;
    let check = || CapacityCheck::new(UserType::Registered, "u");

    let stranger = typed(server.grpc, "not-a-token").await;
    let err = stranger.check_capacity(check()).await.unwrap_err();
    assert!(matches!(err, Error::Refused { code: Code::Unauthenticated, .. }), "{err:?}");

    let worker = typed(server.grpc, WORKER).await;
    let err = worker.check_capacity(check()).await.unwrap_err();
    assert!(matches!(err, Error::Refused { code: Code::PermissionDenied, .. }), "{err:?}");

    let frontend = typed(server.grpc, FRONTEND).await;
    let too_big = Enqueue::new(UserType::Registered, "u", vec![0; 64 * 1024 + 1]);
    match frontend.enqueue_atomic(too_big).await.unwrap_err() {
        Error::Invalid { method, message } => {
            assert_eq!(method, "EnqueueAtomic");
            assert!(message.contains("payload"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(load(&server).await, 0);
}

#[tokio::test]
async fn the_builder_connects_over_mutual_tls_with_a_token() {
    use floodgate_client::tls::{Certificate, ClientTlsConfig, Identity};
    let pki = common::pki::Pki::new("typed-client");
    let mut settings = settings(Profile::Production, "");
    settings.tls = Some(floodgate::tls::TlsFiles {
        cert: pki.dir.join("server.pem"),
        key: pki.dir.join("server.key"),
        client_ca: Some(pki.dir.join("ca.pem")),
    });
    let server = start_with(settings, Arc::new(floodgate::clock::SystemClock)).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
        .identity(Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem));
    // A bare host:port with TLS set means https.
    let admin = Client::builder(server.grpc.to_string()).tls(tls).token(ADMIN).connect().await.expect("TLS connects");
    let calculation = admin.capacity_calculation().await.expect("over TLS");
    assert_eq!(calculation.totals.map(|t| t.system_total), Some(0));
}

#[tokio::test]
async fn heartbeats_report_status_and_unhealthy_leaves_the_capacity() {
    let server = seed_server().await;
    let worker = typed(server.grpc, WORKER).await;
    let ack = worker
        .heartbeat(Heartbeat::chat_rest("home-instance-1", "p1", 5).status(ProcessStatus::Unhealthy))
        .await
        .unwrap();
    assert_eq!((ack.health.as_str(), ack.system_capacity), ("unhealthy", 0));
    assert_eq!(ack.interval, Duration::from_secs(5));
}

/// A gRPC hop in front of floodgate that forwards `EnqueueAtomic` and then
/// loses the first answer on its way back (UNAVAILABLE), as a dropped
/// connection would after the server committed.
#[derive(Clone)]
struct LosesFirstAnswer {
    upstream: server_pb::admission_client::AdmissionClient<tonic::transport::Channel>,
    /// The idempotency key of every attempt that reached floodgate.
    attempts: Arc<Mutex<Vec<String>>>,
    /// The answer floodgate gave to the first attempt, which the caller never saw.
    lost: Arc<Mutex<Option<server_pb::EnqueueAtomicResponse>>>,
}

fn as_frontend<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {FRONTEND}").parse().expect("header value");
    request.metadata_mut().insert("authorization", bearer);
    request
}

#[tonic::async_trait]
impl server_pb::admission_server::Admission for LosesFirstAnswer {
    async fn check_capacity(
        &self,
        request: tonic::Request<server_pb::CheckCapacityRequest>,
    ) -> Result<tonic::Response<server_pb::CheckCapacityResponse>, tonic::Status> {
        self.upstream.clone().check_capacity(as_frontend(request.into_inner())).await
    }

    async fn enqueue_atomic(
        &self,
        request: tonic::Request<server_pb::EnqueueAtomicRequest>,
    ) -> Result<tonic::Response<server_pb::EnqueueAtomicResponse>, tonic::Status> {
        let request = request.into_inner();
        let key = request.idempotency_key.clone();
        let answer = self.upstream.clone().enqueue_atomic(as_frontend(request)).await?.into_inner();
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            attempts.push(key);
            attempts.len()
        };
        if attempt == 1 {
            *self.lost.lock().expect("lock") = Some(answer);
            return Err(tonic::Status::unavailable("the answer was lost on its way back"));
        }
        Ok(tonic::Response::new(answer))
    }
}

/// Starts the lossy hop in front of `server`; answers its address.
async fn lossy_hop(server: &Server) -> (std::net::SocketAddr, LosesFirstAnswer) {
    let upstream = server_pb::admission_client::AdmissionClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("hop connects");
    let hop = LosesFirstAnswer { upstream, attempts: Arc::default(), lost: Arc::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("hop binds");
    let addr = listener.local_addr().expect("hop address");
    let service = server_pb::admission_server::AdmissionServer::new(hop.clone());
    tokio::spawn(
        tonic::transport::Server::builder().add_service(service).serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, hop)
}

#[tokio::test]
async fn an_enqueue_retried_with_its_idempotency_key_is_admitted_once() {
    let server = seed_server().await;
    let (hop_addr, hop) = lossy_hop(&server).await;
    let frontend = typed(hop_addr, FRONTEND).await;

    let enqueue = Enqueue::new(UserType::Registered, "user-42", b"hello".to_vec()).idempotency_key("message-1");
    let admission = frontend.enqueue_atomic(enqueue).await.expect("admitted after a retry");

    assert_eq!(*hop.attempts.lock().unwrap(), ["message-1", "message-1"]);
    let lost = hop.lost.lock().unwrap().clone().expect("the first answer");
    assert!(admission.is_admitted());
    assert_eq!(admission.task_id(), Some(lost.task_id.as_str()), "the retry got the first answer");
    assert_eq!(load(&server).await, 1, "enqueued once");
}

#[tokio::test]
async fn an_enqueue_without_an_idempotency_key_is_not_retried() {
    let server = seed_server().await;
    let (hop_addr, hop) = lossy_hop(&server).await;
    let frontend = typed(hop_addr, FRONTEND).await;

    let err = frontend.enqueue_atomic(Enqueue::new(UserType::Registered, "user-42", b"hello".to_vec())).await;
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Unavailable { method: "EnqueueAtomic", attempts: 1, .. }), "{err:?}");
    assert_eq!(hop.attempts.lock().unwrap().len(), 1);
    // Why: the lost attempt was enqueued; a blind retry would have enqueued a second task.
    assert_eq!(load(&server).await, 1);
}
