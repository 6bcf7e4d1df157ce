//! What `compare` writes: `--report` (every run's fanout report, the table and ratios), `--plot`
//! (X.svg: µs of server CPU per delivery by target; X-percentiles.svg: latency by percentile, one
//! curve per target over all its rounds) and `--html` (one self-contained page with the table,
//! the ratios and both plots inline).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::CompareReport;
use super::table::{RATIO_HEADERS, ROW_HEADERS, Ratio, Row, median};
use crate::cli::CompareArgs;
use crate::duration::human;
use crate::fanout::percentiles_path;
use crate::plot::{self, Bar, Series};
use crate::report::{Latency, fmt_us, new_histogram, percentile_points};

/// Writes every file asked for; returns the paths written.
pub fn write_outputs(r: &CompareReport, args: &CompareArgs) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    if let Some(path) = &args.fanout.common.report {
        crate::report::write_json(path, r)?;
        written.push(path.clone());
    }
    if args.fanout.common.plot.is_none() && args.html.is_none() {
        return Ok(written);
    }
    let (bars, percentiles) = (cpu_svg(r), percentile_svg(r)?);
    if let Some(path) = &args.fanout.common.plot {
        write(path, &bars)?;
        let next_to_it = percentiles_path(path);
        write(&next_to_it, &percentiles)?;
        written.extend([path.clone(), next_to_it]);
    }
    if let Some(path) = &args.html {
        write(path, &page(&title(r), &r.table, &r.ratios, &[&percentiles, &bars]))?;
        written.push(path.clone());
    }
    Ok(written)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `compare rooms: 3 rooms x 3 clients, 1 writers/room x 10 updates/s, 2s measured after 500ms
/// warm-up, 1 round`.
fn title(r: &CompareReport) -> String {
    let w = &r.config.workload;
    format!(
        "compare {}: {}, {}",
        format!("{:?}", w.shape).to_lowercase(),
        w.describe(),
        super::rounds_label(r.config.rounds)
    )
}

/// `rooms: 3 rooms x 3 clients, 2s x 1 round`.
fn short_title(r: &CompareReport) -> String {
    let w = &r.config.workload;
    let shape = format!("{:?}", w.shape).to_lowercase();
    let rounds = super::rounds_label(r.config.rounds);
    format!("{shape}: {} rooms x {} clients, {} x {rounds}", w.rooms, w.clients, human(w.duration))
}

/// One bar per target at the median of its rounds' µs CPU per delivery, a ring per round.
fn cpu_svg(r: &CompareReport) -> String {
    let per_target: Vec<Vec<f64>> = (r.config.targets.iter())
        .map(|t| {
            r.table.iter().filter(|row| row.target == *t).filter_map(|row| row.cpu_us_per_delivery).collect()
        })
        .collect();
    let several = r.config.rounds > 1;
    let bars: Vec<Bar<'_>> = (r.config.targets.iter().zip(&per_target))
        .map(|(t, runs)| Bar { label: t, value: median(runs), runs: if several { runs } else { &[] } })
        .collect();
    // One panel wide: the short title fits above it.
    plot::bar_svg(&short_title(r), "server µs CPU per delivery", &bars)
}

/// Latency by percentile, one curve per target, each over every round's samples.
fn percentile_svg(r: &CompareReport) -> anyhow::Result<String> {
    let mut curves = Vec::new();
    for t in &r.config.targets {
        let mut pooled = new_histogram();
        for report in r.runs.iter().filter(|run| run.target == *t).filter_map(|run| run.report.as_ref()) {
            pooled.add(&report.latency_hist).context("merging a target's rounds")?;
        }
        let l = Latency::from_hist(&pooled);
        // The legend is 220 px wide: room for the name and the p99, the rest is in the table.
        let label = format!("{t}: p99 {}", fmt_us(l.p99_us));
        curves.push((label, percentile_points(&pooled)));
    }
    let series: Vec<Series<'_>> = curves.iter().map(|(label, points)| Series { label, points }).collect();
    Ok(plot::percentile_svg(&title(r), &series))
}

