//! The `churn` run: open many rooms, leave one edit in each, abandon them, and check the server
//! gives the memory back once it has persisted and evicted them, and that the edits survived.
//!
//! Order: warm-up room (opened, closed, evicted) → baseline RSS → open `--rooms` rooms, at most
//! `--concurrency` at a time → wait for `/ready` to say 0 rooms → `--settle` → final RSS → reopen a
//! random sample and read the text back. A monitor samples RSS and `/ready` every 100 ms throughout.

mod ready;
mod room;
mod summary;

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, stream};
use tokio::time::Instant;

pub use self::summary::ChurnReport;
use self::summary::{Config, Memory, RoomFailure, Verify};
use crate::cli::{ChurnArgs, Common};
use crate::duration::{human, human_secs};
use crate::marker;
use crate::procfs::Proc;
use crate::report::ratio;
use crate::target::Target;

/// The idle time churn gives a spawned server unless told otherwise: short, so a 10,000-room run
/// is not mostly waiting, but longer than the janitor's period so eviction is still the real path.
const DEFAULT_ROOM_IDLE: &str = "--room-idle-secs=1";
/// Open failures kept in the report.
const ERRORS_KEPT: usize = 10;
/// Sampled rooms reopened at once.
const VERIFY_CONCURRENCY: usize = 8;

/// Adds [`DEFAULT_ROOM_IDLE`] to a spawned server's arguments unless the user set the idle time
/// (as `--room-idle-secs=N` or `--room-idle-secs N`); the server's own default (30 s) would make
/// every run wait half a minute for eviction.
pub fn add_server_defaults(common: &mut Common) {
    if common.spawn.is_some() && !common.server_args.iter().any(|a| a.starts_with("--room-idle-secs")) {
        common.server_args.push(DEFAULT_ROOM_IDLE.to_owned());
    }
}

