//! The servers under test: a URL checked to be loopback, or server nodes we spawned (and must
//! stop), each with the process to measure when its PID is known, and the Redis they share.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::future::{join_all, try_join_all};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::Child;

use crate::auth::Auth;
use crate::child::log_tail;
use crate::cli::Common;
use crate::client::Endpoint;
use crate::duration::human;
use crate::nodes::SharedRedis;
use crate::procfs::Proc;
use crate::redis_info::RedisInfo;
use crate::source_addrs::SourceAddrs;
use crate::wire::{Framing, Protocol};

/// How long a spawned server may take to print `listening on ADDR`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a spawned server may take to exit after SIGTERM (it flushes rooms first).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Target {
    /// One node unless `--nodes` spawned more; never empty.
    nodes: Vec<Node>,
    /// The Redis the spawned nodes share (`--redis-url`), connected for reading its counters.
    pub redis: Option<RedisInfo>,
    /// The access token and sessions of `--token` or `--sign-up` (y-websocket servers).
    auth: Option<Auth>,
    /// How clients talk to the nodes.
    link: Link,
}

/// What every connection shares besides the URL: the wire dialect and `--source-addrs`.
struct Link {
    protocol: Protocol,
    /// `--token` for Hocuspocus, which takes it in its Auth message rather than the URL.
    hocuspocus_token: String,
    source: Option<Arc<SourceAddrs>>,
}

impl Link {
    fn new(common: &Common) -> Self {
        let hocuspocus_token = match common.protocol {
            Protocol::Hocuspocus => common.token.clone().unwrap_or_default(),
            Protocol::YWebsocket => String::new(),
        };
        let source = common.source_addrs.as_ref().and_then(SourceAddrs::new).map(Arc::new);
        Self { protocol: common.protocol, hocuspocus_token, source }
    }
}

/// One server.
pub struct Node {
    /// Base URL without a trailing slash; rooms are `{base}/{room}`.
    pub base_url: String,
    /// The server process to measure, when known.
    pub proc_: Option<Proc>,
    spawned: Option<Spawned>,
}

struct Spawned {
    child: Child,
    log: PathBuf,
    // Held so the data dir lives as long as the server and is removed after it stops.
    _data_dir: tempfile::TempDir,
}

impl Target {
    pub async fn resolve(common: &Common) -> anyhow::Result<Self> {
        if let Some(path) = &common.spawn {
            // Redis first: a missing Redis is said plainly, not as nodes that fail to start.
            let redis = match &common.redis_url {
                Some(url) => Some(RedisInfo::connect(url).await?),
                None => None,
            };
            let shared = common.redis_url.as_deref().map(SharedRedis::new);
            let nodes = try_join_all((0..common.nodes).map(|i| {
                let spawning = spawn(path, common, shared.as_ref());
                async move {
                    let (spawned, addr) = spawning.await.with_context(|| format!("server node {i}"))?;
                    let pid = spawned.child.id().context("spawned server has no pid")?;
                    anyhow::Ok(Node {
                        base_url: format!("ws://{addr}/ws"),
                        proc_: Some(Proc::new(pid)),
                        spawned: Some(spawned),
                    })
                }
            }))
            .await?;
            return Ok(Self { nodes, redis, auth: None, link: Link::new(common) });
        }
        let Some(url) = &common.url else { bail!("give --url ws://HOST:PORT/ws or --spawn PATH") };
        check_url(url, common.allow_remote)?;
        let proc_ = common.server_pid.map(Proc::new);
        if let Some(p) = &proc_ {
            p.sample().context("--server-pid")?;
        }
        let node = Node { base_url: url.trim_end_matches('/').to_owned(), proc_, spawned: None };
        let auth = match common.protocol {
            Protocol::YWebsocket => Auth::from_flags(common).await?,
            Protocol::Hocuspocus => None,
        };
        Ok(Self { nodes: vec![node], redis: None, auth, link: Link::new(common) })
    }

    /// Readies the rooms a run is about to open: with `--sign-up`, a session for each (see
    /// [`Auth::open_rooms`]); nothing otherwise.
    pub async fn open_rooms(&self, rooms: &[String]) -> anyhow::Result<()> {
        match &self.auth {
            Some(auth) => auth.open_rooms(rooms).await.context("creating a session per room (--sign-up)"),
            None => Ok(()),
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The first node: the only one for runs that measure a single server (churn refuses
    /// `--nodes` above 1 before anything is spawned).
    pub fn first(&self) -> &Node {
        &self.nodes[0]
    }

    /// Where a client of `room` on node `node` (counted modulo the number of nodes) connects.
    /// y-websocket: the room's URL; with `--token` or `--sign-up` it carries the token, and a room
    /// with a session is opened by its session id. Hocuspocus: the node's URL, the room named
    /// in every message.
    pub fn endpoint(&self, node: usize, room: &str) -> Endpoint {
        let node = &self.nodes[node % self.nodes.len()];
        let link = &self.link;
        let (url, framing) = match (link.protocol, &self.auth) {
            (Protocol::Hocuspocus, _) => {
                (node.base_url.clone(), Framing::new(link.protocol, room, &link.hocuspocus_token))
            }
            (Protocol::YWebsocket, Some(auth)) => (auth.room_url(&node.base_url, room), Framing::Plain),
            (Protocol::YWebsocket, None) => (node.room_url(room), Framing::Plain),
        };
        Endpoint { url, framing, source: link.source.clone() }
    }

    /// Every node's base URL, in node order.
    pub fn base_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base_url.clone()).collect()
    }

    /// Every node's process, in node order, when all of them are known; None if any is not (an
    /// attached server without `--server-pid`).
    pub fn procs(&self) -> Option<Vec<Proc>> {
        self.nodes.iter().map(|n| n.proc_).collect()
    }

    /// Stops every spawned node at once (see [`Node::shutdown`]); one node's account, or each
    /// node's prefixed with its number.
    pub async fn shutdown(self) -> Stopped {
        let several = self.nodes.len() > 1;
        let stopped = join_all(self.nodes.into_iter().map(Node::shutdown)).await;
        if !several {
            return stopped.into_iter().next().unwrap_or_default();
        }
        let exits: Vec<String> = (stopped.iter().enumerate())
            .filter_map(|(i, s)| Some(format!("node {i} {}", s.exit.as_ref()?)))
            .collect();
        let tails: Vec<String> = (stopped.iter().enumerate())
            .filter_map(|(i, s)| {
                Some(format!("node {i}:\n{}", s.log_tail.as_ref().filter(|t| !t.is_empty())?))
            })
            .collect();
        Stopped {
            exit: (!exits.is_empty()).then(|| exits.join("; ")),
            log_tail: (!tails.is_empty()).then(|| tails.join("\n")),
        }
    }
}

impl Node {
    fn room_url(&self, room: &str) -> String {
        format!("{}/{room}", self.base_url)
    }

