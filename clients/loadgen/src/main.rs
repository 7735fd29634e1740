//! floodgate-loadgen: drives floodgate at a fixed concurrency for a fixed
//! time (or request count) and prints requests/s, p50/p99 and the decision
//! split. `--mode empty` calls `grpc.health.v1.Health/Check` on the same
//! server stack: the baseline every figure is compared with. `--mode rls`
//! calls Envoy's `ShouldRateLimit` as Envoy's ratelimit filter would.

mod rls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use floodgate_client::pb::{self, Decision, ProcessStatus, UserType};
use floodgate_client::{Client, chat_rest_heartbeat};
use hdrhistogram::Histogram;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use rls::{Requests, RlsShape};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Mode {
    /// grpc.health.v1 Check: the empty-RPC baseline.
    Empty,
    /// Level 1: CheckCapacity.
    Check,
    /// Level 2 only: EnqueueAtomic (the queue fills; use with completions elsewhere or short runs).
    Enqueue,
    /// EnqueueAtomic → LeaseTasks → CompleteTask, one cycle per iteration.
    Cycle,
    /// Envoy's ShouldRateLimit (RLS v3) with --domain and --descriptor.
    Rls,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum User {
    Anonymous,
    Registered,
    Privileged,
}

#[derive(Parser, Debug)]
#[command(name = "floodgate-loadgen", about = "Load generator for floodgate")]
struct Args {
    /// floodgate's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    #[arg(long, value_enum, default_value = "check")]
    mode: Mode,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop after this many measured requests instead (0 = use --duration).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// HTTP/2 connections to spread the load over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Distinct rate-limit subjects to cycle through (0 = every request a new subject).
    #[arg(long, default_value_t = 10_000)]
    subjects: u64,
    #[arg(long, value_enum, default_value = "registered")]
    user_type: User,
    /// Bearer token for Admission (and Workers unless --worker-token is set).
    #[arg(long, env = "FLOODGATE_TOKEN")]
    token: Option<String>,
    #[arg(long, env = "FLOODGATE_WORKER_TOKEN")]
    worker_token: Option<String>,
    /// Keep one chat REST process heartbeating so that capacity exists.
    #[arg(long)]
    heartbeat: bool,
    /// Print the summary as one JSON object too.
    #[arg(long)]
    json: bool,
    /// `--mode rls`: the domain of the requests.
    #[arg(long, default_value = "floodgate")]
    domain: String,
    /// `--mode rls`: one descriptor as `key=value,key=value`; repeat for
    /// several per request. `{subject}` becomes the cycling subject and
    /// `{user_type}` the --user-type. The default runs floodgate's Level 1
    /// through Envoy's API (no rules needed); for descriptor rules, e.g.
    /// `--domain chat --descriptor 'remote_address={subject}'`.
    #[arg(long, default_value = "user_type={user_type},subject={subject}")]
    descriptor: Vec<String>,
    /// `--mode rls`: hits_addend of every request (0 means 1).
    #[arg(long, default_value_t = 0)]
    hits_addend: u32,
}

/// `key=value,key=value` → entries.
fn parse_descriptor(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(format!("--descriptor {text:?}: expected key=value[,key=value…]")),
        })
        .collect()
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    admitted: AtomicU64,
    rate_limited: AtomicU64,
    backpressure: AtomicU64,
    circuit_open: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn count(&self, decision: Decision) {
        let counter = match decision {
            Decision::Admit => &self.admitted,
            Decision::RateLimited => &self.rate_limited,
            Decision::Backpressure => &self.backpressure,
            Decision::CircuitOpen => &self.circuit_open,
            Decision::Unspecified => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn user_name(user: User) -> &'static str {
    match user {
        User::Anonymous => "anonymous",
        User::Registered => "registered",
        User::Privileged => "privileged",
    }
}

fn user_type(user: User) -> UserType {
    match user {
        User::Anonymous => UserType::Anonymous,
        User::Registered => UserType::Registered,
        User::Privileged => UserType::Privileged,
    }
}

struct Worker {
    client: Client,
    mode: Mode,
    user_type: UserType,
    subjects: u64,
    worker_client: Client,
    /// `--mode rls`: the connection, the requests and the bearer token.
    channel: Channel,
    rls: Arc<Requests>,
    bearer: Option<MetadataValue<Ascii>>,
}

impl Worker {
    fn subject(&self, n: u64) -> String {
        if self.subjects == 0 { format!("s{n}") } else { format!("s{}", n % self.subjects) }
    }

    async fn once(&self, n: u64, counters: &Counters) -> Result<(), floodgate_client::RpcStatus> {
        match self.mode {
            Mode::Rls => {
                let decision = rls::should_rate_limit(&self.channel, self.rls.get(n), self.bearer.as_ref()).await?;
                counters.count(decision);
            }
            Mode::Empty => {
                self.client.health().check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
            }
            Mode::Check => {
                let r = self
                    .client
                    .admission()
                    .check_capacity(pb::CheckCapacityRequest {
                        user_type: self.user_type.into(),
                        subject: self.subject(n),
                        transport: pb::Transport::Rest.into(),
                        route: "/landing/chat".into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                counters.count(r.decision());
            }
            Mode::Enqueue | Mode::Cycle => {
                let r = self
                    .client
                    .admission()
                    .enqueue_atomic(pb::EnqueueAtomicRequest {
                        user_type: self.user_type.into(),
                        subject: self.subject(n),
                        transport: pb::Transport::Rest.into(),
                        payload: b"chat task".to_vec(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                counters.count(r.decision());
                if self.mode == Mode::Cycle && r.decision() == Decision::Admit {
                    let mut workers = self.worker_client.workers();
                    let tasks = workers
                        .lease_tasks(pb::LeaseTasksRequest {
                            instance_id: "loadgen".into(),
                            process_id: "loadgen-worker".into(),
                            max_tasks: 1,
                            lease_ms: 30_000,
                            wait_ms: 0,
                        })
                        .await?
                        .into_inner()
                        .tasks;
                    for t in tasks {
                        workers
                            .complete_task(pb::CompleteTaskRequest { task_id: t.task_id, lease_id: t.lease_id })
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let worker_token = args.worker_token.clone().or_else(|| args.token.clone());
    // The connections as floodgate-client's builder makes them, kept for
    // `--mode rls`'s encoded requests too.
    let uri = if args.target.contains("://") { args.target.clone() } else { format!("http://{}", args.target) };
    let endpoint = Endpoint::from_shared(uri)?.tcp_nodelay(true).connect_timeout(Duration::from_secs(5));
    let (mut channels, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..args.connections.max(1) {
        let channel = endpoint.connect().await?;
        clients.push(Client::from_channel(channel.clone(), args.token.as_deref())?);
        channels.push(channel);
    }
    let bearer = match &args.token {
        Some(token) => {
            let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse()?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let worker_client = clients[0].with_token(worker_token.as_deref())?;
    if args.heartbeat {
        let workers = worker_client.clone();
        workers
            .workers()
            .heartbeat(chat_rest_heartbeat("loadgen", "loadgen-worker", 1_000, ProcessStatus::Healthy))
            .await?;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let hb = chat_rest_heartbeat("loadgen", "loadgen-worker", 1_000, ProcessStatus::Healthy);
                if let Err(e) = workers.workers().heartbeat(hb).await {
                    eprintln!("heartbeat failed: {e}");
                }
            }
        });
    }

    let templates = args
        .descriptor
        .iter()
        .map(|d| parse_descriptor(&d.replace("{user_type}", user_name(args.user_type))))
        .collect::<Result<Vec<_>, _>>()?;
    let shape = RlsShape { domain: args.domain.clone(), descriptors: templates, hits_addend: args.hits_addend };
    let rls = Arc::new(Requests::new(shape, args.subjects, args.mode == Mode::Rls));
    let counters = Arc::new(Counters::default());
    let measuring = Arc::new(AtomicBool::new(args.warmup <= 0.0));
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..args.concurrency {
        let worker = Worker {
            client: clients[i % clients.len()].clone(),
            mode: args.mode,
            user_type: user_type(args.user_type),
            subjects: args.subjects,
            worker_client: worker_client.clone(),
            channel: channels[i % channels.len()].clone(),
            rls: rls.clone(),
            bearer: bearer.clone(),
        };
        let (counters, measuring, stop, sequence) =
            (counters.clone(), measuring.clone(), stop.clone(), sequence.clone());
        let limit = args.requests;
        handles.push(tokio::spawn(async move {
            let warmup = Counters::default();
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while !stop.load(Ordering::Relaxed) {
                let n = sequence.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let measured = measuring.load(Ordering::Relaxed);
                let result = worker.once(n, if measured { &counters } else { &warmup }).await;
                if !measured {
                    continue;
                }
                let _ = histogram.record(started.elapsed().as_micros() as u64);
                let done = counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
                if let Err(e) = result
                    && counters.errors.fetch_add(1, Ordering::Relaxed) < 5
                {
                    eprintln!("rpc error: {e}");
                }
                if limit > 0 && done >= limit {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            histogram
        }));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.warmup.max(0.0))).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut last = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let now = counters.requests.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0}s] {:>9} req/s  admitted {} refused {} errors {}",
            started.elapsed().as_secs_f64(),
            now - last,
            counters.admitted.load(Ordering::Relaxed),
            counters.rate_limited.load(Ordering::Relaxed)
                + counters.backpressure.load(Ordering::Relaxed)
                + counters.circuit_open.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
        );
        last = now;
        if args.requests == 0 && started.elapsed().as_secs_f64() >= args.duration {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for handle in handles {
        histogram.add(handle.await?)?;
    }
    let requests = counters.requests.load(Ordering::Relaxed);
    let rps = requests as f64 / elapsed;
    let (p50, p99) = (histogram.value_at_quantile(0.50), histogram.value_at_quantile(0.99));
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "mode={:?} concurrency={} connections={} elapsed_s={:.2} requests={} rps={:.0} p50_us={} p99_us={} admitted={} rate_limited={} backpressure={} circuit_open={} errors={}",
        args.mode,
        args.concurrency,
        args.connections,
        elapsed,
        requests,
        rps,
        p50,
        p99,
        get(&counters.admitted),
        get(&counters.rate_limited),
        get(&counters.backpressure),
        get(&counters.circuit_open),
        get(&counters.errors),
    );
    if args.json {
        let summary = serde_json::json!({
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "concurrency": args.concurrency, "connections": args.connections,
            "elapsed_s": elapsed, "requests": requests, "rps": rps, "p50_us": p50, "p99_us": p99,
            "admitted": get(&counters.admitted), "rate_limited": get(&counters.rate_limited),
            "backpressure": get(&counters.backpressure), "circuit_open": get(&counters.circuit_open),
            "errors": get(&counters.errors),
        });
        println!("{summary}");
    }
    Ok(())
}
