//! The `idle` run: open many synced sockets that then sit idle, and measure what each costs the
//! server in resident memory (and what it costs the harness, for reference). With several nodes
//! the sockets of each room are spread over them as fanout spreads its clients.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::IdleArgs;
use crate::client::{self, Event, Local};
use crate::duration::{human, human_secs};
use crate::marker;
use crate::nodes::node_of;
use crate::procfs::{Proc, Sample, Usage, sample_all};
use crate::report::{fmt_kib, ratio};
use crate::source_addrs::AddrList;
use crate::target::Target;

/// Points of the memory curve (one /proc read each, while the sockets connect).
const CURVE_POINTS: usize = 50;

/// File descriptors the harness needs besides its sockets (stdio, runtime, /proc reads, logs).
const FD_MARGIN: u64 = 64;

#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub kind: &'static str,
    pub ok: bool,
    pub problems: Vec<String>,
    pub config: Config,
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    pub server: Option<ServerCost>,
    pub harness: HarnessCost,
    /// The kernel's part, in no process's RSS: TCP sockets, their buffers and slab objects,
    /// machine-wide (both ends on loopback); `None` without /proc/net/sockstat.
    pub kernel: Option<crate::kernel_sockets::KernelCost>,
    /// Frames the sockets received after their own handshake (other sockets joining the room
    /// should cost them nothing; a server relaying every empty sync step2 sends one per joiner).
    pub frames_after_sync: u64,
    /// Sockets the server closed during the settle time.
    pub disconnected: usize,
    /// The server's resident memory as the sockets connected: `[synced sockets, RSS MiB]` (every
    /// node's summed), from 0 to all of them, about 50 points.
    pub memory_curve: Vec<[f64; 2]>,
    pub errors: Vec<String>,
    pub server_exit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub sockets: usize,
    pub rooms: usize,
    pub settle_secs: f64,
    /// The first node's base URL (the only one unless `--nodes` spawned more).
    pub url: String,
    pub node_urls: Vec<String>,
    pub spawned: Option<String>,
    pub server_args: Vec<String>,
    pub harness_threads: usize,
    pub nofile_limit: u64,
    /// `--source-addrs`, handed out round robin: socket i binds address i mod their number.
    pub source_addrs: Option<AddrList>,
}

/// The server's cost; with several nodes, all of them together (memory and CPU summed), then each.
#[derive(Debug, Serialize)]
pub struct ServerCost {
    /// RSS before any socket was opened.
    pub rss_before_kib: u64,
    /// RSS after every socket is synced and the settle time has passed.
    pub rss_after_kib: u64,
    pub rss_peak_kib: u64,
    pub kib_per_socket: f64,
    /// CPU the server spent while the sockets were opened and synced.
    pub connect_cpu_secs: f64,
    /// Server CPU while every socket sat idle (should be near zero).
    pub settle: Usage,
    pub nodes: Vec<NodeCost>,
}

/// One node's share of [`ServerCost`].
#[derive(Debug, Serialize)]
pub struct NodeCost {
    pub url: String,
    pub sockets: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// This node's growth over the sockets it holds.
    pub kib_per_socket: f64,
    pub connect_cpu_secs: f64,
    pub settle_cpu_pct: f64,
}

#[derive(Debug, Serialize)]
pub struct HarnessCost {
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_socket: f64,
}

/// Raises RLIMIT_NOFILE to the hard limit and checks `sockets` fit; returns the limit now in force.
pub fn raise_fd_limit(sockets: usize) -> anyhow::Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let need = sockets as u64 + FD_MARGIN;
    if need > limit {
        bail!(
            "{sockets} sockets need about {need} file descriptors, but this process may open at most {limit} \
             (its hard limit): lower --sockets or raise the hard limit (ulimit -Hn)"
        );
    }
    Ok(limit)
}

