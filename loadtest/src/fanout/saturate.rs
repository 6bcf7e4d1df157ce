//! `fanout --saturate`: the fan-out run repeated at rising per-writer rates (see [`Search`]), each
//! step a fresh short run with its own rooms and clients, until p99 passes `--p99-bound` or an
//! update is lost or late. Reports every step and the knee: the highest rate that held.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::search::Search;
use super::{FanoutReport, plots};
use crate::cli::{FanoutArgs, Workload};
use crate::duration::human;
use crate::plot::{self, SatPoint};
use crate::report::{fmt_us, ratio};
use crate::target::Target;

/// The highest per-writer rate `--rate` accepts, and so the search's ceiling.
const MAX_RATE: u32 = 10_000;
/// A step whose writers sent less than this share of the offered updates did not offer the rate:
/// the harness, not the server, was the limit, so the step cannot count as held.
const MIN_SENT_SHARE: f64 = 0.95;

#[derive(Debug, Serialize)]
pub struct SaturationReport {
    pub kind: &'static str,
    /// A rate held (the knee exists).
    pub ok: bool,
    pub problems: Vec<String>,
    pub config: Config,
    /// The step at the highest rate that held.
    pub knee: Option<Step>,
    /// True when every step held up to the highest rate the harness offers: the knee is above it.
    pub knee_above_max_rate: bool,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    pub server_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    /// The first step's workload; later steps differ in `rate` only.
    pub workload: Workload,
    pub p99_bound_us: u64,
    pub max_steps: usize,
    pub drain_secs: f64,
    pub node_urls: Vec<String>,
    pub spawned: Option<String>,
    pub harness_threads: usize,
}

/// One step: a full fan-out run at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate_per_writer: u32,
    pub offered_updates_per_sec: f64,
    /// Updates/s offered x receivers per room.
    pub offered_deliveries_per_sec: f64,
    /// Deliveries/s counted over the measured window.
    pub deliveries_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Server CPU (all nodes) per delivery; None when the server's PID is unknown.
    pub server_cpu_us_per_delivery: Option<f64>,
    pub held: bool,
    /// Why the step did not hold.
    pub why_not: Option<String>,
}

