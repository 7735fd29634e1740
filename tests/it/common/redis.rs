//! A private `redis-server` per test: a free port, its own directory,
//! stopped (SIGKILL) on drop. Never touches a server it did not start.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    durable: bool,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// An in-memory server (no persistence).
    pub fn start() -> RedisServer {
        Self::launch(false, free_port(), None)
    }

    /// A server with `appendonly yes` and `appendfsync always`.
    pub fn start_durable() -> RedisServer {
        Self::launch(true, free_port(), None)
    }

    fn launch(durable: bool, port: u16, dir: Option<PathBuf>) -> RedisServer {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = dir.unwrap_or_else(|| {
            let dir = std::env::temp_dir().join(format!(
                "floodgate-redis-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        });
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        command.arg("--dir").arg(&dir);
        if durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install Debian's redis-server package (scripts/test.sh does)")
        });
        let server = RedisServer { child: Some(child), port, dir, durable };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                if stream.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 7];
                    if stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not become ready", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (the AOF is replayed).
    pub fn restart(&mut self) {
        self.kill();
        let again = Self::launch(self.durable, self.port, Some(self.dir.clone()));
        self.child = again.child_taken();
    }

    fn child_taken(mut self) -> Option<Child> {
        self.child.take()
    }

    /// `INFO commandstats` as (command, calls) pairs.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string(), "INFO", "commandstats"]).output();
        let Ok(out) = out else { return Vec::new() };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---- other topologies: TLS, Cluster, Sentinel (tests/it/redis_topologies.rs) ----

/// A fresh directory for one server's files, removed by its owner.
fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "floodgate-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// PEM files a TLS server uses: its certificate and key, and the CA that
/// signed it (which also checks client certificates when they are required).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether clients must present a certificate the CA issued.
    pub require_client_cert: bool,
}

impl TlsFiles {
    /// Serve only TLS on `port` (`--port 0`).
    fn server_args(&self, port: u16) -> Vec<String> {
        let auth = if self.require_client_cert { "yes" } else { "no" };
        self.directives(port)
            .into_iter()
            .flat_map(|(k, v)| [format!("--{k}"), v])
            .chain(["--tls-auth-clients".into(), auth.into()])
            .collect()
    }

    /// The same as config-file lines (for sentinel.conf).
    fn config_lines(&self, port: u16) -> String {
        self.directives(port).into_iter().map(|(k, v)| format!("{k} {v}\n")).collect::<String>()
            + "tls-auth-clients no\n"
    }

    fn directives(&self, port: u16) -> Vec<(String, String)> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            ("port".into(), "0".into()),
            ("tls-port".into(), port.to_string()),
            ("tls-cert-file".into(), path(&self.cert)),
            ("tls-key-file".into(), path(&self.key)),
            ("tls-ca-cert-file".into(), path(&self.ca)),
            ("tls-replication".into(), "yes".into()),
        ]
    }

    /// redis-cli's TLS arguments (its client certificate is the server's).
    fn cli_args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path(&self.ca),
            "--cert".into(),
            path(&self.cert),
            "--key".into(),
            path(&self.key),
        ]
    }
}

fn redis_cli() -> Command {
    Command::new("redis-cli")
}

fn run_cli(mut command: Command) -> std::process::Output {
    command.output().unwrap_or_else(|e| {
        panic!("cannot run redis-cli ({e}): install Debian's redis-tools package (scripts/test.sh does)")
    })
}

/// Runs `redis-cli` against 127.0.0.1:`port` (over TLS with `tls`) and
/// returns its stdout; panics with a clear message when the tool is missing.
pub fn cli_at(port: u16, tls: Option<&TlsFiles>, args: &[&str]) -> String {
    let mut command = redis_cli();
    command.args(tls.map(TlsFiles::cli_args).unwrap_or_default());
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
    String::from_utf8_lossy(&run_cli(command).stdout).trim().to_owned()
}

/// [`cli_at`] over plain TCP.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_at(port, None, args)
}

/// Polls `ok` every 50 ms for up to `secs` seconds; panics naming `what`.
pub fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// A `redis-server` (data node or Sentinel) started by a test with its
/// own arguments: SIGKILLed and its directory removed on drop.
pub struct Node {
    child: Option<Child>,
    /// The port clients use (the TLS port of a TLS node).
    pub port: u16,
    pub dir: PathBuf,
    pub tls: Option<TlsFiles>,
}

