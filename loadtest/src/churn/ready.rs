//! The server's `GET /ready` (how many rooms it holds in memory) and a monitor that samples it with
//! the server's RSS every 100 ms, so the report has peaks a once-a-second sampler would miss.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::plain_http;
use crate::procfs::Proc;

/// How often the monitor samples.
pub const MONITOR_PERIOD: Duration = Duration::from_millis(100);
/// `/ready` answers in well under a KiB; more means we are not talking to the server we think.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Rooms in memory according to `GET http://{authority}/ready`. A 503 answer still carries the
/// count (the server answers 503 while shutting down or when its store fails), so any status with
/// a count is accepted.
pub async fn rooms(authority: &str) -> anyhow::Result<u64> {
    let body = plain_http::get(authority, "/ready", MAX_RESPONSE_BYTES).await?;
    parse_rooms(&body).with_context(|| format!("no \"rooms\" count in /ready's answer: {body:?}"))
}

/// The `rooms` field of `/ready`'s JSON body.
pub fn parse_rooms(body: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(body.trim()).ok()?.get("rooms")?.as_u64()
}

/// One monitor reading; a field is missing when its source could not be read.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the monitor started.
    pub t: f64,
    pub rss_kib: Option<u64>,
    pub rooms: Option<u64>,
}

/// A running monitor: the latest room count (for waiting on eviction) and the series so far.
pub struct Monitor {
    /// The latest room count, with when its request was sent.
    rooms: watch::Receiver<Option<(Instant, u64)>>,
    pub started: Instant,
    cancel: CancellationToken,
    task: JoinHandle<Vec<Point>>,
}

impl Monitor {
    pub fn spawn(proc_: Option<Proc>, authority: String) -> Self {
        let (tx, latest) = watch::channel(None);
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let mut points = Vec::new();
            let mut tick = tokio::time::interval(MONITOR_PERIOD);
            // A slow /ready answer makes one longer gap, not a burst of catch-up requests.
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let asked = Instant::now();
                let rss_kib = proc_.as_ref().and_then(|p| p.sample().ok()).map(|s| s.rss_kib);
                let count = rooms(&authority).await.ok();
                let t = asked.duration_since(started).as_secs_f64();
                points.push(Point { t, rss_kib, rooms: count });
                if let Some(count) = count {
                    tx.send_replace(Some((asked, count)));
                }
            }
            points
        });
        Self { rooms: latest, started, cancel, task }
    }

    /// Seconds since the monitor started, on the series' clock.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Waits until `/ready` reports no rooms in an answer to a request sent from now on (an
    /// earlier 0 may predate the rooms just opened); false if that did not happen within `limit`.
    pub async fn wait_for_zero_rooms(&mut self, limit: Duration) -> bool {
        let since = Instant::now();
        let zero = self.rooms.wait_for(|r| matches!(r, Some((asked, 0)) if *asked >= since));
        tokio::time::timeout(limit, zero).await.is_ok_and(|r| r.is_ok())
    }

    /// The latest room count read, if any.
    pub fn last_rooms(&self) -> Option<u64> {
        self.rooms.borrow().map(|(_, count)| count)
    }

    pub async fn stop(self) -> Vec<Point> {
        self.cancel.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Highest RSS and room count among the points with `from <= t < to`.
pub fn peaks(points: &[Point], from: f64, to: f64) -> (Option<u64>, Option<u64>) {
    let window = || points.iter().filter(move |p| p.t >= from && p.t < to);
    (window().filter_map(|p| p.rss_kib).max(), window().filter_map(|p| p.rooms).max())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_from_ready_json() {
        let body = r#"{"accepting":true,"rooms":1234,"status":"ready","store":"ok"}"#;
        assert_eq!(parse_rooms(body), Some(1234));
        assert_eq!(parse_rooms("{\"rooms\" : 0}\r\n"), Some(0));
        assert_eq!(parse_rooms(r#"{"status":"not_ready","rooms":7}"#), Some(7));
        assert_eq!(parse_rooms(r#"{"status":"ready"}"#), None);
        assert_eq!(parse_rooms(r#"{"rooms":"many"}"#), None);
        assert_eq!(parse_rooms(r#"{"rooms":-1}"#), None);
        assert_eq!(parse_rooms("<html>502</html>"), None);
    }

    #[test]
    fn peaks_in_a_window() {
        let p = |t, rss, rooms| Point { t, rss_kib: rss, rooms };
        let points = [
            p(0.1, Some(10), Some(1)),
            p(0.2, Some(30), None),
            p(0.3, None, Some(9)),
            p(0.4, Some(50), Some(0)),
        ];
        assert_eq!(peaks(&points, 0.0, 0.35), (Some(30), Some(9)));
        assert_eq!(peaks(&points, 0.35, 1.0), (Some(50), Some(0)));
        assert_eq!(peaks(&points, 2.0, 3.0), (None, None));
    }
}
