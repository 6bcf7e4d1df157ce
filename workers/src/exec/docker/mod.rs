//! The Docker backend of [`Sandbox`]: each run in a fresh container of its language's runner
//! image (`spec.rs` says what the container may do), fed and read over the attach stream
//! (`drive.rs`), taken warm from a pool when one is ready (`pool.rs`), removed whatever happens
//! (`container.rs`). A background task keeps the link to the daemon (`link.rs`): it connects,
//! sweeps leftovers (`sweep.rs`), probes the languages (`probe.rs`), and while Docker is away
//! every run is refused at once.

mod container;
mod drive;
mod link;
pub mod metrics;
mod pool;
mod probe;
mod spec;
mod sweep;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerCreateBody;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::container::{Keeper, LaunchError, Launched, launch};
use self::drive::{Limits, drive, launcher_input};
use self::metrics::SandboxMetrics;
use self::pool::Pool;
use self::probe::{Probe, ProbeContext};
use crate::exec::languages::{LANGUAGES, Language};
use crate::exec::{Chunk, ExecArgs, LanguageInfo, RunReport, RunSpec, Sandbox, SandboxError, SandboxStatus};

/// What a [`DockerSandbox`] is started with.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub exec: ExecArgs,
    /// Labels every container (`codecrafter.owner`), so the next start of this process removes
    /// what this one leaves behind.
    pub owner: String,
    /// Warm containers older than this are replaced (a pool container never runs stale forever).
    pub pool_max_age: Duration,
    /// Between two connection attempts while Docker is away, and between two pings while it is here.
    pub retry_every: Duration,
    /// The languages offered (probed, pooled, run); the others of the table are listed as not
    /// available. All of them by default.
    pub languages: Vec<&'static Language>,
}

impl DockerConfig {
    pub const POOL_MAX_AGE: Duration = Duration::from_secs(10 * 60);
    pub const RETRY_EVERY: Duration = Duration::from_secs(5);
    /// Margin of a container's expiry label over its longest possible life.
    const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

    pub fn new(exec: &ExecArgs, owner: impl Into<String>) -> Self {
        Self {
            exec: exec.clone(),
            owner: owner.into(),
            pool_max_age: Self::POOL_MAX_AGE,
            retry_every: Self::RETRY_EVERY,
            languages: LANGUAGES.iter().collect(),
        }
    }

    /// How long after its creation any sweeper may remove a container: a warm container may wait
    /// its whole pool age, then run to its timeout.
    fn lifetime(&self) -> Duration {
        self.pool_max_age + self.exec.timeout() + Self::EXPIRY_MARGIN
    }
}

/// Runs programs in Docker containers. Cheap to query, safe for many runs at once.
pub struct DockerSandbox {
    shared: Arc<Shared>,
}

struct Shared {
    config: DockerConfig,
    link: Mutex<Link>,
    /// The languages were probed since the link last came up.
    probed: AtomicBool,
    probes: Mutex<[Probe; LANGUAGES.len()]>,
    pool: Pool,
    keeper: Keeper,
    running: AtomicUsize,
    swept: AtomicU64,
    metrics: SandboxMetrics,
    /// A run saw Docker fail: ping now rather than at the next tick.
    link_suspect: Notify,
    cancel: CancellationToken,
}

enum Link {
    Down(String),
    Up(Docker),
}

impl DockerSandbox {
    /// Start connecting in the background (on `tracker`, until `cancel`); never fails: while
    /// Docker is unreachable, [`Sandbox::status`] says why and every run is refused at once.
    /// At `cancel` the warm containers are removed; `tracker.wait()` waits for the removals.
    /// Call within a Tokio runtime.
    pub fn start(config: DockerConfig, tracker: &TaskTracker, cancel: CancellationToken) -> Arc<Self> {
        let host = config.exec.docker_host.clone();
        let shared = Arc::new(Shared {
            pool: Pool::new(config.exec.pool_size, config.pool_max_age),
            link: Mutex::new(Link::Down(format!("connecting to Docker at {host}"))),
            probed: AtomicBool::new(false),
            probes: Mutex::default(),
            keeper: Keeper::new(tracker.clone(), tokio::runtime::Handle::current()),
            running: AtomicUsize::new(0),
            swept: AtomicU64::new(0),
            metrics: SandboxMetrics::new(),
            link_suspect: Notify::new(),
            cancel,
            config,
        });
        tracker.spawn(link::maintain(shared.clone()));
        tracker.spawn(pool::fill(shared.clone()));
        Arc::new(Self { shared })
    }

    /// Whether Docker is connected and every language has been probed: from then on
    /// [`Sandbox::languages`] says what this runner can run (before, every language is unavailable).
    pub fn probed(&self) -> bool {
        self.shared.probed.load(Ordering::Acquire) && self.shared.docker().is_some()
    }

