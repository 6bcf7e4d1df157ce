//! The command line: subcommands, shapes and the options every run shares.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::source_addrs::AddrList;
use crate::wire::Protocol;

/// Load-test harness for CodeCrafter or any y-websocket compatible server.
///
/// Exit codes: 0 ok, 1 lost/duplicated/reordered updates or a convergence failure, 2 setup error
/// (bad flags, server did not start, connections refused, overall timeout).
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rooms x clients, some writers per room; measures fan-out latency, throughput and server CPU.
    Fanout(FanoutArgs),
    /// Opens many synced idle sockets and measures server RSS per socket.
    Idle(IdleArgs),
    /// Opens and abandons many rooms (one update each); checks the server's RSS returns near its
    /// baseline once they are evicted, and that a sample of them kept their text.
    Churn(ChurnArgs),
    /// App-client writers (`?app=1`) append to their rooms; measures the durable-acknowledgement
    /// (`saved`) latency, the persisted updates/s, the group-commit factor, and the CPU of the
    /// server, the broker and the workers.
    Persist(PersistArgs),
    /// The fanout workload against several servers one after another (CodeCrafter with `--spawn`,
    /// `--peer y-websocket-server`, `--peer hocuspocus`), in alternating rounds; one table, JSON,
    /// plot and HTML page with every run and the ratios against the first target.
    Compare(CompareArgs),
}

impl Command {
    pub fn common(&self) -> &Common {
        match self {
            Self::Fanout(a) => &a.common,
            Self::Idle(a) => &a.common,
            Self::Churn(a) => &a.common,
            Self::Persist(a) => &a.common,
            Self::Compare(a) => &a.fanout.common,
        }
    }

    /// The checks clap cannot make, run before a server is spawned for nothing.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Self::Compare(args) = self {
            return args.check();
        }
        crate::nodes::check(self.common())?;
        crate::auth::check(self.common())?;
        self.check_protocol()?;
        match self {
            Self::Fanout(args) => args.check(),
            // Churn measures one server's memory and waits for its `/ready` to count 0 rooms; over
            // several nodes neither reading means what its report says.
            Self::Churn(args) if args.common.nodes > 1 => {
                anyhow::bail!("churn measures a single server: it does not take --nodes above 1")
            }
            Self::Persist(args) => args.check(),
            Self::Idle(_) | Self::Churn(_) | Self::Compare(_) => Ok(()),
        }
    }

    /// Hocuspocus is measured by fanout and idle at a `--url`: churn and persist need
    /// CodeCrafter's `/ready` and app messages, a spawned server is CodeCrafter, and `--sign-up`
    /// makes CodeCrafter sessions.
    fn check_protocol(&self) -> anyhow::Result<()> {
        let common = self.common();
        if common.protocol == Protocol::YWebsocket {
            return Ok(());
        }
        anyhow::ensure!(
            matches!(self, Self::Fanout(_) | Self::Idle(_)),
            "--protocol hocuspocus is for fanout and idle (churn and persist measure CodeCrafter)"
        );
        anyhow::ensure!(
            common.url.is_some(),
            "--protocol hocuspocus needs --url (a spawned server is CodeCrafter)"
        );
        anyhow::ensure!(
            common.sign_up.is_none(),
            "--sign-up makes CodeCrafter sessions: not with --protocol hocuspocus"
        );
        Ok(())
    }
}

