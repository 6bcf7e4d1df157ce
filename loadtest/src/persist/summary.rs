//! The persist report: its JSON shape, the pass/fail verdict, and the human summary.

use serde::Serialize;

use super::extras::ExtrasReport;
use super::verify::RoomCheck;
use crate::cli::PersistArgs;
use crate::duration::human_secs;
use crate::procfs::Usage;
use crate::report::{Latency, fmt_kib, fmt_us, ratio};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct PersistReport {
    pub kind: &'static str,
    /// Every update acknowledged, no writer disconnected, every acknowledged update in its room.
    pub ok: bool,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub config: Config,
    pub connect_secs: f64,
    pub throughput: Throughput,
    /// Update sent → `saved` received, for updates sent in the measured window.
    pub ack_latency: Latency,
    /// `[latency_us, fraction]` points of the ack latency CDF.
    pub ack_latency_cdf: Vec<[f64; 2]>,
    /// Present when the server's PID is known (`--spawn` or `--server-pid`).
    pub server: Option<Server>,
    /// Server CPU (all nodes) per acknowledged update in the window.
    pub server_cpu_us_per_update: Option<f64>,
    /// The journal's group commits, the broker's and workers' CPU, the workers' counters.
    #[serde(flatten)]
    pub extras: ExtrasReport,
    pub harness: Usage,
    /// Busy CPU of the whole machine in the window, percent of one core (all cores summed).
    pub machine_cpu_pct: f64,
    pub verify: Verify,
    /// How a spawned server ended.
    pub server_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    #[serde(flatten)]
    pub args: PersistArgs,
    pub node_urls: Vec<String>,
    pub spawned: Option<String>,
    pub server_args: Vec<String>,
    pub server_env: Vec<String>,
    pub harness_threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Updates/s asked for (0 with `--saturate`: as fast as acknowledgements allow).
    pub offered_per_sec: f64,
    /// Updates sent per second in the window.
    pub sent_per_sec: f64,
    /// Updates acknowledged (`saved`) per second in the window: the persisted rate.
    pub acked_per_sec: f64,
    pub window_secs: f64,
    pub window_sent: u64,
    pub window_acked: u64,
    pub updates_sent: u64,
    pub updates_acked: u64,
    /// Sent and never acknowledged, after the drain: must be 0.
    pub unacknowledged: u64,
    /// Time after sending stopped until the last acknowledgement (or --drain ran out).
    pub drain_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Verify {
    pub rooms_checked: usize,
    pub passed: usize,
    pub failures: Vec<RoomCheck>,
}

/// Everything measured, before the verdict.
pub struct Parts<'a> {
    pub args: &'a PersistArgs,
    pub node_urls: Vec<String>,
    pub threads: usize,
    pub connect_secs: f64,
    pub throughput: Throughput,
    pub latency: Latency,
    pub latency_cdf: Vec<[f64; 2]>,
    /// Why writers disconnected early.
    pub errors: Vec<String>,
    pub server: Option<Server>,
    pub extras: ExtrasReport,
    pub harness: Usage,
    pub machine_cpu_pct: f64,
    pub checks: Vec<RoomCheck>,
}

