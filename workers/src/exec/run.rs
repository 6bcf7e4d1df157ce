//! One run, on its own task: check the record (never run a program twice), mark it `running`, tell
//! the room, stream the coalesced output while the sandbox runs, then send `run_exit` and store the
//! result. Every message of a run is sent from this one task, awaited in turn, so the room sees
//! `run_started`, the `run_output`s in `seq` order, then `run_exit`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use protocol::app::AppMessage;
use protocol::chat::ChatUser;
use protocol::job::ExecutionJob;
use protocol::run::{RunOutput, RunStarted};
use storage::clock::now_millis;
use storage::model::ExecutionRecord;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handler::Shared;
use super::outcome::{Captured, Ended, finished_record, run_exit};
use super::persist;
use crate::exec::{Coalescer, RunReport, RunSpec, SandboxError};

/// Raw chunks buffered between the sandbox and this task; a full buffer slows the sandbox's
/// reading of the program's output, which is the back-pressure the [`Sandbox`] contract asks for.
///
/// [`Sandbox`]: crate::exec::Sandbox
const CHUNK_BUFFER: usize = 64;

/// [`run_job`], with any panic in it contained: logged, and the run ended as an internal error, so
/// one bad run never takes the dispatcher or the other runs with it.
pub(super) async fn run_contained(shared: &Arc<Shared>, job: &ExecutionJob, redelivered: bool) {
    let started = Instant::now();
    if let Err(panic) = AssertUnwindSafe(run_job(shared, job, redelivered)).catch_unwind().await {
        tracing::error!(job = %job.id, panic = panic_text(&*panic), "execution handler panicked");
        // Best effort: the panic may have come after run_exit was sent, which then comes twice.
        let duration_ms = started.elapsed().as_millis() as u64;
        let record = ExecutionRecord { status: "running".into(), ..queued_record(job) };
        end(shared, job, &record, Ended::Internal { duration_ms }, Captured::default()).await;
    }
}

async fn run_job(shared: &Arc<Shared>, job: &ExecutionJob, redelivered: bool) {
    let stored = match persist::load(shared, &job.id).await {
        Some(stored) => stored,
        // Unknown state: a first delivery is run (a duplicate is what the check guards against,
        // and there was no earlier delivery); a redelivery is not, as it may have run.
        None if redelivered => return,
        None => None,
    };
    let base = match stored {
        Some(record) if record.is_finished() => {
            tracing::info!(job = %job.id, status = %record.status, "execution already finished; not run again");
            return;
        }
        Some(record) if record.status == "running" => {
            // A worker took it before and died mid-run (this is its redelivery).
            cancel(shared, &job.room, record).await;
            return;
        }
        Some(record) => record,
        None => queued_record(job),
    };
    let started_at = now_millis();
    let running = ExecutionRecord { status: "running".into(), started_at: Some(started_at), ..base };
    // The program runs only once `running` is durable: that is what stops a redelivery running it
    // a second time. A store that stays down fails the run instead.
    if !persist::save(shared, &running).await {
        let refused = SandboxError::Unavailable("the execution store is unreachable".into());
        end(shared, job, &running, Ended::Refused(refused), Captured::default()).await;
        return;
    }
    let queue_wait_ms = started_at.saturating_sub(job.created_at).max(0);
    shared.metrics.queue_wait.record(queue_wait_ms as f64 / 1000.0);
    let _running = RunningGauge::start(shared);

    let user = ChatUser { id: job.user_id.clone(), username: job.username.clone() };
    let started = RunStarted { job: job.id.clone(), language: job.language.clone(), user };
    send(shared, &job.room, AppMessage::RunStarted(started)).await;

    let clock = Instant::now();
    let mut captured = Captured::new(shared.config.output_max_bytes);
    let streamed = AssertUnwindSafe(stream_run(shared, job, &mut captured)).catch_unwind().await;
    let ended = match streamed {
        Ok(Ok(report)) => Ended::Ran(report),
        Ok(Err(error)) => Ended::Refused(error),
        Err(panic) => {
            tracing::error!(job = %job.id, panic = panic_text(&*panic), "the sandbox panicked during a run");
            Ended::Internal { duration_ms: clock.elapsed().as_millis() as u64 }
        }
    };
    end(shared, job, &running, ended, captured).await;
}

