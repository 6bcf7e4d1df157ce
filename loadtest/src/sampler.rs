//! Samples the server processes once a second for the time series in the report.

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::procfs::{Proc, Sample, sample_all};
use crate::report::ratio;

/// One second of the servers' life, summed over every node (one line in a plot however many
/// nodes ran; the report has each node's CPU over the whole window).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the run's time zero, at the end of this sample's second.
    pub t: f64,
    /// CPU used during the second, percent of one core.
    pub cpu_pct: f64,
    pub rss_kib: u64,
}

/// Samples `procs` every second from `t0` until `cancel` fires or one of them is gone.
pub fn spawn(procs: Vec<Proc>, t0: Instant, cancel: CancellationToken) -> JoinHandle<Vec<Point>> {
    tokio::spawn(async move {
        let mut points = Vec::new();
        let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
        // A late tick just makes a longer second; cpu_pct divides by the real interval.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut prev: Option<Vec<Sample>> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Ok(now) = sample_all(&procs) else { break };
            if let (Some(prev), Some(first)) = (prev, now.first()) {
                // The nodes are read microseconds apart: the first one's clock stands for all.
                let wall = first.at.saturating_duration_since(prev[0].at).as_secs_f64();
                let cpu_secs: f64 =
                    (procs.iter().zip(&prev).zip(&now)).map(|((p, a), b)| p.cpu_secs(a, b)).sum();
                points.push(Point {
                    t: first.at.saturating_duration_since(t0.into_std()).as_secs_f64(),
                    cpu_pct: ratio(cpu_secs * 100.0, wall),
                    rss_kib: now.iter().map(|s| s.rss_kib).sum(),
                });
            }
            prev = Some(now);
        }
        points
    })
}
