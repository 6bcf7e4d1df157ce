//! The `persist` run: app-client writers append to their rooms, paced or saturating a window of
//! unacknowledged updates; each update is timed until the server's `saved` covers it. Then a
//! drain, a no-loss check with a fresh client per room, and a [`PersistReport`].

mod acks;
mod extras;
mod summary;
mod verify;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::extras::Extras;
pub use self::summary::PersistReport;
use self::writer::{Pace, Shared, WriterOutcome, WriterSpec};
use crate::cli::PersistArgs;
use crate::duration::human_secs;
use crate::marker;
use crate::nodes::node_of;
use crate::procfs::{Proc, Usage, sample_all};
use crate::report::{Latency, cdf_points, new_histogram, ratio};
use crate::servers::{self, Window};
use crate::target::Target;

/// Delay between "everyone is connected" and the writers' time zero, so every writer task has
/// seen the go signal before its first update is due.
const GO_DELAY: Duration = Duration::from_millis(300);

/// The spawned server's per-connection message limit with `--saturate`, unless given: the default
/// (300/s) closes a saturating writer with `rate_limited`, and the ceiling measured would be that.
const SATURATE_MESSAGE_LIMIT: &str = "--max-messages-per-sec=1000000";

/// Lifts a spawned server's per-connection message limit for `--saturate` runs, unless the user set
/// it (`--server-arg=--max-messages-per-sec=N`).
pub fn add_server_defaults(args: &mut PersistArgs) {
    if args.saturate {
        lift_message_limit(&mut args.common);
    }
}

/// Adds [`SATURATE_MESSAGE_LIMIT`] to a spawned server's arguments unless they set the limit;
/// shared with `fanout --saturate`.
pub fn lift_message_limit(common: &mut crate::cli::Common) {
    let set = common.server_args.iter().any(|a| a.starts_with("--max-messages-per-sec"));
    if common.spawn.is_some() && !set {
        common.server_args.push(SATURATE_MESSAGE_LIMIT.to_owned());
    }
}

