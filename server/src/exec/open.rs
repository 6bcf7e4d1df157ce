//! Execution as a [`Config`] selects it: with `AMQP_URL`, jobs go to the broker's
//! `execution_jobs` (the workers run them; their heartbeats say who can) and the queue's depth is
//! polled; else this process runs them: its own sandbox, behind an in-process queue of their own
//! (a run waits there for a free slot, which must never hold up the snapshots' and chat's queue).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::exec::{DockerConfig, DockerSandbox, ExecutionConfig, ExecutionHandler, Sandbox};
use workers::{DispatchConfig, Dispatcher, InProcessQueue, InProcessQueueConfig, JobQueue, RoomOutput};

use super::runners::{LocalRunners, PolledBacklog, WorkerRunners};
use super::{Backlog, Runners};
use crate::cache::Cache;
use crate::config::Config;

/// How often the broker's `execution_jobs` depth is read.
const DEPTH_POLL: Duration = Duration::from_millis(500);

/// Where runs go, who runs them, and how many wait.
pub struct ExecutionBackend {
    pub queue: Arc<dyn JobQueue>,
    pub runners: Arc<dyn Runners>,
    pub backlog: Arc<dyn Backlog>,
    /// The runs this process carries out (embedded mode), for shutdown to wait for.
    pub runs: Option<ExecutionHandler>,
}

pub fn open(
    config: &Config,
    store: &Arc<dyn storage::Store>,
    cache: &Arc<dyn Cache>,
    shared_queue: &Arc<dyn JobQueue>,
    output: &Arc<dyn RoomOutput>,
    background: &TaskTracker,
    stop_workers: &CancellationToken,
) -> ExecutionBackend {
    if let Some(url) = &config.amqp_url {
        let depth = workers::amqp::poll_depth(
            workers::amqp::AmqpConfig::new(url.clone()),
            workers::amqp::WorkQueue::ExecutionJobs,
            DEPTH_POLL,
            background,
            stop_workers.clone(),
        );
        return ExecutionBackend {
            queue: shared_queue.clone(),
            runners: Arc::new(WorkerRunners::new(cache.clone(), config.redis_url.is_some())),
            backlog: Arc::new(PolledBacklog(depth)),
            runs: None,
        };
    }
    let sandbox = open_sandbox(config, background, stop_workers);
    let dispatcher = Dispatcher::new(DispatchConfig { batch: 1, ..DispatchConfig::default() });
    let (dispatcher, handler) = register_runs(dispatcher, sandbox.clone(), store, output, config);
    let queue = InProcessQueue::start(
        dispatcher,
        InProcessQueueConfig {
            // The queue's length is checked before publishing (`--exec-queue-max`); the channel only
            // needs to hold that many.
            capacity: usize::try_from(config.exec.queue_max).unwrap_or(usize::MAX).clamp(1, 1 << 16),
            ..InProcessQueueConfig::default()
        },
        background,
        stop_workers.clone(),
    );
    ExecutionBackend {
        queue: queue.clone(),
        runners: Arc::new(LocalRunners(sandbox)),
        backlog: queue,
        runs: Some(handler),
    }
}

/// The Docker sandbox, connecting in the background (a missing daemon refuses runs at once and
/// is retried); stopped with the in-process workers, which removes its warm containers.
fn open_sandbox(config: &Config, background: &TaskTracker, stop: &CancellationToken) -> Arc<dyn Sandbox> {
    let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let owner = config.exec.owner_or(&data_dir.display().to_string());
    DockerSandbox::start(DockerConfig::new(&config.exec, owner), background, stop.clone())
}

fn register_runs(
    dispatcher: Dispatcher,
    sandbox: Arc<dyn Sandbox>,
    store: &Arc<dyn storage::Store>,
    output: &Arc<dyn RoomOutput>,
    config: &Config,
) -> (Dispatcher, ExecutionHandler) {
    let handler = ExecutionHandler::new(
        sandbox,
        store.clone() as Arc<dyn storage::ExecutionStore>,
        output.clone(),
        ExecutionConfig::from_args(&config.exec),
    );
    (workers::register_execution_handler(dispatcher, &handler), handler)
}
