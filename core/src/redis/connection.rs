//! Connections to Redis: the URL forms, a small pool, and how failures become
//! [`Error::Unavailable`].
//!
//! # Ground rules
//! - A call takes a connection from the pool (or opens one), runs one command
//!   on it, and gives it back only when the stream is known to be in step: after
//!   an answer, including an error answer from the server. After an I/O error or
//!   a timeout the connection is dropped, since a late answer would otherwise be
//!   read as the answer to the next call, and the idle connections go with it
//!   (they most likely died with the same server). The next call connects
//!   afresh: that is how the engine comes back by itself after an outage.
//! - Nothing is retried: a script whose answer was lost may have run, and
//!   running it again would count an attempt twice or issue a second code. The
//!   caller gets `Unavailable` (fail closed) and decides. For the same reason a
//!   cluster connection is built with no retries of its own, and is dropped
//!   after any error, so that the next one starts from a fresh slot map.
//! - After `fork()` the child must not share the parent's sockets: the pool
//!   notices the fork generation has changed and drops its idle connections.
//!
//! The pool is hand-written (a mutex around a vector) rather than `r2d2`: a
//! checkout is one lock and a pop, there is no background thread, no health
//! check round trip on checkout, and the rules above (which connections may be
//! reused) are ours to state exactly; r2d2 would add a dependency and a second
//! notion of connection health.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use std::collections::HashMap;

use ::redis::{
    Client, ClientTlsConfig, Connection, ConnectionLike, ErrorKind, IntoConnectionInfo, RedisError,
    RedisResult, ServerErrorKind, TlsCertificates, Value,
};
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::error::{
    format_duration, Constraint, DurationUnit, Error, Field, Got, InvalidInput, OUT_OF_MEMORY,
};
use crate::fork;

use super::scripts::{value_not_loaded, Op};
use super::signals::Blocked;

/// Idle connections kept for reuse; calls beyond this many at once open
/// connections of their own and close them afterwards.
const MAX_IDLE: usize = 64;

const URL_FORMS: &str = "a redis://[user:password@]host:port[/db], rediss:// (TLS), \
     redis+unix:///path, or redis+cluster:// or rediss+cluster://[user:password@]host:port,host:port,... URL";

/// What a connection needs besides its URL: timeouts, TLS material and
/// credentials given apart from the URL (which they override).
#[derive(Clone, Default)]
pub(crate) struct LinkOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    /// PEM: the CA that signs the server's certificate (else the system roots).
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM: a client certificate and its key, for mutual TLS.
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Zeroizing<String>>,
}

/// Where an engine's store lives.
enum Target {
    Standalone(Client),
    Cluster(ClusterClient),
}