/// Where the server is and how to measure it; shared by every subcommand.
///
/// Options for a spawned server say both `requires = "spawn"` and `conflicts_with = "url"` (and
/// `--server-pid` the reverse): clap waives `requires` when an argument conflicting with the
/// required one is present, so `requires` alone would let `--url X --server-cpus 0` through and
/// silently ignore the CPUs.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Common {
    /// Base WebSocket URL; the room name is appended as `/{room}` (CodeCrafter: ws://HOST:PORT/ws,
    /// y-websocket-server: ws://HOST:PORT). With `--protocol hocuspocus` nothing is appended.
    #[arg(long, env = "LOADTEST_URL", conflicts_with = "spawn")]
    pub url: Option<String>,

    /// Start this server binary on 127.0.0.1:0 with a temporary data dir, measure it, stop it at the end.
    #[arg(long, env = "LOADTEST_SPAWN")]
    pub spawn: Option<PathBuf>,

    /// Extra argument for the spawned server (repeat the flag), e.g. `--server-arg=--send-queue=4096`.
    #[arg(long = "server-arg", allow_hyphen_values = true, requires = "spawn", conflicts_with = "url")]
    pub server_args: Vec<String>,

    /// Environment variable for the spawned server only (repeat the flag), e.g. `--server-env MALLOC_ARENA_MAX=2`.
    #[arg(
        long = "server-env",
        value_name = "KEY=VALUE",
        value_parser = parse_env_pair,
        requires = "spawn",
        conflicts_with = "url"
    )]
    pub server_env: Vec<String>,

    /// Pin the spawned server to these CPUs (`taskset --cpu-list` syntax, e.g. `0`). With the harness
    /// pinned elsewhere (`taskset -c 1 loadtest ...`) the two stop evicting each other from the
    /// cores: on a 2-core machine that is the only way to see the server's own latency.
    #[arg(long, value_name = "LIST", requires = "spawn", conflicts_with = "url")]
    pub server_cpus: Option<String>,

    /// Spawn this many server nodes (same binary, arguments, environment and CPUs; each its own data
    /// dir). Every room is spread over all of them, so more than one needs `--redis-url`.
    #[arg(
        long,
        env = "LOADTEST_NODES",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..),
        requires = "spawn",
        conflicts_with = "url"
    )]
    pub nodes: usize,

    /// Redis the spawned nodes share rooms through: each gets `--redis-url` with it, a prefix of
    /// this run's own and a common JWT secret. Also allowed with one node, to measure the relay's
    /// cost; fanout then reports Redis's PUBLISH calls, commands and CPU over the window.
    #[arg(long, env = "LOADTEST_REDIS_URL", requires = "spawn", conflicts_with = "url")]
    pub redis_url: Option<String>,

    /// PID of the already-running server at `--url`, to measure its CPU and RSS from /proc.
    #[arg(long, env = "LOADTEST_SERVER_PID", requires = "url", conflicts_with = "spawn")]
    pub server_pid: Option<u32>,

    /// Allow a target that is not a loopback address (off by default: this is a local benchmark).
    #[arg(long, env = "LOADTEST_ALLOW_REMOTE")]
    pub allow_remote: bool,

    /// Access token for a server with auth on, appended as `?token=` to every WebSocket URL.
    /// CodeCrafter lets a token holder into a plain room (not a session) only with its
    /// `--allow-anonymous`; without it, use `--sign-up`. Tokens are checked when a socket opens
    /// and CodeCrafter's live 15 minutes (CODECRAFTER_ACCESS_TOKEN_TTL_SECS): keep runs shorter.
    #[arg(long, env = "LOADTEST_TOKEN", hide_env_values = true, conflicts_with_all = ["spawn", "sign_up"])]
    #[serde(skip)]
    pub token: Option<String>,

    /// CodeCrafter's HTTP base (e.g. http://127.0.0.1:5000) for a server with auth on: register a
    /// fresh user (`POST /api/auth/register`), create one session it owns per room
    /// (`POST /api/sessions`; with auth on a plain room is refused, 4404) and open the sessions
    /// with its access token. That token lives 15 minutes (CODECRAFTER_ACCESS_TOKEN_TTL_SECS), so
    /// keep runs shorter. The server needs `--ws-connects-per-min 0` past 120 sockets per minute
    /// from the harness's IP, and `--rate-limit-requests 0` past about 1,000 rooms (each is a
    /// session created by the one user, 1,200 API requests per window by default); a run
    /// registers once (60 per IP per window).
    #[arg(long, value_name = "URL", env = "LOADTEST_SIGN_UP", conflicts_with = "spawn")]
    pub sign_up: Option<String>,

    /// Hard limit on the whole run (e.g. 300s, 5m, 1h30m); past it the run aborts with exit code 2.
    #[arg(long, env = "LOADTEST_TIMEOUT", default_value = "5m", value_parser = crate::duration::parse)]
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,

    /// Most connections being opened at once.
    #[arg(long, env = "LOADTEST_CONNECT_CONCURRENCY", default_value_t = 200)]
    pub connect_concurrency: usize,

    /// Write the JSON report here.
    #[arg(long, env = "LOADTEST_REPORT")]
    pub report: Option<PathBuf>,

    /// Write an SVG plot here (fanout: latency CDF and deliveries per second, and next to it
    /// `NAME-percentiles.svg`: latency by percentile on a log axis (90%, 99%, 99.9%, ...); idle:
    /// the server's memory from 0 to every socket synced).
    #[arg(long, env = "LOADTEST_PLOT")]
    pub plot: Option<PathBuf>,

    /// Harness worker threads (default: one per core). The harness shares the cores with the server.
    #[arg(long, env = "LOADTEST_THREADS")]
    pub threads: Option<usize>,

    /// The server's wire dialect. `hocuspocus` (fanout and idle, with `--url`): one URL for every
    /// room (`ws://HOST:PORT`, no room in the path), each message prefixed with the room's name,
    /// an Auth message first (carrying `--token`, empty without).
    #[arg(long, value_enum, default_value = "y-websocket", env = "LOADTEST_PROTOCOL")]
    pub protocol: Protocol,

    /// Bind each client socket to the next of these local addresses (round robin) before it
    /// connects: `127.0.0.2,127.0.0.3` or a range `127.0.0.1-127.0.0.8` (or both, comma-separated).
    /// One source address reaches one server port through its ephemeral port range only (about
    /// 28k sockets); every 127.0.0.0/8 address works on Linux loopback without configuration.
    #[arg(long, value_name = "LIST", value_parser = crate::source_addrs::parse, env = "LOADTEST_SOURCE_ADDRS")]
    pub source_addrs: Option<AddrList>,
}