pub async fn run(args: &IdleArgs, target: &Target, threads: usize) -> anyhow::Result<IdleReport> {
    anyhow::ensure!(args.sockets >= 1 && args.rooms >= 1, "--sockets and --rooms must be at least 1");
    let nofile_limit = raise_fd_limit(args.sockets)?;
    let run_id = marker::now_us() / 1000;
    let harness = Proc::current();
    let harness_before = harness.sample()?;
    let kernel_before = crate::kernel_sockets::Reading::now();
    let procs = target.procs();
    let server_before = procs.as_deref().map(sample_all).transpose()?;
    let total_rss_mib =
        |samples: &[crate::procfs::Sample]| samples.iter().map(|s| s.rss_kib).sum::<u64>() as f64 / 1024.0;
    let mut memory_curve: Vec<[f64; 2]> = server_before.iter().map(|b| [0.0, total_rss_mib(b)]).collect();
    let curve_step = (args.sockets / CURVE_POINTS).max(1);
    let nodes = target.nodes().len();
    let rooms: Vec<String> = (0..args.rooms).map(|room| format!("idle-{run_id}-{room}")).collect();
    target.open_rooms(&rooms).await?;

    let cancel = CancellationToken::new();
    let _stop_on_drop = cancel.clone().drop_guard();
    let permits = Arc::new(Semaphore::new(args.common.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::channel(1024);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.sockets {
        let (room, in_room) = (i % args.rooms, i / args.rooms);
        let endpoint = target.endpoint(node_of(room, in_room, nodes), &rooms[room]);
        let (permits, ready, cancel) = (Arc::clone(&permits), ready_tx.clone(), cancel.clone());
        tasks.spawn(async move {
            let connected = {
                let _permit = permits.acquire().await;
                client::connect_synced(&endpoint, Local::Empty).await
            };
            let mut ws = match connected {
                Ok((ws, _)) => ws,
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}"))).await;
                    return (None, 0);
                }
            };
            let _ = ready.send(Ok(())).await;
            drop(ready);
            // Idle, but alive: keep reading so pings are answered and a server close is noticed.
            // Frames counted: an idle room should send next to nothing after the handshake.
            let mut frames = 0u64;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    event = client::next_event(&mut ws) => match event {
                        Event::Frame(_) => frames += 1,
                        Event::Closed(why) => return (Some(why), frames),
                    },
                }
            }
            client::close(ws).await;
            (None, frames)
        });
    }
    drop(ready_tx);
    for n in 1..=args.sockets {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => bail!("socket {n} of {} could not connect and sync: {e}", args.sockets),
            None => bail!("socket tasks ended early"),
        }
        if n % 2000 == 0 && n < args.sockets {
            println!("  {n} sockets synced");
        }
        if let Some(procs) = procs.as_deref().filter(|_| n % curve_step == 0 || n == args.sockets) {
            memory_curve.push([n as f64, total_rss_mib(&sample_all(procs)?)]);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    println!(
        "{} sockets synced in {}; settling for {}",
        args.sockets,
        human_secs(connect_secs),
        human(args.settle)
    );
    let server_synced = procs.as_deref().map(sample_all).transpose()?;
    tokio::time::sleep(args.settle).await;
    let server_after = procs.as_deref().map(sample_all).transpose()?;
    let harness_after = harness.sample()?;
    let kernel_after = crate::kernel_sockets::Reading::now();

    cancel.cancel();
    let mut errors = Vec::new();
    let mut frames_after_sync = 0;
    while let Some(joined) = tasks.join_next().await {
        let (error, frames) = joined.context("a socket task panicked")?;
        errors.extend(error);
        frames_after_sync += frames;
    }

    let server = match (procs, server_before, server_synced, server_after) {
        (Some(procs), Some(before), Some(synced), Some(after)) => {
            let sockets = sockets_per_node(args.sockets, args.rooms, nodes);
            Some(server_cost(target, &procs, &sockets, [&before, &synced, &after]))
        }
        _ => None,
    };
    let mut problems = Vec::new();
    if !errors.is_empty() {
        problems.push(format!(
            "{} sockets were closed during the settle time, first: {}",
            errors.len(),
            errors[0]
        ));
    }
    Ok(IdleReport {
        kind: "idle",
        ok: problems.is_empty(),
        problems,
        config: Config {
            sockets: args.sockets,
            rooms: args.rooms,
            settle_secs: args.settle.as_secs_f64(),
            url: target.first().base_url.clone(),
            node_urls: target.base_urls(),
            spawned: args.common.spawn.as_ref().map(|s| s.display().to_string()),
            server_args: args.common.server_args.clone(),
            harness_threads: threads,
            nofile_limit,
            source_addrs: args.common.source_addrs.clone(),
        },
        connect_secs,
        connects_per_sec: ratio(args.sockets as f64, connect_secs),
        server,
        harness: HarnessCost {
            rss_before_kib: harness_before.rss_kib,
            rss_after_kib: harness_after.rss_kib,
            kib_per_socket: per_socket(harness_before.rss_kib, harness_after.rss_kib, args.sockets),
        },
        kernel: kernel_before
            .zip(kernel_after)
            .map(|(b, a)| crate::kernel_sockets::KernelCost::between(&b, &a)),
        frames_after_sync,
        disconnected: errors.len(),
        memory_curve,
        errors: errors.into_iter().take(10).collect(),
        server_exit: None,
    })
}

