//! What else a persisted update costs: the broker's and workers' CPU from /proc, and the counters
//! read from Prometheus endpoints at both edges of the window (the servers' journal, the workers'
//! persisted updates).

use anyhow::Context as _;
use serde::Serialize;

use crate::procfs::{Proc, Sample, Usage};
use crate::prom::{self, CounterRate};
use crate::report::ratio;

/// The server's group-commit counters (`server/src/room/journal.rs`).
const JOURNAL_UPDATES: &str = "codecrafter_journal_updates_total";
const JOURNAL_BATCHES: &str = "codecrafter_journal_batches_total";
/// A worker's persisted updates; older workers only count writes.
const WORKER_COUNTERS: [&str; 2] = ["codecrafter_persist_updates_total", "codecrafter_persist_writes_total"];

/// Readings at one edge of the window.
pub struct Edge {
    /// Broker first (if given), then each worker, in flag order.
    procs: Vec<Sample>,
    /// Journal updates and batches summed over the servers; None if a server had no such metrics.
    journal: Option<(f64, f64)>,
    /// Each worker endpoint's counter, with the name found.
    workers: Vec<Option<(&'static str, f64)>>,
}

/// The processes and endpoints read at each edge.
pub struct Extras {
    broker: Option<Proc>,
    workers: Vec<Proc>,
    server_metrics: Vec<String>,
    worker_metrics: Vec<String>,
}

/// The journal over the window: how many updates each durable batch carried.
#[derive(Debug, Clone, Serialize)]
pub struct Journal {
    pub updates: f64,
    pub batches: f64,
    pub updates_per_sec: f64,
    pub batches_per_sec: f64,
    /// The group-commit factor.
    pub updates_per_batch: f64,
}

/// A worker process's CPU over the window.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerUsage {
    pub pid: u32,
    pub window: Usage,
}

/// Everything [`Extras`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct ExtrasReport {
    pub journal: Option<Journal>,
    pub broker: Option<Usage>,
    pub workers: Vec<WorkerUsage>,
    /// Per `--worker-metrics` URL that had the counter at both edges.
    pub worker_counters: Vec<CounterRate>,
}

impl Extras {
    /// `server_metrics`: each server's base URL (its `/metrics` is on the same listener).
    pub fn new(
        broker: Option<u32>,
        workers: &[u32],
        server_metrics: Vec<String>,
        worker_metrics: &[String],
    ) -> anyhow::Result<Self> {
        let extras = Self {
            broker: broker.map(Proc::new),
            workers: workers.iter().copied().map(Proc::new).collect(),
            server_metrics,
            worker_metrics: worker_metrics.to_vec(),
        };
        // Fail before the run, not at its end, on a PID that is not there.
        extras
            .procs()
            .map(Proc::sample)
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--broker-pid or --worker-pid")?;
        Ok(extras)
    }

    fn procs(&self) -> impl Iterator<Item = &Proc> {
        self.broker.iter().chain(&self.workers)
    }

    pub async fn sample(&self) -> anyhow::Result<Edge> {
        let procs = self.procs().map(Proc::sample).collect::<anyhow::Result<_>>()?;
        let mut journal = Some((0.0, 0.0));
        for url in &self.server_metrics {
            let page = prom::page(url).await.ok();
            let read = |name| page.as_deref().and_then(|p| prom::counter(p, name));
            journal = match (journal, read(JOURNAL_UPDATES), read(JOURNAL_BATCHES)) {
                (Some((u, b)), Some(du), Some(db)) => Some((u + du, b + db)),
                _ => None,
            };
        }
        let mut workers = Vec::with_capacity(self.worker_metrics.len());
        for url in &self.worker_metrics {
            let page = prom::page(url).await?;
            workers.push(prom::first_counter(&page, &WORKER_COUNTERS));
        }
        Ok(Edge { procs, journal, workers })
    }

    pub fn between(&self, from: &Edge, to: &Edge, secs: f64) -> ExtrasReport {
        let mut usages =
            (self.procs().zip(from.procs.iter().zip(&to.procs))).map(|(p, (a, b))| Usage::between(p, a, b));
        let broker = self.broker.and_then(|_| usages.next());
        let workers =
            (self.workers.iter().zip(usages)).map(|(p, window)| WorkerUsage { pid: p.pid, window }).collect();
        let journal = match (from.journal, to.journal) {
            (Some((u0, b0)), Some((u1, b1))) => Some(Journal {
                updates: u1 - u0,
                batches: b1 - b0,
                updates_per_sec: ratio(u1 - u0, secs),
                batches_per_sec: ratio(b1 - b0, secs),
                updates_per_batch: ratio(u1 - u0, b1 - b0),
            }),
            _ => None,
        };
        let worker_counters = (self.worker_metrics.iter().zip(from.workers.iter().zip(&to.workers)))
            .filter_map(|(url, (a, b))| {
                let ((name, v0), (_, v1)) = (a.as_ref()?, b.as_ref()?);
                Some(CounterRate::between(url, name, *v0, *v1, secs))
            })
            .collect();
        ExtrasReport { journal, broker, workers, worker_counters }
    }
}
