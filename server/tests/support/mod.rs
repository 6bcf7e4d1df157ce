//! Test support: a real server on port 0 and a real Yjs client (yrs) over a real WebSocket.

#![allow(dead_code)] // each test target uses a different part of this module

pub mod chat;
pub mod client;
pub mod held;
pub mod http;
pub mod processes;
pub mod run;
pub mod stack;

use std::net::SocketAddr;
use std::time::Duration;

use server::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::YClient;

/// A server running in this process on a free port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Start with default settings and a fresh data dir; `tweak` may change any setting.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        tweak(&mut config);
        let mut server = Self::start_with(config).await;
        server._dir = Some(dir);
        server
    }

    /// Start with accounts enforced (no anonymous rooms), as a real deployment runs; rate limits
    /// stay off unless `tweak` sets them.
    pub async fn start_secure(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start(|config| {
            config.allow_anonymous = false;
            config.auth_timeout_ms = 500;
            tweak(config);
        })
        .await
    }

    /// The access-token signer this server uses (its generated secret), to mint expired tokens.
    pub fn token_signer(&self) -> server::auth::AccessTokens {
        let secret = std::fs::read_to_string(self.config.data_dir.join(server::auth::secret::SECRET_FILE))
            .expect("the server generated its JWT secret");
        server::auth::AccessTokens::new(secret.trim().as_bytes(), Duration::from_secs(900))
    }

    /// Start with exactly this config (its data dir is kept by the caller).
    pub async fn start_with(config: Config) -> Self {
        Self::start_on_hub(config, server::LocalHub::new()).await
    }

    /// Start as one node of `hub`, sharing rooms with the other nodes on it.
    pub async fn start_on_hub(config: Config, hub: server::LocalHub) -> Self {
        let listener = tokio::net::TcpListener::bind(config.bind_addr()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::run_with_hub(listener, config.clone(), shutdown.clone(), hub));
        Self { addr, config, shutdown, task: Some(task), _dir: None }
    }

    /// A node of `hub` with its own fresh data dir.
    pub async fn start_node(hub: &server::LocalHub) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_on_hub(Config::for_tests(dir.path()), hub.clone()).await;
        server._dir = Some(dir);
        server
    }

    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://{}/ws/{room}", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn client(&self, room: &str) -> YClient {
        YClient::connect(&self.ws_url(room)).await
    }

    /// Graceful shutdown, as on SIGTERM; returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("shutdown within 30 s").unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A minimal HTTP/1.1 GET over a raw socket (keeps test dependencies small): status and body.
pub async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Poll `condition` every 10 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lint a Prometheus scrape with `promtool check metrics`: any problem it reports fails the test,
/// and so does a missing promtool (never a silent skip).
pub fn promtool_check(metrics: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        panic!(
            "promtool is needed ({e}): apt-get install prometheus, or `source scripts/services.sh && \
             services_install` (scripts/test.sh does)"
        )
    });
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    // Lint problems exit non-zero; anything it says at all is a problem too.
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{metrics}");
}

/// The Docker daemon `scripts/services.sh` started or found (`CODECRAFTER_TEST_DOCKER_HOST`), with
/// the runner images built. Never a silent skip: without it the test fails and says why.
pub fn docker_host() -> String {
    std::env::var("CODECRAFTER_TEST_DOCKER_HOST").unwrap_or_else(|_| {
        panic!(
            "CODECRAFTER_TEST_DOCKER_HOST is not set: run `source scripts/services.sh && services_start` \
             (it starts dockerd and builds the runner images), or run `bash scripts/test.sh`"
        )
    })
}

/// The string literals that come first in the given macro or function calls (`name!(` included):
/// how the metric tests read metric names out of the source.
pub fn first_literals(source: &str, calls: &[&str]) -> Vec<String> {
    let mut literals = Vec::new();
    for call in calls {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                literals.push(literal.to_owned());
            }
        }
    }
    literals
}

/// One whole unmasked frame (as servers send) at the start of `bytes`: its opcode, its payload,
/// and where the next frame starts; `None` until all of it is there.
pub fn server_frame(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (opcode, short) = (*bytes.first()? & 0x0f, *bytes.get(1)? & 0x7f);
    let (len, header) = match short {
        126 => (usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().unwrap())), 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().unwrap()) as usize, 10),
        len => (usize::from(len), 2),
    };
    Some((opcode, bytes.get(header..header + len)?, header + len))
}