enum Conn {
    Standalone(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    /// How long its reads and writes wait.
    fn set_timeouts(&self, timeout: Duration) -> RedisResult<()> {
        match self {
            Conn::Standalone(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
            Conn::Cluster(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
        }
    }

    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Standalone(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

struct Idle {
    /// The fork generation the connections were opened in.
    generation: u64,
    conns: Vec<Conn>,
}

/// Direct connections to the nodes of a cluster, for pipelines to one node
/// each (see [`Link::node_pipelines`]): the redis crate's cluster connection
/// turns one command's error into an error of its whole pipeline, which could
/// not tell which scripts ran.
struct Nodes {
    /// `redis` or `rediss`.
    scheme: &'static str,
    /// The cluster URL's `user:password@`, or empty.
    userinfo: Zeroizing<String>,
    options: LinkOptions,
    certificates: Option<TlsCertificates>,
    /// Idle connections by node address, and the fork generation they were
    /// opened in.
    idle: Mutex<(u64, HashMap<String, Vec<Connection>>)>,
}

/// Idle connections kept per cluster node for pipelines.
const MAX_IDLE_PER_NODE: usize = 8;

/// Connects to one Redis deployment and hands out connections to it.
pub(crate) struct Link {
    target: Target,
    /// On a cluster: its nodes, for pipelines.
    nodes: Option<Nodes>,
    server: String,
    /// Over TLS (`rediss://`).
    tls: bool,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle: Mutex<Idle>,
}

impl Link {
    /// Parses `url` (see [`URL_FORMS`]) and reads the TLS files; opens nothing yet.
    pub(crate) fn new(url: &str, options: &LinkOptions) -> Result<Link, InvalidInput> {
        let bad = |reason: String| InvalidInput {
            field: Field::RedisUrl,
            constraint: Constraint::Format(URL_FORMS),
            got: Got::Raw(format!("{:?} ({reason})", redact(url))),
        };
        if url.contains('#') {
            // The redis crate reads `#insecure` as "accept any certificate".
            return Err(bad(
                "no fragment: certificate checks cannot be turned off".into()
            ));
        }
        let cluster = url
            .strip_prefix("redis+cluster://")
            .map(|rest| ("redis", rest))
            .or_else(|| {
                url.strip_prefix("rediss+cluster://")
                    .map(|rest| ("rediss", rest))
            });
        let tls =
            url.starts_with("rediss://") || cluster.is_some_and(|(scheme, _)| scheme == "rediss");
        let certificates = tls_certificates(options, tls)?;
        let mut nodes = None;
        let (target, server) = if let Some((scheme, rest)) = cluster {
            let (userinfo, hosts) = match rest.rsplit_once('@') {
                Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                None => (String::new(), rest),
            };
            let hosts = hosts
                .strip_suffix("/0")
                .or_else(|| hosts.strip_suffix('/'))
                .unwrap_or(hosts);
            let seeds: Vec<&str> = hosts.split(',').collect();
            if seeds.iter().any(|s| s.is_empty() || s.contains('/')) {
                return Err(bad(
                    "a cluster URL lists host:port pairs separated by commas, and only database 0"
                        .into(),
                ));
            }
            let urls: Vec<String> = seeds
                .iter()
                .map(|s| format!("{scheme}://{userinfo}{s}"))
                .collect();
            let mut builder = ClusterClientBuilder::new(urls)
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.response_timeout)
                .retries(0);
            if let Some(username) = &options.username {
                builder = builder.username(username);
            }
            if let Some(password) = &options.password {
                builder = builder.password(password.as_str());
            }
            if let Some(certificates) = certificates.clone() {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(|e| bad(e.to_string()))?;
            nodes = Some(Nodes {
                scheme: if scheme == "rediss" {
                    "rediss"
                } else {
                    "redis"
                },
                userinfo: Zeroizing::new(userinfo),
                options: options.clone(),
                certificates,
                idle: Mutex::new((fork::generation(), HashMap::new())),
            });
            (Target::Cluster(client), seeds.join(","))
        } else {
            let (client, server) =
                standalone_client(url, options, certificates).map_err(|e| bad(e.to_string()))?;
            (Target::Standalone(client), server)
        };
        Ok(Link {
            target,
            nodes,
            server,
            tls,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            idle: Mutex::new(Idle {
                generation: fork::generation(),
                conns: Vec::new(),
            }),
        })
    }

    /// The server as configured, without credentials.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Runs `call` on a pooled connection; a failure is [`Error::Unavailable`].
    pub(crate) fn run<T>(
        &self,
        mut call: impl FnMut(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<T, Error> {
        self.run_conn(|conn, ask| match (conn, ask) {
            (Conn::Cluster(cluster), Some((host, port))) => call(&mut Asking {
                cluster,
                host: host.to_string(),
                port,
            }),
            (conn, _) => call(conn.as_dyn()),
        })
    }

    /// Sends `commands` (calls of `script`, each answering
    /// `(reply code, number)`) in one pipeline to a standalone server, and
    /// answers per command. A server that lost its scripts (a restart) answers
    /// `NOSCRIPT` (or "Function not found") to all of them, having run none: the code is loaded and
    /// the pipeline sent again.
    pub(crate) fn pipeline(
        &self,
        script: &Op,
        commands: &[::redis::Cmd],
    ) -> Result<Vec<ScriptAnswer>, Error> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.run_conn(|conn, _| {
            let Conn::Standalone(con) = conn else {
                return Err((ErrorKind::Client, "pipelines go to a standalone server").into());
            };
            send_pipeline(con, script, commands)
        })?;
        Ok(values
            .into_iter()
            .map(|value| {
                value
                    .extract_error()
                    .and_then(|v| ::redis::from_redis_value::<(i64, i64)>(v).map_err(Into::into))
                    .map_err(|e| self.unavailable(&e, false))
            })
            .collect())
    }

    /// On a cluster: sends each command (a call of `script`, given with
    /// the hash slot of its key) to the primary that owns its slot as `CLUSTER
    /// SLOTS` says now, in one pipeline per primary, and answers per command.
    /// [`NodeAnswer::NotRun`] is Redis saying it did not run the command
    /// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`: the slot is elsewhere or
    /// moving; the code not loaded there): sending it alone then is safe, and follows the
    /// redirect. A node whose pipeline cannot be sent, or whose replies are
    /// lost, gives [`NodeAnswer::Lost`] for each of its commands: each may have
    /// run. `Err` (the slot map could not be read) means nothing was sent.
    pub(crate) fn node_pipelines(
        &self,
        script: &Op,
        commands: &[(u16, ::redis::Cmd)],
    ) -> Result<Vec<NodeAnswer>, Error> {
        let Some(nodes) = &self.nodes else {
            return Err(self.unavailable(
                &(ErrorKind::Client, "node pipelines go to a cluster").into(),
                false,
            ));
        };
        let owners = self.slot_owners()?;
        // No signal handler cuts the exchanges short (see signals.rs).
        let _blocked = Blocked::new();
        let mut answers: Vec<NodeAnswer> = commands.iter().map(|_| NodeAnswer::NotRun).collect();
        let mut by_node: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (slot, _)) in commands.iter().enumerate() {
            // A slot no primary owns (the cluster is changing): sent alone.
            if let Some((_, _, node)) = owners.iter().find(|(a, b, _)| (*a..=*b).contains(slot)) {
                by_node.entry(node.as_str()).or_default().push(i);
            }
        }
        for (group, (node, indexes)) in by_node.into_iter().enumerate() {
            let pipeline: Vec<::redis::Cmd> =
                indexes.iter().map(|&i| commands[i].1.clone()).collect();
            match self.node_pipeline(nodes, node, script, &pipeline) {
                Ok(values) => {
                    for (&i, value) in indexes.iter().zip(values) {
                        answers[i] = self.node_answer(node, value);
                    }
                }
                Err(e) => {
                    for &i in &indexes {
                        answers[i] = NodeAnswer::Lost(group, e.clone());
                    }
                }
            }
        }
        Ok(answers)
    }

    /// The primary of each slot range, from `CLUSTER SLOTS`: `(first, last,
    /// "host:port")`.
    fn slot_owners(&self) -> Result<Vec<(u16, u16, String)>, Error> {
        let value = self.run(|con| ::redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(con))?;
        let int = |v: &Value| match v {
            Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let Value::Array(ranges) = value else {
            return Ok(Vec::new());
        };
        Ok(ranges
            .iter()
            .filter_map(|range| {
                let Value::Array(fields) = range else {
                    return None;
                };
                let Some(Value::Array(primary)) = fields.get(2) else {
                    return None;
                };
                let host = match primary.first()? {
                    Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                    Value::SimpleString(s) => s.clone(),
                    _ => return None,
                };
                let port = int(primary.get(1)?)?;
                if host.is_empty() {
                    return None; // "the node you asked", which a pipeline cannot name
                }
                let node = match host.contains(':') {
                    true => format!("[{host}]:{port}"),
                    false => format!("{host}:{port}"),
                };
                Some((int(fields.first()?)?, int(fields.get(1)?)?, node))
            })
            .collect())
    }

    /// Sends `commands` to the cluster node at `node` in one pipeline, over a
    /// connection of its own (pooled per node).
    fn node_pipeline(
        &self,
        nodes: &Nodes,
        node: &str,
        script: &Op,
        commands: &[::redis::Cmd],
    ) -> Result<Vec<Value>, Error> {
        let at_node = |e: Error| match e {
            Error::Unavailable { reason, .. } => Error::Unavailable {
                server: node.to_string(),
                reason,
            },
            other => other,
        };
        let idle = {
            let mut idle = nodes.idle.lock();
            if idle.0 != fork::generation() {
                *idle = (fork::generation(), HashMap::new());
            }
            idle.1.get_mut(node).and_then(Vec::pop)
        };
        let mut con = match idle {
            Some(con) => con,
            None => self
                .node_connection(nodes, node)
                .map_err(|e| at_node(self.unavailable(&e, true)))?,
        };
        let values = send_pipeline(&mut con, script, commands)
            .map_err(|e| at_node(self.unavailable(&e, false)))?;
        let mut idle = nodes.idle.lock();
        if idle.0 == fork::generation() {
            let pool = idle.1.entry(node.to_string()).or_default();
            if pool.len() < MAX_IDLE_PER_NODE {
                pool.push(con);
            }
        }
        Ok(values)
    }

    fn node_connection(&self, nodes: &Nodes, node: &str) -> RedisResult<Connection> {
        let url = format!("{}://{}{node}", nodes.scheme, nodes.userinfo.as_str());
        let (client, _) = standalone_client(&url, &nodes.options, nodes.certificates.clone())?;
        let con = client.get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(self.response_timeout))?;
        con.set_write_timeout(Some(self.response_timeout))?;
        Ok(con)
    }

    /// One command's reply in a node's pipeline.
    fn node_answer(&self, node: &str, value: Value) -> NodeAnswer {
        if let Value::ServerError(e) = &value {
            let not_run = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"];
            if not_run.contains(&e.code()) || value_not_loaded(&value) {
                return NodeAnswer::NotRun;
            }
        }
        NodeAnswer::Answered(
            value
                .extract_error()
                .and_then(|v| ::redis::from_redis_value::<(i64, i64)>(v).map_err(Into::into))
                .map_err(|e| match self.unavailable(&e, false) {
                    Error::Unavailable { reason, .. } => Error::Unavailable {
                        server: node.to_string(),
                        reason,
                    },
                    other => other,
                }),
        )
    }

    /// `PING`: on a cluster, the redis crate sends it to every primary and
    /// fails if one does not answer.
    pub(crate) fn ping(&self) -> Result<(), Error> {
        self.run(|con| ::redis::cmd("PING").query::<String>(con).map(|_| ()))
    }

    /// The values of `field` in `INFO section` of the server (of every node, on
    /// a cluster), which managed services allow where `CONFIG GET` is blocked;
    /// empty when they cannot be read (a refused `INFO`).
    pub(crate) fn info_fields(&self, section: &str, field: &str) -> Result<Vec<String>, Error> {
        let info = self.run(|con| {
            match ::redis::cmd("INFO")
                .arg(section)
                .query::<::redis::Value>(con)
            {
                Ok(value) => Ok(Some(value)),
                // Answered, but refused (an ACL without INFO, say): unknown.
                // Not authenticated is an answer of its own: the call fails.
                Err(e)
                    if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
                        && !is_authentication(&e) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })?;
        let mut texts = Vec::new();
        collect_texts(info.as_ref(), &mut texts);
        let prefix = format!("{field}:");
        Ok(texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .map(|value| value.trim().to_string())
            .collect())
    }

    /// Sums `ZCOUNT index (now +inf` over every `(held, live)` pair in one
    /// pipeline (split by node on a cluster): `(live, held)`. `now` is the manual
    /// clock's, or else Redis `TIME`.
    pub(crate) fn count_indexes(
        &self,
        manual_now: Option<u64>,
        pairs: &[(String, String)],
    ) -> Result<(u64, u64), Error> {
        // A redirect sends nothing to another node here: ZCOUNTs are only read,
        // so an ASK is waited out like a TRYAGAIN.
        self.run_conn(|conn, _| {
            let now = match manual_now {
                Some(now) => now,
                None => {
                    let (secs, micros): (u64, u64) = ::redis::cmd("TIME").query(conn.as_dyn())?;
                    secs * 1000 + micros / 1000
                }
            };
            // Entries whose score is past are forgotten, or no longer pending.
            let after_now = format!("({now}");
            let counts: Vec<u64> = match conn {
                Conn::Standalone(c) => {
                    let mut pipe = ::redis::pipe();
                    for (held, live) in pairs {
                        pipe.zcount(held, &after_now, "+inf");
                        pipe.zcount(live, &after_now, "+inf");
                    }
                    pipe.query(c)?
                }
                Conn::Cluster(c) => {
                    let mut pipe = ::redis::cluster::cluster_pipe();
                    for (held, live) in pairs {
                        pipe.zcount(held, &after_now, "+inf");
                        pipe.zcount(live, &after_now, "+inf");
                    }
                    pipe.query(c)?
                }
            };
            let held = counts.iter().step_by(2).sum();
            let live = counts.iter().skip(1).step_by(2).sum();
            Ok((live, held))
        })
    }

    /// Runs `call` on a pooled connection, following cluster redirects (see
    /// [`Redirect`]) within the response timeout; `call` gets the node an
    /// `ASK` named, if the last try got one. Any other failure is the answer.
    fn run_conn<T>(
        &self,
        mut call: impl FnMut(&mut Conn, Option<(&str, u16)>) -> Result<T, RedisError>,
    ) -> Result<T, Error> {
        // No signal handler cuts the exchange short (see signals.rs).
        let _blocked = Blocked::new();
        // This thread's call timeout, when shorter, bounds the whole call
        // (crate::call_timeout); its connection waits no longer either.
        let timeout = crate::call_timeout::bounded(self.response_timeout);
        let deadline = Instant::now() + timeout;
        let mut conn = self.checkout()?;
        let bounded = timeout < self.response_timeout;
        if bounded {
            conn.set_timeouts(timeout)
                .map_err(|e| self.unavailable(&e, false))?;
        }
        let mut ask: Option<(String, u16)> = None;
        loop {
            let asked = ask.take();
            let result = call(&mut conn, asked.as_ref().map(|(h, p)| (h.as_str(), *p)));
            let e = match result {
                Ok(value) => {
                    // Back to the engine's timeout before another call takes it.
                    if !bounded || conn.set_timeouts(self.response_timeout).is_ok() {
                        self.checkin(conn);
                    }
                    return Ok(value);
                }
                Err(e) => e,
            };
            let redirect = match conn {
                Conn::Cluster(_) if Instant::now() < deadline => Redirect::of(&e),
                _ => None,
            };
            match redirect {
                Some(Redirect::Moved) => {
                    // A fresh connection reads the new slot map; the idle ones
                    // hold the old one.
                    drop(conn);
                    self.idle.lock().conns.clear();
                    conn = self.checkout()?;
                    if bounded {
                        conn.set_timeouts(timeout)
                            .map_err(|e| self.unavailable(&e, false))?;
                    }
                }
                Some(Redirect::Ask(host, port)) => ask = Some((host, port)),
                Some(Redirect::Wait) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(REDIRECT_PAUSE));
                }
                None => {
                    if e.is_timeout() {
                        // The kernel counts socket timeouts in scheduler ticks and
                        // can end one up to a tick early; the deadline is a promise
                        // about time (a Go ctx checks it), so wait out the rest.
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(left.min(TICK_SLACK));
                    }
                    let answered = matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
                    let restored = !bounded || conn.set_timeouts(self.response_timeout).is_ok();
                    if answered && restored && matches!(conn, Conn::Standalone(_)) {
                        self.checkin(conn);
                    } else {
                        drop(conn);
                        self.idle.lock().conns.clear();
                    }
                    return Err(self.unavailable(&e, false));
                }
            }
        }
    }

    fn checkout(&self) -> Result<Conn, Error> {
        {
            let mut idle = self.idle.lock();
            let generation = fork::generation();
            if idle.generation != generation {
                idle.conns.clear();
                idle.generation = generation;
            }
            if let Some(conn) = idle.conns.pop() {
                return Ok(conn);
            }
        }
        self.connect().map_err(|e| self.unavailable(&e, true))
    }

    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock();
        if idle.generation == fork::generation() && idle.conns.len() < MAX_IDLE {
            idle.conns.push(conn);
        }
    }

    fn connect(&self) -> Result<Conn, RedisError> {
        match &self.target {
            Target::Standalone(client) => {
                let conn = client.get_connection_with_timeout(self.connect_timeout)?;
                conn.set_read_timeout(Some(self.response_timeout))?;
                conn.set_write_timeout(Some(self.response_timeout))?;
                Ok(Conn::Standalone(conn))
            }
            Target::Cluster(client) => Ok(Conn::Cluster(Box::new(client.get_connection()?))),
        }
    }

    /// Names what failed: the server, and whether it could not be reached, did
    /// not answer in time, or answered with an error.
    fn unavailable(&self, e: &RedisError, connecting: bool) -> Error {
        let human = |d: Duration| format_duration(d, DurationUnit::Human);
        let reason = if e.is_timeout() {
            if connecting {
                format!(
                    "unreachable: no connection within {}",
                    human(self.connect_timeout)
                )
            } else {
                let waited = crate::call_timeout::bounded(self.response_timeout);
                format!("did not answer within {}", human(waited))
            }
        } else if is_out_of_memory(e) {
            OUT_OF_MEMORY.to_string()
        } else if is_authentication(e) {
            format!("authentication failed (check the user and password): {e}")
        } else if connecting && is_tls_handshake(e) {
            format!("TLS handshake failed (check the certificates): {e}")
        } else if connecting && !self.tls && e.to_string().contains("reset by peer") {
            format!("unreachable: {e} (a TLS-only server resets plaintext connections: rediss://?)")
        } else if connecting || e.is_connection_refusal() {
            format!("unreachable: {e}")
        } else if e.is_io_error() || e.is_connection_dropped() {
            format!("connection lost: {e}")
        } else {
            format!("refused the call: {e}")
        };
        Error::Unavailable {
            server: self.server.clone(),
            reason,
        }
    }
}

/// One script's answer in a pipeline: `(reply code, number)`, or why there is none.
pub(crate) type ScriptAnswer = Result<(i64, i64), Error>;

/// One command's answer in a cluster node's pipeline ([`Link::node_pipelines`]).
pub(crate) enum NodeAnswer {
    /// The script ran (or Redis refused it: an error that is its answer).
    Answered(ScriptAnswer),
    /// Redis did not run it here (a redirect, or the node lacked the script):
    /// to be sent alone.
    NotRun,
    /// The pipeline of the node it went to (numbered within this call) was lost:
    /// it may have run.
    Lost(usize, Error),
}

/// Sends `commands` (calls of `script`) in one pipeline on `con` and
/// returns every reply, errors included. A server that lost its scripts (a
/// restart) answers `NOSCRIPT` or "Function not found" to all of them, having
/// run none: the code is loaded and the pipeline sent again.
fn send_pipeline(
    con: &mut Connection,
    script: &Op,
    commands: &[::redis::Cmd],
) -> RedisResult<Vec<Value>> {
    let send = |con: &mut Connection| {
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        for cmd in commands {
            pipe.add_command(cmd.clone());
        }
        pipe.query::<Vec<Value>>(con)
    };
    let values = send(con)?;
    if values.iter().all(value_not_loaded) {
        script.reload(con)?;
        return send(con);
    }
    Ok(values)
}

/// How long to wait before trying again after a `TRYAGAIN` or `CLUSTERDOWN`.
const REDIRECT_PAUSE: Duration = Duration::from_millis(10);

/// How early a socket timeout may end before the call's deadline: one
/// scheduler tick at the slowest common rate (100 Hz), and some.
const TICK_SLACK: Duration = Duration::from_millis(20);

/// A cluster's answer that the command did not run here, so running it
/// elsewhere or again is safe: unlike a lost reply, it cannot have counted.
enum Redirect {
    /// `MOVED`: the slot lives on another node now; the slot map is stale.
    Moved,
    /// `ASK`: the slot is moving to this node; send `ASKING` and the command there.
    Ask(String, u16),
    /// `TRYAGAIN` (some of the keys moved, some not yet), `CLUSTERDOWN` or
    /// `MASTERDOWN`: try again in a moment.
    Wait,
}

impl Redirect {
    fn of(e: &RedisError) -> Option<Redirect> {
        match e.kind() {
            ErrorKind::Server(ServerErrorKind::Moved) => Some(Redirect::Moved),
            ErrorKind::Server(ServerErrorKind::Ask) => {
                let (node, _slot) = e.redirect_node()?;
                let (host, port) = node.rsplit_once(':')?;
                Some(Redirect::Ask(host.to_string(), port.parse().ok()?))
            }
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown,
            ) => Some(Redirect::Wait),
            _ => None,
        }
    }
}

/// A cluster connection that sends each command to one node, preceded by
/// `ASKING`: what an `ASK` redirect asks for. The two go to the same pooled
/// socket for that node, so `ASKING` applies to the command after it.
struct Asking<'a> {
    cluster: &'a mut ClusterConnection,
    host: String,
    port: u16,
}

impl Asking<'_> {
    fn route(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }
}

