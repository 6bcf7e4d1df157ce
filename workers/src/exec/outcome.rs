//! How a run ended, as the three things that report it: the execution record's final fields, the
//! room's `run_exit`, and the `outcome` metric label. One place decides, so the three agree.

use protocol::run::{RunExit, RunOutput};
use storage::model::{ExecutionRecord, Millis};

use crate::exec::{RunReport, SandboxError};
use crate::metrics::RunOutcome;

/// The record's error when a run was cut off because its worker went away.
pub(crate) const WORKER_STOPPED: &str = "the worker running it stopped";

/// The record's error when the handler itself failed (a panic): no details for viewers.
pub(crate) const INTERNAL_ERROR: &str = "internal error";

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The sandbox carried the run out; the report says how the program ended.
    Ran(RunReport),
    /// The sandbox could not run it or broke during the run.
    Refused(SandboxError),
    /// The handler failed during the run (a panic in the sandbox or here).
    Internal { duration_ms: u64 },
    /// A worker died during the run (found later, by a redelivery or the container sweeper).
    Abandoned,
}

impl Ended {
    pub(crate) fn outcome(&self) -> RunOutcome {
        match self {
            Ended::Ran(report) if report.timed_out => RunOutcome::TimedOut,
            Ended::Ran(report) if report.oom_killed => RunOutcome::OomKilled,
            Ended::Ran(report) if report.output_truncated => RunOutcome::OutputTruncated,
            Ended::Ran(_) => RunOutcome::Completed,
            Ended::Refused(_) | Ended::Internal { .. } => RunOutcome::Failed,
            Ended::Abandoned => RunOutcome::Cancelled,
        }
    }

    /// The record's status word for this end (see [`ExecutionRecord::status`]).
    fn status(&self) -> &'static str {
        match self.outcome() {
            RunOutcome::Completed => "completed",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::OomKilled | RunOutcome::OutputTruncated | RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
        }
    }
}

/// The output kept for the record: each stream's start, up to `cap` bytes.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    cap: usize,
    pub stdout: String,
    pub stderr: String,
    /// Some text did not fit.
    pub cut: bool,
    /// Per stream (stdout, stderr): cut already.
    full: [bool; 2],
}

impl Captured {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, ..Self::default() }
    }

    pub(crate) fn add(&mut self, output: &RunOutput) {
        let (kept, full) = match output.stream {
            protocol::run::OutputStream::Stdout => (&mut self.stdout, &mut self.full[0]),
            protocol::run::OutputStream::Stderr => (&mut self.stderr, &mut self.full[1]),
        };
        if *full {
            // The record keeps the start of a stream, without holes: nothing after a cut.
            return;
        }
        let room = self.cap.saturating_sub(kept.len());
        if output.data.len() <= room {
            kept.push_str(&output.data);
            return;
        }
        *full = true;
        // Cut on a character boundary: the record holds text.
        let mut end = room;
        while !output.data.is_char_boundary(end) {
            end -= 1;
        }
        kept.push_str(&output.data[..end]);
        self.cut = true;
    }
}

/// `record` (the running one) with the result of `ended` and the output `captured`.
pub(crate) fn finished_record(
    record: &ExecutionRecord,
    ended: &Ended,
    captured: Captured,
    finished_at: Millis,
) -> ExecutionRecord {
    let mut done = ExecutionRecord {
        status: ended.status().to_owned(),
        stdout: captured.stdout,
        stderr: captured.stderr,
        truncated: captured.cut,
        finished_at: Some(finished_at),
        exit_code: None,
        timed_out: false,
        oom_killed: false,
        error: None,
        duration_ms: None,
        ..record.clone()
    };
    match ended {
        Ended::Ran(report) => {
            done.exit_code = report.exit_code;
            done.timed_out = report.timed_out;
            done.oom_killed = report.oom_killed;
            done.truncated |= report.output_truncated;
            done.duration_ms = Some(report.duration_ms);
        }
        Ended::Refused(error) => {
            done.error = Some(error.to_string());
            // A run the sandbox broke off took time; one it never started has no duration (and so
            // does not count in the session's mean).
            if let SandboxError::Failed(_) = error {
                done.duration_ms = record.started_at.map(|started| elapsed_ms(started, finished_at));
            }
        }
        Ended::Internal { duration_ms } => {
            done.error = Some(INTERNAL_ERROR.to_owned());
            done.duration_ms = Some(*duration_ms);
        }
        Ended::Abandoned => done.error = Some(WORKER_STOPPED.to_owned()),
    }
    done
}