/// The two standard fan-out workloads, one flag away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// 100 rooms x 10 clients, 1 writer per room, 10 updates/s each.
    Rooms,
    /// 1 room x 200 clients, 5 writers, 20 updates/s each.
    Crowd,
}

/// What each update does to the writer's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Append the marker string to the Y.Text `text`.
    Text,
    /// Set a new key `writer:seq` of the Y.Map `map` to the marker string.
    Map,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,

    /// Preset for rooms/clients/writers/rate; the explicit flags below override it.
    #[arg(long, value_enum, default_value = "rooms", env = "LOADTEST_SHAPE")]
    pub shape: Shape,
    /// Rooms.
    #[arg(long, env = "LOADTEST_ROOMS")]
    pub rooms: Option<usize>,
    /// Clients per room, writers included.
    #[arg(long, env = "LOADTEST_CLIENTS")]
    pub clients: Option<usize>,
    /// Writers per room.
    #[arg(long, env = "LOADTEST_WRITERS")]
    pub writers: Option<usize>,
    /// Updates per second per writer.
    #[arg(long, env = "LOADTEST_RATE")]
    pub rate: Option<u32>,
    /// Measured sending time (after the warm-up).
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse, env = "LOADTEST_DURATION")]
    pub duration: Duration,
    /// Sending time before the measured window (latencies not recorded, deliveries still checked).
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse, env = "LOADTEST_WARMUP")]
    pub warmup: Duration,
    /// Longest wait after sending stops for the last deliveries to arrive.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse, env = "LOADTEST_DRAIN")]
    pub drain: Duration,
    /// Pause after the last delivery before the convergence check.
    #[arg(long, default_value = "500ms", value_parser = crate::duration::parse, env = "LOADTEST_QUIET")]
    pub quiet: Duration,
    /// Rooms checked for convergence by a fresh client (a sample of evenly spread rooms when fewer than `--rooms`).
    #[arg(long, default_value_t = 100, env = "LOADTEST_CONVERGE_ROOMS")]
    pub converge_rooms: usize,
    /// What each update does.
    #[arg(long, value_enum, default_value = "text", env = "LOADTEST_OP")]
    pub op: Op,
    /// Saturation search: repeat the run (each step `--warmup` + `--duration`) at rising per-writer
    /// rates, doubling from `--rate` and then bisecting, until p99 exceeds `--p99-bound` or an
    /// update is lost or late; reports the knee (the highest rate that held) and every step.
    #[arg(long, env = "LOADTEST_SATURATE")]
    pub saturate: bool,
    /// The p99 fan-out latency a saturation step may reach and still hold.
    #[arg(long, default_value = "50ms", value_parser = crate::duration::parse, env = "LOADTEST_P99_BOUND")]
    pub p99_bound: Duration,
    /// Most steps of a saturation search; bisection stops earlier once the held and the failed
    /// rate are within 10% of each other.
    #[arg(long, default_value_t = 12, env = "LOADTEST_MAX_STEPS")]
    pub max_steps: usize,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,

    /// Idle sockets to open (each completes the sync handshake).
    #[arg(long, default_value_t = 10_000, env = "LOADTEST_SOCKETS")]
    pub sockets: usize,
    /// Rooms the sockets are spread over (round robin).
    #[arg(long, default_value_t = 100, env = "LOADTEST_ROOMS")]
    pub rooms: usize,
    /// Wait after the last socket is synced before measuring.
    #[arg(long, default_value = "5s", value_parser = crate::duration::parse, env = "LOADTEST_SETTLE")]
    pub settle: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: Common,

    /// Rooms to open and abandon, one client and one update each.
    #[arg(long, default_value_t = 10_000, env = "LOADTEST_ROOMS")]
    pub rooms: usize,
    /// Rooms being opened at once (this run ignores `--connect-concurrency`).
    #[arg(long, default_value_t = 100, env = "LOADTEST_CHURN_CONCURRENCY")]
    pub concurrency: usize,
    /// Wait after the warm-up room is evicted before the baseline RSS is read.
    #[arg(long, default_value = "1s", value_parser = crate::duration::parse, env = "LOADTEST_BASELINE_SETTLE")]
    pub baseline_settle: Duration,
    /// Longest wait for `/ready` to report 0 rooms in memory once every room is closed.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse, env = "LOADTEST_EVICT_TIMEOUT")]
    pub evict_timeout: Duration,
    /// Wait after the last eviction before the final RSS is read.
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse, env = "LOADTEST_SETTLE")]
    pub settle: Duration,
    /// Evicted rooms (picked at random) reopened to check their text was persisted.
    #[arg(long, default_value_t = 20, env = "LOADTEST_VERIFY_ROOMS")]
    pub verify_rooms: usize,
    /// Seed for picking the verified rooms (default: from the clock; the report records it).
    #[arg(long, env = "LOADTEST_SEED")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct PersistArgs {
    #[command(flatten)]
    #[serde(skip)]
    pub common: Common,

    /// Rooms.
    #[arg(long, default_value_t = 50, env = "LOADTEST_ROOMS")]
    pub rooms: usize,
    /// Writers per room, each an app client (`?app=1`) with its own document.
    #[arg(long, default_value_t = 1, env = "LOADTEST_WRITERS")]
    pub writers: usize,
    /// Updates per second per writer (paced; ignored with --saturate).
    #[arg(long, default_value_t = 40, env = "LOADTEST_RATE")]
    pub rate: u32,
    /// Send as fast as the acknowledgements allow, at most --in-flight unacknowledged updates per
    /// writer: finds the persisted updates/s ceiling. A spawned server gets
    /// `--max-messages-per-sec=1000000` unless `--server-arg` sets it.
    #[arg(long, env = "LOADTEST_SATURATE")]
    pub saturate: bool,
    /// Most unacknowledged updates per writer with --saturate.
    #[arg(long, default_value_t = 64, env = "LOADTEST_IN_FLIGHT")]
    pub in_flight: usize,
    /// Measured sending time (after the warm-up).
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse, env = "LOADTEST_DURATION")]
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Sending time before the measured window (acknowledgements still checked, not timed).
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse, env = "LOADTEST_WARMUP")]
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// Longest wait after sending stops for the last `saved`.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse, env = "LOADTEST_DRAIN")]
    #[serde(serialize_with = "secs")]
    pub drain: Duration,
    /// PID of the broker (RabbitMQ's beam.smp) to measure its CPU over the window.
    #[arg(long, env = "LOADTEST_BROKER_PID")]
    pub broker_pid: Option<u32>,
    /// PID of a worker process to measure its CPU over the window (repeat the flag).
    #[arg(long = "worker-pid")]
    pub worker_pids: Vec<u32>,
    /// A worker's Prometheus endpoint (`http://HOST:PORT/metrics`; repeat the flag): its
    /// persisted-updates counter is read at both edges of the window.
    #[arg(long = "worker-metrics", value_name = "URL")]
    pub worker_metrics: Vec<String>,
}