impl Node {
    /// `redis-server <args>` in the fresh directory `dir`; ready once it
    /// answers PING.
    fn spawn(tag: &str, dir: PathBuf, port: u16, tls: Option<TlsFiles>, args: &[String]) -> Node {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install Debian's redis-server package (scripts/test.sh does)")
            });
        let node = Node { child: Some(child), port, dir, tls };
        wait_until(10, &format!("{tag} on port {port}"), || node.cli(&["PING"]) == "PONG");
        node
    }

    /// A data node on a free port (TLS only with `tls`), in memory only,
    /// with extra arguments (`{dir}` in one becomes its directory).
    pub fn start(tag: &str, tls: Option<&TlsFiles>, extra: &[String]) -> Node {
        let (port, dir) = (free_port(), fresh_dir(tag));
        let mut args: Vec<String> =
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"].map(String::from).to_vec();
        args.push(dir.display().to_string());
        match tls {
            Some(tls) => args.extend(tls.server_args(port)),
            None => args.extend(["--port".to_owned(), port.to_string()]),
        }
        args.extend(extra.iter().map(|a| a.replace("{dir}", &dir.display().to_string())));
        Self::spawn(tag, dir, port, tls.cloned(), &args)
    }

    /// `redis-server sentinel.conf --sentinel` monitoring `master` as
    /// `name` (quorum 1, down after 1 s), its timers shortened through
    /// `SENTINEL DEBUG` so that failovers finish within a few seconds.
    pub fn start_sentinel(name: &str, master: u16, tls: Option<&TlsFiles>) -> Node {
        let (port, dir) = (free_port(), fresh_dir("sentinel"));
        let listen = match tls {
            Some(tls) => tls.config_lines(port),
            None => format!("port {port}\n"),
        };
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "{listen}bind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {name} 1000\nsentinel failover-timeout {name} 5000\n",
                dir.display()
            ),
        )
        .unwrap();
        let node = Self::spawn("sentinel", dir, port, tls.cloned(), &[conf.display().to_string(), "--sentinel".into()]);
        // INFO every 100 ms (not 10 s) finds replicas and role changes at
        // once. The ping period stays 1 s: a replica's INFO must be younger
        // than five ping periods to be promoted, and while the master is
        // down the Sentinel refreshes it only every second.
        let tuned = node.cli(&["SENTINEL", "DEBUG", "info-period", "100", "publish-period", "200"]);
        assert_eq!(tuned, "OK", "SENTINEL DEBUG (Redis 7+) answered {tuned:?}");
        node
    }

    /// `redis-cli` against this node.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_at(self.port, self.tls.as_ref(), args)
    }

    /// `redis-cli` on a Cluster replica after `READONLY` on the same
    /// connection, so that it answers for its primary's slots instead of
    /// redirecting (MOVED); the last command's answer.
    pub fn cli_readonly(&self, args: &[&str]) -> String {
        use std::io::Write;
        let mut command = redis_cli();
        command.args(self.tls.as_ref().map(TlsFiles::cli_args).unwrap_or_default());
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().expect("redis-cli runs (Debian's redis-tools package)");
        let mut stdin = child.stdin.take().expect("piped stdin");
        writeln!(stdin, "READONLY\n{}", args.join(" ")).expect("redis-cli reads its commands");
        drop(stdin);
        let out = child.wait_with_output().expect("redis-cli ends");
        String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("").to_owned()
    }

    /// One field of an `INFO` section, e.g. `info("replication", "role")`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        self.cli(&["INFO", section])
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{field}:")).map(str::to_owned))
    }

    /// `ROLE`'s first line: `master`, `slave` (or empty when down).
    pub fn role(&self) -> String {
        self.cli(&["ROLE"]).lines().next().unwrap_or("").to_owned()
    }

    /// `INFO commandstats` calls of `command` (lower case, e.g. `evalsha`).
    pub fn calls(&self, command: &str) -> u64 {
        self.info("commandstats", &format!("cmdstat_{command}"))
            .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")?.parse().ok()))
            .unwrap_or(0)
    }

    /// Whether this node was killed.
    pub fn is_down(&self) -> bool {
        self.child.is_none()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the node keeps its connections open and answers nothing
    /// (a hung primary), until [`Node::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running node").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` masters (no replicas) on free ports, every slot
/// assigned and `cluster_state:ok` on every node; over TLS (the cluster
/// bus too) with `tls`.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start(n: usize, tls: Option<&TlsFiles>) -> Cluster {
        Self::start_with_replicas(n, 0, tls)
    }

    /// `masters` primaries with `replicas` replicas each, every replica in
    /// sync. Failover after a primary dies takes a few seconds
    /// (`cluster-node-timeout` 2 s); meanwhile the other primaries keep
    /// serving their slots (`cluster-require-full-coverage no`).
    pub fn start_with_replicas(masters: usize, replicas: usize, tls: Option<&TlsFiles>) -> Cluster {
        let n = masters * (1 + replicas);
        let nodes: Vec<Node> = (0..n)
            .map(|_| {
                let mut args: Vec<String> = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "{dir}/nodes.conf".into(),
                    // The bus port is free too (by default it is port + 10000).
                    "--cluster-port".into(),
                    free_port().to_string(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    // Keep serving the covered slots while one primary fails
                    // over (Redis's default, yes, refuses every key of every
                    // shard then: CLUSTERDOWN); docs/scaling.md asks for it.
                    "--cluster-require-full-coverage".into(),
                    "no".into(),
                ];
                if tls.is_some() {
                    args.extend(["--tls-cluster".into(), "yes".into()]);
                }
                Node::start("redis-cluster", tls, &args)
            })
            .collect();
        let mut create = redis_cli();
        create.args(tls.map(TlsFiles::cli_args).unwrap_or_default()).args(["--cluster", "create"]);
        create.args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let out = run_cli(create);
        assert!(out.status.success(), "redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        for node in &nodes {
            wait_until(20, &format!("cluster_state:ok on port {}", node.port), || {
                node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        let cluster = Cluster { nodes };
        wait_until(30, "every replica in sync", || {
            cluster.primaries().len() == masters
                && cluster
                    .nodes
                    .iter()
                    .filter(|n| n.role() == "slave")
                    .all(|n| n.info("replication", "master_link_status").as_deref() == Some("up"))
        });
        cluster
    }

    /// The nodes that are primaries now (`ROLE`), in start order; a killed
    /// node is none.
    pub fn primaries(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| !n.is_down() && n.role() == "master").collect()
    }

    /// The node serving `key`'s slot now, as the nodes that are up see it.
    pub fn owner(&self, key: &str) -> &Node {
        let slot: u16 = self.any_up().cli(&["CLUSTER", "KEYSLOT", key]).parse().expect("CLUSTER KEYSLOT");
        self.slot_owner(slot)
    }

    /// The primary serving `slot` now, by `CLUSTER NODES` of a node that is
    /// up: lines of `id ip:port@bus flags primary … link-state slots…`.
    pub fn slot_owner(&self, slot: u16) -> &Node {
        let table = self.any_up().cli(&["CLUSTER", "NODES"]);
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if serves {
                let port: u16 = fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok()).expect("ip:port@bus");
                return self.nodes.iter().find(|n| n.port == port).expect("a node of this cluster");
            }
        }
        panic!("no primary serves slot {slot}: {table}");
    }

    fn any_up(&self) -> &Node {
        self.nodes.iter().find(|n| !n.is_down()).expect("a node that is up")
    }

    /// `redis-cluster://` (`rediss-cluster://` over TLS) with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let scheme = if self.nodes[0].tls.is_some() { "rediss-cluster" } else { "redis-cluster" };
        format!("{scheme}://{}/", seeds.join(","))
    }
}

