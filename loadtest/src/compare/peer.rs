//! A peer server (`@y/websocket-server`, Hocuspocus) started for one run: `peers/start.sh NAME
//! PORT` on a free loopback port, ready once the port accepts connections, stopped after.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Child;
use tokio::time::Instant;

use crate::cli::Peer;
use crate::duration::human;

/// `npm ci` on a cold cache (start.sh installs the pinned packages when `node_modules` is
/// missing) plus Node's start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Node exits on SIGTERM at once (neither peer installs a handler); this is generous.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a starting peer's port is tried.
const POLL: Duration = Duration::from_millis(50);

/// A running peer; killed if dropped without [`PeerServer::stop`].
pub struct PeerServer {
    child: Child,
    pub pid: u32,
    pub port: u16,
    log: PathBuf,
    // Holds the log file's directory for as long as the peer runs.
    _dir: tempfile::TempDir,
}

/// The default `peers/` directory: this crate's, where `start.sh` and the lockfile are.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

impl PeerServer {
    /// Starts `peer` from `dir` (under `taskset --cpu-list CPUS` when given, like a spawned
    /// CodeCrafter with `--server-cpus`) and waits until it accepts connections. start.sh and
    /// taskset both `exec`, so the child's pid is Node's: the process to measure.
    pub async fn start(peer: Peer, dir: &Path, cpus: Option<&str>) -> anyhow::Result<Self> {
        let script = dir.join("start.sh");
        let port = free_port()?;
        let log_dir = tempfile::Builder::new().prefix("loadtest-peer-").tempdir()?;
        let log = log_dir.path().join("peer.log");
        let out = std::fs::File::create(&log)?;
        let child = crate::child::command(&script, cpus)
            .args([peer.name(), &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let pid = child.id().context("the peer has no pid")?;
        let mut server = Self { child, pid, port, log, _dir: log_dir };
        server.wait_ready(peer).await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, peer: Peer) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited before listening ({status}); it needs npm and, the first time, the npm \
                     registry (start.sh runs `npm ci`). Its output:\n{}",
                    peer.name(),
                    self.log_tail().await
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not listen on {} within {}; its output:\n{}",
                    peer.name(),
                    self.port,
                    human(STARTUP_TIMEOUT),
                    self.log_tail().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; says how it ended.
    pub async fn stop(mut self) -> String {
        crate::child::stop(&mut self.child, STOP_TIMEOUT).await
    }

    async fn log_tail(&self) -> String {
        crate::child::log_tail(&self.log).await
    }
}

/// A port the kernel just handed out and took back: free unless something races us to it.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
