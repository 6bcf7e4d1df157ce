//! The fan-out report: its JSON shape, the pass/fail verdict, and the human summary.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::converge::RoomCheck;
use crate::cli::{FanoutArgs, Workload};
use crate::duration::human_secs;
use crate::procfs::Usage;
use crate::redis_info::RedisUsage;
use crate::report::{Latency, fmt_kib, fmt_us};
use crate::servers::Server;

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub kind: &'static str,
    /// No loss, no duplicates, no reordering, no disconnects, every sampled room converged.
    pub ok: bool,
    pub problems: Vec<String>,
    /// Oddities that do not fail the run.
    pub warnings: Vec<String>,
    pub config: Config,
    pub connect_secs: f64,
    /// Fan-out latency (send to receive) of updates sent in the measured window.
    pub latency: Latency,
    /// `[latency_us, fraction]` points of the latency CDF.
    pub latency_cdf: Vec<[f64; 2]>,
    /// `[percentile, latency_us]` points, 20 per decade of nines (see `report::percentile_points`).
    pub latency_percentiles: Vec<[f64; 2]>,
    /// Every measured latency, for a caller that pools several runs (`compare` merges a target's
    /// rounds into one percentile curve); the JSON carries the points above instead.
    #[serde(skip)]
    pub latency_hist: Histogram<u64>,
    pub deliveries: Deliveries,
    pub send: SendStats,
    /// Present when the server's PID is known (`--spawn` or `--server-pid`).
    pub server: Option<Server>,
    /// Present with `--redis-url`: what the Redis the nodes share did in the window.
    pub redis: Option<RedisUsage>,
    /// The harness's own CPU and memory over the measured window.
    pub harness: Usage,
    /// Busy CPU of the whole machine in the window, percent of one core (all cores summed).
    pub machine_cpu_pct: f64,
    /// What else ran: machine minus servers, Redis and harness. Large values mean a noisy measurement.
    pub other_cpu_pct: f64,
    /// Deliveries received in each second since the writers' time zero (by receive time).
    pub per_second: Vec<u64>,
    pub convergence: Convergence,
    /// How a spawned server ended.
    pub server_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    #[serde(flatten)]
    pub workload: Workload,
    /// The first node's base URL (the only one unless `--nodes` spawned more).
    pub url: String,
    /// Every node's base URL; client j of room r talks to node (r + j) % nodes.
    pub node_urls: Vec<String>,
    pub spawned: Option<String>,
    pub server_args: Vec<String>,
    pub harness_threads: usize,
    pub drain_secs: f64,
    pub converge_rooms: usize,
}

