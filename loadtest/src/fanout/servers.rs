//! The server nodes and their Redis over the measured window: the readings taken at its edges, and
//! what each node, all of them together, and Redis used in between.

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

/// Redis over the window, when the nodes share one.
pub fn redis(target: &Target, from: &Window, to: &Window) -> Option<RedisUsage> {
    let (redis, from, to) = (target.redis.as_ref()?, from.redis.as_ref()?, to.redis.as_ref()?);
    Some(RedisUsage::between(redis.url(), from, to))
}
