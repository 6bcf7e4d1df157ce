//! Every accepted update made durable within milliseconds, and the `saved` acknowledgement.
//!
//! The debounced snapshot (`persister.rs`) bounds how much a crash could lose to its debounce; a
//! client told "saved" must lose nothing. So each update a client makes is also appended to its
//! room's journal, and one writer per room at a time hands what accumulated to the job queue as
//! ONE snapshot job (the updates merged) with [`JobQueue::persist`], which returns at the
//! durability point: the broker's confirm, or in-process the store's commit. While that is in
//! flight the next updates accumulate, so the queue sees one job per round trip per room (a group
//! commit sized by the load, with no timer). Once a batch is durable, the app clients whose
//! content messages it covered are sent `{"type":"saved","seq":N}`.
//!
//! What is journaled is what the room's document integrated (what it fans out), never a client's
//! bytes that it re-encoded: a forged update must not reach the store in a form the room refused.
//! The one exception is an update waiting for missing dependencies, journaled as sent: the store's
//! merge keeps it pending too (`crdt::RoomDoc` keeps stashed updates in its snapshots), so a
//! `saved` for it is true.
//!
//! Marks: an app client's content message that changed nothing (a duplicate, an empty step 2, a
//! read-only client's refused edit) is covered as soon as everything journaled before it is:
//! at once when nothing is pending or being written, else with the batch that follows.

use std::sync::Arc;
use std::time::Duration;

use protocol::app::AppMessage;
use protocol::job::{Job, SnapshotJob};
use workers::{JobQueue, QueueError};

use super::{ConnId, Room};
use crate::clock::unix_ms;
use crate::telemetry::Metrics;

/// Pending updates merged into one when this many wait (a writer held up by a store or broker
/// outage): what waits in memory then grows with the document, not with the number of edits.
const COMPACT_AT: usize = 4096;

/// First wait before a failed persist is tried again; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A room's updates and marks not handed to the queue yet. Lives in the room's state, under its
/// lock.
#[derive(Default)]
pub(super) struct Journal {
    updates: Vec<Vec<u8>>,
    /// App clients' content-message counts, covered once `updates` (and everything before) are
    /// durable.
    marks: Vec<(ConnId, u64)>,
    /// When the oldest of `updates` was accepted (unix ms), for the latency metric.
    since_ms: u64,
    /// A writer task holds a batch of this room's journal: the next one waits for it.
    writing: bool,
}

/// What a writer takes from the journal at once.
pub(super) struct Batch {
    updates: Vec<Vec<u8>>,
    marks: Vec<(ConnId, u64)>,
    since_ms: u64,
}

/// What the caller of [`Journal::append`] or [`Journal::mark`] must do after the room's lock.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    Nothing,
    /// Spawn the room's writer.
    StartWriter,
}

impl Journal {
    /// Journal an update the document integrated.
    pub(super) fn append(&mut self, update: Vec<u8>, now_ms: u64) -> Next {
        if self.updates.is_empty() {
            self.since_ms = now_ms;
        }
        self.updates.push(update);
        if self.updates.len() >= COMPACT_AT {
            self.compact();
        }
        self.start()
    }

    /// Merge what waits into one update (yrs's block-level merge: a few ms for [`COMPACT_AT`]
    /// small updates, once per that many). If it cannot be merged it is kept as it is.
    fn compact(&mut self) {
        if let Some(merged) = merge(&self.updates) {
            self.updates = vec![merged];
        }
    }

    /// Cover content message `seq` of app client `conn` once everything journaled so far is
    /// durable. `Some(seq)` when that is already the case: the caller sends `saved` at once.
    pub(super) fn mark(&mut self, conn: ConnId, seq: u64) -> (Option<u64>, Next) {
        if !self.writing && self.updates.is_empty() {
            return (Some(seq), Next::Nothing);
        }
        self.marks.push((conn, seq));
        (None, self.start())
    }

    fn start(&mut self) -> Next {
        if self.writing {
            return Next::Nothing;
        }
        self.writing = true;
        Next::StartWriter
    }

    /// The next batch for the writer, or `None` (and the writer stops) when nothing is left.
    pub(super) fn take(&mut self) -> Option<Batch> {
        if self.updates.is_empty() && self.marks.is_empty() {
            self.writing = false;
            return None;
        }
        Some(Batch {
            updates: std::mem::take(&mut self.updates),
            marks: std::mem::take(&mut self.marks),
            since_ms: self.since_ms,
        })
    }
}

/// The highest seq per connection among `marks`, in first-seen order.
fn highest_per_conn(marks: Vec<(ConnId, u64)>) -> Vec<(ConnId, u64)> {
    let mut highest: Vec<(ConnId, u64)> = Vec::new();
    for (conn, seq) in marks {
        match highest.iter_mut().find(|(c, _)| *c == conn) {
            Some(entry) => entry.1 = entry.1.max(seq),
            None => highest.push((conn, seq)),
        }
    }
    highest
}

/// The `saved` frame for `seq`.
pub(super) fn saved_frame(seq: u64) -> bytes::Bytes {
    bytes::Bytes::from(AppMessage::Saved { seq }.to_frame())
}