/// The room's `run_exit` for a finished `record`.
pub(crate) fn run_exit(record: &ExecutionRecord) -> RunExit {
    RunExit {
        job: record.id.clone(),
        exit_code: record.exit_code,
        duration_ms: record.duration_ms.unwrap_or(0),
        timed_out: record.timed_out,
        oom_killed: record.oom_killed,
        output_truncated: record.truncated,
        error: record.error.clone(),
    }
}

fn elapsed_ms(from: Millis, to: Millis) -> u64 {
    u64::try_from(to.saturating_sub(from)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use protocol::job::ExecutionJob;
    use protocol::run::OutputStream;

    use super::*;

    fn running() -> ExecutionRecord {
        let job = ExecutionJob {
            id: "j".into(),
            room: "s".into(),
            user_id: "u".into(),
            username: "ann".into(),
            language: "python".into(),
            code: "x".into(),
            stdin: String::new(),
            created_at: 1,
        };
        ExecutionRecord { status: "running".into(), started_at: Some(10), ..crate::exec::queued_record(&job) }
    }

    fn report(f: impl FnOnce(&mut RunReport)) -> Ended {
        let mut report = RunReport { exit_code: Some(3), duration_ms: 40, ..RunReport::default() };
        f(&mut report);
        Ended::Ran(report)
    }

    #[test]
    fn each_end_has_its_status_outcome_and_fields() {
        let cases = [
            (report(|_| {}), "completed", "completed", Some(3), Some(40), None),
            (report(|r| r.timed_out = true), "timed_out", "timed_out", Some(3), Some(40), None),
            (report(|r| r.oom_killed = true), "failed", "oom_killed", Some(3), Some(40), None),
            (report(|r| r.output_truncated = true), "failed", "output_truncated", Some(3), Some(40), None),
            (
                Ended::Refused(SandboxError::Failed("daemon gone".into())),
                "failed",
                "failed",
                None,
                Some(90),
                Some("sandbox failure: daemon gone"),
            ),
            (
                Ended::Refused(SandboxError::Unavailable("no docker".into())),
                "failed",
                "failed",
                None,
                None,
                Some("execution unavailable: no docker"),
            ),
            (Ended::Internal { duration_ms: 7 }, "failed", "failed", None, Some(7), Some(INTERNAL_ERROR)),
            (Ended::Abandoned, "cancelled", "cancelled", None, None, Some(WORKER_STOPPED)),
        ];
        for (ended, status, outcome, exit_code, duration_ms, error) in cases {
            let record = finished_record(&running(), &ended, Captured::new(10), 100);
            assert_eq!(record.status, status, "{ended:?}");
            assert_eq!(ended.outcome().as_str(), outcome, "{ended:?}");
            assert_eq!(record.exit_code, exit_code, "{ended:?}");
            assert_eq!(record.duration_ms, duration_ms, "{ended:?}");
            assert_eq!(record.error.as_deref(), error, "{ended:?}");
            assert_eq!(record.finished_at, Some(100));
            let exit = run_exit(&record);
            assert_eq!((exit.exit_code, exit.error.as_deref()), (exit_code, error), "{ended:?}");
        }
    }

    #[test]
    fn captured_output_keeps_each_streams_start_on_a_character_boundary() {
        let mut captured = Captured::new(5);
        let out = |stream, data: &str| RunOutput { job: "j".into(), seq: 0, stream, data: data.into() };
        captured.add(&out(OutputStream::Stdout, "abc"));
        captured.add(&out(OutputStream::Stderr, "12345"));
        assert!(!captured.cut);
        captured.add(&out(OutputStream::Stdout, "dé!"));
        captured.add(&out(OutputStream::Stdout, "more"));
        assert_eq!(
            (captured.stdout.as_str(), captured.stderr.as_str(), captured.cut),
            ("abcd", "12345", true)
        );
    }
}