/// A master, one replica and one Sentinel (quorum 1) watching them as
/// `mymaster`, the replica in sync and known to the Sentinel; everything
/// over TLS with `tls` (replication and the Sentinel's links too).
pub struct SentinelSet {
    pub master: Node,
    pub replica: Node,
    pub sentinel: Node,
}

pub const MASTER_NAME: &str = "mymaster";

impl SentinelSet {
    pub fn start(tls: Option<&TlsFiles>) -> SentinelSet {
        let master = Node::start("redis-master", tls, &[]);
        let replica =
            Node::start("redis-replica", tls, &["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        wait_until(20, "the replica in sync", || {
            replica.info("replication", "master_link_status").as_deref() == Some("up")
        });
        let sentinel = Node::start_sentinel(MASTER_NAME, master.port, tls);
        let set = SentinelSet { master, replica, sentinel };
        set.wait_replica_known();
        set
    }

    /// `redis+sentinel://127.0.0.1:<sentinel>/mymaster/0` (`rediss+sentinel` over TLS).
    pub fn url(&self) -> String {
        let scheme = if self.sentinel.tls.is_some() { "rediss+sentinel" } else { "redis+sentinel" };
        format!("{scheme}://127.0.0.1:{}/{MASTER_NAME}/0", self.sentinel.port)
    }