/// Runs the program, sending its output to the room as the coalescer releases it.
async fn stream_run(
    shared: &Shared,
    job: &ExecutionJob,
    captured: &mut Captured,
) -> Result<RunReport, SandboxError> {
    let spec = RunSpec {
        job: job.id.clone(),
        room: job.room.clone(),
        language: job.language.clone(),
        code: job.code.clone(),
        stdin: job.stdin.clone(),
    };
    let (tx, mut rx) = mpsc::channel(CHUNK_BUFFER);
    let run = shared.sandbox.run(spec, tx);
    tokio::pin!(run);
    let mut coalescer = Coalescer::new(job.id.clone(), shared.config.coalesce);
    let mut first_byte = true;
    let report = loop {
        let deadline = coalescer.deadline().map(Instant::from_std);
        tokio::select! {
            // Output before the end: what the program wrote last must not lose to its exit.
            biased;
            Some(chunk) = rx.recv() => {
                if first_byte && !chunk.bytes.is_empty() {
                    first_byte = false;
                    let waited = now_millis().saturating_sub(job.created_at).max(0);
                    shared.metrics.first_byte(&job.language).record(waited as f64 / 1000.0);
                }
                let ready = coalescer.push(&chunk, Instant::now().into_std());
                send_output(shared, job, ready, captured).await;
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                let ready = coalescer.flush_due(Instant::now().into_std());
                send_output(shared, job, ready, captured).await;
            }
            report = &mut run => break report,
        }
    };
    // The sandbox sends everything before it returns: what is left is already in the channel (a
    // sender it leaked elsewhere must not keep this run open).
    while let Ok(chunk) = rx.try_recv() {
        let ready = coalescer.push(&chunk, Instant::now().into_std());
        send_output(shared, job, ready, captured).await;
    }
    send_output(shared, job, coalescer.finish(), captured).await;
    report
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn send_output(shared: &Shared, job: &ExecutionJob, ready: Vec<RunOutput>, captured: &mut Captured) {
    for output in ready {
        captured.add(&output);
        send(shared, &job.room, AppMessage::RunOutput(output)).await;
    }
}

/// Reports the end of a run: `run_exit` to the room first (viewers never wait on the store), then
/// the final record, then the metrics.
async fn end(
    shared: &Shared,
    job: &ExecutionJob,
    running: &ExecutionRecord,
    ended: Ended,
    captured: Captured,
) {
    let record = finished_record(running, &ended, captured, now_millis());
    send(shared, &job.room, AppMessage::RunExit(run_exit(&record))).await;
    shared.metrics.ended(&job.language, ended.outcome()).increment(1);
    if let Some(duration_ms) = record.duration_ms {
        shared.metrics.duration(&job.language).record(duration_ms as f64 / 1000.0);
    }
    persist::finish(shared, &record).await;
}

/// Marks `record` (found `running`, its worker gone) `cancelled` and tells `room`.
async fn cancel(shared: &Shared, room: &str, record: ExecutionRecord) {
    tracing::warn!(job = %record.id, "execution was running when its worker stopped; cancelled");
    let cancelled = finished_record(&record, &Ended::Abandoned, Captured::default(), now_millis());
    send(shared, room, AppMessage::RunExit(run_exit(&cancelled))).await;
    shared.metrics.ended(&record.language, Ended::Abandoned.outcome()).increment(1);
    persist::finish(shared, &cancelled).await;
}

/// A room message. Delivery is at most once (see [`RoomOutput`]): a failure is logged, not retried.
///
/// [`RoomOutput`]: crate::RoomOutput
async fn send(shared: &Shared, room: &str, message: AppMessage) {
    if let Err(error) = shared.output.send(room, &message).await {
        tracing::debug!(%error, room, "a run message reached no one");
    }
}

/// The `queued` record of `job`: what the server saves when it accepts a run, and what a worker
/// starts from when a job's record was lost or never written.
pub fn queued_record(job: &ExecutionJob) -> ExecutionRecord {
    ExecutionRecord {
        id: job.id.clone(),
        session_id: job.room.clone(),
        user_id: job.user_id.clone(),
        language: job.language.clone(),
        code: job.code.clone(),
        status: "queued".into(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        timed_out: false,
        oom_killed: false,
        error: None,
        duration_ms: None,
        created_at: job.created_at,
        started_at: None,
        finished_at: None,
    }
}

/// Counts a run in `code_executions_running` while it lives, panics included.
struct RunningGauge<'a>(&'a Shared);

impl<'a> RunningGauge<'a> {
    fn start(shared: &'a Shared) -> Self {
        shared.metrics.running.increment(1.0);
        Self(shared)
    }
}

impl Drop for RunningGauge<'_> {
    fn drop(&mut self) {
        self.0.metrics.running.decrement(1.0);
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("?")
}
