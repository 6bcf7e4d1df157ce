//! Report math shared by the subcommands (ratios, latency histograms and percentiles, CDF points,
//! formatting) and writing the JSON report.

use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

/// `num / den`, or 0 when the denominator is zero (an empty window reports zeros, not NaN, which
/// JSON cannot carry).
pub fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self { count: 0, mean_us: 0.0, p50_us: 0, p90_us: 0, p99_us: 0, p999_us: 0, max_us: 0 };
        }
        Self {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// An auto-resizing latency histogram (µs, 3 significant digits). A fixed 1 µs..60 s range would
/// zero-fill ~140 KiB per client up front: 140 MiB of harness memory for a thousand clients.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// Records one latency. `record` grows an auto-resizing histogram to fit; `saturating_record`
/// would not, and would silently clamp every value above its current top (2047 at first).
pub fn record_latency(hist: &mut Histogram<u64>, us: u64) {
    // Cannot fail: the histogram auto-resizes and `us` is far below u64::MAX / 2.
    let _ = hist.record(us.max(1));
}

/// Points `[latency_us, fraction ≤ latency]` of the latency CDF, log-spaced (10 per decade) from the
/// minimum to the maximum; the last point is at the maximum with fraction 1.
pub fn cdf_points(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let (min, max) = (h.min().max(1) as f64, h.max().max(1) as f64);
    let total = h.len() as f64;
    let mut points = Vec::new();
    let mut v = 10f64.powf((min.log10() * 10.0).floor() / 10.0);
    while v < max {
        let below = h.count_between(0, v as u64) as f64;
        points.push([v, below / total]);
        v *= 10f64.powf(0.1);
    }
    points.push([max, 1.0]);
    points
}

/// Points `[percentile, latency_us]` for a percentile plot, HdrHistogram style: evenly spaced on
/// the axis position log10(1 / (1 - p)) (90%, 99%, 99.9%, ... one decade apart, 20 points per
/// decade), up to the last sample's percentile, 1 - 1/count, where the maximum is drawn. Beyond it
/// the histogram knows nothing, so the curve stops there.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    const PER_DECADE: f64 = 20.0;
    if h.is_empty() {
        return Vec::new();
    }
    let top = (h.len() as f64).log10();
    // Stop half a step short of the last sample's percentile, so the last two points never
    // (nearly) coincide.
    let steps = (top * PER_DECADE - 0.5).ceil().max(0.0) as u32;
    let mut points: Vec<[f64; 2]> = (0..steps)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-f64::from(i) / PER_DECADE);
            [q * 100.0, h.value_at_quantile(q) as f64]
        })
        .collect();
    points.push([(1.0 - 1.0 / h.len() as f64) * 100.0, h.max() as f64]);
    points
}

/// Human form of a latency in µs, by the one duration formatter (`950µs`, `1.5ms`, `12s`).
pub fn fmt_us(us: u64) -> String {
    crate::duration::human(std::time::Duration::from_micros(us))
}

/// Human form of a KiB figure.
pub fn fmt_kib(kib: f64) -> String {
    if kib.abs() >= 10.0 * 1024.0 { format!("{:.1} MiB", kib / 1024.0) } else { format!("{kib:.1} KiB") }
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

/// The closing lines of every run's summary: how the server stopped, then OK or each failure.
pub fn print_verdict(server_exit: Option<&str>, ok: bool, problems: &[String]) {
    if let Some(exit) = server_exit {
        println!("  server    {exit}");
    }
    if ok {
        println!("  OK");
    }
    for p in problems {
        println!("  FAIL: {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for v in values {
            h.record(v).expect("in range");
        }
        h
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(10.0, 4.0), 2.5);
        assert_eq!(ratio(10.0, 0.0), 0.0);
    }

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let l = Latency::from_hist(&hist(1..=1000));
        assert_eq!(l.count, 1000);
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us), (500, 900, 990, 999, 1000));
        assert!((l.mean_us - 500.5).abs() < 0.5);
        assert_eq!(Latency::from_hist(&hist([])).count, 0);
    }

    #[test]
    fn cdf_is_monotonic_and_ends_at_one() {
        let points = cdf_points(&hist((1..=100).map(|i| i * 37)));
        assert!(points.len() > 10);
        assert!(points.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]));
        assert_eq!(points.last().map(|p| p[1]), Some(1.0));
        assert!(points[0][1] < 0.05);
        assert!(cdf_points(&hist([])).is_empty());
    }

    #[test]
    fn percentiles_rise_to_the_maximum() {
        let points = percentile_points(&hist(1..=10_000));
        assert_eq!(points.len(), 81, "4 decades x 20 points, then the last sample");
        assert_eq!(points[0], [0.0, 1.0]);
        assert!(points.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]), "{points:?}");
        assert!((points[20][0] - 90.0).abs() < 1e-9 && (points[20][1] - 9_000.0).abs() <= 10.0);
        let last = points.last().expect("points");
        assert!((last[0] - 99.99).abs() < 1e-9 && (last[1] - 10_000.0).abs() <= 10.0, "{last:?}");
        assert_eq!(percentile_points(&hist([7])), vec![[0.0, 7.0]]);
        assert!(percentile_points(&hist([])).is_empty());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_us(950), "950µs");
        assert_eq!(fmt_us(1_500), "1.5ms");
        assert_eq!(fmt_us(12_000_000), "12s");
        assert_eq!(fmt_us(0), "0s");
        assert_eq!(fmt_kib(512.0), "512.0 KiB");
        assert_eq!(fmt_kib(20480.0), "20.0 MiB");
    }

    #[test]
    fn latencies_beyond_the_initial_range_are_kept() {
        let mut client_a = new_histogram();
        let mut client_b = new_histogram();
        for us in [0, 150, 2_500] {
            record_latency(&mut client_a, us);
        }
        record_latency(&mut client_b, 3_000_000);
        let mut merged = new_histogram();
        merged.add(&client_a).expect("merge");
        merged.add(&client_b).expect("merge");
        let l = Latency::from_hist(&merged);
        assert_eq!(l.count, 4);
        assert_eq!(l.p50_us, 150, "{l:?}");
        assert_eq!(merged.count_between(2_490, 2_510), 1, "2.5 ms kept, not clamped");
        assert!(l.max_us.abs_diff(3_000_000) <= 3_000, "{l:?}");
        assert_eq!(merged.min(), 1);
    }
}
