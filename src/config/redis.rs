//! The Redis settings: where the shared store lives ([`RedisUrl`], one of
//! the [`SCHEMES`]), its TLS files and whose clock its scripts read. Parsed
//! here, at startup, so that a bad URL is refused naming the field; the
//! store opens the connection from these values.

use std::path::PathBuf;

use redis::{IntoConnectionInfo, RedisError};

/// Where "now" comes from for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// Redis TIME: one clock for all replicas (production).
    Server,
    /// The caller's clock, passed to every script (tests with a manual clock).
    Caller,
}

/// PEM files for TLS to Redis (`rediss…` URLs only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    /// CA bundle the server certificates must chain to; without it the
    /// platform's trust store is used.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for servers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl RedisTlsFiles {
    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }
}

/// A store URL, parsed.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// One node; the URL as the crate reads it.
    Single {
        /// The URL as the crate reads it.
        url: String,
        /// `rediss://`.
        tls: bool,
    },
    /// Seed nodes of a Cluster, each as a one-node URL (credentials included).
    Cluster {
        /// Seed node URLs.
        nodes: Vec<String>,
        /// `rediss-cluster://`.
        tls: bool,
    },
    /// Sentinels that name the master of `service`.
    Sentinel(SentinelUrl),
}

/// `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db][?sentinel_username=…&sentinel_password=…]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// Sentinel addresses.
    pub sentinels: Vec<(String, u16)>,
    /// The master's service name.
    pub service: String,
    /// The database number on the master.
    pub db: i64,
    /// Credentials for the master (from the URL's user info).
    pub username: Option<String>,
    /// The master's password.
    pub password: Option<String>,
    /// Credentials for the Sentinels themselves (query parameters).
    pub sentinel_username: Option<String>,
    /// The Sentinels' password.
    pub sentinel_password: Option<String>,
    /// TLS to the master and the Sentinels.
    pub tls: bool,
}

// Debug never prints credentials.
impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisUrl::Single { tls, .. } => write!(f, "Single {{ tls: {tls} }}"),
            RedisUrl::Cluster { nodes, tls } => write!(f, "Cluster {{ nodes: {}, tls: {tls} }}", nodes.len()),
            RedisUrl::Sentinel(s) => write!(
                f,
                "Sentinel {{ sentinels: {:?}, service: {:?}, db: {}, tls: {} }}",
                s.sentinels, s.service, s.db, s.tls
            ),
        }
    }
}

/// The URL schemes floodgate accepts for Redis, for messages.
pub const SCHEMES: &str =
    "redis://, rediss://, redis+unix://, redis-cluster://, rediss-cluster://, redis+sentinel://, rediss+sentinel://";

impl RedisUrl {
    /// Whether `s` names a Redis URL scheme at all (supported or not).
    pub fn looks_like_redis(s: &str) -> bool {
        s.split_once("://").is_some_and(|(scheme, _)| scheme.starts_with("redis") || scheme.starts_with("valkey"))
    }

