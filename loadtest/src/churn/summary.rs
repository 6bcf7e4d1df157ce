//! The churn report: what was measured, the verdict, and the human summary.

use serde::Serialize;

use super::ready::Point;
use crate::duration::human_secs;
use crate::report::{fmt_kib, ratio};

#[derive(Debug, Serialize)]
pub struct ChurnReport {
    pub kind: &'static str,
    pub ok: bool,
    pub problems: Vec<String>,
    pub config: Config,
    /// Opening every room: connect, sync, one update, close answered.
    pub open_secs: f64,
    pub rooms_per_sec: f64,
    pub open_failures: usize,
    /// Most rooms `/ready` reported in memory at once, from the first room opened until all were
    /// evicted. Rooms opened early are evicted while later ones open, so this is below `rooms`
    /// unless opening takes less than the server's idle time.
    pub peak_rooms: Option<u64>,
    pub evicted: bool,
    /// From the last room closed until `/ready` reported 0 rooms.
    pub evict_secs: Option<f64>,
    pub server: Option<Memory>,
    pub verify: Verify,
    /// The first few open failures.
    pub errors: Vec<String>,
    /// RSS and `/ready` room count every 100 ms from the warm-up to the final RSS reading.
    pub series: Vec<Point>,
    pub server_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub rooms: usize,
    pub concurrency: usize,
    pub baseline_settle_secs: f64,
    pub evict_timeout_secs: f64,
    pub settle_secs: f64,
    pub verify_rooms: usize,
    pub url: String,
    pub ready_url: String,
    pub spawned: Option<String>,
    /// As passed to the spawned server, `--room-idle-secs` included.
    pub server_args: Vec<String>,
    pub server_env: Vec<String>,
    pub harness_threads: usize,
}

/// Server RSS (KiB) through the run.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// After the warm-up room was opened, closed and evicted, and `--baseline-settle`.
    pub baseline_kib: u64,
    /// Highest 100 ms sample while rooms were being opened.
    pub peak_open_kib: u64,
    /// Highest 100 ms sample from the last close until every room was evicted (persisting them
    /// allocates too).
    pub peak_evict_kib: u64,
    /// The larger of the two.
    pub peak_kib: u64,
    /// After every room was evicted and `--settle`.
    pub after_kib: u64,
    /// `after - baseline`: memory the churn left behind.
    pub retained_kib: i64,
    /// `retained / (peak - baseline)`, percent: 0 is back to baseline, 100 is nothing returned.
    pub retained_pct_of_growth: f64,
    /// The kernel's high-water mark at the end (VmHWM: the lifetime peak, between samples too).
    pub hwm_kib: u64,
    /// Server CPU seconds while the rooms were opened.
    pub open_cpu_secs: f64,
}

impl Memory {
    pub fn new(baseline_kib: u64, peak_open_kib: u64, peak_evict_kib: u64, after_kib: u64) -> Self {
        let peak_kib = peak_open_kib.max(peak_evict_kib);
        let (retained_kib, retained_pct_of_growth) = retained(baseline_kib, peak_kib, after_kib);
        Self {
            baseline_kib,
            peak_open_kib,
            peak_evict_kib,
            peak_kib,
            after_kib,
            retained_kib,
            retained_pct_of_growth,
            hwm_kib: 0,
            open_cpu_secs: 0.0,
        }
    }
}

/// (after − baseline in KiB, that as a percentage of peak − baseline). The percentage is 0 when
/// the peak never rose above the baseline (nothing to return).
pub fn retained(baseline_kib: u64, peak_kib: u64, after_kib: u64) -> (i64, f64) {
    let kib = after_kib as i64 - baseline_kib as i64;
    (kib, ratio(kib as f64 * 100.0, peak_kib.saturating_sub(baseline_kib) as f64))
}

#[derive(Debug, Serialize)]
pub struct Verify {
    pub seed: u64,
    pub sampled: usize,
    pub ok: usize,
    pub failures: Vec<RoomFailure>,
}

#[derive(Debug, Serialize)]
pub struct RoomFailure {
    pub room: String,
    pub detail: String,
}

impl ChurnReport {
    pub fn print(&self) {
        let c = &self.config;
        println!(
            "churn: {} rooms, {} at once, one client and one text update each; {}",
            c.rooms,
            c.concurrency,
            c.server_args.iter().find(|a| a.starts_with("--room-idle-secs")).map_or("", String::as_str)
        );
        println!(
            "  open      {} ({:.0} rooms/s: connect, sync, update, close); {} failed",
            human_secs(self.open_secs),
            self.rooms_per_sec,
            self.open_failures
        );
        let peak_rooms = self.peak_rooms.map_or("?".to_owned(), |r| r.to_string());
        match self.evict_secs {
            Some(secs) => println!(
                "  rooms     peak {peak_rooms} in memory; all evicted {} after the last close",
                human_secs(secs)
            ),
            None => println!(
                "  rooms     peak {peak_rooms} in memory; NOT all evicted within {}",
                human_secs(c.evict_timeout_secs)
            ),
        }
        if let Some(m) = &self.server {
            let kib = |k: u64| fmt_kib(k as f64);
            println!(
                "  server    RSS baseline {}, peak {} (opening {}, evicting {}), after eviction {}",
                kib(m.baseline_kib),
                kib(m.peak_kib),
                kib(m.peak_open_kib),
                kib(m.peak_evict_kib),
                kib(m.after_kib)
            );
            println!(
                "  retained  {:+} KiB over baseline = {:.1}% of the peak's growth ({:+} KiB)",
                m.retained_kib,
                m.retained_pct_of_growth,
                m.peak_kib as i64 - m.baseline_kib as i64
            );
            println!(
                "  server    CPU {} while opening; VmHWM {}",
                human_secs(m.open_cpu_secs),
                kib(m.hwm_kib)
            );
        } else {
            println!("  server    RSS not measured (give --spawn, or --server-pid with --url)");
        }
        let v = &self.verify;
        println!("  verify    {}/{} sampled rooms kept their text (seed {})", v.ok, v.sampled, v.seed);
        crate::report::print_verdict(self.server_exit.as_deref(), self.ok, &self.problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_share_of_growth() {
        assert_eq!(retained(10_000, 50_000, 12_000), (2_000, 5.0));
        assert_eq!(retained(10_000, 50_000, 50_000), (40_000, 100.0));
        assert_eq!(retained(10_000, 50_000, 9_000), (-1_000, -2.5));
        assert_eq!(retained(10_000, 10_000, 10_100), (100, 0.0));
        let m = Memory::new(10_000, 40_000, 50_000, 12_000);
        assert_eq!((m.peak_kib, m.retained_kib, m.retained_pct_of_growth), (50_000, 2_000, 5.0));
    }
}