    /// Containers the sweeper has removed since the start.
    pub fn swept(&self) -> u64 {
        self.shared.swept.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Sandbox for DockerSandbox {
    fn languages(&self) -> Vec<LanguageInfo> {
        let up = self.shared.docker().is_some();
        let probes = lock(&self.shared.probes);
        LANGUAGES
            .iter()
            .zip(probes.iter())
            .map(|(language, probe)| LanguageInfo {
                id: language.id.to_owned(),
                name: language.name.to_owned(),
                version: probe.version.clone(),
                available: up && probe.available,
            })
            .collect()
    }

    fn status(&self) -> SandboxStatus {
        let reason = match &*lock(&self.shared.link) {
            Link::Up(_) => None,
            Link::Down(reason) => Some(reason.clone()),
        };
        SandboxStatus {
            available: reason.is_none(),
            reason,
            running: self.shared.running.load(Ordering::Relaxed),
            pool_ready: self.shared.pool.ready(),
        }
    }

    async fn run(&self, spec: RunSpec, output: mpsc::Sender<Chunk>) -> Result<RunReport, SandboxError> {
        let shared = &self.shared;
        let language = Language::find(&spec.language)
            .ok_or_else(|| SandboxError::UnknownLanguage(spec.language.clone()))?;
        let docker = shared.docker().ok_or_else(|| SandboxError::Unavailable(shared.down_reason()))?;
        if !shared.language_available(language) {
            return Err(SandboxError::LanguageUnavailable(spec.language));
        }
        let _running = Running::enter(shared);
        let (launched, warm) = shared.container(&docker, language).await?;
        tracing::debug!(job = %spec.job, room = %spec.room, container = %launched.id, warm, "run started");
        let limits = Limits {
            timeout: shared.config.exec.timeout(),
            output_max: shared.config.exec.output_max_bytes(),
        };
        let input = launcher_input(&spec.code, &spec.stdin);
        let report =
            drive(&docker, launched, input, &output, limits).await.map_err(|error| shared.failed(&error))?;
        Ok(RunReport { warm, ..report })
    }
}

impl Shared {
    /// A container for a run: warm from the pool if one is ready, else made now (cold).
    async fn container(
        &self,
        docker: &Docker,
        language: &Language,
    ) -> Result<(Launched, bool), SandboxError> {
        let begun = Instant::now();
        let (launched, warm) = match self.pool.take(language, &self.metrics.pool_ready[language.index()]) {
            Some(launched) => (launched, true),
            None => match launch(docker, &self.keeper, self.run_container(language)).await {
                Ok(launched) => (launched, false),
                Err(LaunchError::NoImage) => {
                    self.lose_language(language);
                    return Err(SandboxError::LanguageUnavailable(language.id.to_owned()));
                }
                Err(LaunchError::Docker(error)) => return Err(self.failed(&error)),
            },
        };
        let histogram = if warm { &self.metrics.start_warm } else { &self.metrics.start_cold };
        histogram.record(begun.elapsed().as_secs_f64());
        Ok((launched, warm))
    }

    /// The daemon, while the link is up.
    fn docker(&self) -> Option<Docker> {
        match &*lock(&self.link) {
            Link::Up(docker) => Some(docker.clone()),
            Link::Down(_) => None,
        }
    }

    fn down_reason(&self) -> String {
        match &*lock(&self.link) {
            Link::Up(_) => "Docker is back: try again".to_owned(),
            Link::Down(reason) => reason.clone(),
        }
    }

    fn link_up(&self, docker: Docker) {
        *lock(&self.link) = Link::Up(docker);
    }

    fn link_down(&self, reason: String) {
        self.probed.store(false, Ordering::Release);
        *lock(&self.link) = Link::Down(reason);
    }

    /// Whether the probe found the language's runner (the link aside).
    fn language_available(&self, language: &Language) -> bool {
        lock(&self.probes)[language.index()].available
    }

    fn set_probe(&self, language: &Language, probe: Probe) {
        lock(&self.probes)[language.index()] = probe;
    }

    /// Its image went away: refuse its runs until a probe finds it again.
    fn lose_language(&self, language: &Language) {
        tracing::warn!(language = language.id, "runner image missing: language unavailable");
        lock(&self.probes)[language.index()].available = false;
    }

    fn swept(&self, removed: usize) {
        if removed > 0 {
            tracing::info!(removed, owner = %self.config.owner, "sweeper removed leftover runner containers");
        }
        self.swept.fetch_add(removed as u64, Ordering::Relaxed);
        self.metrics.swept.increment(removed as u64);
    }

    /// A run failed on Docker's side: have the link checked now, and say what failed.
    fn failed(&self, error: &bollard::errors::Error) -> SandboxError {
        self.link_suspect.notify_one();
        SandboxError::Failed(error.to_string())
    }

    /// The create request of a run's container in `language`.
    fn run_container(&self, language: &Language) -> ContainerCreateBody {
        let config = &self.config;
        spec::container(
            &config.exec,
            &config.owner,
            config.lifetime(),
            language.image(&config.exec),
            spec::run_cmd(language.id),
        )
    }

    fn probe_context(&self, docker: &Docker) -> ProbeContext {
        ProbeContext {
            docker: docker.clone(),
            keeper: self.keeper.clone(),
            args: self.config.exec.clone(),
            owner: self.config.owner.clone(),
            lifetime: self.config.lifetime(),
        }
    }
}

/// A run in progress (its container being made, or its program running), counted in the status
/// and the gauge until it ends or is dropped.
struct Running<'a> {
    shared: &'a Shared,
}

impl<'a> Running<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let running = shared.running.fetch_add(1, Ordering::Relaxed) + 1;
        shared.metrics.running.set(running as f64);
        Self { shared }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let running = self.shared.running.fetch_sub(1, Ordering::Relaxed) - 1;
        self.shared.metrics.running.set(running as f64);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