impl ConnectionLike for Asking<'_> {
    fn req_command(&mut self, cmd: &::redis::Cmd) -> RedisResult<::redis::Value> {
        let route = self.route();
        self.cluster
            .route_command(&::redis::cmd("ASKING"), route.clone())?
            .extract_error()?;
        self.cluster.route_command(cmd, route)
    }

    fn req_packed_command(&mut self, _: &[u8]) -> RedisResult<::redis::Value> {
        Err((
            ErrorKind::Client,
            "an ASK redirect routes whole commands only",
        )
            .into())
    }

    fn req_packed_commands(
        &mut self,
        _: &[u8],
        _: usize,
        _: usize,
    ) -> RedisResult<Vec<::redis::Value>> {
        Err((
            ErrorKind::Client,
            "an ASK redirect routes single commands only",
        )
            .into())
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        self.cluster.check_connection()
    }

    fn is_open(&self) -> bool {
        self.cluster.is_open()
    }
}

/// The TLS files, read: `None` for a plain URL (where giving any is an error,
/// since it would silently not be used), and for a TLS URL without files (the
/// system roots, no client certificate).
/// A client for one server at `url` (`redis://`, `rediss://` or
/// `redis+unix://`), with the credentials of `options` (over the URL's), and
/// the server's address as named in errors.
fn standalone_client(
    url: &str,
    options: &LinkOptions,
    certificates: Option<TlsCertificates>,
) -> RedisResult<(Client, String)> {
    let mut info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &options.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password.as_str());
    }
    info = info.set_redis_settings(settings);
    let server = info.addr().to_string();
    let client = match certificates {
        Some(certificates) => Client::build_with_tls(info, certificates),
        None => Client::open(info),
    }?;
    Ok((client, server))
}