    /// Parses a store URL. Errors never contain the URL's credentials.
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("expected one of {SCHEMES}"))?;
        match scheme {
            "redis" | "rediss" | "redis+unix" => {
                url.into_connection_info()
                    .map_err(|e| format!("not a valid {scheme}:// URL: {}", describe(&e, url)))?;
                Ok(RedisUrl::Single { url: url.to_owned(), tls: scheme == "rediss" })
            }
            "redis-cluster" | "rediss-cluster" => Self::parse_cluster(rest, scheme == "rediss-cluster"),
            "redis+sentinel" | "rediss+sentinel" => Self::parse_sentinel(rest, scheme == "rediss+sentinel"),
            other => Err(format!("unsupported URL scheme {other:?}: expected one of {SCHEMES}")),
        }
    }

    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        match self {
            RedisUrl::Single { tls, .. } | RedisUrl::Cluster { tls, .. } => *tls,
            RedisUrl::Sentinel(s) => s.tls,
        }
    }

    fn parse_cluster(rest: &str, tls: bool) -> Result<RedisUrl, String> {
        let parts = MultiHost::split(rest, 6379)?;
        if parts.query.is_some() {
            return Err("cluster URLs take no query parameters".into());
        }
        match parts.path.trim_matches('/') {
            "" | "0" => {}
            _ => return Err("Redis Cluster has only database 0: end the URL with / or /0".into()),
        }
        let scheme = if tls { "rediss" } else { "redis" };
        let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let nodes: Vec<String> =
            parts.hosts.iter().map(|(host, port)| format!("{scheme}://{userinfo}{}:{port}/0", bracket(host))).collect();
        for node in &nodes {
            node.as_str().into_connection_info().map_err(|e| format!("bad cluster node: {}", describe(&e, node)))?;
        }
        Ok(RedisUrl::Cluster { nodes, tls })
    }

    fn parse_sentinel(rest: &str, tls: bool) -> Result<RedisUrl, String> {
        let parts = MultiHost::split(rest, 26379)?;
        let mut path = parts.path.trim_start_matches('/').split('/').filter(|s| !s.is_empty());
        let service = path.next().ok_or("a Sentinel URL names the master after the hosts: …:26379/mymaster[/db]")?;
        let db = match path.next() {
            None => 0,
            Some(db) => db.parse::<i64>().map_err(|_| "the database after the master name is not a number")?,
        };
        if path.next().is_some() {
            return Err("a Sentinel URL's path is /master-name[/db]".into());
        }
        // The crate decodes the user info (percent-escapes) of a one-node URL.
        let (username, password) = match parts.userinfo {
            Some(userinfo) => {
                let node = format!("redis://{userinfo}@localhost/");
                let info = node
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| format!("bad credentials: {}", describe(&e, &node)))?;
                let settings = info.redis_settings();
                (settings.username().map(str::to_owned), settings.password().map(str::to_owned))
            }
            None => (None, None),
        };
        let (mut sentinel_username, mut sentinel_password) = (None, None);
        for pair in parts.query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or("a query parameter has a bad percent-escape")?;
            match key {
                "sentinel_username" => sentinel_username = Some(value),
                "sentinel_password" => sentinel_password = Some(value),
                _ => {
                    return Err(
                        "unknown query parameter (a Sentinel URL takes only sentinel_username and sentinel_password)"
                            .into(),
                    );
                }
            }
        }
        Ok(RedisUrl::Sentinel(SentinelUrl {
            sentinels: parts.hosts,
            service: percent_decode(service).ok_or("master name: bad percent-escape")?,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
            tls,
        }))
    }
}

/// `[userinfo@]host:port[,host:port…][/path][?query]`.
struct MultiHost<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> MultiHost<'a> {
    fn split(rest: &'a str, default_port: u16) -> Result<MultiHost<'a>, String> {
        let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
        let (userinfo, hosts) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
        let hosts = hosts.split(',').map(|h| host_port(h.trim(), default_port)).collect::<Result<Vec<_>, String>>()?;
        Ok(MultiHost { userinfo, hosts, path, query })
    }
}

