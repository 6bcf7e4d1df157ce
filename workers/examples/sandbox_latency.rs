//! Figures of the Docker sandbox on this machine: a python hello world from submission to its
//! first output byte, warm (from the pool) and cold (created, attached, started for the run), and
//! the runs per second of 4 runs at once on a warm pool of 4.
//!
//! `cargo run -p workers --example sandbox_latency` (Docker from `DOCKER_HOST`, default the local
//! socket; the python runner image installed).

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::exec::{DockerConfig, DockerSandbox, ExecArgs, Language, RunSpec, Sandbox};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    exec: ExecArgs,
    /// Runs measured on each path.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// How long the throughput is measured.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let warm = first_byte(&flags, 1).await?;
    let cold = first_byte(&flags, 0).await?;
    println!("submit → first output byte, python hello world, {} runs each:", flags.runs);
    println!("  warm: {}", summary(warm));
    println!("  cold: {}", summary(cold));
    throughput(&flags).await?;
    Ok(())
}

/// One sandbox offering python with a pool of `pool_size`, once python is ready.
async fn sandbox(
    flags: &Flags,
    pool_size: usize,
) -> (std::sync::Arc<DockerSandbox>, TaskTracker, CancellationToken) {
    let mut exec = flags.exec.clone();
    exec.pool_size = pool_size;
    let mut config = DockerConfig::new(&exec, format!("latency-{}", std::process::id()));
    config.languages = Language::find("python").into_iter().collect();
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let sandbox = DockerSandbox::start(config, &tracker, cancel.clone());
    while !sandbox.probed() || sandbox.status().pool_ready < pool_size {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (sandbox, tracker, cancel)
}

fn spec(job: usize, code: &str) -> RunSpec {
    RunSpec {
        job: format!("latency-{job}"),
        room: "latency".to_owned(),
        language: "python".to_owned(),
        code: code.to_owned(),
        stdin: String::new(),
    }
}

/// Submission → first chunk of `runs` runs; with a pool, each run waits for a warm container.
async fn first_byte(flags: &Flags, pool_size: usize) -> anyhow::Result<Vec<Duration>> {
    let (sandbox, tracker, cancel) = sandbox(flags, pool_size).await;
    let mut figures = Vec::with_capacity(flags.runs);
    for job in 0..flags.runs {
        while sandbox.status().pool_ready < pool_size {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (sender, mut receiver) = mpsc::channel(16);
        let begun = Instant::now();
        let run = sandbox.run(spec(job, "print('hello world')"), sender);
        let first = async {
            let first = receiver.recv().await.map(|_| begun.elapsed());
            while receiver.recv().await.is_some() {}
            first
        };
        let (report, first) = tokio::join!(run, first);
        let report = report?;
        anyhow::ensure!(report.exit_code == Some(0) && report.warm == (pool_size > 0), "{report:?}");
        figures.push(first.ok_or_else(|| anyhow::anyhow!("no output"))?);
    }
    stop(tracker, cancel).await;
    Ok(figures)
}

/// Runs per second of 4 loops running trivial programs back to back on a warm pool of 4.
async fn throughput(flags: &Flags) -> anyhow::Result<()> {
    let (sandbox, tracker, cancel) = sandbox(flags, 4).await;
    let until = Instant::now() + Duration::from_secs(flags.seconds);
    let loops = (0..4).map(|worker| {
        let sandbox = sandbox.clone();
        async move {
            let (mut runs, mut warm) = (0usize, 0usize);
            while Instant::now() < until {
                let (sender, mut receiver) = mpsc::channel(16);
                let drain = async { while receiver.recv().await.is_some() {} };
                let (report, ()) =
                    tokio::join!(sandbox.run(spec(worker * 1_000_000 + runs, "print(1)"), sender), drain);
                let report = report?;
                anyhow::ensure!(report.exit_code == Some(0), "{report:?}");
                runs += 1;
                warm += usize::from(report.warm);
            }
            anyhow::Ok((runs, warm))
        }
    });
    let begun = Instant::now();
    let results = futures_util::future::try_join_all(loops).await?;
    let elapsed = begun.elapsed().as_secs_f64();
    let runs: usize = results.iter().map(|(runs, _)| runs).sum();
    let warm: usize = results.iter().map(|(_, warm)| warm).sum();
    println!(
        "4 at once, warm pool of 4: {runs} runs in {elapsed:.1} s = {:.1} runs/s ({warm} warm, {} cold)",
        runs as f64 / elapsed,
        runs - warm
    );
    stop(tracker, cancel).await;
    Ok(())
}

async fn stop(tracker: TaskTracker, cancel: CancellationToken) {
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

fn summary(mut figures: Vec<Duration>) -> String {
    figures.sort();
    let at = |q: f64| figures[((figures.len() as f64 * q).ceil() as usize).clamp(1, figures.len()) - 1];
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        figures[0].as_secs_f64() * 1e3,
        figures[figures.len() - 1].as_secs_f64() * 1e3,
    )
}
