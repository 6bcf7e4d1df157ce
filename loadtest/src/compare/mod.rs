//! `compare`: the fanout workload against several servers one after another (a spawned
//! CodeCrafter, peers from `loadtest/peers`), round after round (A B C A B C), each run a whole
//! [`fanout::run`] on a freshly started server; then one report of every run, the table
//! (`table.rs`) and the ratios against the first target, and its files (`output.rs`).

mod output;
mod peer;
mod table;

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

pub use self::output::write_outputs;
use self::peer::PeerServer;
use self::table::{Ratio, Row};
use crate::cli::{Common, CompareArgs, FanoutArgs, Peer, Workload};
use crate::duration::human;
use crate::fanout::{self, FanoutReport};
use crate::target::Target;
use crate::wire::Protocol;

/// One server to measure.
#[derive(Debug, Clone)]
enum Kind {
    /// `--spawn PATH` with the shared flags (server args, env, CPUs, nodes, Redis).
    Spawn,
    Peer(Peer),
}

#[derive(Debug, Clone)]
struct TargetSpec {
    name: String,
    kind: Kind,
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub kind: &'static str,
    /// Every run passed.
    pub ok: bool,
    pub problems: Vec<String>,
    pub config: Config,
    /// One row per run, in the order run.
    pub table: Vec<Row>,
    /// Every target after the first against the first.
    pub ratios: Vec<Ratio>,
    pub runs: Vec<RunRecord>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub workload: Workload,
    /// In run order within a round; the first is the ratios' baseline.
    pub targets: Vec<String>,
    pub rounds: usize,
    pub spawned: Option<String>,
    pub peers_dir: String,
    pub harness_threads: usize,
}

/// One run: its full fanout report, or why there is none.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    pub target: String,
    pub round: usize,
    pub report: Option<FanoutReport>,
    pub error: Option<String>,
}

/// Runs every target in every round. A target that cannot be started (a server that does not
/// come up, a peer whose packages cannot be installed) ends the comparison with an error; a run
/// that fails once started is recorded and the comparison goes on.
pub async fn run(args: &CompareArgs, threads: usize) -> anyhow::Result<CompareReport> {
    let workload = args.fanout.workload()?;
    let targets = targets(args);
    let peers_dir = args.peers_dir.clone().unwrap_or_else(peer::default_dir);
    // Said now rather than after the runs before the first peer's.
    let script = peers_dir.join("start.sh");
    anyhow::ensure!(
        args.peers.is_empty() || script.is_file(),
        "{} is missing (see --peers-dir)",
        script.display()
    );
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    println!(
        "compare {}: {} of {}",
        format!("{:?}", workload.shape).to_lowercase(),
        rounds_label(args.rounds),
        names.join(", ")
    );
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for spec in &targets {
            println!("== {}, round {round} of {} ==", spec.name, args.rounds);
            let outcome = (run_one(spec, &args.fanout, &peers_dir, threads).await)
                .with_context(|| format!("starting {} for round {round}", spec.name))?;
            let record = match outcome {
                Ok(report) => {
                    report.print();
                    RunRecord { target: spec.name.clone(), round, report: Some(report), error: None }
                }
                Err(e) => {
                    eprintln!("error: {} round {round}: {e:#}", spec.name);
                    let error = Some(format!("{e:#}"));
                    RunRecord { target: spec.name.clone(), round, report: None, error }
                }
            };
            runs.push(record);
        }
    }
    let table: Vec<Row> = runs.iter().map(row).collect();
    let problems: Vec<String> = runs.iter().flat_map(problems).collect();
    Ok(CompareReport {
        kind: "compare",
        ok: problems.is_empty(),
        problems,
        config: Config {
            workload,
            rounds: args.rounds,
            spawned: args.fanout.common.spawn.as_ref().map(|p| p.display().to_string()),
            peers_dir: peers_dir.display().to_string(),
            harness_threads: threads,
            targets: names.clone(),
        },
        ratios: table::ratios(&names, &table),
        table,
        runs,
    })
}

