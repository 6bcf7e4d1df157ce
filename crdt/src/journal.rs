//! Rollback journal: a base snapshot plus every update accepted since, so that a document yrs left
//! half-updated can be rebuilt exactly as it was, and the document's size can be estimated without
//! encoding it.
//!
//! yrs transactions cannot be rolled back (see `snapshot.rs`), and copying the document before
//! every update would make the hot path O(document). Instead the journal keeps what the document
//! was built from. Appending an update is a `memcpy`; when the log outgrows the base, the base is
//! replaced by a fresh snapshot (a checkpoint), so memory stays within about twice the encoded
//! document and encoding costs O(1) amortised per accepted byte.

use yrs::Doc;

use crate::snapshot::{decode_update, integrate, new_doc};
use crate::Result;

/// Below this the log is not worth a checkpoint even when the base is smaller: a fresh room would
/// otherwise re-encode its (tiny) document every few updates.
const MIN_CHECKPOINT_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// v1 state at the last checkpoint; empty for a new document.
    base: Vec<u8>,
    /// Updates accepted since the checkpoint, back to back.
    log: Vec<u8>,
    /// End offset in `log` of each update.
    ends: Vec<usize>,
}

impl Journal {
    pub(crate) fn new(base: Vec<u8>) -> Self {
        Self {
            base,
            ..Self::default()
        }
    }

    /// Size of the last measurement plus everything accepted since. Not exact in either direction
    /// (an update may repeat known blocks; a deletion may split blocks), close enough for a limit.
    pub(crate) fn approx_size(&self) -> usize {
        self.base.len().saturating_add(self.log.len())
    }

    /// True when `approx_size` is an exact measurement of the current state.
    pub(crate) fn is_measured(&self) -> bool {
        self.ends.is_empty()
    }

    pub(crate) fn record(&mut self, update: &[u8]) {
        self.log.extend_from_slice(update);
        self.ends.push(self.log.len());
    }

    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.log.len() > self.base.len().max(MIN_CHECKPOINT_BYTES)
    }

    /// Replaces base and log with `snapshot`, the current state encoded.
    pub(crate) fn checkpoint(&mut self, snapshot: Vec<u8>) {
        self.base = snapshot;
        self.log.clear();
        self.ends.clear();
        // A burst of updates may have grown these far past what the next interval needs.
        self.log.shrink_to(MIN_CHECKPOINT_BYTES);
        self.ends.shrink_to(1024);
    }

    /// Builds a fresh document from the base and the log. Every piece was integrated once before
    /// in the same order, and integration is deterministic, so this reproduces the document as it
    /// was after the last accepted update.
    pub(crate) fn replay(&self) -> Result<Doc> {
        let doc = new_doc();
        if !self.base.is_empty() {
            integrate(&doc, decode_update(&self.base)?)?;
        }
        let mut start = 0;
        for &end in &self.ends {
            integrate(&doc, decode_update(&self.log[start..end])?)?;
            start = end;
        }
        Ok(doc)
    }
}
