//! [`Replica`]: a yrs document plus the stash of updates still waiting for their dependencies,
//! kept as the bytes the client sent.
//!
//! yrs cannot be trusted to encode its own pending state (`ydoc.rs`), so the stash replaces it:
//! an update that leaves anything pending is kept whole, tried again once the clients it waits
//! for have advanced (re-applying skips what already integrated), and merged into snapshots
//! from its original bytes. Sync step 2 answers carry only integrated state, as a Yjs peer can
//! always integrate what it is sent.

use yrs::{ClientID, Doc, StateVector, Update};

use crate::Result;
use crate::validate::{Shape, split_at_holes};
use crate::ydoc::{Clocks, Integrated, Relay, Waits, decode_update, encode_diff, integrate, new_doc};

/// Beyond this many stashed updates the oldest is dropped: each changed update checks every entry,
/// and a client whose update is dropped still has it and sends it again on its next resync.
const MAX_STASHED: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Stashed {
    pub(crate) bytes: Vec<u8>,
    waits: Waits,
}

/// What [`Replica::apply`] did.
pub(crate) struct Outcome {
    /// New blocks or deletions integrated, or the stash changed.
    pub(crate) changed: bool,
    /// Part of the update waits in the stash.
    pub(crate) pending: bool,
    pub(crate) relay: Relay,
}

pub(crate) struct Replica {
    pub(crate) doc: Doc,
    /// The document's state vector, kept in step by every integration.
    clocks: Clocks,
    /// In arrival order, without repeats, so that encoding is deterministic.
    pub(crate) stash: Vec<Stashed>,
}

impl Replica {
    pub(crate) fn new() -> Self {
        Self { doc: new_doc(), clocks: Clocks::new(), stash: Vec::new() }
    }

    /// Integrates `update` (decoded from `bytes`, with the `shape` validation found) and says
    /// what it did. Applying a stashed update again replaces its entry.
    ///
    /// As Yjs does, the structs of a client that follow a clock the document does not have wait
    /// (stashed) until that client has advanced, even those that depend on nothing: yrs alone
    /// would integrate them behind a placeholder that hides them from the state vector (see
    /// `ydoc::integrate`). The rest of such an update integrates now.
    ///
    /// On `Err` the document may be half-updated and the replica must be rebuilt.
    pub(crate) fn apply(&mut self, bytes: &[u8], update: Update, shape: &Shape) -> Result<Outcome> {
        let was_stashed = self.unstash(bytes);
        let gapped = shape.clients.iter().any(|range| self.clock(range.client) < range.needs);
        let split = if gapped { split_at_holes(bytes, |client| self.clock(client))? } else { None };
        let Some(split) = split else {
            let Integrated { changed, pending, relay } =
                integrate(&self.doc, update, shape, &mut self.clocks)?;
            let newly_stashed = pending.as_ref().is_some_and(|_| !was_stashed);
            let is_pending = pending.is_some();
            if let Some(waits) = pending {
                self.stash(bytes, waits);
            }
            return Ok(Outcome { changed: changed || newly_stashed, pending: is_pending, relay });
        };
        drop(update);
        let waits = split.waits.iter().map(|&(client, clock)| (ClientID::new(client), clock - 1)).collect();
        let stash_changed = !was_stashed || split.later != bytes;
        self.stash(&split.later, waits);
        let (update, shape) = decode_update(&split.now)?;
        let Integrated { changed, pending, relay } = integrate(&self.doc, update, &shape, &mut self.clocks)?;
        if let Some(waits) = pending {
            self.stash(&split.now, waits);
        }
        // What integrated is the first part, not the update as sent.
        let relay = match relay {
            Relay::Exact => Relay::Encoded(split.now),
            other => other,
        };
        Ok(Outcome { changed: changed || stash_changed, pending: true, relay })
    }

    fn stash(&mut self, bytes: &[u8], waits: Waits) {
        if self.stash.len() >= MAX_STASHED {
            self.stash.remove(0);
        }
        self.stash.push(Stashed { bytes: bytes.to_vec(), waits });
    }

    /// A client's clock in the document (0 for a client it has never seen).
    fn clock(&self, client: u64) -> u32 {
        self.clocks.get(&client).copied().unwrap_or(0)
    }

    /// Removes a stashed update; returns whether it was there.
    pub(crate) fn unstash(&mut self, bytes: &[u8]) -> bool {
        let before = self.stash.len();
        self.stash.retain(|s| s.bytes != bytes);
        self.stash.len() != before
    }

    #[cfg(test)]
    pub(crate) fn is_stashed(&self, bytes: &[u8]) -> bool {
        self.stash.iter().any(|s| s.bytes == bytes)
    }

    /// Stashed updates worth another try: some client they wait for has moved past the clock
    /// recorded when they were stashed.
    pub(crate) fn ready(&self) -> Vec<Vec<u8>> {
        self.stash
            .iter()
            .filter(|s| s.waits.iter().any(|(c, clock)| self.clock(c.get()) > *clock))
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

    fn apply(replica: &mut Replica, bytes: &[u8]) -> bool {
        let (update, shape) = decode_update(bytes).unwrap();
        replica.apply(bytes, update, &shape).unwrap().changed
    }

    #[test]
    fn stash_keeps_one_copy_and_knows_when_to_retry() {
        let updates = crate::ydoc::typing(3, "x");
        let mut replica = Replica::new();
        assert!(apply(&mut replica, &updates[2]), "stashing is a change");
        assert!(!apply(&mut replica, &updates[2]), "the same bytes again are not");
        assert_eq!(replica.stash.len(), 1);
        assert!(replica.ready().is_empty(), "nothing it waits for has arrived");
        // It starts at clock 2: worth a try only once the client has reached it.
        apply(&mut replica, &updates[0]);
        assert!(replica.ready().is_empty(), "clock 1 still leaves a hole");
        assert!(!apply(&mut replica, &updates[2]), "tried too early: nothing new");
        assert!(replica.is_stashed(&updates[2]));
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