/// `host[:port]` or `[v6][:port]`.
fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("bad host: an IPv6 address needs its closing ]")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("bad host: only :port may follow an IPv6 address's ]")?)),
        }
    } else {
        let (host, port) = s.rsplit_once(':').map_or((s, None), |(h, p)| (h, Some(p)));
        if host.contains(':') {
            return Err("bad host: an IPv6 address goes in brackets, e.g. [::1]:6379".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("empty host: list nodes as host:port,host:port".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse().map_err(|_| "bad port: list nodes as host:port, the port a number up to 65535 (an IPv6 address goes in brackets: [::1]:6379)")?,
    };
    Ok((host.to_owned(), port))
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The crate's error about a URL, unless it echoes the URL's user info.
fn describe(e: &RedisError, url: &str) -> String {
    // The crate's message may quote the URL: with credentials in it, only
    // the error kind is said.
    if url.contains('@') { format!("{:?}", e.kind()) } else { e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> RedisUrl {
        RedisUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn one_node_urls_are_the_crates() {
        assert_eq!(
            parse("redis://127.0.0.1:6379/0"),
            RedisUrl::Single { url: "redis://127.0.0.1:6379/0".into(), tls: false }
        );
        assert!(parse("rediss://u:p@redis.internal:6380/2").tls());
        assert!(!parse("redis+unix:///run/redis.sock?db=1").tls());
    }

    #[test]
    fn cluster_urls_list_their_seed_nodes() {
        let RedisUrl::Cluster { nodes, tls } = parse("redis-cluster://:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/")
        else {
            panic!()
        };
        assert!(!tls);
        assert_eq!(
            nodes,
            [
                "redis://:s%40cret@10.0.0.1:7000/0",
                "redis://:s%40cret@10.0.0.2:6379/0",
                "redis://:s%40cret@[::1]:7002/0"
            ]
        );
        let RedisUrl::Cluster { nodes, tls } = parse("rediss-cluster://h1:7000") else { panic!() };
        assert!(tls);
        assert_eq!(nodes, ["rediss://h1:7000/0"]);
        assert!(RedisUrl::parse("redis-cluster://h1:7000/3").unwrap_err().contains("only database 0"));
        assert!(RedisUrl::parse("redis-cluster://h1:x").unwrap_err().contains("bad port"));
        assert!(RedisUrl::parse("redis-cluster://h1:1,,h2:2").unwrap_err().contains("empty host"));
    }

    #[test]
    fn ipv6_hosts_need_brackets_and_nothing_but_a_port_after_them() {
        let RedisUrl::Cluster { nodes, .. } = parse("redis-cluster://[::1]:7000,[fe80::2]/") else { panic!() };
        assert_eq!(nodes, ["redis://[::1]:7000/0", "redis://[fe80::2]:6379/0"]);
        for bad in ["redis-cluster://fe80::1:7000/", "redis+sentinel://[::1]x/m", "redis-cluster://[::1/"] {
            assert!(RedisUrl::parse(bad).unwrap_err().contains("bad host"), "{bad}");
        }
    }

    #[test]
    fn sentinel_urls_name_the_master_and_credentials() {
        let RedisUrl::Sentinel(s) =
            parse("redis+sentinel://app:p%40ss@s1:26379,s2/mymaster/2?sentinel_password=sp%26x")
        else {
            panic!()
        };
        assert_eq!(s.sentinels, [("s1".to_owned(), 26379), ("s2".to_owned(), 26379)]);
        assert_eq!((s.service.as_str(), s.db, s.tls), ("mymaster", 2, false));
        assert_eq!((s.username.as_deref(), s.password.as_deref()), (Some("app"), Some("p@ss")));
        assert_eq!((s.sentinel_username, s.sentinel_password.as_deref()), (None, Some("sp&x")));
        assert!(parse("rediss+sentinel://s1/m").tls());
        assert!(RedisUrl::parse("redis+sentinel://s1:26379").unwrap_err().contains("names the master"));
        assert!(RedisUrl::parse("redis+sentinel://s1/m/x").unwrap_err().contains("not a number"));
        assert!(RedisUrl::parse("redis+sentinel://s1/m?pasword=x").unwrap_err().contains("unknown query parameter"));
    }

    #[test]
    fn errors_never_echo_credentials() {
        for url in ["redis-cluster://u:hunter2@h:bad", "redis+sentinel://u:hunter2@h", "redis://u:hunter2@h:99999999"] {
            let err = RedisUrl::parse(url).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(!format!("{:?}", parse("redis+sentinel://u:hunter2@h/m")).contains("hunter2"));
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_supported_ones() {
        let err = RedisUrl::parse("redis-sentinel://h/m").unwrap_err();
        assert!(err.contains("redis+sentinel://"), "{err}");
        assert!(RedisUrl::looks_like_redis("valkey://h"));
        assert!(!RedisUrl::looks_like_redis("memory"));
    }
}
