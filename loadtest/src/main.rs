//! The `loadtest` binary: parse the command line, run one subcommand under the overall timeout,
//! stop a spawned server, print the summary, write the JSON report and plot, pick the exit code.

mod auth;
mod child;
mod churn;
mod cli;
mod client;
mod compare;
mod duration;
mod fanout;
mod idle;
mod kernel_sockets;
mod marker;
mod nodes;
mod persist;
mod plain_http;
mod plot;
mod procfs;
mod prom;
mod redis_info;
mod report;
mod sampler;
mod servers;
mod source_addrs;
mod target;
mod wire;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command, Common};
use crate::target::{Stopped, Target};

/// Exit code when an update was lost, duplicated or reordered, a room did not converge, (churn)
/// rooms were not evicted or lost their text, or (persist) an update was never acknowledged.
const EXIT_FAILED: u8 = 1;
/// Exit code for bad flags, a server that did not start, refused connections or the timeout.
const EXIT_SETUP: u8 = 2;

fn main() -> ExitCode {
    let mut command = Cli::parse().command;
    match &mut command {
        Command::Churn(a) => churn::add_server_defaults(&mut a.common),
        Command::Persist(a) => persist::add_server_defaults(a),
        // A saturation search measures the server, not its per-connection message limit.
        Command::Fanout(a) if a.saturate => persist::lift_message_limit(&mut a.common),
        Command::Fanout(_) | Command::Idle(_) | Command::Compare(_) => {}
    }
    let common = command.common();
    let threads =
        common.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: starting the runtime: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
        };
    let code = runtime.block_on(run(&command, common, threads));
    // Client tasks that outlived a timeout must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Either report, so the tail of a run is shared.
enum Outcome {
    Fanout(Box<fanout::FanoutReport>),
    Saturate(Box<fanout::SaturationReport>),
    Idle(Box<idle::IdleReport>),
    Churn(Box<churn::ChurnReport>),
    Persist(Box<persist::PersistReport>),
}

async fn run(command: &Command, common: &Common, threads: usize) -> ExitCode {
    // Check the flags before a server is spawned for nothing.
    if let Err(e) = command.validate() {
        eprintln!("error: {e:#}");
        return ExitCode::from(EXIT_SETUP);
    }
    // Compare starts and stops a server per run itself, each run within --timeout.
    if let Command::Compare(args) = command {
        return run_compare(args, threads).await;
    }
    if let Command::Idle(args) = command
        && let Err(e) = idle::raise_fd_limit(args.sockets)
    {
        eprintln!("error: {e:#}");
        return ExitCode::from(EXIT_SETUP);
    }
    let target = match Target::resolve(common).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    for (i, node) in target.nodes().iter().enumerate() {
        match target.nodes().len() {
            1 => println!("target {}", node.base_url),
            _ => println!("target node {i} {}", node.base_url),
        }
    }
    if let Some(redis) = &target.redis {
        println!("redis  {}", redis.url());
    }
    let work = async {
        match command {
            Command::Fanout(args) if args.saturate => {
                fanout::saturate(args, &target, threads).await.map(|r| Outcome::Saturate(Box::new(r)))
            }
            Command::Fanout(args) => {
                fanout::run(args, &target, threads).await.map(|r| Outcome::Fanout(Box::new(r)))
            }
            Command::Idle(args) => {
                idle::run(args, &target, threads).await.map(|r| Outcome::Idle(Box::new(r)))
            }
            Command::Churn(args) => {
                churn::run(args, &target, threads).await.map(|r| Outcome::Churn(Box::new(r)))
            }
            Command::Persist(args) => {
                persist::run(args, &target, threads).await.map(|r| Outcome::Persist(Box::new(r)))
            }
            // Handled by `run_compare` before any target is resolved.
            Command::Compare(_) => Err(anyhow::anyhow!("compare resolves its own targets")),
        }
    };
    let result = match tokio::time::timeout(common.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "the run did not finish within --timeout {}",
            duration::human(common.timeout)
        )),
    };
    let stopped = target.shutdown().await;
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e:#}");
            print_server_end(&stopped);
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let ok = match &mut outcome {
        Outcome::Fanout(r) => {
            r.server_exit = stopped.exit.clone();
            r.print();
            r.ok
        }
        Outcome::Saturate(r) => {
            r.server_exit = stopped.exit.clone();
            r.print();
            r.ok
        }
        Outcome::Idle(r) => {
            r.server_exit = stopped.exit.clone();
            r.print();
            r.ok
        }
        Outcome::Churn(r) => {
            r.server_exit = stopped.exit.clone();
            r.print();
            r.ok
        }
        Outcome::Persist(r) => {
            r.server_exit = stopped.exit.clone();
            r.print();
            r.ok
        }
    };
    if !ok {
        print_server_end(&Stopped { exit: None, ..stopped });
    }
    if let Err(e) = write_outputs(&outcome, common) {
        eprintln!("error: {e:#}");
        return ExitCode::from(EXIT_SETUP);
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}

async fn run_compare(args: &cli::CompareArgs, threads: usize) -> ExitCode {
    let report = match compare::run(args, threads).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    report.print();
    match compare::write_outputs(&report, args) {
        Ok(paths) => paths.iter().for_each(|p| println!("written to {}", p.display())),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_SETUP);
        }
    }
    if report.ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}

/// A spawned server's exit and last log lines, for a run that went wrong.
fn print_server_end(stopped: &Stopped) {
    if let Some(exit) = &stopped.exit {
        eprintln!("server {exit}");
    }
    if let Some(tail) = stopped.log_tail.as_deref().filter(|t| !t.is_empty()) {
        eprintln!("last lines of the server's log:\n{tail}");
    }
}

fn write_outputs(outcome: &Outcome, common: &Common) -> anyhow::Result<()> {
    if let Some(path) = &common.report {
        match outcome {
            Outcome::Fanout(r) => report::write_json(path, r)?,
            Outcome::Saturate(r) => report::write_json(path, r)?,
            Outcome::Idle(r) => report::write_json(path, r)?,
            Outcome::Churn(r) => report::write_json(path, r)?,
            Outcome::Persist(r) => report::write_json(path, r)?,
        }
        println!("report written to {}", path.display());
    }
    if let Some(path) = &common.plot {
        match outcome {
            Outcome::Fanout(r) => {
                for written in fanout::write_plots(r, path)? {
                    println!("plot written to {}", written.display());
                }
            }
            Outcome::Saturate(r) => {
                fanout::write_saturation_plot(r, path)?;
                println!("plot written to {}", path.display());
            }
            Outcome::Idle(r) => {
                idle::write_plot(r, path)?;
                println!("plot written to {}", path.display());
            }
            _ => println!("(--plot ignored: only fanout and idle runs have a plot)"),
        }
    }
    Ok(())
}