#[derive(Debug, Serialize)]
pub struct Deliveries {
    /// Updates sent times (clients per room - 1).
    pub expected: u64,
    pub received: u64,
    pub missing: u64,
    pub extra: u64,
    /// Out-of-sequence arrivals seen by receivers (loss, duplication or reordering).
    pub gaps: u64,
    pub unmarked: u64,
    /// The first 64 bytes of the first update without a marker, hex.
    pub first_unmarked_hex: Option<String>,
    /// Empty updates received (not counted as deliveries; a warning, not a failure).
    pub empty_updates: u64,
    /// Writers' own updates sent back to them (not deliveries; y-websocket-server echoes).
    pub echoes: u64,
    pub malformed: u64,
    pub disconnected_clients: usize,
    /// The first few disconnect reasons.
    pub errors: Vec<String>,
    pub window_secs: f64,
    pub window_delivered: u64,
    /// Deliveries per second over all receivers during the measured window.
    pub per_sec: f64,
    /// Time after sending stopped until every expected delivery arrived (or --drain ran out).
    pub drain_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct SendStats {
    pub requested_per_sec: f64,
    pub achieved_per_sec: f64,
    pub updates_sent: u64,
    pub measured_sent: u64,
    /// How late the paced sender was against its schedule (harness overload shows here).
    pub max_lag_ms: f64,
    pub mean_lag_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Convergence {
    pub rooms_checked: usize,
    pub passed: usize,
    pub failures: Vec<RoomCheck>,
}

impl Convergence {
    pub fn from_checks(checks: Vec<RoomCheck>) -> Self {
        let rooms_checked = checks.len();
        let failures: Vec<RoomCheck> = checks.into_iter().filter(|c| !c.ok).collect();
        Self { rooms_checked, passed: rooms_checked - failures.len(), failures }
    }
}

/// What the clients saw, merged.
pub struct Tally {
    pub hist: Histogram<u64>,
    pub delivered: u64,
    pub gaps: u64,
    pub unmarked: u64,
    pub empty: u64,
    pub echoes: u64,
    pub malformed: u64,
    pub errors: Vec<String>,
    pub first_unmarked: Option<String>,
}

/// Everything measured, before the verdict.
pub struct Parts<'a> {
    pub args: &'a FanoutArgs,
    pub workload: Workload,
    pub node_urls: Vec<String>,
    pub threads: usize,
    pub connect_secs: f64,
    pub latency: Latency,
    pub latency_cdf: Vec<[f64; 2]>,
    pub latency_percentiles: Vec<[f64; 2]>,
    pub latency_hist: Histogram<u64>,
    pub deliveries: Deliveries,
    pub send: SendStats,
    pub server: Option<Server>,
    pub redis: Option<RedisUsage>,
    pub harness: Usage,
    pub machine_cpu_pct: f64,
    pub per_second: Vec<u64>,
    pub convergence: Convergence,
}

pub fn assemble(p: Parts<'_>) -> FanoutReport {
    let problems = verdict(&p.deliveries, &p.convergence);
    let server_cpu_pct = p.server.as_ref().map_or(0.0, |s| s.window.cpu_pct);
    let redis_cpu_pct = p.redis.as_ref().map_or(0.0, |r| r.cpu_pct);
    let other_cpu_pct = (p.machine_cpu_pct - p.harness.cpu_pct - server_cpu_pct - redis_cpu_pct).max(0.0);
    let mut per_second = p.per_second;
    while per_second.len() > 1 && per_second.last() == Some(&0) {
        per_second.pop();
    }
    FanoutReport {
        kind: "fanout",
        ok: problems.is_empty(),
        problems,
        warnings: warnings(&p.deliveries),
        config: Config {
            workload: p.workload,
            url: p.node_urls.first().cloned().unwrap_or_default(),
            node_urls: p.node_urls,
            spawned: p.args.common.spawn.as_ref().map(|s| s.display().to_string()),
            server_args: p.args.common.server_args.clone(),
            harness_threads: p.threads,
            drain_secs: p.args.drain.as_secs_f64(),
            converge_rooms: p.args.converge_rooms,
        },
        connect_secs: p.connect_secs,
        latency: p.latency,
        latency_cdf: p.latency_cdf,
        latency_percentiles: p.latency_percentiles,
        latency_hist: p.latency_hist,
        deliveries: p.deliveries,
        send: p.send,
        server: p.server,
        redis: p.redis,
        other_cpu_pct,
        harness: p.harness,
        machine_cpu_pct: p.machine_cpu_pct,
        per_second,
        convergence: p.convergence,
        server_exit: None,
    }
}

fn warnings(d: &Deliveries) -> Vec<String> {
    let mut warnings = Vec::new();
    if d.empty_updates > 0 {
        warnings.push(format!(
            "server sent {} empty sync updates ([0,0]); y-websocket relays only updates that change the doc",
            d.empty_updates
        ));
    }
    if d.echoes > 0 {
        warnings.push(format!(
            "server sent {} updates back to their writers, not counted as deliveries (y-websocket-server echoes every update; CodeCrafter only inside a round that merged several writers' updates)",
            d.echoes
        ));
    }
    warnings
}

/// Every reason the run failed; empty means it passed.
fn verdict(d: &Deliveries, c: &Convergence) -> Vec<String> {
    let mut problems = Vec::new();
    if d.missing > 0 {
        // Missing when the drain ran out: lost, or still queued behind an overload (a saturation
        // step past the knee can leave seconds of backlog; a longer --drain tells them apart).
        problems.push(format!(
            "LOST {} of {} expected deliveries (not arrived {:.1}s after sending stopped: lost, or later than --drain)",
            d.missing, d.expected, d.drain_secs
        ));
    }
    if d.extra > 0 {
        problems.push(format!("{} deliveries more than expected (duplicates or echoes)", d.extra));
    }
    if d.gaps > 0 {
        problems.push(format!("{} out-of-sequence deliveries (loss, duplication or reordering)", d.gaps));
    }
    if d.unmarked > 0 {
        problems.push(format!(
            "{} updates without a readable marker, first: {}",
            d.unmarked,
            d.first_unmarked_hex.as_deref().unwrap_or("?")
        ));
    }
    if d.malformed > 0 {
        problems.push(format!("{} malformed frames from the server", d.malformed));
    }
    if d.disconnected_clients > 0 {
        problems.push(format!(
            "{} clients disconnected early, first: {}",
            d.disconnected_clients,
            d.errors.first().map_or("?", String::as_str)
        ));
    }
    if c.passed < c.rooms_checked {
        problems.push(format!(
            "{} of {} rooms did not converge, first: {}: {}",
            c.rooms_checked - c.passed,
            c.rooms_checked,
            c.failures[0].room,
            c.failures[0].detail.as_deref().unwrap_or("?")
        ));
    }
    problems
}

impl FanoutReport {
    pub fn print(&self) {
        let w = &self.config.workload;
        println!("fanout {:?}: {}, op {:?}", w.shape, w.describe(), w.op);
        let l = &self.latency;
        println!(
            "  latency   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us),
            l.count
        );
        let d = &self.deliveries;
        println!(
            "  delivered {:.0}/s in the window; {} of {} expected received (missing {}, extra {}, gaps {}), drained in {}",
            d.per_sec,
            d.received,
            d.expected,
            d.missing,
            d.extra,
            d.gaps,
            human_secs(d.drain_secs)
        );
        let s = &self.send;
        println!(
            "  sent      {:.1}/s of {:.0}/s requested; sender lag mean {}, max {}",
            s.achieved_per_sec,
            s.requested_per_sec,
            human_secs(s.mean_lag_ms / 1000.0),
            human_secs(s.max_lag_ms / 1000.0)
        );
        if let Some(sv) = &self.server {
            let over = match sv.nodes.len() {
                1 => String::new(),
                n => format!(" over {n} nodes"),
            };
            println!(
                "  server    CPU {:.1}%{over} ({:.2} µs per delivery); RSS {} before clients, {} at window start, {} at end, peak {}",
                sv.window.cpu_pct,
                sv.cpu_us_per_delivery,
                fmt_kib(sv.rss_before_clients_kib as f64),
                fmt_kib(sv.window.rss_start_kib as f64),
                fmt_kib(sv.window.rss_end_kib as f64),
                fmt_kib(sv.window.rss_peak_kib as f64)
            );
            for (i, node) in sv.nodes.iter().enumerate().filter(|_| sv.nodes.len() > 1) {
                println!(
                    "  node {i}    CPU {:.1}% ({}); RSS {} at window start, {} at end; {}",
                    node.window.cpu_pct,
                    human_secs(node.window.cpu_secs),
                    fmt_kib(node.window.rss_start_kib as f64),
                    fmt_kib(node.window.rss_end_kib as f64),
                    node.url
                );
            }
        }
        if let Some(r) = &self.redis {
            println!(
                "  redis     {:.0} PUBLISH/s, {:.0} commands/s, CPU {:.1}% ({})",
                r.publishes_per_sec,
                r.commands_per_sec,
                r.cpu_pct,
                human_secs(r.cpu_secs)
            );
        }
        println!(
            "  harness   CPU {:.1}%, RSS {} (peak {}); machine busy {:.1}% of one core, {:.1}% by other processes",
            self.harness.cpu_pct,
            fmt_kib(self.harness.rss_end_kib as f64),
            fmt_kib(self.harness.rss_peak_kib as f64),
            self.machine_cpu_pct,
            self.other_cpu_pct
        );
        let c = &self.convergence;
        println!("  converge  {} of {} rooms checked converged", c.passed, c.rooms_checked);
        for w in &self.warnings {
            println!("  WARN: {w}");
        }
        crate::report::print_verdict(self.server_exit.as_deref(), self.ok, &self.problems);
    }
}
