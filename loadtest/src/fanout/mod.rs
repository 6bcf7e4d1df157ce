//! The `fanout` run: connect every client, start the writers together, measure a window, drain,
//! check convergence, then tally everything into a [`FanoutReport`]. `--saturate` repeats that
//! at rising rates (`saturate.rs`, the search rule in `search.rs`).

mod converge;
mod peer;
mod plots;
mod saturate;
mod search;
mod summary;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::peer::{ClientOutcome, ClientSpec, Shared, WriterDone};
pub use self::plots::{percentiles_path, write_plots};
pub use self::saturate::{SaturationReport, run as saturate, write_plot as write_saturation_plot};
pub use self::summary::FanoutReport;
use self::summary::{Convergence, Deliveries, SendStats, Tally};
use crate::cli::FanoutArgs;
use crate::duration::human_secs;
use crate::marker;
use crate::nodes::node_of;
use crate::procfs::{Proc, Usage, sample_all};
use crate::report::{Latency, cdf_points, new_histogram, percentile_points, ratio};
use crate::sampler;
use crate::servers::{self, Window};
use crate::target::Target;

/// Delay between "everyone is connected" and the writers' time zero, so every writer task has
/// seen the go signal before its first update is due.
const GO_DELAY: Duration = Duration::from_millis(300);