/// How many sockets each node holds when socket i joins room i % rooms as its (i / rooms)th client.
fn sockets_per_node(sockets: usize, rooms: usize, nodes: usize) -> Vec<usize> {
    let mut per_node = vec![0; nodes];
    (0..sockets).for_each(|i| per_node[node_of(i % rooms, i / rooms, nodes)] += 1);
    per_node
}

/// Each node's cost from its readings before the sockets, once they synced, and after the
/// settle time; and their sum.
fn server_cost(
    target: &Target,
    procs: &[Proc],
    sockets: &[usize],
    [before, synced, after]: [&[Sample]; 3],
) -> ServerCost {
    let settle: Vec<Usage> =
        (0..procs.len()).map(|i| Usage::between(&procs[i], &synced[i], &after[i])).collect();
    let nodes: Vec<NodeCost> = (0..procs.len())
        .map(|i| NodeCost {
            url: target.nodes()[i].base_url.clone(),
            sockets: sockets[i],
            rss_before_kib: before[i].rss_kib,
            rss_after_kib: after[i].rss_kib,
            kib_per_socket: per_socket(before[i].rss_kib, after[i].rss_kib, sockets[i]),
            connect_cpu_secs: procs[i].cpu_secs(&before[i], &synced[i]),
            settle_cpu_pct: settle[i].cpu_pct,
        })
        .collect();
    let (rss_before_kib, rss_after_kib) =
        (nodes.iter().map(|n| n.rss_before_kib).sum(), nodes.iter().map(|n| n.rss_after_kib).sum());
    ServerCost {
        rss_before_kib,
        rss_after_kib,
        // Each node's peak so far, summed: an upper bound, as they need not peak together.
        rss_peak_kib: after.iter().map(|s| s.hwm_kib).sum(),
        kib_per_socket: per_socket(rss_before_kib, rss_after_kib, sockets.iter().sum()),
        connect_cpu_secs: nodes.iter().map(|n| n.connect_cpu_secs).sum(),
        settle: Usage::total(&settle),
        nodes,
    }
}

