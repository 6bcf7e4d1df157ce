//! The comparison's numbers: one row per run (target and round), the ratios of every target to the
//! first one, and both as text. Pure: the HTML page renders the same cells.

use serde::Serialize;

use crate::fanout::FanoutReport;
use crate::report::{fmt_kib, fmt_us};

/// One run of one target in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub target: String,
    /// From 1.
    pub round: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Over the measured window.
    pub deliveries_per_sec: f64,
    /// Percent of one core over the window; None when the run ended in an error.
    pub server_cpu_pct: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
    /// At the end of the window.
    pub rss_kib: Option<u64>,
    pub missing: u64,
    pub gaps: u64,
    /// The fanout run passed (nothing lost, duplicated, reordered or unconverged).
    pub ok: bool,
    /// Why the run produced no report.
    pub error: Option<String>,
}

impl Row {
    pub fn from_report(target: &str, round: usize, r: &FanoutReport) -> Self {
        let server = r.server.as_ref();
        Self {
            target: target.to_owned(),
            round,
            p50_us: r.latency.p50_us,
            p99_us: r.latency.p99_us,
            p999_us: r.latency.p999_us,
            deliveries_per_sec: r.deliveries.per_sec,
            server_cpu_pct: server.map(|s| s.window.cpu_pct),
            cpu_us_per_delivery: server.map(|s| s.cpu_us_per_delivery),
            rss_kib: server.map(|s| s.window.rss_end_kib),
            missing: r.deliveries.missing,
            gaps: r.deliveries.gaps,
            ok: r.ok,
            error: None,
        }
    }

    pub fn errored(target: &str, round: usize, error: String) -> Self {
        Self {
            target: target.to_owned(),
            round,
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            deliveries_per_sec: 0.0,
            server_cpu_pct: None,
            cpu_us_per_delivery: None,
            rss_kib: None,
            missing: 0,
            gaps: 0,
            ok: false,
            error: Some(error),
        }
    }

    /// The cells under [`ROW_HEADERS`]; an errored run says why in place of its numbers.
    pub fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.target.clone(), self.round.to_string()];
        if let Some(e) = &self.error {
            cells.push(format!("FAILED: {e}"));
            return cells;
        }
        let dash = || "-".to_owned();
        cells.extend([
            fmt_us(self.p50_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            format!("{:.0}", self.deliveries_per_sec),
            self.server_cpu_pct.map_or_else(dash, |p| format!("{p:.1}")),
            self.cpu_us_per_delivery.map_or_else(dash, |us| format!("{us:.2}")),
            self.rss_kib.map_or_else(dash, |kib| fmt_kib(kib as f64)),
            self.missing.to_string(),
            self.gaps.to_string(),
            if self.ok { "ok".to_owned() } else { "FAILED".to_owned() },
        ]);
        cells
    }
}

pub const ROW_HEADERS: [&str; 12] = [
    "target",
    "round",
    "p50",
    "p99",
    "p99.9",
    "deliveries/s",
    "CPU %",
    "µs CPU/delivery",
    "RSS",
    "missing",
    "gaps",
    "verdict",
];

/// A target against the first one: per round, this target's figure over the first target's in
/// the same round (so both were measured in the same stretch of time); then their median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    pub target: String,
    /// Against this target.
    pub baseline: String,
    pub cpu_us_per_delivery: Option<Span>,
    pub p99: Option<Span>,
}

/// Per-round ratios summarised; None above when no round had both figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Rounds the ratio was taken in.
    pub rounds: usize,
}

impl Span {
    fn of(values: Vec<f64>) -> Option<Self> {
        let median = median(&values)?;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self { median, min, max, rounds: values.len() })
    }

    /// `3.10x`, or with several rounds `3.10x (2.90-3.30)`.
    pub fn show(&self) -> String {
        match self.rounds {
            1 => format!("{:.2}x", self.median),
            _ => format!("{:.2}x ({:.2}-{:.2})", self.median, self.min, self.max),
        }
    }
}

