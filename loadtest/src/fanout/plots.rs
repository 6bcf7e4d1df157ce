//! `--plot` for a fanout run: the CDF-and-rate SVG at the given path and the percentile SVG next to
//! it, both titled with the shape, node count and measured duration in human units.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::FanoutReport;
use crate::cli::Workload;
use crate::duration::human;
use crate::plot::{self, PlotData, Series};
use crate::report::fmt_us;

/// Writes both plots; returns the paths written.
pub fn write_plots(report: &FanoutReport, path: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let w = &report.config.workload;
    // Every node's URL is listed; an attached server is one node.
    let nodes = report.config.node_urls.len().max(1);
    let l = &report.latency;
    let title = format!("{}; p50 {} p99 {}", run_label(w, nodes), fmt_us(l.p50_us), fmt_us(l.p99_us));
    let svg = plot::svg(&PlotData {
        title: &title,
        cdf: &report.latency_cdf,
        per_second: &report.per_second,
        warmup_secs: w.warmup.as_secs_f64(),
        measured_secs: w.duration.as_secs_f64(),
    });
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    let percentiles = percentiles_path(path);
    let title = format!("{}; p99.9 {} max {}", run_label(w, nodes), fmt_us(l.p999_us), fmt_us(l.max_us));
    let label = series_label(w, nodes);
    let svg = plot::percentile_svg(&title, &[Series { label: &label, points: &report.latency_percentiles }]);
    std::fs::write(&percentiles, svg).with_context(|| format!("writing {}", percentiles.display()))?;
    Ok([path.to_owned(), percentiles])
}

/// `rooms, 2 nodes: 100 rooms x 10 clients, 1 writers x 10/s, 30s measured`.
fn run_label(w: &Workload, nodes: usize) -> String {
    format!(
        "{}: {} rooms x {} clients, {} writers x {}/s, {} measured",
        series_label(w, nodes),
        w.rooms,
        w.clients,
        w.writers,
        w.rate,
        human(w.duration)
    )
}

/// The shape and node count, the short name of a run (`crowd, 1 node`).
pub(super) fn series_label(w: &Workload, nodes: usize) -> String {
    let shape = format!("{:?}", w.shape).to_lowercase();
    match nodes {
        1 => format!("{shape}, 1 node"),
        n => format!("{shape}, {n} nodes"),
    }
}

/// `runs/rooms.svg` → `runs/rooms-percentiles.svg` (no extension: `-percentiles.svg` is added).
pub fn percentiles_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map_or_else(|| "svg".to_owned(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-percentiles.{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(argv: &[&str]) -> Workload {
        use clap::Parser as _;
        let cli = crate::cli::Cli::parse_from(["loadtest", "fanout"].iter().chain(argv));
        let crate::cli::Command::Fanout(args) = cli.command else { unreachable!("fanout parsed") };
        args.workload().expect("valid workload")
    }

    #[test]
    fn titles_name_the_shape_nodes_and_duration() {
        let w = workload(&["--shape", "crowd", "--duration", "90s"]);
        assert_eq!(
            run_label(&w, 2),
            "crowd, 2 nodes: 1 rooms x 200 clients, 5 writers x 20/s, 1m30s measured"
        );
        let w = workload(&["--duration", "1.5s"]);
        assert_eq!(series_label(&w, 1), "rooms, 1 node");
        assert!(run_label(&w, 1).ends_with("1.5s measured"));
    }

    #[test]
    fn percentile_file_sits_next_to_the_plot() {
        assert_eq!(percentiles_path(Path::new("out/rooms.svg")), Path::new("out/rooms-percentiles.svg"));
        assert_eq!(percentiles_path(Path::new("rooms")), Path::new("rooms-percentiles.svg"));
    }
}
