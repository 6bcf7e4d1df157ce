//! [`Replica`]: a yrs document plus the stash of updates still waiting for their dependencies,
//! kept as the bytes the client sent.
//!
//! yrs cannot be trusted to encode its own pending state (`ydoc.rs`), so the stash replaces it:
//! an update that leaves anything pending is kept whole, tried again once the clients it waits
//! for have advanced (re-applying skips what already integrated), and merged into snapshots
//! from its original bytes. Sync step 2 answers carry only integrated state, as a Yjs peer can
//! always integrate what it is sent.

use yrs::{Doc, StateVector, Update};

use crate::Result;
use crate::ydoc::{Integrated, Waits, encode_diff, integrate, new_doc, state_vector};

/// Beyond this many stashed updates the oldest is dropped: each changed update checks every entry,
/// and a client whose update is dropped still has it and sends it again on its next resync.
const MAX_STASHED: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Stashed {
    pub(crate) bytes: Vec<u8>,
    waits: Waits,
}

pub(crate) struct Replica {
    pub(crate) doc: Doc,
    /// In arrival order, without repeats, so that encoding is deterministic.
    pub(crate) stash: Vec<Stashed>,
}

impl Replica {
    pub(crate) fn new() -> Self {
        Self { doc: new_doc(), stash: Vec::new() }
    }

    /// Integrates `update` (decoded from `bytes`). Returns whether the replica changed: new blocks
    /// or deletions, or an update newly stashed. Applying a stashed update again replaces its
    /// entry.
    ///
    /// On `Err` the document may be half-updated and the replica must be rebuilt.
    pub(crate) fn apply(&mut self, bytes: &[u8], update: Update) -> Result<bool> {
        let Integrated { changed, pending } = integrate(&self.doc, update)?;
        let was_stashed = self.unstash(bytes);
        match pending {
            Some(waits) => {
                if self.stash.len() >= MAX_STASHED {
                    self.stash.remove(0);
                }
                self.stash.push(Stashed { bytes: bytes.to_vec(), waits });
                Ok(changed || !was_stashed)
            }
            None => Ok(changed),
        }
    }

    /// Removes a stashed update; returns whether it was there.
    pub(crate) fn unstash(&mut self, bytes: &[u8]) -> bool {
        let before = self.stash.len();
        self.stash.retain(|s| s.bytes != bytes);
        self.stash.len() != before
    }

    pub(crate) fn is_stashed(&self, bytes: &[u8]) -> bool {
        self.stash.iter().any(|s| s.bytes == bytes)
    }

    /// Stashed updates worth another try: some client they wait for has moved past the clock
    /// recorded when they were stashed.
    pub(crate) fn ready(&self) -> Vec<Vec<u8>> {
        if self.stash.is_empty() {
            return Vec::new();
        }
        let sv = state_vector(&self.doc);
        self.stash
            .iter()
            .filter(|s| s.waits.iter().any(|(c, clock)| sv.get(c) > *clock))
            .map(|s| s.bytes.clone())
            .collect()
    }

    pub(crate) fn stash_bytes(&self) -> usize {
        self.stash.iter().map(|s| s.bytes.len()).sum()
    }

    /// Integrated state only.
    pub(crate) fn encode_integrated(&self) -> Vec<u8> {
        encode_diff(&self.doc, &StateVector::default())
    }

    /// Everything: the integrated state and every stashed update, as one v1 update.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let integrated = self.encode_integrated();
        if self.stash.is_empty() {
            return integrated;
        }
        // yrs's block-level merge of original updates: unlike its in-memory pending, these
        // carry no overlapping skips. Every input came from a decoder or an encoder, so the merge
        // cannot fail; if it ever did, the stash is left out rather than the snapshot lost.
        let inputs =
            std::iter::once(integrated.as_slice()).chain(self.stash.iter().map(|s| s.bytes.as_slice()));
        let merged = std::panic::catch_unwind(|| yrs::merge_updates_v1(inputs));
        match merged {
            Ok(Ok(merged)) => merged,
            _ => integrated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ydoc::decode_update;

    fn apply(replica: &mut Replica, bytes: &[u8]) -> bool {
        replica.apply(bytes, decode_update(bytes).unwrap()).unwrap()
    }

    #[test]
    fn stash_keeps_one_copy_and_knows_when_to_retry() {
        let updates = crate::ydoc::typing(3, "x");
        let mut replica = Replica::new();
        assert!(apply(&mut replica, &updates[2]), "stashing is a change");
        assert!(!apply(&mut replica, &updates[2]), "the same bytes again are not");
        assert_eq!(replica.stash.len(), 1);
        assert!(replica.ready().is_empty(), "nothing it waits for has arrived");
        // yrs records the clock a client had when a block stopped, so any progress of that
        // client makes the update worth a try; a try that still stops waits for further progress.
        apply(&mut replica, &updates[0]);
        assert_eq!(replica.ready(), vec![updates[2].clone()]);
        assert!(!apply(&mut replica, &updates[2]), "tried too early: nothing new");
        assert!(replica.is_stashed(&updates[2]));
        assert!(replica.ready().is_empty());
        apply(&mut replica, &updates[1]);
        assert_eq!(replica.ready(), vec![updates[2].clone()]);
        assert!(apply(&mut replica, &updates[2]));
        assert!(replica.stash.is_empty());
        assert_eq!(replica.encode(), replica.encode_integrated());
    }

    #[test]
    fn stash_is_bounded_and_drops_the_oldest() {
        let updates = crate::ydoc::typing(MAX_STASHED + 2, "x");
        let mut replica = Replica::new();
        for update in &updates[1..] {
            apply(&mut replica, update);
        }
        assert_eq!(replica.stash.len(), MAX_STASHED);
        assert!(!replica.is_stashed(&updates[1]), "the oldest went first");
        assert!(replica.is_stashed(&updates[MAX_STASHED + 1]));
    }
}