fn tls_certificates(
    options: &LinkOptions,
    tls: bool,
) -> Result<Option<TlsCertificates>, InvalidInput> {
    let files = [
        (Field::RedisCaFile, &options.ca_file),
        (Field::RedisClientCert, &options.client_cert),
        (Field::RedisClientKey, &options.client_key),
    ];
    if !tls {
        if let Some((field, _)) = files.iter().find(|(_, path)| path.is_some()) {
            return Err(InvalidInput {
                field: *field,
                constraint: Constraint::Format(
                    "given only with a rediss:// or rediss+cluster:// URL",
                ),
                got: Got::Raw("a file, with a plain URL".into()),
            });
        }
        return Ok(None);
    }
    let read = |field: Field, path: &PathBuf| {
        std::fs::read(path).map_err(|e| InvalidInput {
            field,
            constraint: Constraint::Format("a readable PEM file"),
            got: Got::Raw(format!("{} ({e})", path.display())),
        })
    };
    let root_cert = options
        .ca_file
        .as_ref()
        .map(|path| read(Field::RedisCaFile, path))
        .transpose()?;
    let client_tls = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(Field::RedisClientCert, cert)?,
            client_key: read(Field::RedisClientKey, key)?,
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            let field = if options.client_cert.is_none() {
                Field::RedisClientCert
            } else {
                Field::RedisClientKey
            };
            return Err(InvalidInput {
                field,
                constraint: Constraint::Format(
                    "given together with its pair (client cert and key)",
                ),
                got: Got::Raw("only one of the two".into()),
            });
        }
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// Every string in an `INFO` answer: one text from a server, a map of node to
/// text from a cluster.
fn collect_texts(value: Option<&::redis::Value>, out: &mut Vec<String>) {
    use ::redis::Value;
    match value {
        Some(Value::BulkString(bytes)) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::VerbatimString { text, .. }) | Some(Value::SimpleString(text)) => {
            out.push(text.clone())
        }
        Some(Value::Map(pairs)) => {
            for (_, v) in pairs {
                collect_texts(Some(v), out);
            }
        }
        Some(Value::Array(items)) => {
            for v in items {
                collect_texts(Some(v), out);
            }
        }
        _ => {}
    }
}