/// The room's writer: batch after batch until its journal is empty. A failed persist is retried
/// with backoff for as long as the queue is open (a broker outage holds the batch here, and the
/// next updates pile up behind it in memory; the room keeps serving). It gives up only when the
/// queue has closed (shutdown: the room's full state is then written directly) or the room was
/// discarded (its session deleted).
pub(super) async fn write(room: Arc<Room>, queue: Arc<dyn JobQueue>) {
    while let Some(batch) = room.take_journal() {
        if !batch.updates.is_empty() && !persist(&room, &*queue, &batch).await {
            return room.abandon_journal();
        }
        room.send_saved(highest_per_conn(batch.marks));
    }
}

/// Whether `batch` is durable.
async fn persist(room: &Room, queue: &dyn JobQueue, batch: &Batch) -> bool {
    let metrics = Metrics::get();
    let update = match merge(&batch.updates) {
        Some(update) => update,
        None => return false,
    };
    let job = Job::Snapshot(SnapshotJob {
        room: room.id().to_owned(),
        update,
        changes: batch.updates.len() as u64,
        dirty_since_ms: batch.since_ms,
    });
    let mut retry = FIRST_RETRY;
    loop {
        if room.is_discarded() {
            return false;
        }
        match queue.persist(job.clone()).await {
            Ok(()) => {
                metrics.journal_batches.increment(1);
                metrics.journal_updates.increment(batch.updates.len() as u64);
                let waited = unix_ms().saturating_sub(batch.since_ms);
                metrics.journal_latency.record(waited as f64 / 1000.0);
                return true;
            }
            Err(QueueError::Closed) => return false,
            Err(error) => {
                metrics.journal_errors.increment(1);
                tracing::warn!(room = room.id(), %error, retry_ms = retry.as_millis() as u64, "could not persist the room's journal; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The batch's updates as one. They all integrated into one document, so yrs's block-level
/// merge cannot fail; if it ever did, the batch is not reported durable (the debounced snapshot
/// and eviction still write the room's whole state).
fn merge(updates: &[Vec<u8>]) -> Option<Vec<u8>> {
    if let [only] = updates {
        return Some(only.clone());
    }
    match crdt::merge_updates(updates.iter().map(Vec::as_slice)) {
        Ok(merged) => Some(merged),
        Err(error) => {
            Metrics::get().journal_errors.increment(1);
            tracing::error!(%error, "could not merge journaled updates");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_with_nothing_pending_is_saved_at_once() {
        let mut journal = Journal::default();
        assert_eq!(journal.mark(1, 1), (Some(1), Next::Nothing));
        assert!(journal.take().is_none());
    }

    #[test]
    fn one_writer_at_a_time_and_marks_wait_for_what_was_journaled_before_them() {
        let mut journal = Journal::default();
        assert_eq!(journal.append(vec![1], 10), Next::StartWriter);
        assert_eq!(journal.mark(7, 1), (None, Next::Nothing));
        assert_eq!(journal.append(vec![2], 11), Next::Nothing, "the writer is running");
        let batch = journal.take().expect("a batch");
        assert_eq!((batch.updates.len(), batch.marks, batch.since_ms), (2, vec![(7, 1)], 10));
        // While the writer holds that batch, a no-change mark waits for it.
        assert_eq!(journal.mark(7, 2), (None, Next::Nothing));
        let batch = journal.take().expect("the mark alone");
        assert!(batch.updates.is_empty());
        assert!(journal.take().is_none(), "empty: the writer stops");
        assert_eq!(journal.append(vec![3], 12), Next::StartWriter, "and the next update starts one");
    }

    /// Typed one character at a time, as a client's updates arrive.
    fn typed(n: usize) -> Vec<Vec<u8>> {
        use yrs::{Text, Transact};
        let doc = yrs::Doc::with_client_id(1);
        let text = doc.get_or_insert_text("t");
        (0..n)
            .map(|_| {
                let mut txn = doc.transact_mut();
                let len = text.len(&txn);
                text.insert(&mut txn, len, "x");
                txn.encode_update_v1()
            })
            .collect()
    }

    #[test]
    fn a_held_up_journal_keeps_one_merged_update_not_every_edit() {
        let mut journal = Journal::default();
        let updates = typed(COMPACT_AT + 10);
        for update in &updates {
            let _ = journal.append(update.clone(), 1);
        }
        assert_eq!(journal.updates.len(), 11, "compacted once, then ten more");
        let batch = journal.take().unwrap();
        let merged = merge(&batch.updates).unwrap();
        let doc = crdt::RoomDoc::from_snapshot(&merged, crdt::Limits::default()).unwrap();
        let all = crdt::RoomDoc::from_snapshot(
            &crdt::merge_updates(updates.iter().map(Vec::as_slice)).unwrap(),
            crdt::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            doc.state_vector().unwrap(),
            all.state_vector().unwrap(),
            "nothing lost in the compaction"
        );
    }

    #[test]
    fn saved_reports_the_highest_seq_per_connection() {
        assert_eq!(highest_per_conn(vec![(1, 1), (2, 5), (1, 3), (2, 4)]), vec![(1, 3), (2, 5)]);
    }
}
