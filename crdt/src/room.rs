//! [`RoomDoc`]: one room's Yjs document, the size limits on it, and the all-or-nothing rule for
//! remote updates.

use yrs::Doc;

use crate::journal::Journal;
use crate::snapshot::{
    decode_state_vector, decode_update, encode_state, encode_state_vector, integrate, new_doc,
};
use crate::{Error, Limits, Result};

/// What applying an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The update added blocks or deletions (integrated, or held pending until their
    /// dependencies arrive). False for an update the document already had: no need to store
    /// the document again, though relaying it is harmless.
    pub changed: bool,
}

/// One room's document. Every method that changes it takes `&mut self`: the server keeps it behind
/// a mutex.
pub struct RoomDoc {
    doc: Doc,
    limits: Limits,
    journal: Journal,
}

impl std::fmt::Debug for RoomDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomDoc")
            .field("limits", &self.limits)
            .field("approx_size", &self.approx_size())
            .finish_non_exhaustive()
    }
}

impl RoomDoc {
    pub fn new(limits: Limits) -> Self {
        Self {
            doc: new_doc(),
            limits,
            journal: Journal::default(),
        }
    }

    /// Loads a stored snapshot (a v1 update; zero length means an empty document). The document
    /// limit is not applied: refusing to load would lose the room, while an oversize room only
    /// refuses further growth.
    pub fn from_snapshot(snapshot: &[u8], limits: Limits) -> Result<Self> {
        let doc = new_doc();
        if !snapshot.is_empty() {
            // On error `doc` is dropped, so a half-integrated snapshot never escapes.
            integrate(&doc, decode_update(snapshot)?)?;
        }
        Ok(Self {
            doc,
            limits,
            journal: Journal::new(snapshot.to_vec()),
        })
    }

    /// Applies a remote v1 update. It is decoded once, checked against the limits, and integrated
    /// in one transaction; no state is encoded unless the size estimate nears the limit or the
    /// journal is due a checkpoint.
    ///
    /// Every `Err` leaves the document exactly as it was (same state vector, same snapshot bytes):
    /// limits and decoding are checked before the document is touched, and if yrs fails part-way
    /// through integrating, the document is rebuilt from the journal.
    ///
    /// An update whose dependencies are missing is not an error: yrs holds it pending, it counts as
    /// a change, [`RoomDoc::snapshot`] keeps it, and it integrates when the dependencies arrive.
    pub fn apply_update(&mut self, update: &[u8]) -> Result<Applied> {
        let max = self.limits.max_update_bytes;
        if update.len() > max {
            return Err(Error::UpdateTooLarge {
                len: update.len(),
                max,
            });
        }
        let decoded = decode_update(update)?;
        self.check_doc_size(update.len())?;
        match integrate(&self.doc, decoded) {
            Ok(changed) => {
                if changed {
                    self.journal.record(update);
                    if self.journal.wants_checkpoint() {
                        self.checkpoint();
                    }
                }
                Ok(Applied { changed })
            }
            Err(e) => {
                // Replaying updates that were all integrated before cannot fail unless yrs is not
                // deterministic; if it ever did, the half-updated document is still the best
                // state there is, so it is kept.
                if let Ok(doc) = self.journal.replay() {
                    self.doc = doc;
                }
                Err(e)
            }
        }
    }

    /// Refuses an update of `len` bytes when the document plus the update would exceed the limit.
    /// The estimate only grows between measurements, so it is re-measured exactly (a checkpoint)
    /// before refusing; a refusal from an exact measurement costs nothing more.
    fn check_doc_size(&mut self, len: usize) -> Result<()> {
        let max = self.limits.max_doc_bytes;
        if self.journal.approx_size().saturating_add(len) <= max {
            return Ok(());
        }
        if !self.journal.is_measured() {
            self.checkpoint();
        }
        let size = self.journal.approx_size();
        if size.saturating_add(len) <= max {
            Ok(())
        } else {
            Err(Error::DocTooLarge { size, len, max })
        }
    }

    fn checkpoint(&mut self) {
        self.journal.checkpoint(encode_state(&self.doc));
    }

    /// The encoded v1 state vector (sync step 1).
    pub fn state_vector(&self) -> Vec<u8> {
        encode_state_vector(&self.doc)
    }

    /// A v1 update with everything the peer whose state vector this is lacks (sync step 2),
    /// including blocks and deletions still pending here, as Yjs does.
    pub fn diff(&self, remote_state_vector: &[u8]) -> Result<Vec<u8>> {
        let sv = decode_state_vector(remote_state_vector)?;
        Ok(yrs::ReadTxn::encode_state_as_update_v1(
            &yrs::Transact::transact(&self.doc),
            &sv,
        ))
    }

    /// The full state as a v1 update, pending blocks and deletions included.
    pub fn snapshot(&self) -> Vec<u8> {
        encode_state(&self.doc)
    }

    /// Encoded size at the last measurement plus the updates accepted since. O(1).
    pub fn approx_size(&self) -> usize {
        self.journal.approx_size()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The underlying document, for reading and for tests. Do not keep a clone of it that holds a
    /// transaction open across calls on this `RoomDoc`: `apply_update` would wait for it.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }
}