/// The middle value, or the mean of the middle two; None for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Every target after the first against the first, in target order. A round counts for a ratio
/// when both runs have the figure and the first target's is above zero.
pub fn ratios(targets: &[String], rows: &[Row]) -> Vec<Ratio> {
    let Some((baseline, others)) = targets.split_first() else { return Vec::new() };
    let per_round = |target: &str, figure: fn(&Row) -> Option<f64>| {
        let values = (rows.iter().filter(|r| r.target == *baseline))
            .filter_map(|base| {
                let other = rows.iter().find(|r| r.target == target && r.round == base.round)?;
                let (b, o) = (figure(base)?, figure(other)?);
                (b > 0.0).then(|| o / b)
            })
            .collect();
        Span::of(values)
    };
    (others.iter())
        .map(|target| Ratio {
            target: target.clone(),
            baseline: baseline.clone(),
            cpu_us_per_delivery: per_round(target, |r| r.cpu_us_per_delivery),
            p99: per_round(target, |r| r.error.is_none().then_some(r.p99_us as f64)),
        })
        .collect()
}

pub const RATIO_HEADERS: [&str; 3] = ["target", "µs CPU/delivery", "p99"];

impl Ratio {
    pub fn cells(&self) -> Vec<String> {
        let show = |s: &Option<Span>| s.as_ref().map_or_else(|| "-".to_owned(), Span::show);
        vec![self.target.clone(), show(&self.cpu_us_per_delivery), show(&self.p99)]
    }
}

/// Every run's row, then the ratios against the first target, as aligned text.
pub fn text(rows: &[Row], ratios: &[Ratio]) -> String {
    let mut out = aligned(&ROW_HEADERS, rows.iter().map(Row::cells).collect());
    if let Some(first) = ratios.first() {
        let rounds = rows.iter().map(|r| r.round).max().unwrap_or(1);
        let how = match rounds {
            1 => String::new(),
            n => format!(" (median of {n} rounds' ratios; min-max)"),
        };
        out.push_str(&format!("ratios against {}{how}:\n", first.baseline));
        out.push_str(&aligned(&RATIO_HEADERS, ratios.iter().map(Ratio::cells).collect()));
    }
    out
}

