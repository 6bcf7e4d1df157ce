//! Rollback journal: a base (the integrated state and the stash at the last checkpoint) plus every
//! step taken since, so that a replica yrs left half-updated can be rebuilt exactly as it was, and
//! the document's size can be estimated without encoding it.
//!
//! yrs transactions cannot be rolled back (`ydoc.rs`), and copying the document before every
//! update would make the hot path O(document). Instead the journal keeps what the replica was
//! built from. Recording an update is a `memcpy`; when the log outgrows the base, the base is
//! replaced by a fresh encoding (a checkpoint), so memory stays within about twice the encoded
//! document and encoding costs O(1) amortised per accepted byte.

use crate::Result;
use crate::replica::{Replica, Stashed};
use crate::ydoc::decode_update;

/// Below this the log is not worth a checkpoint even when the base is smaller: a fresh room would
/// otherwise re-encode its (tiny) document every few updates.
const MIN_CHECKPOINT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `Replica::apply` of these bytes.
    Apply,
    /// `Replica::unstash` of these bytes: a stashed update that proved invalid.
    Unstash,
}

#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// Integrated state at the last checkpoint (or the snapshot loaded); empty for a new document.
    base: Vec<u8>,
    /// The stash at the last checkpoint.
    base_stash: Vec<Stashed>,
    base_stash_bytes: usize,
    /// Bytes of the steps since the checkpoint, back to back.
    log: Vec<u8>,
    /// Kind and end offset in `log` of each step.
    steps: Vec<(Step, usize)>,
}

impl Journal {
    /// A journal whose base is a snapshot to be applied as an update.
    pub(crate) fn from_snapshot(snapshot: Vec<u8>) -> Self {
        Self { base: snapshot, ..Self::default() }
    }

    /// Size of the last measurement plus everything recorded since. Not exact in either direction
    /// (an update may repeat known blocks; a deletion may split blocks), close enough for a limit.
    pub(crate) fn approx_size(&self) -> usize {
        self.base.len().saturating_add(self.base_stash_bytes).saturating_add(self.log.len())
    }

    /// True when `approx_size` is an exact measurement of the current state.
    pub(crate) fn is_measured(&self) -> bool {
        self.steps.is_empty()
    }

    pub(crate) fn record(&mut self, step: Step, bytes: &[u8]) {
        self.log.extend_from_slice(bytes);
        self.steps.push((step, self.log.len()));
    }

    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.log.len() > self.base.len().max(MIN_CHECKPOINT_BYTES)
    }

    /// Makes the replica's current state the new base.
    pub(crate) fn checkpoint(&mut self, replica: &Replica) {
        self.base = replica.encode_integrated();
        self.base_stash = replica.stash.clone();
        self.base_stash_bytes = replica.stash_bytes();
        self.log.clear();
        self.steps.clear();
        // A burst of updates may have grown these far past what the next interval needs.
        self.log.shrink_to(MIN_CHECKPOINT_BYTES);
        self.steps.shrink_to(1024);
    }

    /// Builds a fresh replica from the base and the steps. Each was taken once before, in the
    /// same order, and integration is deterministic, so this reproduces the replica as it was after
    /// the last recorded step.
    pub(crate) fn replay(&self) -> Result<Replica> {
        let mut replica = Replica::new();
        if !self.base.is_empty() {
            let (update, shape) = decode_update(&self.base)?;
            replica.apply(&self.base, update, &shape)?;
        }
        replica.stash.extend(self.base_stash.iter().cloned());
        let mut start = 0;
        for &(step, end) in &self.steps {
            let bytes = &self.log[start..end];
            match step {
                Step::Apply => {
                    let (update, shape) = decode_update(bytes)?;
                    replica.apply(bytes, update, &shape)?;
                }
                Step::Unstash => {
                    replica.unstash(bytes);
                }
            }
            start = end;
        }
        Ok(replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies like `RoomDoc` does: every step recorded.
    fn step(replica: &mut Replica, journal: &mut Journal, bytes: &[u8]) {
        let (update, shape) = decode_update(bytes).unwrap();
        replica.apply(bytes, update, &shape).unwrap();
        journal.record(Step::Apply, bytes);
    }

    #[test]
    fn replay_reproduces_the_replica_across_checkpoints_and_unstash() {
        let updates = crate::ydoc::typing(40, "xyz");
        let mut replica = Replica::new();
        let mut journal = Journal::default();
        for (i, update) in updates.iter().enumerate().skip(1) {
            step(&mut replica, &mut journal, update);
            if i % 7 == 0 {
                journal.checkpoint(&replica);
            }
        }
        // Everything but the first update waits for it; drop one stashed update by hand.
        assert_eq!(replica.stash.len(), 39);
        replica.unstash(&updates[5]);
        journal.record(Step::Unstash, &updates[5]);
        let rebuilt = journal.replay().unwrap();
        assert_eq!(rebuilt.encode(), replica.encode());
        assert_eq!(rebuilt.stash.len(), 38);
    }

    #[test]
    fn size_estimate_and_checkpoint_threshold() {
        let updates = crate::ydoc::typing(3, "xyz");
        let mut replica = Replica::new();
        let mut journal = Journal::default();
        assert!(journal.is_measured());
        for update in &updates {
            step(&mut replica, &mut journal, update);
        }
        let logged: usize = updates.iter().map(Vec::len).sum();
        assert_eq!(journal.approx_size(), logged);
        assert!(!journal.is_measured());
        assert!(!journal.wants_checkpoint(), "under {MIN_CHECKPOINT_BYTES} bytes");
        journal.checkpoint(&replica);
        assert!(journal.is_measured());
        assert_eq!(journal.approx_size(), replica.encode().len());
        let big = vec![0u8; MIN_CHECKPOINT_BYTES + 1];
        journal.record(Step::Unstash, &big);
        assert!(journal.wants_checkpoint());
    }
}