/// The page: title, the runs' table, the ratios, then each SVG inline (an `<svg>` element is valid
/// HTML as it is), with nothing fetched from elsewhere.
pub fn page(title: &str, rows: &[Row], ratios: &[Ratio], svgs: &[&str]) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">");
    let _ = writeln!(h, "<title>{}</title>", escape(title));
    let _ = writeln!(h, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(h, "<h1>{}</h1>", escape(title));
    h.push_str(&html_table(&ROW_HEADERS, rows.iter().map(|r| (r.cells(), !r.ok))));
    if let Some(first) = ratios.first() {
        let _ = writeln!(
            h,
            "<h2>Ratios against {} (per round, then the median; min-max over rounds)</h2>",
            escape(&first.baseline)
        );
        h.push_str(&html_table(&RATIO_HEADERS, ratios.iter().map(|r| (r.cells(), false))));
    }
    for svg in svgs {
        let _ = writeln!(h, "<figure>\n{}</figure>", svg.trim_end());
    }
    h.push_str("</body>\n</html>\n");
    h
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}\
tr.failed td{background:#fdd}figure{margin:1em 0}";

/// A table; a short row (an errored run) spans its last cell over the remaining columns.
fn html_table(headers: &[&str], rows: impl Iterator<Item = (Vec<String>, bool)>) -> String {
    let mut t = String::from("<table>\n<tr>");
    for head in headers {
        let _ = write!(t, "<th>{}</th>", escape(head));
    }
    t.push_str("</tr>\n");
    for (cells, failed) in rows {
        t.push_str(if failed { "<tr class=\"failed\">" } else { "<tr>" });
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            match headers.len().saturating_sub(cells.len()) {
                span if i == last && span > 0 => {
                    let _ = write!(t, "<td colspan=\"{}\">{}</td>", span + 1, escape(cell));
                }
                _ => {
                    let _ = write!(t, "<td>{}</td>", escape(cell));
                }
            }
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</table>\n");
    t
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, round: usize, cpu_us: f64) -> Row {
        Row {
            target: target.to_owned(),
            round,
            p50_us: 400,
            p99_us: 1_500,
            p999_us: 3_000,
            deliveries_per_sec: 600.0,
            server_cpu_pct: Some(1.5),
            cpu_us_per_delivery: Some(cpu_us),
            rss_kib: Some(9_000),
            missing: 0,
            gaps: 0,
            ok: true,
            error: None,
        }
    }

    #[test]
    fn page_holds_the_table_the_ratios_and_the_plots_inline() {
        let rows = [
            row("codecrafter", 1, 2.0),
            row("y-websocket-server", 1, 6.0),
            Row::errored("hocuspocus", 1, "drain <10s> ran out".into()),
        ];
        let names: Vec<String> = rows.iter().map(|r| r.target.clone()).collect();
        let ratios = super::super::table::ratios(&names, &rows);
        let bars = plot::bar_svg("cpu", "µs", &[Bar { label: "codecrafter", value: Some(2.0), runs: &[] }]);
        let curve = [[0.0, 100.0], [99.0, 900.0]];
        let percentiles = plot::percentile_svg("p", &[Series { label: "codecrafter", points: &curve }]);
        let html = page("compare rooms: <3> & more", &rows, &ratios, &[&percentiles, &bars]);

        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("<title>compare rooms: &lt;3&gt; &amp; more</title>"));
        assert_eq!(html.matches("<table>").count(), 2, "runs and ratios");
        assert_eq!(html.matches("<tr>").count() + html.matches("<tr class=\"failed\">").count(), 2 + 3 + 2);
        assert!(html.contains("<tr class=\"failed\"><td>hocuspocus</td><td>1</td><td colspan=\"10\">FAILED: drain &lt;10s&gt; ran out</td></tr>"));
        assert!(html.contains("<td>y-websocket-server</td><td>3.00x</td><td>1.00x</td>"), "{html}");
        assert!(html.contains("<td>hocuspocus</td><td>-</td><td>-</td>"));
        assert!(html.contains("Ratios against codecrafter"));
        // Both SVGs whole and inline; nothing loaded from elsewhere.
        assert!(html.contains(percentiles.trim_end()) && html.contains(bars.trim_end()));
        assert_eq!(html.matches("<svg ").count(), 2);
        assert!(!html.contains("src=") && !html.contains("href="));
        assert!(html.contains("<th>µs CPU/delivery</th>"));
    }

    #[test]
    fn one_target_has_no_ratios() {
        let html = page("t", &[row("cc", 1, 2.0)], &[], &[]);
        assert_eq!(html.matches("<table>").count(), 1);
        assert!(!html.contains("Ratios"));
    }
}
