//! Samples the server process once a second for the time series in the report.

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::procfs::Proc;
use crate::report::ratio;

/// One second of the server's life.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the run's time zero, at the end of this sample's second.
    pub t: f64,
    /// CPU used during the second, percent of one core.
    pub cpu_pct: f64,
    pub rss_kib: u64,
}

/// Samples `proc_` every second from `t0` until `cancel` fires or the process is gone.
pub fn spawn(proc_: Proc, t0: Instant, cancel: CancellationToken) -> JoinHandle<Vec<Point>> {
    tokio::spawn(async move {
        let mut points = Vec::new();
        let mut tick = tokio::time::interval_at(t0, Duration::from_secs(1));
        // A late tick just makes a longer second; cpu_pct divides by the real interval.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut prev: Option<crate::procfs::Sample> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Ok(now) = proc_.sample() else { break };
            if let Some(prev) = prev {
                let wall = now.at.saturating_duration_since(prev.at).as_secs_f64();
                points.push(Point {
                    t: now.at.saturating_duration_since(t0.into_std()).as_secs_f64(),
                    cpu_pct: ratio(proc_.cpu_secs(&prev, &now) * 100.0, wall),
                    rss_kib: now.rss_kib,
                });
            }
            prev = Some(now);
        }
        points
    })
}
