//! Code execution, the server's side: a run asked for over the socket (`ws/run.rs`) or over HTTP
//! (`http/execute.rs`) is checked here, recorded as `queued`, and handed to the execution queue;
//! a worker (in this process in the embedded mode, `codecrafter-worker` with RabbitMQ) runs it and
//! streams its output into the room through the `RoomOutput` seam.
//!
//! Checks, in order, each with its refusal code: language known (`unknown_language`), stdin and
//! code sizes (`stdin_too_long`, `code_too_long`), a runner able to run it
//! (`execution_unavailable`), the queue's length and the user's runs per minute (`too_many_runs`). A
//! refused run is not recorded and does not count against the user's rate.

mod document;
mod open;
mod refusal;
mod runners;

use std::sync::Arc;
use std::time::Duration;

use protocol::chat::ChatUser;
use protocol::job::{ExecutionJob, Job};
use storage::model::Session;
use workers::JobQueue;
use workers::exec::ExecArgs;

pub use self::document::code_of;
pub use self::open::{ExecutionBackend, open};
pub use self::refusal::SubmitRefusal;
pub use self::runners::{Backlog, Runners, RunnersStatus};
use crate::cache::Cache;
use crate::room::Rooms;

/// The window of `--exec-runs-per-min`.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The limits a submission is checked against (from [`ExecArgs`]).
#[derive(Debug, Clone, Copy)]
pub struct SubmitLimits {
    pub code_max_bytes: usize,
    pub stdin_max_bytes: usize,
    /// 0: no limit.
    pub runs_per_min: u32,
    pub queue_max: u64,
}

impl SubmitLimits {
    pub fn from_args(args: &ExecArgs) -> Self {
        Self {
            code_max_bytes: args.code_max_bytes(),
            stdin_max_bytes: args.stdin_max_bytes(),
            runs_per_min: args.runs_per_min,
            queue_max: args.queue_max,
        }
    }
}

/// One run asked for, by a member who may write in `room`.
pub struct Submission {
    pub room: String,
    /// The session the room is, if it is one (its language is the default).
    pub session: Option<Session>,
    pub user: ChatUser,
    pub language: Option<String>,
    /// `None`: the room document's `code` text.
    pub code: Option<String>,
    pub stdin: Option<String>,
}

/// What checks, records and queues runs.
pub struct Executions {
    pub store: Arc<dyn storage::Store>,
    pub rooms: Arc<Rooms>,
    pub cache: Arc<dyn Cache>,
    /// Where execution jobs go (`execution_jobs` with RabbitMQ; a queue of their own in-process).
    pub queue: Arc<dyn JobQueue>,
    pub runners: Arc<dyn Runners>,
    pub backlog: Arc<dyn Backlog>,
    pub limits: SubmitLimits,
}

impl Executions {
    /// Check `submission`, record it `queued` and queue it; its job id.
    pub async fn submit(&self, submission: Submission) -> Result<String, SubmitRefusal> {
        let language = self.language_of(&submission)?;
        let stdin = submission.stdin.unwrap_or_default();
        if stdin.len() > self.limits.stdin_max_bytes {
            return Err(SubmitRefusal::StdinTooLong { max: self.limits.stdin_max_bytes });
        }
        let code = match submission.code {
            Some(code) => code,
            None => code_of(&self.rooms, self.store.as_ref(), &submission.room).await?,
        };
        if code.len() > self.limits.code_max_bytes {
            return Err(SubmitRefusal::CodeTooLong { max: self.limits.code_max_bytes });
        }
        self.runners.check(&language).await?;
        if self.backlog.waiting().is_some_and(|waiting| waiting >= self.limits.queue_max) {
            return Err(SubmitRefusal::QueueFull { max: self.limits.queue_max });
        }
        self.count_run(&submission.user).await?;
        let created_at = storage::clock::now_millis();
        let job = ExecutionJob {
            id: storage::model::new_id(),
            room: submission.room,
            user_id: submission.user.id,
            username: submission.user.username,
            language,
            code,
            stdin,
            created_at,
        };
        let record = workers::exec::queued_record(&job);
        // Recorded first, so its status can be read the moment its id is known.
        self.store.save_execution(&record).await.map_err(SubmitRefusal::Store)?;
        let id = job.id.clone();
        self.queue.publish(Job::Execution(job)).await.map_err(SubmitRefusal::Queue)?;
        crate::telemetry::Metrics::get().executions_submitted.increment(1);
        Ok(id)
    }

    /// The language asked for, else the session's; checked against the table.
    fn language_of(&self, submission: &Submission) -> Result<String, SubmitRefusal> {
        let language = match (&submission.language, &submission.session) {
            (Some(language), _) => language.clone(),
            (None, Some(session)) => session_language(session),
            (None, None) => {
                return Err(SubmitRefusal::UnknownLanguage(
                    "this room is not a session: say which language to run".to_owned(),
                ));
            }
        };
        if workers::exec::Language::find(&language).is_none() {
            return Err(SubmitRefusal::UnknownLanguage(format!("unknown language {language:?}")));
        }
        Ok(language)
    }

    /// One more run of the user's `--exec-runs-per-min`. A cache failure lets the run through (the
    /// queue length and the per-node concurrency still bound the load), as chat does.
    async fn count_run(&self, user: &ChatUser) -> Result<(), SubmitRefusal> {
        let limit = self.limits.runs_per_min;
        if limit == 0 {
            return Ok(());
        }
        match self.cache.hit(&format!("exec-rate:{}", user.id), RATE_WINDOW).await {
            Ok(hit) if hit.count > u64::from(limit) => {
                Err(SubmitRefusal::RateLimited { per_min: limit, retry_after: hit.reset_in })
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "execution rate limit unavailable; letting the run through");
                Ok(())
            }
        }
    }
}

/// The language id of a session (its `language` field, as the API spells it).
pub fn session_language(session: &Session) -> String {
    serde_json::to_value(session.language)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| "javascript".to_owned())
}