/// `1 round`, `3 rounds`.
fn rounds_label(n: usize) -> String {
    match n {
        1 => "1 round".to_owned(),
        n => format!("{n} rounds"),
    }
}

/// `--spawn` first, then the peers as given.
fn targets(args: &CompareArgs) -> Vec<TargetSpec> {
    let spawned = args.fanout.common.spawn.as_ref().map(|path| TargetSpec {
        name: path.file_name().map_or_else(|| "spawned".to_owned(), |n| n.to_string_lossy().into_owned()),
        kind: Kind::Spawn,
    });
    let peers = args.peers.iter().map(|&p| TargetSpec { name: p.name().to_owned(), kind: Kind::Peer(p) });
    spawned.into_iter().chain(peers).collect()
}

/// Starts the target, runs fanout against it within `--timeout`, stops it. The outer error is a
/// target that did not start; the inner one a run that failed.
async fn run_one(
    spec: &TargetSpec,
    args: &FanoutArgs,
    peers_dir: &Path,
    threads: usize,
) -> anyhow::Result<anyhow::Result<FanoutReport>> {
    let base = &args.common;
    let (common, peer) = match spec.kind {
        Kind::Spawn => (base.clone(), None),
        Kind::Peer(p) => {
            let server = PeerServer::start(p, peers_dir, base.server_cpus.as_deref()).await?;
            (peer_common(base, p, &server), Some(server))
        }
    };
    let target = match Target::resolve(&common).await {
        Ok(target) => target,
        Err(e) => {
            if let Some(server) = peer {
                server.stop().await;
            }
            return Err(e);
        }
    };
    println!("target {}", target.base_urls().join(", "));
    let run_args = FanoutArgs { common, ..args.clone() };
    let result = match tokio::time::timeout(base.timeout, fanout::run(&run_args, &target, threads)).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("the run did not finish within --timeout {}", human(base.timeout))),
    };
    let stopped = target.shutdown().await;
    let exit = match peer {
        Some(server) => Some(server.stop().await),
        None => stopped.exit,
    };
    if result.is_err()
        && let Some(tail) = stopped.log_tail.filter(|t| !t.is_empty())
    {
        eprintln!("last lines of the server's log:\n{tail}");
    }
    Ok(result.map(|mut report| {
        report.server_exit = exit;
        report
    }))
}

/// A peer's flags: its URL, pid and protocol, every flag for a spawned server cleared.
fn peer_common(base: &Common, peer: Peer, server: &PeerServer) -> Common {
    Common {
        url: Some(server.url()),
        server_pid: Some(server.pid),
        protocol: match peer {
            Peer::YWebsocketServer => Protocol::YWebsocket,
            Peer::Hocuspocus => Protocol::Hocuspocus,
        },
        spawn: None,
        server_args: Vec::new(),
        server_env: Vec::new(),
        server_cpus: None,
        nodes: 1,
        redis_url: None,
        ..base.clone()
    }
}

fn row(r: &RunRecord) -> Row {
    match (&r.report, &r.error) {
        (Some(report), _) => Row::from_report(&r.target, r.round, report),
        (None, error) => Row::errored(&r.target, r.round, error.clone().unwrap_or_default()),
    }
}

/// A run's failures, each prefixed with the target and round.
fn problems(r: &RunRecord) -> Vec<String> {
    let at = format!("{} round {}", r.target, r.round);
    match (&r.report, &r.error) {
        (Some(report), _) => report.problems.iter().map(|p| format!("{at}: {p}")).collect(),
        (None, error) => vec![format!("{at}: {}", error.as_deref().unwrap_or("no report"))],
    }
}

impl CompareReport {
    pub fn print(&self) {
        let w = &self.config.workload;
        println!(
            "compare {}: {}, {}",
            format!("{:?}", w.shape).to_lowercase(),
            w.describe(),
            rounds_label(self.config.rounds)
        );
        print!("{}", table::text(&self.table, &self.ratios));
        crate::report::print_verdict(None, self.ok, &self.problems);
    }
}
