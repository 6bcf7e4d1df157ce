//! The server under test: a URL checked to be loopback, and optionally a server process we spawned
//! (and must stop) or were told the PID of (to measure).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::cli::Common;
use crate::procfs::Proc;

/// How long a spawned server may take to print `listening on ADDR`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a spawned server may take to exit after SIGTERM (it flushes rooms first).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a spawned server's log shown when a run fails.
const LOG_TAIL_LINES: usize = 20;

pub struct Target {
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
            let (spawned, addr) = spawn(path, common).await?;
            let pid = spawned.child.id().context("spawned server has no pid")?;
            return Ok(Self {
                base_url: format!("ws://{addr}/ws"),
                proc_: Some(Proc::new(pid)),
                spawned: Some(spawned),
            });
        }
        let Some(url) = &common.url else { bail!("give --url ws://HOST:PORT/ws or --spawn PATH") };
        check_url(url, common.allow_remote)?;
        let proc_ = common.server_pid.map(Proc::new);
        if let Some(p) = &proc_ {
            p.sample().context("--server-pid")?;
        }
        Ok(Self { base_url: url.trim_end_matches('/').to_owned(), proc_, spawned: None })
    }

    pub fn room_url(&self, room: &str) -> String {
        format!("{}/{room}", self.base_url)
    }

    /// Stops a spawned server: SIGTERM, wait, SIGKILL after a timeout. Says how it ended, with the
    /// end of its log (read before the temporary data dir and log are removed).
    pub async fn shutdown(self) -> Stopped {
        let Some(mut spawned) = self.spawned else { return Stopped::default() };
        let exit = match spawned.child.id() {
            None => "had already exited".to_owned(),
            Some(pid) => {
                // std has no signal API and unsafe code is forbidden here, so ask kill(1).
                let termed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
                if termed.is_ok_and(|s| s.success())
                    && let Ok(Ok(status)) = tokio::time::timeout(STOP_TIMEOUT, spawned.child.wait()).await
                {
                    format!("stopped by SIGTERM: {status}")
                } else {
                    let _ = spawned.child.kill().await;
                    format!("did not stop within {STOP_TIMEOUT:?} of SIGTERM: killed")
                }
            }
        };
        let log = tokio::fs::read_to_string(&spawned.log).await.unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        Stopped { exit: Some(exit), log_tail: Some(tail) }
    }
}

/// How a spawned server ended; empty when we did not spawn it.
#[derive(Debug, Default)]
pub struct Stopped {
    pub exit: Option<String>,
    pub log_tail: Option<String>,
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

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Starts the server on 127.0.0.1:0 with a fresh data dir and waits for `listening on ADDR`.
/// `--server-env` pairs (checked by the flag's parser) are set for the server only; with
/// `--server-cpus` it runs under `taskset` (which execs it: the pid stays the server's).
async fn spawn(path: &Path, common: &Common) -> anyhow::Result<(Spawned, String)> {
    let data_dir = tempfile::Builder::new().prefix("loadtest-server-").tempdir()?;
    let log = data_dir.path().join("server.log");
    let stderr = std::fs::File::create(&log)?;
    let mut command = match &common.server_cpus {
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", cpus]).arg(path);
            taskset
        }
        None => Command::new(path),
    };
    let mut child = command
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path().join("data"))
        // The harness opens thousands of plain (token-less) rooms from one IP.
        .args(["--allow-anonymous", "--ws-connects-per-min", "0"])
        .args(&common.server_args)
        // Plain log lines in the log file (tracing-subscriber honours NO_COLOR).
        .env("NO_COLOR", "1")
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
    let addr = match found {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) => bail!("server exited before listening; its output is in {}", log.display()),
        Ok(Err(e)) => return Err(e.context("reading server stdout")),
        Err(_) => bail!(
            "server did not print `listening on ADDR` within {STARTUP_TIMEOUT:?}; see {}",
            log.display()
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
