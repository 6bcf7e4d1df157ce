//! Queue job schemas shared by the server (producer) and the workers (consumer), and their bytes.
//!
//! Encoding: one version byte, then bincode 2 (serde, standard config). The version byte lets a
//! worker refuse a job from a newer or older server instead of misreading it; adding an enum
//! variant at the END of [`Job`] keeps version 1 (bincode tags variants by index), while changing
//! an existing struct's fields needs a new version.

use serde::{Deserialize, Serialize};

/// The format written by [`Job::encode`].
pub const JOB_FORMAT_VERSION: u8 = 1;

/// Largest encoded job accepted. bincode sizes a string's buffer from its length prefix before
/// reading it, so without a limit a corrupt prefix could ask for gigabytes; a snapshot job for
/// even a very large room stays far below this.
pub const MAX_JOB_LEN: usize = 256 * 1024 * 1024;

/// Merge a room's state into its stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotJob {
    /// Room (session) id.
    pub room: String,
    /// A Yjs v1 update: the room's state to MERGE into the stored snapshot (never overwrite it,
    /// so two nodes snapshotting the same room cannot lose each other's edits).
    pub update: Vec<u8>,
    /// Updates applied since the previous snapshot job, for metrics and debouncing checks.
    pub changes: u64,
    /// When the first change in this snapshot reached the server (unix ms): persistence lag is
    /// measured from here to the durable write.
    pub dirty_since_ms: u64,
}

/// Persist one chat message (queue `message_save`). The worker writes it idempotently by `id`, so
/// a redelivered job never stores a second copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatJob {
    /// The message id (24 hex digits), given by the server that accepted it.
    pub id: String,
    /// Room (session) id.
    pub room: String,
    pub user_id: String,
    pub username: String,
    pub text: String,
    /// When the server accepted it (unix ms).
    pub created_at: i64,
}

/// Run a program (queue `execution_jobs`): a worker runs it in a sandbox, streams its output into
/// the room and stores the result under `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionJob {
    /// The job id (24 hex digits), given by the server that accepted it; the execution record's id.
    pub id: String,
    /// Room (session) id.
    pub room: String,
    pub user_id: String,
    pub username: String,
    /// A language id the server checked against its table (`python`, `c`, ...).
    pub language: String,
    pub code: String,
    pub stdin: String,
    /// When the server accepted it (unix ms).
    pub created_at: i64,
}

/// Every job kind. Append new variants at the end (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Job {
    /// Persist a room snapshot.
    Snapshot(SnapshotJob),
    /// Persist a chat message.
    Chat(ChatJob),
    /// Run a program.
    Execution(ExecutionJob),
}

/// Why bytes from the queue are not a job this build understands.
pub type JobDecodeError = crate::versioned::VersionedDecodeError;

impl Job {
    /// The version byte followed by the bincode body.
    pub fn encode(&self) -> Vec<u8> {
        crate::versioned::encode(JOB_FORMAT_VERSION, self)
    }

    /// Parses bytes written by [`Job::encode`], refusing other versions and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, JobDecodeError> {
        crate::versioned::decode::<Self, MAX_JOB_LEN>(JOB_FORMAT_VERSION, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Job {
        Job::Snapshot(SnapshotJob {
            room: "room-é".to_owned(),
            update: vec![1, 2, 3, 0, 255],
            changes: 300,
            dirty_since_ms: 7,
        })
    }

    #[test]
    fn round_trip_and_layout() {
        let bytes = snapshot().encode();
        // version, variant 0, len 7 + "room-é", len 5 + bytes, 300 as bincode varint (251 = u16 LE), 7.
        let expected: &[u8] = b"\x01\x00\x07room-\xc3\xa9\x05\x01\x02\x03\x00\xff\xfb\x2c\x01\x07";
        assert_eq!(bytes, expected);
        assert_eq!(Job::decode(&bytes).ok(), Some(snapshot()));
    }

    #[test]
    fn chat_round_trip_and_layout() {
        let job = Job::Chat(ChatJob {
            id: "ab".to_owned(),
            room: "r".to_owned(),
            user_id: "u".to_owned(),
            username: "é".to_owned(),
            text: "hi".to_owned(),
            created_at: -2,
        });
        let bytes = job.encode();
        // version, variant 1, five length-prefixed strings, -2 zigzag-encoded as 3.
        let expected: &[u8] = b"\x01\x01\x02ab\x01r\x01u\x02\xc3\xa9\x02hi\x03";
        assert_eq!(bytes, expected);
        assert_eq!(Job::decode(&bytes).ok(), Some(job));
    }

    #[test]
    fn execution_round_trip_and_layout() {
        let job = Job::Execution(ExecutionJob {
            id: "i".to_owned(),
            room: "r".to_owned(),
            user_id: "u".to_owned(),
            username: "n".to_owned(),
            language: "c".to_owned(),
            code: "x".to_owned(),
            stdin: String::new(),
            created_at: 1,
        });
        let bytes = job.encode();
        // version, variant 2, six length-prefixed strings, an empty one, 1 zigzag-encoded as 2.
        let expected: &[u8] = b"\x01\x02\x01i\x01r\x01u\x01n\x01c\x01x\x00\x02";
        assert_eq!(bytes, expected);
        assert_eq!(Job::decode(&bytes).ok(), Some(job));
    }

    #[test]
    fn large_update_round_trips() {
        let job = Job::Snapshot(SnapshotJob {
            room: "r".repeat(1000),
            update: (0..=255).cycle().take(1 << 20).collect(),
            changes: u64::MAX,
            dirty_since_ms: u64::MAX,
        });
        assert_eq!(Job::decode(&job.encode()).ok(), Some(job));
    }

    #[test]
    fn rejects_bad_input() {
        let good = snapshot().encode();
        assert!(matches!(Job::decode(&[]), Err(JobDecodeError::Empty)));
        let mut wrong_version = good.clone();
        wrong_version[0] = 2;
        assert!(matches!(Job::decode(&wrong_version), Err(JobDecodeError::UnsupportedVersion(2))));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(Job::decode(&trailing), Err(JobDecodeError::TrailingBytes(1))));
        assert!(matches!(Job::decode(&good[..good.len() - 1]), Err(JobDecodeError::Body(_))));
        // Unknown variant index.
        assert!(matches!(Job::decode(&[1, 9]), Err(JobDecodeError::Body(_))));
        // A room length prefix of 2^64 - 1 must fail without trying to allocate it.
        let mut lying = vec![1, 0, 255];
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Job::decode(&lying), Err(JobDecodeError::Body(_))));
        // Invalid UTF-8 in the room.
        assert!(matches!(Job::decode(&[1, 0, 1, 0xff, 0, 0]), Err(JobDecodeError::Body(_))));
    }
}