impl Step {
    fn from_report(rate: u32, r: &FanoutReport, bound_us: u64) -> Self {
        let offered = r.send.requested_per_sec;
        let mut reasons = r.problems.clone();
        if r.latency.p99_us > bound_us {
            reasons.push(format!("p99 {} above the bound {}", fmt_us(r.latency.p99_us), fmt_us(bound_us)));
        }
        if r.send.achieved_per_sec < offered * MIN_SENT_SHARE {
            reasons.push(format!(
                "the harness sent only {:.0} of {offered:.0} updates/s",
                r.send.achieved_per_sec
            ));
        }
        Self {
            rate_per_writer: rate,
            offered_updates_per_sec: offered,
            offered_deliveries_per_sec: offered * (r.config.workload.clients - 1) as f64,
            deliveries_per_sec: r.deliveries.per_sec,
            p50_us: r.latency.p50_us,
            p99_us: r.latency.p99_us,
            server_cpu_us_per_delivery: r.server.as_ref().map(|s| s.cpu_us_per_delivery),
            held: reasons.is_empty(),
            why_not: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }

    /// A step whose run ended in an error (writers still sending after `--drain`, ...).
    fn errored(rate: u32, w: &Workload, error: String) -> Self {
        let offered = (w.rooms * w.writers) as f64 * f64::from(rate);
        Self {
            rate_per_writer: rate,
            offered_updates_per_sec: offered,
            offered_deliveries_per_sec: offered * (w.clients - 1) as f64,
            deliveries_per_sec: 0.0,
            p50_us: 0,
            p99_us: 0,
            server_cpu_us_per_delivery: None,
            held: false,
            why_not: Some(error),
        }
    }

    /// One table row.
    fn row(&self) -> String {
        format!(
            "{:>8}/s {:>12.0} {:>12.0} {:>9} {:>9} {:>9}  {}",
            self.rate_per_writer,
            self.offered_deliveries_per_sec,
            self.deliveries_per_sec,
            fmt_us(self.p50_us),
            fmt_us(self.p99_us),
            self.server_cpu_us_per_delivery.map_or_else(|| "-".to_owned(), |us| format!("{us:.2}")),
            match &self.why_not {
                None => "held".to_owned(),
                Some(why) => format!("FAILED: {why}"),
            }
        )
    }
}

const TABLE_HEAD: &str =
    "  rate/writer  offered del/s  achieved del/s   p50       p99    µs CPU/del  verdict";

pub async fn run(args: &FanoutArgs, target: &Target, threads: usize) -> anyhow::Result<SaturationReport> {
    let first = args.workload()?;
    let bound_us = args.p99_bound.as_micros() as u64;
    let mut search = Search::new(first.rate, MAX_RATE, args.max_steps);
    let mut steps: Vec<Step> = Vec::new();
    println!(
        "saturation search: {} rooms x {} clients, {} writers/room; steps of {} after {} warm-up; p99 bound {}",
        first.rooms,
        first.clients,
        first.writers,
        human(first.duration),
        human(first.warmup),
        human(args.p99_bound)
    );
    println!("{TABLE_HEAD}");
    while let Some(rate) = search.next_rate() {
        let step_args = FanoutArgs { rate: Some(rate), ..args.clone() };
        println!("step {}: {rate} updates/s per writer", steps.len() + 1);
        let step = match super::run(&step_args, target, threads).await {
            Ok(report) => Step::from_report(rate, &report, bound_us),
            // The first step failing to run at all is a setup problem (no server, refused
            // connections), not a rate the server could not take.
            Err(e) if steps.is_empty() => return Err(e.context("the first saturation step")),
            Err(e) => Step::errored(rate, &first, format!("{e:#}")),
        };
        println!("{}", step.row());
        search.record(rate, step.held);
        steps.push(step);
    }
    let knee = search.knee().and_then(|k| steps.iter().find(|s| s.held && s.rate_per_writer == k)).cloned();
    let problems = match &knee {
        Some(_) => Vec::new(),
        None => vec![format!(
            "no rate held, down to {}/s per writer",
            steps.last().map_or(0, |s| s.rate_per_writer)
        )],
    };
    Ok(SaturationReport {
        kind: "saturate",
        ok: knee.is_some(),
        problems,
        config: Config {
            workload: first,
            p99_bound_us: bound_us,
            max_steps: args.max_steps,
            drain_secs: args.drain.as_secs_f64(),
            node_urls: target.base_urls(),
            spawned: args.common.spawn.as_ref().map(|s| s.display().to_string()),
            harness_threads: threads,
        },
        knee,
        knee_above_max_rate: search.hit_the_cap(),
        steps,
        server_exit: None,
    })
}

impl SaturationReport {
    pub fn print(&self) {
        let w = &self.config.workload;
        println!(
            "saturate {:?}: {} rooms x {} clients, {} writers/room, {} steps of {}, p99 bound {}",
            w.shape,
            w.rooms,
            w.clients,
            w.writers,
            self.steps.len(),
            human(w.duration),
            fmt_us(self.config.p99_bound_us)
        );
        let mut sorted: Vec<&Step> = self.steps.iter().collect();
        sorted.sort_by_key(|s| s.rate_per_writer);
        println!("{TABLE_HEAD}");
        for s in sorted {
            println!("{}", s.row());
        }
        if let Some(k) = &self.knee {
            println!(
                "  knee      {}/s per writer: {:.0} deliveries/s offered, {:.0} achieved, p50 {}, p99 {}{}",
                k.rate_per_writer,
                k.offered_deliveries_per_sec,
                k.deliveries_per_sec,
                fmt_us(k.p50_us),
                fmt_us(k.p99_us),
                if self.knee_above_max_rate { " (never failed: the knee is higher still)" } else { "" }
            );
        }
        crate::report::print_verdict(self.server_exit.as_deref(), self.ok, &self.problems);
    }
}

/// `--plot` for a search: achieved vs offered deliveries/s, and p99 vs offered against the bound.
pub fn write_plot(r: &SaturationReport, path: &Path) -> anyhow::Result<()> {
    let nodes = r.config.node_urls.len().max(1);
    let knee = match &r.knee {
        Some(k) => format!(
            "knee {}/s per writer, {:.0} deliveries/s (achieved {:.0}%)",
            k.rate_per_writer,
            k.offered_deliveries_per_sec,
            100.0 * ratio(k.deliveries_per_sec, k.offered_deliveries_per_sec)
        ),
        None => "no rate held".to_owned(),
    };
    let w = &r.config.workload;
    let title = format!(
        "saturation, {}: {} rooms x {} clients, {} writers; {knee}",
        plots::series_label(w, nodes),
        w.rooms,
        w.clients,
        w.writers
    );
    let points: Vec<SatPoint> = (r.steps.iter())
        .map(|s| SatPoint {
            offered: s.offered_deliveries_per_sec,
            achieved: s.deliveries_per_sec,
            p99_us: s.p99_us as f64,
            held: s.held,
        })
        .collect();
    let svg = plot::saturation_svg(&title, &points, r.config.p99_bound_us as f64);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}