pub async fn run(args: &ChurnArgs, target: &Target, threads: usize) -> anyhow::Result<ChurnReport> {
    anyhow::ensure!(args.rooms >= 1 && args.concurrency >= 1, "--rooms and --concurrency must be at least 1");
    // One node: `Command::validate` refuses churn over several before they are spawned.
    let node = target.first();
    let authority = crate::plain_http::http_authority(&node.base_url)?;
    ready::rooms(&authority).await.context("the server's /ready (churn needs its room count)")?;
    let run_id = marker::now_us() / 1000;
    let seed = args.seed.unwrap_or_else(marker::now_us);
    let proc_ = node.proc_;
    let warm_room = format!("churn-{run_id}-warmup");
    // Before the monitor and the baseline: with `--sign-up` each room is a session, and creating
    // 10,000 of them is neither opening rooms nor per-room memory.
    let names: Vec<String> =
        std::iter::once(warm_room.clone()).chain((0..args.rooms).map(|i| room::name(run_id, i))).collect();
    target.open_rooms(&names).await?;
    let mut monitor = ready::Monitor::spawn(proc_, authority.clone());

    // Warm-up: the first room pays one-time costs (the store's first write transaction and
    // caches, lazily built tables, runtime buffers) that are not per-room memory; paying them
    // before the baseline keeps them out of "retained". Only one room, so per-thread allocator
    // arenas that 100 concurrent rooms may add on other threads are not pre-warmed.
    let warm_url = target.endpoint(0, &warm_room);
    room::open_once(&warm_url, "warm-up").await.context("the warm-up room")?;
    if !monitor.wait_for_zero_rooms(args.evict_timeout).await {
        bail!(
            "/ready still reports {} rooms {} after the warm-up room closed: does the server evict \
             idle rooms (--room-idle-secs), and is nobody else using it?",
            count(monitor.last_rooms()),
            human(args.evict_timeout)
        );
    }
    tokio::time::sleep(args.baseline_settle).await;
    let baseline = proc_.as_ref().map(Proc::sample).transpose()?;

    println!("opening {} rooms, {} at a time", args.rooms, args.concurrency);
    let open_from = monitor.now();
    let started = Instant::now();
    let mut opened = Vec::with_capacity(args.rooms);
    let mut errors = Vec::new();
    let mut results = stream::iter(0..args.rooms)
        .map(|i| {
            let url = target.endpoint(0, &room::name(run_id, i));
            async move { (i, room::open_once(&url, &room::text(run_id, i)).await) }
        })
        .buffer_unordered(args.concurrency);
    while let Some((i, result)) = results.next().await {
        match result {
            Ok(()) => opened.push(i),
            Err(e) => errors.push(format!("{}: {e:#}", room::name(run_id, i))),
        }
        let done = opened.len() + errors.len();
        if done % 2000 == 0 && done < args.rooms {
            println!("  {done} rooms opened and closed");
        }
    }
    drop(results);
    let open_secs = started.elapsed().as_secs_f64();
    let after_open = proc_.as_ref().map(Proc::sample).transpose()?;
    let open_to = monitor.now();
    println!(
        "{} rooms opened and closed in {}; waiting for eviction (at most {})",
        opened.len(),
        human_secs(open_secs),
        human(args.evict_timeout)
    );

    let closed_at = Instant::now();
    let evicted = monitor.wait_for_zero_rooms(args.evict_timeout).await;
    let evict_secs = evicted.then(|| closed_at.elapsed().as_secs_f64());
    let evict_to = monitor.now();
    if evicted {
        tokio::time::sleep(args.settle).await;
    }
    let after = proc_.as_ref().map(Proc::sample).transpose()?;
    let series = monitor.stop().await;

    // After the final RSS reading: reopening loads rooms back into memory.
    let sample = room::pick(&opened, args.verify_rooms, seed);
    println!("reopening {} sampled rooms", sample.len());
    let failures: Vec<RoomFailure> =
        stream::iter(sample.iter().copied())
            .map(|i| {
                let (name, want) = (room::name(run_id, i), room::text(run_id, i));
                let url = target.endpoint(0, &name);
                async move {
                    room::check(&url, &want).await.err().map(|detail| RoomFailure { room: name, detail })
                }
            })
            .buffer_unordered(VERIFY_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
    let verify = Verify { seed, sampled: sample.len(), ok: sample.len() - failures.len(), failures };

    let (peak_open, peak_rooms_open) = ready::peaks(&series, open_from, open_to);
    let (peak_evict, peak_rooms_evict) = ready::peaks(&series, open_to, evict_to);
    let server = match (proc_, baseline, after_open, after) {
        (Some(p), Some(baseline), Some(after_open), Some(after)) => {
            // The 100 ms samples may all miss a short phase; the readings around it bound it below.
            let peak_open = peak_open.unwrap_or(0).max(after_open.rss_kib);
            let peak_evict = peak_evict.unwrap_or(0).max(after.rss_kib);
            let mut m = Memory::new(baseline.rss_kib, peak_open, peak_evict, after.rss_kib);
            m.hwm_kib = after.hwm_kib;
            m.open_cpu_secs = p.cpu_secs(&baseline, &after_open);
            Some(m)
        }
        _ => None,
    };

    let mut problems = Vec::new();
    if !errors.is_empty() {
        problems.push(format!(
            "{} of {} rooms failed to open, first: {}",
            errors.len(),
            args.rooms,
            errors[0]
        ));
    }
    if !evicted {
        problems.push(format!(
            "/ready still reported {} rooms in memory {} after the last room closed",
            count(series.iter().rev().find_map(|p| p.rooms)),
            human(args.evict_timeout)
        ));
    }
    if !verify.failures.is_empty() {
        let first = &verify.failures[0];
        problems.push(format!(
            "{} of {} sampled rooms lost their text, first {}: {}",
            verify.failures.len(),
            verify.sampled,
            first.room,
            first.detail
        ));
    }
    let common = &args.common;
    Ok(ChurnReport {
        kind: "churn",
        ok: problems.is_empty(),
        problems,
        config: Config {
            rooms: args.rooms,
            concurrency: args.concurrency,
            baseline_settle_secs: args.baseline_settle.as_secs_f64(),
            evict_timeout_secs: args.evict_timeout.as_secs_f64(),
            settle_secs: args.settle.as_secs_f64(),
            verify_rooms: args.verify_rooms,
            url: node.base_url.clone(),
            ready_url: format!("http://{authority}/ready"),
            spawned: common.spawn.as_ref().map(|s| s.display().to_string()),
            server_args: common.server_args.clone(),
            server_env: common.server_env.clone(),
            harness_threads: threads,
        },
        open_secs,
        rooms_per_sec: ratio(opened.len() as f64, open_secs),
        open_failures: errors.len(),
        peak_rooms: peak_rooms_open.max(peak_rooms_evict),
        evicted,
        evict_secs,
        server,
        verify,
        errors: errors.into_iter().take(ERRORS_KEPT).collect(),
        series,
        server_exit: None,
    })
}

/// A room count that may not have been read.
fn count(rooms: Option<u64>) -> String {
    rooms.map_or_else(|| "?".to_owned(), |r| r.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn churn_common(argv: &[&str]) -> Common {
        let cli = Cli::parse_from(["loadtest", "churn"].iter().chain(argv));
        let Command::Churn(mut args) = cli.command else { panic!("churn expected") };
        add_server_defaults(&mut args.common);
        assert_eq!((args.rooms, args.concurrency, args.verify_rooms), (10_000, 100, 20));
        args.common
    }

    #[test]
    fn short_idle_time_unless_given() {
        let c = churn_common(&["--spawn", "srv", "--server-env", "MALLOC_ARENA_MAX=2"]);
        assert_eq!(c.server_args, ["--room-idle-secs=1"]);
        assert_eq!(c.server_env, ["MALLOC_ARENA_MAX=2"]);
        let c = churn_common(&["--spawn", "srv", "--server-arg=--room-idle-secs=5"]);
        assert_eq!(c.server_args, ["--room-idle-secs=5"]);
        let c = churn_common(&["--spawn", "srv", "--server-arg=--room-idle-secs", "--server-arg=5"]);
        assert_eq!(c.server_args, ["--room-idle-secs", "5"]);
        // An attached server's settings are its own.
        assert!(churn_common(&["--url", "ws://127.0.0.1:1/ws"]).server_args.is_empty());
        assert!(
            Cli::try_parse_from(["loadtest", "churn", "--spawn", "s", "--server-env", "NOEQUALS"]).is_err()
        );
    }
}
