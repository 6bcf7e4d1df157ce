//! The execution handler: takes `execution_jobs`, starts each run on its own task once one of the
//! node's `concurrency` slots is free, and returns as soon as the batch is started, so a run that
//! lasts its whole timeout never holds up the next job. Waiting for a slot is the back-pressure:
//! the jobs behind stay in the queue (the broker's, or the in-process one) meanwhile.
//!
//! A job is acked once started, not once finished. So a worker that dies mid-run leaves its record
//! `running` and nothing redelivers it, unless it died before the ack: the redelivery then marks it
//! `cancelled`. Otherwise the server's status and history show it `cancelled` once it is past its
//! timeout. A program is never run twice: a run starts only after its record is durably `running`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::ExecutionJob;
use storage::ExecutionStore;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::run;
use crate::exec::{CoalesceConfig, ExecArgs, Sandbox};
use crate::handler::{Attempt, Handled, JobHandler, Transient};
use crate::metrics::ExecMetrics;
use crate::output::RoomOutput;

/// How the handler runs jobs.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Runs at once on this node; more wait in the queue.
    pub concurrency: usize,
    /// How output is merged into `run_output` messages.
    pub coalesce: CoalesceConfig,
    /// Bytes of each stream kept in the execution record (the start of it).
    pub output_max_bytes: usize,
    /// Attempts of each store write before giving up on it (the run is never repeated for it).
    pub store_attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub store_retry_delay: Duration,
}

impl ExecutionConfig {
    /// The limits the flags set, with the default coalescing and store retries.
    pub fn from_args(args: &ExecArgs) -> Self {
        Self { concurrency: args.concurrency, output_max_bytes: args.output_max_bytes(), ..Self::default() }
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            coalesce: CoalesceConfig::default(),
            output_max_bytes: 256 * 1024,
            store_attempts: 5,
            store_retry_delay: Duration::from_millis(100),
        }
    }
}

/// Runs programs from `execution_jobs`. Cheap to clone: clones share the slots and the runs, so
/// the process that registers one with a dispatcher keeps a clone to wait for its runs at shutdown.
#[derive(Clone)]
pub struct ExecutionHandler {
    shared: Arc<Shared>,
}

/// What every run task of one handler uses.
pub(super) struct Shared {
    pub sandbox: Arc<dyn Sandbox>,
    pub store: Arc<dyn ExecutionStore>,
    pub output: Arc<dyn RoomOutput>,
    pub config: ExecutionConfig,
    pub metrics: ExecMetrics,
    /// Ids of the jobs this handler is running now: a job handed to it again while it runs (its
    /// ack was lost with the broker connection) is that same run, not an abandoned one.
    in_flight: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
    runs: TaskTracker,
}

impl ExecutionHandler {
    /// Resolves its metric handles now: build it after the metrics recorder is installed.
    pub fn new(
        sandbox: Arc<dyn Sandbox>,
        store: Arc<dyn ExecutionStore>,
        output: Arc<dyn RoomOutput>,
        config: ExecutionConfig,
    ) -> Self {
        let metrics = ExecMetrics::new(sandbox.languages().into_iter().map(|language| language.id));
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let shared = Shared {
            sandbox,
            store,
            output,
            config,
            metrics,
            in_flight: Mutex::default(),
            slots,
            runs: TaskTracker::new(),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Runs in progress (slots taken).
    pub fn running(&self) -> usize {
        self.shared.config.concurrency.max(1).saturating_sub(self.shared.slots.available_permits())
    }

    /// Waits until every run started so far has ended (each ends by its timeout at the latest).
    pub async fn wait_for_runs(&self) {
        self.shared.runs.close();
        self.shared.runs.wait().await;
        self.shared.runs.reopen();
    }
}

impl Shared {
    /// Marks `job` running here; false if it already is.
    fn start(&self, job: &str) -> bool {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(job.to_owned())
    }

    fn done(&self, job: &str) {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(job);
    }
}

/// Why `job` can never run, if it cannot. The server publishes checked jobs only, so this guards
/// against a foreign or corrupted producer.
fn poison_reason(job: &ExecutionJob) -> Option<&'static str> {
    if !storage::model::is_id(&job.id) {
        Some("execution job without a valid id")
    } else if job.room.is_empty() {
        Some("execution job without a room")
    } else {
        None
    }
}

#[async_trait]
impl JobHandler for ExecutionHandler {
    type Job = ExecutionJob;

    /// Starts the batch's runs in order, each once a slot is free; never fails transiently, as a
    /// batch handed again would redeliver the runs already started.
    async fn handle(&self, batch: &[Attempt<'_, ExecutionJob>]) -> Result<Handled, Transient> {
        let mut handled = Handled::all();
        for (index, attempt) in batch.iter().enumerate() {
            if let Some(reason) = poison_reason(attempt.job) {
                handled.poison(index, reason);
                continue;
            }
            if !self.shared.start(&attempt.job.id) {
                tracing::info!(job = %attempt.job.id, "execution handed again while it runs here; left to that run");
                continue;
            }
            let Ok(slot) = self.shared.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; were it, no run could start anywhere.
                self.shared.done(&attempt.job.id);
                return Err(Transient::new("execution slots closed"));
            };
            let shared = self.shared.clone();
            let job = attempt.job.clone();
            let redelivered = attempt.redelivered();
            self.shared.runs.spawn(async move {
                run::run_contained(&shared, &job, redelivered).await;
                shared.done(&job.id);
                drop(slot);
            });
        }
        Ok(handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jobs_that_can_never_run_are_poison() {
        let job = |id: &str, room: &str| ExecutionJob {
            id: id.into(),
            room: room.into(),
            user_id: "u".into(),
            username: "ann".into(),
            language: "python".into(),
            code: "print(1)".into(),
            stdin: String::new(),
            created_at: 1,
        };
        let id = storage::model::new_id();
        assert_eq!(poison_reason(&job(&id, "room")), None);
        assert!(poison_reason(&job("x", "room")).is_some());
        assert!(poison_reason(&job(&id, "")).is_some());
    }
}
