//! The execution flags, one set shared by `codecrafter` (whose in-process queue runs executions in
//! the embedded mode, and which checks submissions in every mode) and `codecrafter-worker`.

use std::time::Duration;

/// Flags and env vars of code execution. Every limit is here, documented, and tested at its edge.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Docker daemon to run programs in (`unix:///path` or `tcp://host:port`); `none` turns execution off (runs are refused with `execution_unavailable`).
    #[arg(long = "docker-host", env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,

    /// Runner images are `{prefix}{runner}:{tag}` (e.g. `codecrafter-runner-python:1`), built by `deploy/runners/`.
    #[arg(
        long = "exec-image-prefix",
        env = "CODECRAFTER_EXEC_IMAGE_PREFIX",
        default_value = "codecrafter-runner-"
    )]
    pub image_prefix: String,

    /// Tag of the runner images.
    #[arg(long = "exec-image-tag", env = "CODECRAFTER_EXEC_IMAGE_TAG", default_value = "1")]
    pub image_tag: String,

    /// Wall-clock limit of one run (compile included), in milliseconds; the program is killed when it passes it.
    #[arg(long = "exec-timeout-ms", env = "CODECRAFTER_EXEC_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,

    /// Memory of one run's container, in MiB; swap is set equal (no swap beyond it).
    #[arg(long = "exec-memory-mb", env = "CODECRAFTER_EXEC_MEMORY_MB", default_value_t = 128)]
    pub memory_mb: u64,

    /// CPUs of one run's container (0.5 = half a core).
    #[arg(long = "exec-cpus", env = "CODECRAFTER_EXEC_CPUS", default_value_t = 0.5)]
    pub cpus: f64,

    /// Processes and threads one run may have at once.
    #[arg(long = "exec-pids", env = "CODECRAFTER_EXEC_PIDS", default_value_t = 64)]
    pub pids: i64,

    /// Size of each of the run's tmpfs scratch directories (`/tmp`, `/box`), in MiB.
    #[arg(long = "exec-tmpfs-mb", env = "CODECRAFTER_EXEC_TMPFS_MB", default_value_t = 16)]
    pub tmpfs_mb: u64,

    /// Output (stdout and stderr together) one run may write, in KiB; the program is killed when it passes it and the run is marked `output_truncated`.
    #[arg(long = "exec-output-max-kb", env = "CODECRAFTER_EXEC_OUTPUT_MAX_KB", default_value_t = 256)]
    pub output_max_kb: u64,

    /// Largest stdin a run may be given, in KiB (larger submissions are refused).
    #[arg(long = "exec-stdin-max-kb", env = "CODECRAFTER_EXEC_STDIN_MAX_KB", default_value_t = 64)]
    pub stdin_max_kb: u64,

    /// Largest program a run may be given, in KiB (larger submissions are refused).
    #[arg(long = "exec-code-max-kb", env = "CODECRAFTER_EXEC_CODE_MAX_KB", default_value_t = 64)]
    pub code_max_kb: u64,

    /// Runs at once on this node (the server in the embedded mode, else each worker); more wait in the queue.
    #[arg(long = "exec-concurrency", env = "CODECRAFTER_EXEC_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Runs one user may submit per minute (all sessions together); 0 = no limit.
    #[arg(long = "exec-runs-per-min", env = "CODECRAFTER_EXEC_RUNS_PER_MIN", default_value_t = 10)]
    pub runs_per_min: u32,

    /// Runs waiting in the queue at most; a submission beyond it is refused (HTTP 429, `execution_queue_full`).
    #[arg(long = "exec-queue-max", env = "CODECRAFTER_EXEC_QUEUE_MAX", default_value_t = 64)]
    pub queue_max: u64,

    /// Warm containers kept started and waiting for a program, per installed language; 0 = every run starts its own container (cold).
    #[arg(long = "exec-pool-size", env = "CODECRAFTER_EXEC_POOL_SIZE", default_value_t = 1)]
    pub pool_size: usize,

    /// Names this process's containers (label `codecrafter.owner`) so its sweeper removes what an earlier run of it left behind; default: host name and data dir (server) or ops port (worker).
    #[arg(long = "exec-owner", env = "CODECRAFTER_EXEC_OWNER")]
    pub owner: Option<String>,
}

impl ExecArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn output_max_bytes(&self) -> usize {
        usize::try_from(self.output_max_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    pub fn stdin_max_bytes(&self) -> usize {
        usize::try_from(self.stdin_max_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    pub fn code_max_bytes(&self) -> usize {
        usize::try_from(self.code_max_kb.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    /// The owner label of this process's containers: `--exec-owner`, else `{host name}:{place}`,
    /// where `place` tells this process from others on the same host (its data dir or port) and
    /// stays the same across its restarts, so its sweeper finds what a killed life of it left.
    pub fn owner_or(&self, place: &str) -> String {
        self.owner.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("{host}:{place}")
        })
    }

    /// Whether execution is turned off (`--docker-host none`).
    pub fn disabled(&self) -> bool {
        self.docker_host.eq_ignore_ascii_case("none")
    }
}
