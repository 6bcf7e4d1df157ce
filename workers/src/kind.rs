//! Job kinds: which variant of [`Job`] a job is, so the dispatcher can route it to its handler and
//! metrics and logs can name it.
//!
//! A new job kind is a new [`Job`] variant (in `protocol`), a [`JobKind`] variant with its label,
//! and a [`JobPayload`] impl for its payload type; [`JobKind::of`] is the one exhaustive match over
//! [`Job`] in this crate, so the compiler points here.

use protocol::job::{ChatJob, ExecutionJob, Job, SnapshotJob};

/// Every kind of [`Job`], one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Snapshot,
    /// Chat persistence: the seeds' `message_save` queue.
    Chat,
    /// Code execution: the `execution_jobs` queue.
    Execution,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Snapshot, JobKind::Chat, JobKind::Execution];
    pub const COUNT: usize = Self::ALL.len();

    /// The kind of `job`.
    pub fn of(job: &Job) -> Self {
        match job {
            Job::Snapshot(_) => JobKind::Snapshot,
            Job::Chat(_) => JobKind::Chat,
            Job::Execution(_) => JobKind::Execution,
        }
    }

    /// The kind's label in logs and metrics (`kind="snapshot"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Snapshot => "snapshot",
            JobKind::Chat => "chat",
            JobKind::Execution => "execution",
        }
    }
}

/// The payload of one job kind ([`SnapshotJob`], …): what that kind's
/// [`JobHandler`](crate::JobHandler) is given, so a handler never sees another kind's jobs.
pub trait JobPayload: Send + Sync + 'static {
    const KIND: JobKind;

    /// This kind's payload, or `None` when `job` is of another kind.
    fn from_job(job: &Job) -> Option<&Self>;
}

impl JobPayload for SnapshotJob {
    const KIND: JobKind = JobKind::Snapshot;

    fn from_job(job: &Job) -> Option<&Self> {
        match job {
            Job::Snapshot(snapshot) => Some(snapshot),
            _ => None,
        }
    }
}

impl JobPayload for ChatJob {
    const KIND: JobKind = JobKind::Chat;

    fn from_job(job: &Job) -> Option<&Self> {
        match job {
            Job::Chat(chat) => Some(chat),
            _ => None,
        }
    }
}

impl JobPayload for ExecutionJob {
    const KIND: JobKind = JobKind::Execution;

    fn from_job(job: &Job) -> Option<&Self> {
        match job {
            Job::Execution(execution) => Some(execution),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_finds_its_own_payload() {
        let job =
            Job::Snapshot(SnapshotJob { room: "r".into(), update: vec![], changes: 0, dirty_since_ms: 0 });
        assert_eq!(JobKind::of(&job), SnapshotJob::KIND);
        assert!(SnapshotJob::from_job(&job).is_some());
        assert!(ChatJob::from_job(&job).is_none());
        let chat = Job::Chat(ChatJob {
            id: "i".into(),
            room: "r".into(),
            user_id: "u".into(),
            username: "n".into(),
            text: "t".into(),
            created_at: 0,
        });
        assert_eq!(JobKind::of(&chat), ChatJob::KIND);
        assert!(ChatJob::from_job(&chat).is_some() && SnapshotJob::from_job(&chat).is_none());
        for (index, kind) in JobKind::ALL.into_iter().enumerate() {
            // Metrics index per-kind handles by `kind as usize`.
            assert_eq!(kind as usize, index);
            assert!(!kind.as_str().is_empty());
        }
    }
}