impl PersistArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.rooms >= 1, "--rooms must be at least 1");
        anyhow::ensure!(self.writers >= 1, "--writers must be at least 1");
        anyhow::ensure!((1..=10_000).contains(&self.rate), "--rate must be 1..=10000 updates/s");
        anyhow::ensure!(self.in_flight >= 1, "--in-flight must be at least 1");
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be positive");
        for url in &self.worker_metrics {
            crate::plain_http::http_authority(url).map(drop)?;
        }
        Ok(())
    }

    /// Updates per second asked for over all writers; 0 with --saturate (as fast as acks allow).
    pub fn offered_per_sec(&self) -> f64 {
        if self.saturate { 0.0 } else { (self.rooms * self.writers) as f64 * f64::from(self.rate) }
    }
}

/// A server `compare` starts from `loadtest/peers` (`start.sh NAME PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// @y/websocket-server 0.1.1 (y-websocket framing, the room in the URL path).
    YWebsocketServer,
    /// Hocuspocus 4.7.0 (`--protocol hocuspocus` framing).
    Hocuspocus,
}

impl Peer {
    /// The name `start.sh` takes and the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::YWebsocketServer => "y-websocket-server",
            Self::Hocuspocus => "hocuspocus",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The workload and CodeCrafter's `--spawn` (with its `--server-arg`s and `--server-env`s);
    /// `--server-cpus` pins every target, peers included. `--timeout` bounds each run.
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// A peer server to start from `loadtest/peers` and measure (repeat the flag); targets run in
    /// the order `--spawn`, then the peers as given, and ratios are against the first.
    #[arg(long = "peer", value_enum, env = "LOADTEST_PEERS", value_delimiter = ',')]
    pub peers: Vec<Peer>,
    /// Rounds over all targets (A B C A B C ...), so each ratio pairs runs from the same stretch
    /// of time; the ratios are the medians of the per-round ones.
    #[arg(long, default_value_t = 1, env = "LOADTEST_ROUNDS")]
    pub rounds: usize,
    /// Write one self-contained HTML page here: the table, the ratios and both plots inline.
    #[arg(long, env = "LOADTEST_HTML")]
    pub html: Option<PathBuf>,
    /// Where `start.sh` and the pinned peer packages are (default: this crate's `peers/`).
    #[arg(long, env = "LOADTEST_PEERS_DIR")]
    pub peers_dir: Option<PathBuf>,
}