    /// Stops a spawned server: SIGTERM, wait, SIGKILL after a timeout. Says how it ended, with the
    /// end of its log (read before the temporary data dir and log are removed).
    async fn shutdown(self) -> Stopped {
        let Some(mut spawned) = self.spawned else { return Stopped::default() };
        let exit = crate::child::stop(&mut spawned.child, STOP_TIMEOUT).await;
        Stopped { exit: Some(exit), log_tail: Some(log_tail(&spawned.log).await) }
    }
}

/// How a spawned server ended; empty when we did not spawn it.
#[derive(Debug, Default)]
pub struct Stopped {
    pub exit: Option<String>,
    pub log_tail: Option<String>,
}

/// `url` with `pair` (`key=value`, already escaped) added to its query.
pub fn with_query(url: &str, pair: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{pair}")
}

/// Refuses anything but `ws://` to a loopback address unless remote targets are allowed.
pub fn check_url(url: &str, allow_remote: bool) -> anyhow::Result<()> {
    let host = url_host(url).with_context(|| format!("not a ws:// or wss:// URL with a host: {url}"))?;
    if allow_remote || is_loopback(host) {
        Ok(())
    } else {
        bail!("refusing non-loopback target {host:?} (pass --allow-remote if you really mean it)")
    }
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://"))?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Starts the server on 127.0.0.1:0 with a fresh data dir and waits for `listening on ADDR`.
/// `--server-env` pairs (checked by the flag's parser) are set for the server only; with
/// `--server-cpus` it runs under `taskset` (which execs it: the pid stays the server's). With
/// `redis`, the node joins the others through it.
async fn spawn(
    path: &Path,
    common: &Common,
    redis: Option<&SharedRedis>,
) -> anyhow::Result<(Spawned, String)> {
    let data_dir = tempfile::Builder::new().prefix("loadtest-server-").tempdir()?;
    let log = data_dir.path().join("server.log");
    let stderr = std::fs::File::create(&log)?;
    let mut child = crate::child::command(path, common.server_cpus.as_deref())
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path().join("data"))
        // The harness opens thousands of plain (token-less) rooms from one IP.
        .args(["--allow-anonymous", "--ws-connects-per-min", "0"])
        .args(redis.into_iter().flat_map(SharedRedis::server_args))
        .args(&common.server_args)
        // Plain log lines in the log file (tracing-subscriber honours NO_COLOR).
        .env("NO_COLOR", "1")
        // Fan-out is measured without code execution (no sandbox, no warm pool); `--server-env`
        // can give a DOCKER_HOST back.
        .env("DOCKER_HOST", "none")
        .envs(common.server_env.iter().filter_map(|pair| pair.split_once('=')))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = tokio::fs::OpenOptions::new().append(true).open(&log).await?;
    let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            out.write_all(format!("{line}\n").as_bytes()).await?;
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                return Ok(Some(addr.trim().to_owned()));
            }
        }
        anyhow::Ok(None)
    })
    .await;
    // The log goes with the data dir when this returns, so a failure quotes it.
    let addr = match found {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) => bail!("server exited before listening; its output:\n{}", log_tail(&log).await),
        Ok(Err(e)) => return Err(e.context("reading server stdout")),
        Err(_) => bail!(
            "server did not print `listening on ADDR` within {}; its output:\n{}",
            human(STARTUP_TIMEOUT),
            log_tail(&log).await
        ),
    };
    // Keep draining stdout into the log: a full pipe would block the server's logging.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if out.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                break;
            }
        }
    });
    check_url(&format!("ws://{addr}/"), false)?;
    Ok((Spawned { child, log, _data_dir: data_dir }, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        let check = |url: &str, ok: bool| assert_eq!(check_url(url, false).is_ok(), ok, "{url}");
        check("ws://127.0.0.1:5000/ws", true);
        check("ws://127.8.9.10:1", true);
        check("ws://localhost:1234", true);
        check("ws://[::1]:80/ws", true);
        check("ws://user@127.0.0.1:1/ws", true);
        check("ws://10.0.0.1:5000/ws", false);
        check("ws://example.com/ws", false);
        check("ws://[2001:db8::1]:80/ws", false);
        check("http://127.0.0.1:1/ws", false);
        check("ws://", false);
        assert!(check_url("ws://10.0.0.1:5000/ws", true).is_ok());
    }
}
