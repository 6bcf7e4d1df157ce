//! Servers the harness starts itself (a spawned CodeCrafter node, a peer from `peers/`): the
//! command, pinned with `taskset` when asked, the stop (SIGTERM, then SIGKILL), and the end of
//! the log shown when something went wrong.

use std::path::Path;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::duration::human;

/// Lines of a server's log quoted when a run fails.
pub const LOG_TAIL_LINES: usize = 20;

/// `program`, under `taskset --cpu-list CPUS` when given; taskset execs it, so the child's pid
/// stays the server's: the process to measure.
pub fn command(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", cpus]).arg(program);
            taskset
        }
        None => Command::new(program),
    }
}

/// SIGTERM, then SIGKILL if it has not exited within `timeout`; says how it ended.
pub async fn stop(child: &mut Child, timeout: Duration) -> String {
    let Some(pid) = child.id() else { return "had already exited".to_owned() };
    // std has no signal API and unsafe code is forbidden here, so ask kill(1).
    let termed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    if termed.is_ok_and(|s| s.success())
        && let Ok(Ok(status)) = tokio::time::timeout(timeout, child.wait()).await
    {
        return format!("stopped by SIGTERM: {status}");
    }
    let _ = child.kill().await;
    format!("did not stop within {} of SIGTERM: killed", human(timeout))
}

/// The last [`LOG_TAIL_LINES`] lines of the log at `path`.
pub async fn log_tail(path: &Path) -> String {
    let log = tokio::fs::read_to_string(path).await.unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