impl CompareArgs {
    /// Compare starts and addresses every target itself, so the flags that point at one server
    /// or pick its dialect are refused rather than applied to some targets only.
    pub fn check(&self) -> anyhow::Result<()> {
        let common = &self.fanout.common;
        anyhow::ensure!(
            common.spawn.is_some() || !self.peers.is_empty(),
            "compare needs targets: --spawn PATH and/or --peer y-websocket-server|hocuspocus"
        );
        anyhow::ensure!(common.url.is_none(), "compare starts its targets: not with --url");
        // Rows and ratios are keyed by the target's name.
        let unique: std::collections::HashSet<Peer> = self.peers.iter().copied().collect();
        anyhow::ensure!(unique.len() == self.peers.len(), "each --peer once (use --rounds to repeat runs)");
        anyhow::ensure!(
            common.protocol == Protocol::YWebsocket,
            "compare picks each target's protocol itself: not with --protocol"
        );
        anyhow::ensure!(
            common.token.is_none() && common.sign_up.is_none(),
            "compare measures servers without auth: not with --token or --sign-up"
        );
        anyhow::ensure!(!self.fanout.saturate, "compare runs fixed rates: not with --saturate");
        anyhow::ensure!(self.rounds >= 1, "--rounds must be at least 1");
        crate::nodes::check(common)?;
        self.fanout.check()
    }
}

