//! The outbox on disk: encoded jobs by sequence number in a redb file, each append committed
//! (fsynced) before it returns, so jobs held while the broker is away survive a crash of the server
//! and are replayed, in order, when it restarts.
//!
//! Blocking: every call does file I/O; the caller runs it on tokio's blocking pool.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::queue::QueueError;

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

pub(super) struct OutboxLog {
    db: Database,
}

/// What the log holds when it is opened.
pub(super) struct Contents {
    pub len: u64,
    pub bytes: u64,
    /// The sequence number after the last entry.
    pub next_seq: u64,
}

impl OutboxLog {
    pub(super) fn open(path: &Path) -> Result<(Self, Contents), QueueError> {
        let db = Database::create(path).map_err(disk("open the outbox"))?;
        let txn = db.begin_write().map_err(disk("open the outbox"))?;
        txn.open_table(JOBS).map_err(disk("open the outbox table"))?;
        txn.commit().map_err(disk("create the outbox table"))?;
        let log = Self { db };
        let contents = log.contents()?;
        Ok((log, contents))
    }

    fn contents(&self) -> Result<Contents, QueueError> {
        let txn = self.db.begin_read().map_err(disk("read the outbox"))?;
        let table = txn.open_table(JOBS).map_err(disk("read the outbox"))?;
        let mut bytes = 0;
        for entry in table.iter().map_err(disk("read the outbox"))? {
            let (_, value) = entry.map_err(disk("read the outbox"))?;
            bytes += value.value().len() as u64;
        }
        let next_seq = match table.last().map_err(disk("read the outbox"))? {
            Some((seq, _)) => seq.value() + 1,
            None => 0,
        };
        Ok(Contents { len: table.len().map_err(disk("read the outbox"))?, bytes, next_seq })
    }

    /// Append `job` as entry `seq`, durably.
    pub(super) fn append(&self, seq: u64, job: &[u8]) -> Result<(), QueueError> {
        let txn = self.db.begin_write().map_err(disk("append to the outbox"))?;
        {
            let mut table = txn.open_table(JOBS).map_err(disk("append to the outbox"))?;
            table.insert(seq, job).map_err(disk("append to the outbox"))?;
        }
        txn.commit().map_err(disk("commit the outbox"))
    }

    /// Up to `max` entries from the oldest.
    pub(super) fn oldest(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, QueueError> {
        let txn = self.db.begin_read().map_err(disk("read the outbox"))?;
        let table = txn.open_table(JOBS).map_err(disk("read the outbox"))?;
        let mut entries = Vec::new();
        for entry in table.iter().map_err(disk("read the outbox"))?.take(max) {
            let (seq, job) = entry.map_err(disk("read the outbox"))?;
            entries.push((seq.value(), job.value().to_vec()));
        }
        Ok(entries)
    }

    /// Remove every entry up to and including `last` (they reached the broker).
    pub(super) fn remove_through(&self, last: u64) -> Result<(), QueueError> {
        let txn = self.db.begin_write().map_err(disk("trim the outbox"))?;
        {
            let mut table = txn.open_table(JOBS).map_err(disk("trim the outbox"))?;
            table.retain_in(..=last, |_, _| false).map_err(disk("trim the outbox"))?;
        }
        txn.commit().map_err(disk("commit the outbox"))
    }
}

fn disk<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> QueueError {
    move |error| QueueError::Backend(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_in_order_and_trim_from_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let (log, contents) = OutboxLog::open(&path).unwrap();
            assert_eq!((contents.len, contents.next_seq), (0, 0));
            for seq in 0..5u64 {
                log.append(seq, &[seq as u8; 3]).unwrap();
            }
            log.remove_through(1).unwrap();
        }
        let (log, contents) = OutboxLog::open(&path).unwrap();
        assert_eq!((contents.len, contents.bytes, contents.next_seq), (3, 9, 5));
        let seqs: Vec<u64> = log.oldest(10).unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(log.oldest(1).unwrap(), [(2, vec![2, 2, 2])]);
    }
}