pub fn assemble(p: Parts<'_>) -> PersistReport {
    let rooms_checked = p.checks.len();
    let failures: Vec<RoomCheck> = p.checks.into_iter().filter(|c| !c.ok()).collect();
    let verify = Verify { rooms_checked, passed: rooms_checked - failures.len(), failures };
    let t = &p.throughput;
    let mut problems = Vec::new();
    if t.unacknowledged > 0 {
        problems.push(format!("{} updates never acknowledged as saved", t.unacknowledged));
    }
    if t.updates_acked == 0 {
        problems.push("no update was acknowledged".to_owned());
    }
    if !p.errors.is_empty() {
        problems.push(format!("{} writers disconnected; first: {}", p.errors.len(), p.errors[0]));
    }
    let lost: u64 = verify.failures.iter().map(|c| c.missing).sum();
    if !verify.failures.is_empty() {
        problems.push(format!(
            "{} rooms lack acknowledged updates ({lost} missing); first: {:?}",
            verify.failures.len(),
            verify.failures[0]
        ));
    }
    let mut warnings = Vec::new();
    if p.extras.journal.is_none() {
        warnings.push("no codecrafter_journal_* counters on the server's /metrics".to_owned());
    }
    if p.args.worker_metrics.len() > p.extras.worker_counters.len() {
        warnings.push("a --worker-metrics endpoint had no persisted-updates counter".to_owned());
    }
    let cpu_per_update = p.server.as_ref().map(|s| ratio(s.window.cpu_secs * 1e6, t.window_acked as f64));
    let common = &p.args.common;
    PersistReport {
        kind: "persist",
        ok: problems.is_empty(),
        problems,
        warnings,
        config: Config {
            args: p.args.clone(),
            node_urls: p.node_urls,
            spawned: common.spawn.as_ref().map(|s| s.display().to_string()),
            server_args: common.server_args.clone(),
            server_env: common.server_env.clone(),
            harness_threads: p.threads,
        },
        connect_secs: p.connect_secs,
        throughput: p.throughput,
        ack_latency: p.latency,
        ack_latency_cdf: p.latency_cdf,
        server_cpu_us_per_update: cpu_per_update,
        server: p.server,
        extras: p.extras,
        harness: p.harness,
        machine_cpu_pct: p.machine_cpu_pct,
        verify,
        server_exit: None,
    }
}

impl PersistReport {
    pub fn print(&self) {
        let t = &self.throughput;
        let a = &self.config.args;
        let offered = if a.saturate {
            format!("saturating, {} in flight per writer", a.in_flight)
        } else {
            format!("{:.0} updates/s offered", t.offered_per_sec)
        };
        println!("persist: {} rooms x {} writers, {offered}", a.rooms, a.writers);
        println!(
            "  updates   sent {:.0}/s, acknowledged {:.0}/s over {}; {} sent, {} acknowledged, {} unacknowledged (drain {})",
            t.sent_per_sec,
            t.acked_per_sec,
            human_secs(t.window_secs),
            t.updates_sent,
            t.updates_acked,
            t.unacknowledged,
            human_secs(t.drain_secs)
        );
        let l = &self.ack_latency;
        println!(
            "  saved     p50 {} p90 {} p99 {} max {} ({} timed)",
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.max_us),
            l.count
        );
        if let Some(j) = &self.extras.journal {
            println!(
                "  journal   {:.0} updates/s in {:.0} batches/s: {:.1} updates per durable batch",
                j.updates_per_sec, j.batches_per_sec, j.updates_per_batch
            );
        }
        if let Some(s) = &self.server {
            println!(
                "  server    CPU {:.1}% ({:.1} µs per acknowledged update); RSS {}",
                s.window.cpu_pct,
                self.server_cpu_us_per_update.unwrap_or_default(),
                fmt_kib(s.window.rss_end_kib as f64)
            );
        }
        if let Some(b) = &self.extras.broker {
            println!("  broker    CPU {:.1}%; RSS {}", b.cpu_pct, fmt_kib(b.rss_end_kib as f64));
        }
        for w in &self.extras.workers {
            println!(
                "  worker    pid {} CPU {:.1}%; RSS {}",
                w.pid,
                w.window.cpu_pct,
                fmt_kib(w.window.rss_end_kib as f64)
            );
        }
        for c in &self.extras.worker_counters {
            println!("  worker    {} {:.0}/s at {}", c.name, c.per_sec, c.url);
        }
        println!(
            "  harness   CPU {:.1}%; machine busy {:.1}% of one core",
            self.harness.cpu_pct, self.machine_cpu_pct
        );
        let v = &self.verify;
        println!("  verify    {} of {} rooms hold every acknowledged update", v.passed, v.rooms_checked);
        for w in &self.warnings {
            println!("  WARN: {w}");
        }
        crate::report::print_verdict(self.server_exit.as_deref(), self.ok, &self.problems);
    }
}