/// The fan-out workload after applying the shape preset and overrides.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub shape: Shape,
    pub rooms: usize,
    pub clients: usize,
    pub writers: usize,
    pub rate: u32,
    pub op: Op,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
}

impl FanoutArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        self.workload()?;
        if self.saturate {
            anyhow::ensure!(self.max_steps >= 2, "--max-steps must be at least 2");
            anyhow::ensure!(!self.p99_bound.is_zero(), "--p99-bound must be positive");
        }
        Ok(())
    }

    /// Resolves the preset and checks the numbers make a runnable workload.
    pub fn workload(&self) -> anyhow::Result<Workload> {
        let (rooms, clients, writers, rate) = match self.shape {
            Shape::Rooms => (100, 10, 1, 10),
            Shape::Crowd => (1, 200, 5, 20),
        };
        let w = Workload {
            shape: self.shape,
            rooms: self.rooms.unwrap_or(rooms),
            clients: self.clients.unwrap_or(clients),
            writers: self.writers.unwrap_or(writers),
            rate: self.rate.unwrap_or(rate),
            op: self.op,
            duration: self.duration,
            warmup: self.warmup,
        };
        anyhow::ensure!(w.rooms >= 1, "--rooms must be at least 1");
        anyhow::ensure!(w.writers >= 1, "--writers must be at least 1");
        anyhow::ensure!(
            w.clients > w.writers || w.writers > 1,
            "a room needs at least two clients so someone receives (--clients > --writers)"
        );
        anyhow::ensure!(w.clients >= w.writers, "--clients includes the writers: must be >= --writers");
        anyhow::ensure!((1..=10_000).contains(&w.rate), "--rate must be 1..=10000 updates/s");
        anyhow::ensure!(!w.duration.is_zero(), "--duration must be positive");
        Ok(w)
    }
}

impl Workload {
    /// `3 rooms x 3 clients, 1 writers/room x 10 updates/s, 2s measured after 500ms warm-up`: how
    /// every report and plot title names the workload.
    pub fn describe(&self) -> String {
        format!(
            "{} rooms x {} clients, {} writers/room x {} updates/s, {} measured after {} warm-up",
            self.rooms,
            self.clients,
            self.writers,
            self.rate,
            crate::duration::human(self.duration),
            crate::duration::human(self.warmup)
        )
    }