pub async fn run(args: &FanoutArgs, target: &Target, threads: usize) -> anyhow::Result<FanoutReport> {
    let w = args.workload()?;
    let run_id = marker::now_us() / 1000;
    let rooms: Vec<String> = (0..w.rooms).map(|r| format!("lt-{run_id}-{r}")).collect();
    target.open_rooms(&rooms).await?;
    let clients_total = w.rooms * w.clients;
    let harness = Proc::current();
    let procs = target.procs();
    let server_before = procs.as_deref().map(sample_all).transpose()?;
    let nodes = target.nodes().len();

    let seconds = (w.warmup + w.duration + args.drain + args.quiet).as_secs() as usize + 5;
    let shared = Arc::new(Shared {
        start_us: AtomicU64::new(u64::MAX),
        per_second: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        workload: w.clone(),
        connect: Semaphore::new(args.common.connect_concurrency.max(1)),
        cancel: CancellationToken::new(),
    });
    // Stops the clients even if this future is dropped by the overall timeout.
    let _stop_on_drop = shared.cancel.clone().drop_guard();
    let (ready_tx, mut ready_rx) = mpsc::channel(1024);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = watch::channel(None);
    let writers_total = w.rooms * w.writers;
    let period = 1.0 / f64::from(w.rate);

    let connect_started = Instant::now();
    let mut tasks = JoinSet::new();
    for (r, room) in rooms.iter().enumerate() {
        for index in 0..w.clients {
            let global_writer = r * w.writers + index;
            tasks.spawn(peer::run_client(ClientSpec {
                room: r,
                index,
                endpoint: target.endpoint(node_of(r, index, nodes), room),
                offset: Duration::from_secs_f64(period * global_writer as f64 / writers_total as f64),
                shared: Arc::clone(&shared),
                ready: ready_tx.clone(),
                go: go_rx.clone(),
                done: done_tx.clone(),
            }));
        }
    }
    drop((ready_tx, done_tx, go_rx));
    crate::client::await_ready(&mut ready_rx, clients_total, "client").await?;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    println!("{clients_total} clients connected and synced in {}; sending", human_secs(connect_secs));

    let t0 = Instant::now() + GO_DELAY;
    shared.start_us.store(marker::now_us() + GO_DELAY.as_micros() as u64, Ordering::Relaxed);
    go_tx.send_replace(Some(t0));
    let server_series = procs.clone().map(|p| sampler::spawn(p, t0, shared.cancel.child_token()));

    tokio::time::sleep_until(t0 + w.warmup).await;
    let window_start = Window::sample(target, procs.as_deref(), &harness, &shared.delivered).await?;
    tokio::time::sleep_until(t0 + w.warmup + w.duration).await;
    let window_end = Window::sample(target, procs.as_deref(), &harness, &shared.delivered).await?;

    let mut done: Vec<WriterDone> = Vec::with_capacity(writers_total);
    let collect = async {
        while done.len() < writers_total {
            match done_rx.recv().await {
                Some(d) => done.push(d),
                None => break,
            }
        }
    };
    if tokio::time::timeout(args.drain, collect).await.is_err() {
        bail!("only {} of {writers_total} writers finished within --drain after the window", done.len());
    }
    let expected: u64 = done.iter().map(|d| u64::from(d.sent) * (w.clients as u64 - 1)).sum();
    let drain_started = Instant::now();
    while shared.delivered.load(Ordering::Relaxed) < expected && drain_started.elapsed() < args.drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    tokio::time::sleep(args.quiet).await;

    let sampled = converge::sample(w.rooms, args.converge_rooms);
    // The fresh client goes where the room's first reader is: a node none of its writers is on
    // whenever there are more nodes than writers, so the check sees what crossed the relay.
    let urls = (sampled.iter())
        .map(|&r| (rooms[r].clone(), target.endpoint(node_of(r, w.writers, nodes), &rooms[r])))
        .collect();
    let mut wanted: HashMap<String, Vec<converge::Fingerprint>> = HashMap::new();
    for d in &done {
        let prints =
            wanted.entry(rooms[d.room].clone()).or_insert_with(|| vec![Default::default(); w.writers]);
        prints[d.writer as usize] = d.content.clone();
    }
    let checks = converge::check_rooms(urls, &wanted, w.op, w.writers).await;

    shared.cancel.cancel();
    let mut outcomes = Vec::with_capacity(clients_total);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a client task panicked")?);
    }
    let server_per_second = match server_series {
        Some(handle) => handle.await.context("sampler task panicked")?,
        None => Vec::new(),
    };

    let tally = tally(&outcomes)?;
    let window_wall = window_end.at.saturating_duration_since(window_start.at).as_secs_f64();
    let window_delivered = window_end.delivered - window_start.delivered;
    let measured_sent: u64 = done.iter().map(|d| u64::from(d.measured_sent)).sum();
    let lag_sum: Duration = done.iter().map(|d| d.lag_sum).sum();
    let sent_total: u64 = done.iter().map(|d| u64::from(d.sent)).sum();
    let server = servers::over_window(
        target,
        procs.as_deref(),
        server_before.as_deref(),
        (&window_start, &window_end),
        server_per_second,
    );
    Ok(summary::assemble(summary::Parts {
        args,
        workload: w.clone(),
        node_urls: target.base_urls(),
        threads,
        connect_secs,
        latency: Latency::from_hist(&tally.hist),
        latency_cdf: cdf_points(&tally.hist),
        latency_percentiles: percentile_points(&tally.hist),
        latency_hist: tally.hist.clone(),
        deliveries: Deliveries {
            expected,
            received: tally.delivered,
            missing: expected.saturating_sub(tally.delivered),
            extra: tally.delivered.saturating_sub(expected),
            gaps: tally.gaps,
            unmarked: tally.unmarked,
            first_unmarked_hex: tally.first_unmarked.clone(),
            empty_updates: tally.empty,
            echoes: tally.echoes,
            malformed: tally.malformed,
            disconnected_clients: tally.errors.len(),
            errors: tally.errors.iter().take(10).cloned().collect(),
            window_secs: window_wall,
            window_delivered,
            per_sec: ratio(window_delivered as f64, window_wall),
            drain_secs,
        },
        send: SendStats {
            requested_per_sec: (writers_total as u64 * u64::from(w.rate)) as f64,
            achieved_per_sec: ratio(measured_sent as f64, w.duration.as_secs_f64()),
            updates_sent: sent_total,
            measured_sent,
            max_lag_ms: done.iter().map(|d| d.max_lag).max().unwrap_or_default().as_secs_f64() * 1e3,
            mean_lag_ms: ratio(lag_sum.as_secs_f64() * 1e3, sent_total as f64),
        },
        server,
        redis: servers::redis(target, &window_start, &window_end),
        harness: Usage::between(&harness, &window_start.harness, &window_end.harness),
        machine_cpu_pct: window_start.machine_cpu_pct(&window_end, harness.ticks_per_sec),
        per_second: shared.per_second.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
        convergence: Convergence::from_checks(checks),
    }))
}

/// Merges what every client saw.
fn tally(outcomes: &[ClientOutcome]) -> anyhow::Result<Tally> {
    let mut t = Tally {
        hist: new_histogram(),
        delivered: 0,
        gaps: 0,
        unmarked: 0,
        empty: 0,
        echoes: 0,
        malformed: 0,
        errors: Vec::new(),
        first_unmarked: None,
    };
    for o in outcomes {
        t.hist.add(&o.stats.hist)?;
        t.delivered += o.stats.delivered;
        t.gaps += o.stats.gaps;
        t.unmarked += o.stats.unmarked;
        t.empty += o.stats.empty;
        t.echoes += o.stats.echoes;
        t.malformed += o.stats.malformed;
        t.errors.extend(o.error.clone());
        if t.first_unmarked.is_none() {
            t.first_unmarked = o.stats.first_unmarked.as_deref().map(hex);
        }
    }
    Ok(t)
}

/// Lowercase hex, for showing unexpected bytes in the report.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