    /// The master's port as the Sentinel names it.
    pub fn master_port(&self) -> u16 {
        let out = self.sentinel.cli(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok()).unwrap_or(0)
    }

    /// The data node on `port`.
    pub fn node(&self, port: u16) -> &Node {
        if port == self.master.port { &self.master } else { &self.replica }
    }

    /// The data node on `port`, to kill it.
    pub fn node_mut(&mut self, port: u16) -> &mut Node {
        if port == self.master.port { &mut self.master } else { &mut self.replica }
    }

    fn other(&self, port: u16) -> u16 {
        if port == self.master.port { self.replica.port } else { self.master.port }
    }

    /// Until the Sentinel sees a healthy replica it can promote.
    fn wait_replica_known(&self) {
        wait_until(20, "the Sentinel to see a healthy replica", || {
            let out = self.sentinel.cli(&["SENTINEL", "REPLICAS", MASTER_NAME]);
            let lines: Vec<&str> = out.lines().map(str::trim).collect();
            let field = |name: &str| lines.iter().position(|l| *l == name).and_then(|i| lines.get(i + 1)).copied();
            field("flags") == Some("slave") && field("master-link-status") == Some("ok")
        });
    }

    /// Until the replica has every write the master has.
    pub fn wait_replicated(&self) {
        let master = self.master_port();
        let (master, replica) = (self.node(master), self.node(self.other(master)));
        let offset = |node: &Node, field: &str| -> u64 {
            node.info("replication", field).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        let target = offset(master, "master_repl_offset");
        wait_until(10, "the replica to catch up", || offset(replica, "slave_repl_offset") >= target);
    }

    /// Until the Sentinel names another master than `old` (after it died);
    /// returns the new master's port.
    pub fn wait_promoted(&self, old: u16) -> u16 {
        wait_until(30, "the Sentinel to promote the replica", || self.master_port() != old);
        self.master_port()
    }

    /// `SENTINEL FAILOVER` (again if the Sentinel aborts it) until the
    /// Sentinel names the other node and the old master has been turned
    /// into its replica. Returns the new master's port.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let new = self.other(old);
        let deadline = Instant::now() + Duration::from_secs(30);
        'attempts: while Instant::now() < deadline {
            self.wait_replica_known();
            let answer = self.sentinel.cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
            let attempt = Instant::now() + Duration::from_secs(5);
            while Instant::now() < attempt {
                if self.master_port() == new {
                    break 'attempts;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("SENTINEL FAILOVER answered {answer:?} but the master did not change; again");
        }
        assert_eq!(self.master_port(), new, "the Sentinel never promoted the replica");
        wait_until(20, "the old master to become a replica", || {
            self.node(old).info("replication", "role").as_deref() == Some("slave")
        });
        new
    }
}

/// `redis-cli MONITOR` of a server into a file: every command the server
/// runs, those inside scripts too (`[0 lua] "GET" "key"`), to count the
/// store calls that touch one key. Stopped on drop.
pub struct Monitor {
    child: Option<Child>,
    port: u16,
    file: PathBuf,
}

impl Monitor {
    /// Monitors the server on `port`; ready once it has seen a marker.
    pub fn start(port: u16) -> Monitor {
        let file = fresh_dir("monitor").join("monitor.txt");
        let out = std::fs::File::create(&file).unwrap();
        let child = redis_cli()
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "MONITOR"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): install Debian's redis-tools package"));
        let monitor = Monitor { child: Some(child), port, file };
        monitor.sync();
        monitor
    }

    /// Until everything the server ran before this call is in the file.
    fn sync(&self) {
        static N: AtomicU64 = AtomicU64::new(0);
        let marker = format!("monitor-marker-{}", N.fetch_add(1, Ordering::SeqCst));
        wait_until(30, "the monitor to see its marker", || {
            cli(self.port, &["ECHO", &marker]);
            std::fs::read_to_string(&self.file).unwrap_or_default().contains(&marker)
        });
    }

    /// Commands run so far whose line contains every one of `parts`
    /// (e.g. `["\"GET\"", "{flooder}"]`).
    pub fn count(&self, parts: &[&str]) -> usize {
        self.sync();
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        text.lines().filter(|line| parts.iter().all(|p| line.contains(p))).count()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