    /// Updates one writer sends in the warm-up.
    pub fn warmup_updates(&self) -> u32 {
        (self.warmup.as_secs_f64() * f64::from(self.rate)).round() as u32
    }

    /// Updates one writer sends in total (warm-up plus measured window).
    pub fn total_updates(&self) -> u32 {
        self.warmup_updates() + (self.duration.as_secs_f64() * f64::from(self.rate)).round() as u32
    }
}

/// Accepts `KEY=VALUE` with a non-empty key.
fn parse_env_pair(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(s.to_owned()),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_overrides() {
        let cli = Cli::parse_from(["loadtest", "fanout", "--shape", "crowd", "--url", "ws://127.0.0.1:1/ws"]);
        let Command::Fanout(args) = cli.command else { panic!("fanout expected") };
        let w = args.workload().expect("valid");
        assert_eq!((w.rooms, w.clients, w.writers, w.rate), (1, 200, 5, 20));

        let cli =
            Cli::parse_from(["loadtest", "fanout", "--rooms", "3", "--duration", "5s", "--warmup", "1s"]);
        let Command::Fanout(args) = cli.command else { panic!("fanout expected") };
        let w = args.workload().expect("valid");
        assert_eq!((w.rooms, w.clients, w.writers, w.rate), (3, 10, 1, 10));
        assert_eq!((w.warmup_updates(), w.total_updates()), (10, 60));
    }

    #[test]
    fn spawn_options_refuse_an_attached_server() {
        let parses = |extra: &[&str]| {
            let argv = ["loadtest", "fanout", "--url", "ws://127.0.0.1:1/ws"];
            Cli::try_parse_from(argv.iter().chain(extra)).is_ok()
        };
        assert!(parses(&[]));
        assert!(parses(&["--server-pid", "1"]));
        assert!(!parses(&["--server-arg=--send-queue=4"]));
        assert!(!parses(&["--server-env", "A=1"]));
        assert!(!parses(&["--server-cpus", "0"]));
        let argv = ["loadtest", "fanout", "--spawn", "srv", "--server-pid", "1"];
        assert!(Cli::try_parse_from(argv).is_err(), "a spawned server's PID is known");
        assert!(Cli::try_parse_from(["loadtest", "fanout", "--server-cpus", "0"]).is_err());
    }

    #[test]
    fn churn_takes_one_node() {
        let argv = ["loadtest", "churn", "--spawn", "s", "--nodes", "2", "--redis-url", "redis://127.0.0.1"];
        let err = Cli::parse_from(argv).command.validate().expect_err("refused");
        assert!(err.to_string().contains("single server"), "{err}");
        let argv = ["loadtest", "idle", "--spawn", "s", "--nodes", "2", "--redis-url", "redis://127.0.0.1"];
        Cli::parse_from(argv).command.validate().expect("idle spreads its sockets");
        let err = Cli::parse_from(["loadtest", "idle", "--spawn", "s", "--nodes", "2"]).command.validate();
        assert!(err.is_err(), "two nodes without Redis share nothing");
    }

    #[test]
    fn persist_defaults_and_checks() {
        let cli = Cli::parse_from(["loadtest", "persist", "--spawn", "srv"]);
        let Command::Persist(args) = &cli.command else { panic!("persist expected") };
        assert_eq!((args.rooms, args.writers, args.rate, args.in_flight), (50, 1, 40, 64));
        assert_eq!(args.offered_per_sec(), 2000.0);
        cli.command.validate().expect("defaults are valid");
        let argv = ["loadtest", "persist", "--saturate", "--worker-pid", "7", "--worker-pid", "8"];
        let Command::Persist(args) = Cli::parse_from(argv).command else { panic!("persist expected") };
        assert_eq!((args.offered_per_sec(), args.worker_pids), (0.0, vec![7, 8]));
        for bad in [&["--in-flight", "0"][..], &["--rate", "0"], &["--worker-metrics", "https://x/metrics"]] {
            let argv = ["loadtest", "persist"].iter().chain(bad);
            assert!(Cli::parse_from(argv).command.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hocuspocus_is_for_fanout_and_idle_at_a_url() {
        let validate = |argv: &[&str]| Cli::parse_from(argv).command.validate();
        let url = "ws://127.0.0.1:1234";
        validate(&["loadtest", "fanout", "--url", url, "--protocol", "hocuspocus"]).expect("fanout");
        validate(&["loadtest", "idle", "--url", url, "--protocol", "hocuspocus", "--token", "t"])
            .expect("idle");
        for bad in [
            &["loadtest", "fanout", "--spawn", "srv", "--protocol", "hocuspocus"][..],
            &["loadtest", "churn", "--url", url, "--protocol", "hocuspocus"],
            &["loadtest", "persist", "--url", url, "--protocol", "hocuspocus"],
            &[
                "loadtest",
                "fanout",
                "--url",
                url,
                "--protocol",
                "hocuspocus",
                "--sign-up",
                "http://127.0.0.1:1",
            ],
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["loadtest", "fanout", "--protocol", "yjs"]).is_err());
    }

    #[test]
    fn source_addrs_and_saturate_flags() {
        let argv = ["loadtest", "idle", "--source-addrs", "127.0.0.2-127.0.0.4,127.0.0.9"];
        let cli = Cli::parse_from(argv);
        let list = cli.command.common().source_addrs.clone().expect("parsed");
        let got: Vec<String> = list.0.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]);
        assert!(Cli::try_parse_from(["loadtest", "idle", "--source-addrs", "127.0.0.9-127.0.0.2"]).is_err());

        let cli = Cli::parse_from(["loadtest", "fanout", "--saturate"]);
        let Command::Fanout(args) = &cli.command else { panic!("fanout expected") };
        assert_eq!((args.p99_bound, args.max_steps), (Duration::from_millis(50), 12));
        cli.command.validate().expect("defaults are valid");
        let cli = Cli::parse_from(["loadtest", "fanout", "--saturate", "--max-steps", "1"]);
        assert!(cli.command.validate().is_err());
    }

    #[test]
    fn compare_takes_spawn_and_peers_and_refuses_single_target_flags() {
        let validate =
            |argv: &[&str]| Cli::parse_from(["loadtest", "compare"].iter().chain(argv)).command.validate();
        let cli = Cli::parse_from([
            "loadtest",
            "compare",
            "--spawn",
            "srv",
            "--peer",
            "hocuspocus",
            "--peer",
            "y-websocket-server",
            "--rounds",
            "3",
            "--rooms",
            "2",
        ]);
        let Command::Compare(args) = &cli.command else { panic!("compare expected") };
        assert_eq!(args.peers, [Peer::Hocuspocus, Peer::YWebsocketServer]);
        assert_eq!((args.rounds, args.fanout.workload().expect("valid").rooms), (3, 2));
        cli.command.validate().expect("valid");
        validate(&["--peer", "hocuspocus"]).expect("peers only");
        for bad in [
            &[][..],
            &["--spawn", "srv", "--rounds", "0"],
            &["--peer", "hocuspocus", "--url", "ws://127.0.0.1:1"],
            &["--peer", "hocuspocus", "--protocol", "hocuspocus"],
            &["--peer", "hocuspocus", "--saturate"],
            &["--spawn", "srv", "--clients", "1"],
            &["--peer", "hocuspocus", "--peer", "hocuspocus"],
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["loadtest", "compare", "--peer", "yjs"]).is_err());
    }

    #[test]
    fn rejects_roomless_workloads() {
        let cli = Cli::parse_from(["loadtest", "fanout", "--clients", "1", "--writers", "1"]);
        let Command::Fanout(args) = cli.command else { panic!("fanout expected") };
        assert!(args.workload().is_err());
    }
}