/// A wrong or missing password or user: at connect time (`AUTH` refused), or
/// at the first command (`NOAUTH`).
pub(crate) fn is_authentication(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        || e.to_string().contains("NOAUTH")
}

/// A certificate or TLS protocol failure (as rustls words them).
fn is_tls_handshake(e: &RedisError) -> bool {
    let text = e.to_string();
    text.contains("certificate") || text.contains("Certificate") || text.contains("alert")
}

/// The server refused a command because it is over `maxmemory` (noeviction):
/// `OOM ...` as such (Redis 7), or inside a script error (Redis 6 reports the
/// refusal of a script's command as `ERR Error running script ... -OOM ...`).
fn is_out_of_memory(e: &RedisError) -> bool {
    e.code() == Some("OOM") || e.to_string().contains("OOM command not allowed")
}

/// `url` as it may be shown in a message, a `Debug` output or a log line: every
/// place the redis crate (or a user) could put a credential hidden as `***`.
///
/// Ground rules. The redis crate reads a user and password from the userinfo
/// (`redis://user:password@host`) and, for unix sockets, from the query
/// (`redis+unix:///path?user=u&pass=p`); users also write `?password=`. So:
/// everything before the last `@` but the user name is hidden; in the query,
/// only `db` and `protocol` with plain values are shown, every other value is
/// hidden; a fragment other than `#insecure` is hidden. An `@` inside the query
/// or fragment makes the layout ambiguous (is it a password with a `?` in it, or
/// a query value with an `@`?), and then all but the scheme is hidden.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<not a URL; hidden, as it may hold a password>".to_string();
    };
    let (scheme, rest) = (&url[..scheme_end + 3], &url[scheme_end + 3..]);
    let at = rest.rfind('@');
    let query_or_fragment = rest.find(['?', '#']);
    if let (Some(at), Some(q)) = (at, query_or_fragment) {
        if q < at {
            return format!("{scheme}<hidden: an '@' after '?' or '#' may belong to a password>");
        }
    }
    let (userinfo, address) = match at {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let user_is_plain = user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            let shown = if user_is_plain { user } else { "***" };
            (format!("{shown}:***@"), &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let (address, fragment) = match address.split_once('#') {
        Some((address, "insecure")) => (address, "#insecure".to_string()),
        Some((address, _)) => (address, "#***".to_string()),
        None => (address, String::new()),
    };
    let (address, query) = match address.split_once('?') {
        Some((address, query)) => (address, format!("?{}", redact_query(query))),
        None => (address, String::new()),
    };
    format!("{scheme}{userinfo}{address}{query}{fragment}")
}

/// A URL's query with every value hidden but plain `db` and `protocol` ones.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("db" | "protocol"), value))
                if value.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                format!("{name}={value}")
            }
            Some((name, _)) if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                format!("{name}=***")
            }
            _ => "***".to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    fn options() -> LinkOptions {
        LinkOptions {
            connect_timeout: T,
            response_timeout: T,
            ..LinkOptions::default()
        }
    }

    #[test]
    fn urls_name_the_server_without_credentials() {
        let link = Link::new("redis://:hunter2@127.0.0.1:6390/3", &options()).unwrap();
        assert_eq!(link.server(), "127.0.0.1:6390");
        assert!(!link.is_cluster());
        let link = Link::new(
            "redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001",
            &options(),
        )
        .unwrap();
        assert_eq!(link.server(), "10.0.0.1:7000,10.0.0.2:7001");
        assert!(link.is_cluster());
    }

    #[test]
    fn bad_urls_are_named_and_redacted() {
        let message = |url: &str| Link::new(url, &options()).err().unwrap().to_string();
        let m = message("http://user:hunter2@localhost");
        assert!(m.starts_with("redis_url must be a redis://"), "{m}");
        assert!(
            m.contains("user:***@localhost") && !m.contains("hunter2"),
            "{m}"
        );
        // Every credential form the redis crate reads, in a URL that fails to parse
        // for another reason (bad db, bad protocol, bad host list).
        for url in [
            "redis://:hunter2@localhost/notadb",
            "redis://alice:hunter2@localhost/notadb",
            "redis://localhost/notadb?password=hunter2",
            "redis://localhost/0?protocol=9&pass=hunter2",
            "redis+unix:///run/redis.sock?pass=hunter2&db=x",
            "redis+unix:///run/redis.sock?user=alice&pass=hunter2&protocol=bad",
            "redis+cluster://alice:hunter2@a:1,,b:2",
            "redis+cluster://alice:hunter2@a:notaport,b:2",
            "rediss://alice:hunter2@localhost:6380/notadb",
            "rediss+cluster://alice:hunter2@a:1,,b:2",
            "redis://:p%40ss?hunter2@localhost/x",
            "redis://localhost/x?pass=a@hunter2",
            "redis://localhost/x#hunter2",
            "hunter2",
        ] {
            let m = message(url);
            assert!(!m.contains("hunter2"), "{url} -> {m}");
            assert!(m.contains("redis_url must be"), "{url} -> {m}");
        }
        let m = message("redis+unix:///run/redis.sock?pass=hunter2&db=x");
        assert!(m.contains("pass=***"), "{m}");
        let m = message("redis+cluster://a:1,,b:2");
        assert!(m.contains("host:port pairs"), "{m}");
        let m = message("redis+cluster://a:1/2");
        assert!(m.contains("only database 0"), "{m}");
    }
}
