//! The `loadtest` binary against a real `codecrafter` server it spawns, no services needed (the
//! Redis-backed run is `tests/two_nodes.rs`).
//!
//! Needs the `codecrafter` binary built next to `loadtest` (`cargo build -p server`; the
//! workspace's test command builds it), and for `hocuspocus` and `compare` npm (the peers'
//! `npm ci`). Without them the tests fail and say so: they never skip.

mod auth;
mod compare;
mod hocuspocus;
mod idle_sources;
mod persist;
mod rounds;
mod saturate;
#[path = "../support/server_bin.rs"]
mod server_bin;

use std::process::{Command, Output};

use serde_json::Value;

use crate::server_bin::codecrafter;

/// A finished run: its exit, output, and JSON report.
pub struct Run {
    pub out: Output,
    pub report: Value,
    /// Report and output, for assertion messages.
    pub context: String,
}

/// Runs `loadtest SUBCOMMAND --spawn codecrafter ARGS --report FILE` and reads the report.
pub fn run_spawned(subcommand: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg(subcommand)
        .arg("--spawn")
        .arg(codecrafter())
        .args(args)
        .arg("--report")
        .arg(&path)
        .output()
        .expect("running loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report ({e}); loadtest {}\n{stdout}\n{stderr}", out.status));
    let report = serde_json::from_str(&json).expect("the report is JSON");
    let context = format!("loadtest {}\nreport:\n{json}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    Run { out, report, context }
}
