//! The server nodes and their Redis over a measured window (fanout, persist): the readings taken
//! at its edges, and what each node, all of them together, and Redis used in between.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::procfs::{Proc, Sample, Usage, sample_all};
use crate::redis_info::{RedisSample, RedisUsage};
use crate::report::ratio;
use crate::sampler::Point;
use crate::target::Target;

/// Counters at one edge of the measured window.
pub struct Window {
    pub at: Instant,
    pub machine_ticks: Option<u64>,
    pub delivered: u64,
    /// Every node, in node order, when all their PIDs are known.
    pub servers: Option<Vec<Sample>>,
    pub harness: Sample,
    pub redis: Option<RedisSample>,
}

impl Window {
    pub async fn sample(
        target: &Target,
        procs: Option<&[Proc]>,
        harness: &Proc,
        delivered: &AtomicU64,
    ) -> anyhow::Result<Self> {
        let mut window = Self {
            at: Instant::now(),
            machine_ticks: crate::procfs::machine_busy_ticks(),
            delivered: delivered.load(Ordering::Relaxed),
            servers: procs.map(sample_all).transpose().context("sampling the server")?,
            harness: harness.sample()?,
            redis: None,
        };
        // After the /proc readings, which are one syscall each: Redis takes three round trips.
        if let Some(redis) = &target.redis {
            window.redis = Some(redis.sample().await.context("sampling Redis")?);
        }
        Ok(window)
    }

    /// Busy CPU of the whole machine from this edge to `to`, percent of one core (all cores summed).
    pub fn machine_cpu_pct(&self, to: &Self, ticks_per_sec: u64) -> f64 {
        let wall = to.at.saturating_duration_since(self.at).as_secs_f64();
        match (self.machine_ticks, to.machine_ticks) {
            (Some(from), Some(to)) => {
                ratio(to.saturating_sub(from) as f64 * 100.0 / ticks_per_sec as f64, wall)
            }
            _ => 0.0,
        }
    }
}

/// The servers over the window: every node together, then each one.
#[derive(Debug, Serialize)]
pub struct Server {
    /// All nodes together: CPU and RSS summed (one node: that node).
    pub window: Usage,
    /// Summed over the nodes.
    pub rss_before_clients_kib: u64,
    /// Server CPU summed over the nodes, per delivery in the window.
    pub cpu_us_per_delivery: f64,
    /// All nodes together, once a second.
    pub per_second: Vec<Point>,
    pub nodes: Vec<NodeUsage>,
}

/// One node over the window.
#[derive(Debug, Serialize)]
pub struct NodeUsage {
    pub url: String,
    pub pid: u32,
    pub rss_before_clients_kib: u64,
    pub window: Usage,
}

/// Everything [`Server`] is made of; `before` was read before any client connected.
pub struct Readings<'a> {
    pub target: &'a Target,
    pub procs: &'a [Proc],
    pub before: &'a [Sample],
    pub from: &'a [Sample],
    pub to: &'a [Sample],
    pub window_delivered: u64,
    pub per_second: Vec<Point>,
}

pub fn server(r: Readings<'_>) -> Server {
    let nodes: Vec<NodeUsage> = (r.target.nodes().iter().zip(r.procs))
        .zip(r.before.iter().zip(r.from).zip(r.to))
        .map(|((node, p), ((before, from), to))| NodeUsage {
            url: node.base_url.clone(),
            pid: p.pid,
            rss_before_clients_kib: before.rss_kib,
            window: Usage::between(p, from, to),
        })
        .collect();
    let window = Usage::total(&nodes.iter().map(|n| n.window).collect::<Vec<_>>());
    Server {
        rss_before_clients_kib: nodes.iter().map(|n| n.rss_before_clients_kib).sum(),
        cpu_us_per_delivery: ratio(window.cpu_secs * 1e6, r.window_delivered as f64),
        window,
        per_second: r.per_second,
        nodes,
    }
}

/// The servers between two window edges, when every node's PID is known (`before`: read before
/// any client connected); the edges' counts are deliveries (fanout) or acknowledged updates (persist).
pub fn over_window(
    target: &Target,
    procs: Option<&[Proc]>,
    before: Option<&[Sample]>,
    (from, to): (&Window, &Window),
    per_second: Vec<Point>,
) -> Option<Server> {
    let (procs, before) = (procs?, before?);
    let (from_servers, to_servers) = (from.servers.as_deref()?, to.servers.as_deref()?);
    Some(server(Readings {
        target,
        procs,
        before,
        from: from_servers,
        to: to_servers,
        window_delivered: to.delivered - from.delivered,
        per_second,
    }))
}

/// Redis over the window, when the nodes share one.
pub fn redis(target: &Target, from: &Window, to: &Window) -> Option<RedisUsage> {
    let (redis, from, to) = (target.redis.as_ref()?, from.redis.as_ref()?, to.redis.as_ref()?);
    Some(RedisUsage::between(redis.url(), from, to))
}