pub async fn run(args: &PersistArgs, target: &Target, threads: usize) -> anyhow::Result<PersistReport> {
    let run_id = marker::now_us() / 1000;
    let rooms: Vec<String> = (0..args.rooms).map(|r| format!("lp-{run_id}-{r}")).collect();
    target.open_rooms(&rooms).await?;
    let writers_total = args.rooms * args.writers;
    let harness = Proc::current();
    let procs = target.procs();
    let server_before = procs.as_deref().map(sample_all).transpose()?;
    let extras = Extras::new(args.broker_pid, &args.worker_pids, target.base_urls(), &args.worker_metrics)?;

    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        connect: Semaphore::new(args.common.connect_concurrency.max(1)),
        cancel: CancellationToken::new(),
        pace: if args.saturate { Pace::Window(args.in_flight) } else { Pace::Every(period) },
        warmup: args.warmup,
        duration: args.duration,
    });
    // Stops the writers even if this future is dropped by the overall timeout.
    let _stop_on_drop = shared.cancel.clone().drop_guard();
    let (ready_tx, mut ready_rx) = mpsc::channel(1024);
    let (go_tx, go_rx) = watch::channel(None);
    let nodes = target.nodes().len();

    let connect_started = Instant::now();
    let mut tasks = JoinSet::new();
    for (r, room) in rooms.iter().enumerate() {
        for w in 0..args.writers {
            let global = r * args.writers + w;
            tasks.spawn(writer::run_writer(WriterSpec {
                room: r,
                writer: w as u32,
                endpoint: target.endpoint(node_of(r, w, nodes), room).with_query("app=1"),
                offset: period.mul_f64(global as f64 / writers_total as f64),
                shared: Arc::clone(&shared),
                ready: ready_tx.clone(),
                go: go_rx.clone(),
            }));
        }
    }
    drop((ready_tx, go_rx));
    crate::client::await_ready(&mut ready_rx, writers_total, "writer").await?;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    println!(
        "{writers_total} app-client writers connected and synced in {}; sending",
        human_secs(connect_secs)
    );

    let t0 = Instant::now() + GO_DELAY;
    go_tx.send_replace(Some(t0));
    tokio::time::sleep_until(t0 + args.warmup).await;
    let (start, start_extras, sent_start) =
        edge(target, procs.as_deref(), &harness, &shared, &extras).await?;
    tokio::time::sleep_until(t0 + args.warmup + args.duration).await;
    let (end, end_extras, sent_end) = edge(target, procs.as_deref(), &harness, &shared, &extras).await?;

    // Writers end once every update of theirs is acknowledged; past --drain the rest are cut off
    // and whatever they still wait for counts as unacknowledged.
    let drain_started = Instant::now();
    let mut outcomes: Vec<WriterOutcome> = Vec::with_capacity(writers_total);
    let joined = tokio::time::timeout(args.drain, async {
        while let Some(outcome) = tasks.join_next().await {
            outcomes.push(outcome.context("a writer task panicked")?);
        }
        anyhow::Ok(())
    })
    .await;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    match joined {
        Ok(result) => result?,
        Err(_) => {
            shared.cancel.cancel();
            while let Some(outcome) = tasks.join_next().await {
                outcomes.push(outcome.context("a writer task panicked")?);
            }
        }
    }

    let mut acked_by_room: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    for o in &outcomes {
        acked_by_room.entry(rooms[o.room].clone()).or_default().push((o.writer, o.acked));
    }
    let urls = (rooms.iter().enumerate()).map(|(r, room)| (room.clone(), target.endpoint(r, room))).collect();
    let checks = verify::check_rooms(urls, &acked_by_room).await;

    let mut hist = new_histogram();
    for o in &outcomes {
        hist.add(&o.hist)?;
    }
    let window_secs = end.at.saturating_duration_since(start.at).as_secs_f64();
    let window_acked = end.delivered - start.delivered;
    let server =
        servers::over_window(target, procs.as_deref(), server_before.as_deref(), (&start, &end), Vec::new());
    Ok(summary::assemble(summary::Parts {
        args,
        node_urls: target.base_urls(),
        threads,
        connect_secs,
        throughput: summary::Throughput {
            offered_per_sec: args.offered_per_sec(),
            sent_per_sec: ratio((sent_end - sent_start) as f64, window_secs),
            acked_per_sec: ratio(window_acked as f64, window_secs),
            window_secs,
            window_sent: sent_end - sent_start,
            window_acked,
            updates_sent: outcomes.iter().map(|o| o.sent).sum(),
            updates_acked: outcomes.iter().map(|o| o.acked).sum(),
            unacknowledged: outcomes.iter().map(|o| o.unacked).sum(),
            drain_secs,
        },
        latency: Latency::from_hist(&hist),
        latency_cdf: cdf_points(&hist),
        errors: outcomes.iter().filter_map(|o| o.error.clone()).collect(),
        server,
        extras: extras.between(&start_extras, &end_extras, window_secs),
        harness: Usage::between(&harness, &start.harness, &end.harness),
        machine_cpu_pct: start.machine_cpu_pct(&end, harness.ticks_per_sec),
        checks,
    }))
}

/// One edge of the measured window: the servers, harness and machine (acknowledged updates stand
/// in for fanout's deliveries), the extra processes and counters, and the updates sent so far.
async fn edge(
    target: &Target,
    procs: Option<&[Proc]>,
    harness: &Proc,
    shared: &Shared,
    extras: &Extras,
) -> anyhow::Result<(Window, extras::Edge, u64)> {
    let sent = shared.sent.load(Ordering::Relaxed);
    let window = Window::sample(target, procs, harness, &shared.acked).await?;
    let extra = extras.sample().await.context("sampling the broker, workers or metrics")?;
    Ok((window, extra, sent))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn server_args(argv: &[&str]) -> Vec<String> {
        let Command::Persist(mut args) = Cli::parse_from(argv).command else { panic!("persist expected") };
        add_server_defaults(&mut args);
        args.common.server_args
    }

    #[test]
    fn saturating_lifts_a_spawned_servers_message_limit_unless_set() {
        let limit = SATURATE_MESSAGE_LIMIT.to_owned();
        assert_eq!(server_args(&["loadtest", "persist", "--spawn", "s", "--saturate"]), [limit]);
        assert!(server_args(&["loadtest", "persist", "--spawn", "s"]).is_empty(), "paced runs keep it");
        let own =
            ["loadtest", "persist", "--spawn", "s", "--saturate", "--server-arg=--max-messages-per-sec=5"];
        assert_eq!(server_args(&own), ["--max-messages-per-sec=5"]);
        assert!(
            server_args(&["loadtest", "persist", "--url", "ws://127.0.0.1:1/ws", "--saturate"]).is_empty()
        );
    }
}