/// Left-aligned first column, the others right-aligned, two spaces apart; a row with fewer cells
/// (an errored run) runs its last cell on unpadded.
fn aligned(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let width = |i: usize| {
        let cells = rows.iter().filter(|r| r.len() == headers.len()).filter_map(|r| r.get(i));
        cells.map(|c| c.chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: &[String]| {
        let last = cells.len() - 1;
        let padded: Vec<String> = (cells.iter().enumerate())
            .map(|(i, c)| match i {
                _ if i == last && cells.len() < headers.len() => c.clone(),
                0 => format!("{c:<w$}", w = widths[0]),
                _ => format!("{c:>w$}", w = widths[i]),
            })
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let head: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&head);
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, round: usize, cpu_us: f64, p99_us: u64) -> Row {
        Row {
            target: target.to_owned(),
            round,
            p50_us: p99_us / 2,
            p99_us,
            p999_us: p99_us * 2,
            deliveries_per_sec: 1000.0,
            server_cpu_pct: Some(cpu_us / 10.0),
            cpu_us_per_delivery: Some(cpu_us),
            rss_kib: Some(20_480),
            missing: 0,
            gaps: 0,
            ok: true,
            error: None,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ratios_pair_runs_of_the_same_round() {
        // Round 2 is a slow window for everyone: per-round pairing cancels it out.
        let rows = [
            row("cc", 1, 2.0, 1000),
            row("y", 1, 6.0, 1500),
            row("h", 1, 8.0, 3000),
            row("cc", 2, 4.0, 2000),
            row("y", 2, 12.0, 3000),
            row("h", 2, 20.0, 6000),
            row("cc", 3, 2.0, 1000),
            row("y", 3, 6.6, 1500),
            row("h", 3, 10.0, 3000),
        ];
        let got = ratios(&names(&["cc", "y", "h"]), &rows);
        assert_eq!(got.len(), 2, "the first target is the baseline");
        let y = &got[0];
        assert_eq!((y.target.as_str(), y.baseline.as_str()), ("y", "cc"));
        let cpu = y.cpu_us_per_delivery.as_ref().expect("three rounds");
        assert_eq!((cpu.median, cpu.min, cpu.rounds), (3.0, 3.0, 3));
        assert!((cpu.max - 3.3).abs() < 1e-9);
        assert_eq!(y.p99.as_ref().map(|s| (s.median, s.min, s.max)), Some((1.5, 1.5, 1.5)));
        let h = got[1].cpu_us_per_delivery.as_ref().expect("three rounds");
        assert_eq!((h.median, h.min, h.max), (5.0, 4.0, 5.0));
        assert_eq!(h.show(), "5.00x (4.00-5.00)");
    }

    #[test]
    fn even_rounds_take_the_middle_pair_and_missing_figures_drop_out() {
        let mut rows = vec![row("a", 1, 1.0, 100), row("b", 1, 2.0, 100), row("a", 2, 1.0, 100)];
        rows.push(row("b", 2, 4.0, 300));
        let got = ratios(&names(&["a", "b"]), &rows);
        assert_eq!(got[0].cpu_us_per_delivery.as_ref().map(|s| s.median), Some(3.0));
        assert_eq!(got[0].p99.as_ref().map(|s| s.median), Some(2.0));

        // b's round 2 failed to run, a's round 1 had no CPU reading: one round left for p99, none for CPU.
        rows[3] = Row::errored("b", 2, "drain".into());
        rows[0].cpu_us_per_delivery = None;
        let got = ratios(&names(&["a", "b"]), &rows);
        assert_eq!(got[0].cpu_us_per_delivery, None);
        assert_eq!(got[0].p99.as_ref().map(|s| (s.median, s.rounds)), Some((1.0, 1)));
        assert_eq!(got[0].cells(), ["b", "-", "1.00x"]);
        assert!(ratios(&names(&["a"]), &rows).is_empty());
        assert_eq!(
            (median(&[3.0, 1.0, 2.0]), median(&[4.0, 1.0, 2.0, 3.0]), median(&[])),
            (Some(2.0), Some(2.5), None)
        );
        assert!(ratios(&[], &rows).is_empty());
    }

    #[test]
    fn text_aligns_rows_and_lists_ratios() {
        let mut bad = row("hocuspocus", 1, 9.5, 25_000);
        (bad.missing, bad.gaps, bad.ok) = (3, 1, false);
        let rows = [row("codecrafter", 1, 2.5, 1_200), bad, Row::errored("y", 1, "no server".into())];
        let ratios = ratios(&names(&["codecrafter", "hocuspocus", "y"]), &rows);
        let text = text(&rows, &ratios);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("  target     "), "{text}");
        assert!(lines[0].ends_with("verdict"), "{text}");
        assert_eq!(lines[1].chars().count(), lines[2].chars().count(), "aligned:\n{text}");
        assert!(lines[1].contains("1.2ms") && lines[1].contains("2.4ms") && lines[1].contains("20.0 MiB"));
        assert!(lines[1].ends_with("ok") && lines[2].ends_with("3     1   FAILED"), "{text}");
        assert_eq!(lines[3], "  y                1  FAILED: no server");
        assert_eq!(lines[4], "ratios against codecrafter:");
        assert!(lines[6].starts_with("  hocuspocus") && lines[6].contains("3.80x"), "{text}");
        assert!(lines[6].ends_with("20.83x"), "{text}");
        assert!(lines[7].ends_with("-"), "no figures for y: {text}");
    }
}