/// The memory curve as an SVG: the server's RSS against synced sockets, titled with the run.
pub fn write_plot(report: &IdleReport, path: &std::path::Path) -> anyhow::Result<()> {
    let c = &report.config;
    let nodes = c.node_urls.len();
    let per_socket = report
        .server
        .as_ref()
        .map_or(String::new(), |s| format!("; {} per idle socket", fmt_kib(s.kib_per_socket)));
    let title = format!(
        "idle: {} sockets over {} rooms, {} node{}{per_socket}",
        c.sockets,
        c.rooms,
        nodes,
        if nodes == 1 { "" } else { "s" }
    );
    let svg = crate::plot::curve_svg(&title, "synced idle sockets", "server RSS (MiB)", &report.memory_curve);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// RSS growth per socket in KiB (negative if the process shrank).
fn per_socket(before_kib: u64, after_kib: u64, sockets: usize) -> f64 {
    ratio(after_kib as f64 - before_kib as f64, sockets as f64)
}

impl IdleReport {
    pub fn print(&self) {
        let c = &self.config;
        println!("idle: {} sockets over {} rooms, settle {}", c.sockets, c.rooms, human_secs(c.settle_secs));
        if let Some(AddrList(addrs)) = &c.source_addrs {
            println!(
                "  sources   {} source addresses, {} to {}",
                addrs.len(),
                addrs[0],
                addrs[addrs.len() - 1]
            );
        }
        println!(
            "  connect   {} ({:.0} sockets/s incl. sync)",
            human_secs(self.connect_secs),
            self.connects_per_sec
        );
        if let Some(s) = &self.server {
            println!(
                "  server    RSS {} before, {} after, peak {}: {:.2} KiB per idle socket",
                fmt_kib(s.rss_before_kib as f64),
                fmt_kib(s.rss_after_kib as f64),
                fmt_kib(s.rss_peak_kib as f64),
                s.kib_per_socket
            );
            println!(
                "  server    CPU {} to accept and sync; {:.2}% while idle",
                human_secs(s.connect_cpu_secs),
                s.settle.cpu_pct
            );
            for (i, n) in s.nodes.iter().enumerate().filter(|_| s.nodes.len() > 1) {
                println!(
                    "  node {i}    {} sockets: RSS {} before, {} after ({:.2} KiB per socket); CPU {} to sync; {}",
                    n.sockets,
                    fmt_kib(n.rss_before_kib as f64),
                    fmt_kib(n.rss_after_kib as f64),
                    n.kib_per_socket,
                    human_secs(n.connect_cpu_secs),
                    n.url
                );
            }
        }
        println!(
            "  frames    {} received by synced sockets while others joined or idled",
            self.frames_after_sync
        );
        let h = &self.harness;
        println!(
            "  harness   RSS {} before, {} after ({:.2} KiB per socket)",
            fmt_kib(h.rss_before_kib as f64),
            fmt_kib(h.rss_after_kib as f64),
            h.kib_per_socket
        );
        if let Some(k) = &self.kernel {
            let slab = k
                .slab_kib_per_socket
                .map_or("unreadable (root only)".to_owned(), |kib| format!("{kib:.2} KiB per socket"));
            println!(
                "  kernel    TCP sockets +{} (both ends on loopback), buffers {} → {}, socket objects {slab} (in no RSS)",
                k.tcp_sockets_added,
                fmt_kib(k.buffer_kib_before as f64),
                fmt_kib(k.buffer_kib_after as f64)
            );
        }
        crate::report::print_verdict(self.server_exit.as_deref(), self.ok, &self.problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_socket_math() {
        assert_eq!(per_socket(10_000, 30_000, 10_000), 2.0);
        assert_eq!(per_socket(10_000, 9_000, 1_000), -1.0);
        assert_eq!(per_socket(1, 2, 0), 0.0);
    }

    #[test]
    fn sockets_spread_like_fanout_clients() {
        // 100 rooms, 2 nodes: a room's sockets alternate between the nodes, so each room spans both.
        assert_eq!(sockets_per_node(1000, 100, 2), [500, 500]);
        assert_eq!(sockets_per_node(7, 3, 1), [7]);
        assert_eq!(sockets_per_node(10, 100, 3), [4, 3, 3]);
    }

    #[test]
    fn fd_limit_refuses_too_many_sockets() {
        let err = raise_fd_limit(usize::MAX / 2).expect_err("cannot fit");
        assert!(err.to_string().contains("file descriptors"), "{err}");
        let limit = raise_fd_limit(10).expect("ten sockets fit");
        assert!(limit >= 10 + FD_MARGIN);
    }
}
