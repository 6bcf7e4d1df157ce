//! [`RoomDoc`]: one room's Yjs document, the size limits on it, the all-or-nothing rule for
//! remote updates, what peers must be sent of each, and the containment of yrs failures; and
//! [`merge_snapshots`].

use std::cell::OnceCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::Doc;

use crate::journal::{Journal, Step};
use crate::replica::Replica;
use crate::ydoc::{
    Relay, decode_state_vector, decode_update, encode_diff, encode_state_vector, panic_message,
};
use crate::{Error, Limits, Result};

/// What applying an update did, and what the other clients of the room must be sent for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The update added blocks or deletions, or was stashed to wait for its dependencies. False
    /// for an update the document already had: no need to store the document again.
    pub changed: bool,
    /// Part of the update waits for updates this document has not seen. It is kept (in
    /// snapshots too) and integrates when they arrive; the sender has them, so answering with a
    /// sync step 1 brings them soonest.
    pub pending: bool,
    /// The update integrated exactly as sent: relay its own bytes to every other client.
    pub relay_original: bool,
    /// Updates to relay after it, to every client including the sender: yrs's encoding of what
    /// integrated when the update overlapped what the document had (so a client that reuses ids
    /// for other content cannot make peers diverge), and of stashed updates it released. A
    /// stashed update reaches no one until it integrates.
    pub relay_encoded: Vec<Vec<u8>>,
}

impl Applied {
    /// What the update itself integrated.
    fn relay_update(&mut self, relay: Relay) {
        match relay {
            Relay::Nothing => {}
            Relay::Exact => self.relay_original = true,
            Relay::Encoded(bytes) => self.relay_encoded.push(bytes),
        }
    }

    /// What a stashed update (`stashed`, its bytes) integrated once released.
    fn relay_released(&mut self, relay: Relay, stashed: &[u8]) {
        match relay {
            Relay::Nothing => {}
            Relay::Exact => self.relay_encoded.push(stashed.to_vec()),
            Relay::Encoded(bytes) => self.relay_encoded.push(bytes),
        }
    }
}

/// One room's document. Every method that changes it takes `&mut self`: the server keeps it
/// behind a mutex.
///
/// A panic inside yrs while reading or encoding the document means its state is broken beyond
/// what the journal can undo: the document is then *poisoned*, and every later call answers
/// [`Error::Poisoned`] instead of touching it, so the caller can drop it and reload the room.
pub struct RoomDoc {
    replica: Replica,
    limits: Limits,
    journal: Journal,
    /// Why yrs failed on this document, once it has.
    poisoned: OnceCell<String>,
}

impl std::fmt::Debug for RoomDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomDoc")
            .field("limits", &self.limits)
            .field("approx_size", &self.approx_size())
            .field("stashed", &self.replica.stash.len())
            .finish_non_exhaustive()
    }
}

impl RoomDoc {
    pub fn new(limits: Limits) -> Self {
        Self { replica: Replica::new(), limits, journal: Journal::default(), poisoned: OnceCell::new() }
    }

    /// Loads a stored snapshot (a v1 update; zero length means an empty document). The document
    /// limit is not applied: refusing to load would lose the room, while an oversize room only
    /// refuses further growth.
    pub fn from_snapshot(snapshot: &[u8], limits: Limits) -> Result<Self> {
        // On error the replica is dropped, so a half-integrated snapshot never escapes; a panic
        // is caught like any other failure to load.
        let load = || {
            let mut replica = Replica::new();
            if !snapshot.is_empty() {
                let (update, shape) = decode_update(snapshot)?;
                replica.apply(snapshot, update, &shape)?;
            }
            #[cfg(feature = "fault-injection")]
            crate::faults::on_load(&replica.doc);
            Ok::<_, Error>(replica)
        };
        let replica = match catch_unwind(AssertUnwindSafe(load)) {
            Ok(result) => result?,
            Err(panic) => return Err(Error::Poisoned(panic_message(&*panic).to_owned())),
        };
        let journal = Journal::from_snapshot(snapshot.to_vec());
        Ok(Self { replica, limits, journal, poisoned: OnceCell::new() })
    }

    /// Runs `f` on the document unless it is poisoned; a panic in it poisons the document.
    fn guarded<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.refuse_if_poisoned()?;
        self.settle(catch_unwind(AssertUnwindSafe(|| f(self))))
    }

    /// [`RoomDoc::guarded`] for changes.
    fn guarded_mut<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.refuse_if_poisoned()?;
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut *self)));
        self.settle(outcome)
    }

    fn refuse_if_poisoned(&self) -> Result<()> {
        match self.poisoned.get() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// The result of a guarded call; a panic poisons the document.
    fn settle<T>(&self, outcome: std::thread::Result<Result<T>>) -> Result<T> {
        outcome.unwrap_or_else(|panic| Err(self.poison(panic_message(&*panic))))
    }

    fn poison(&self, why: &str) -> Error {
        let why = self.poisoned.get_or_init(|| why.to_owned());
        Error::Poisoned(why.clone())
    }

    /// Whether yrs has failed on this document (see [`Error::Poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.get().is_some()
    }

    /// Applies a remote v1 update. It is decoded once, checked against the limits and integrated
    /// in one transaction; nothing is encoded unless the size estimate nears the limit or the
    /// journal is due a checkpoint.
    ///
    /// Every `Err` leaves the document exactly as it was (same state vector, same snapshot bytes):
    /// limits and decoding are checked before the document is touched, and if yrs fails part-way
    /// through integrating, the document is rebuilt from the journal.
    ///
    /// An update whose dependencies are missing is not an error (see [`Applied::pending`]).
    pub fn apply_update(&mut self, update: &[u8]) -> Result<Applied> {
        let max = self.limits.max_update_bytes;
        if update.len() > max {
            return Err(Error::UpdateTooLarge { len: update.len(), max });
        }
        self.guarded_mut(|room| room.integrate(update))
    }

    /// [`RoomDoc::apply_update`] for an update another server node holding this room sent: not
    /// bounded by `max_update_bytes`, which bounds what one client may send at once, because a
    /// node's sync reply carries everything the asking node lacks, up to a whole document. The
    /// document limit still applies.
    pub fn apply_peer_update(&mut self, update: &[u8]) -> Result<Applied> {
        self.guarded_mut(|room| room.integrate(update))
    }

    fn integrate(&mut self, update: &[u8]) -> Result<Applied> {
        let (decoded, shape) = decode_update(update)?;
        self.check_doc_size(update.len())?;
        let outcome = match self.replica.apply(update, decoded, &shape) {
            Ok(outcome) => outcome,
            Err(e) => {
                self.rollback()?;
                return Err(e);
            }
        };
        let changed = outcome.changed;
        let mut applied = Applied { changed, pending: outcome.pending, ..Applied::default() };
        applied.relay_update(outcome.relay);
        if changed {
            self.journal.record(Step::Apply, update);
            self.retry_stashed(&mut applied)?;
        }
        if self.journal.wants_checkpoint() {
            self.journal.checkpoint(&self.replica);
        }
        Ok(applied)
    }

    /// Tries stashed updates whose dependencies may have arrived, adding what they integrate to
    /// `applied`'s relays. Each try is its own journal step, so a stashed update that now fails in
    /// yrs (an attacker can stash an item whose parent arrives later as plain text) is rolled back
    /// alone and dropped, and cannot block the updates that come after it.
    fn retry_stashed(&mut self, applied: &mut Applied) -> Result<()> {
        loop {
            let mut progress = false;
            for bytes in self.replica.ready() {
                let outcome =
                    decode_update(&bytes).and_then(|(u, shape)| self.replica.apply(&bytes, u, &shape));
                match outcome {
                    Ok(outcome) => {
                        self.journal.record(Step::Apply, &bytes);
                        progress |= outcome.changed;
                        // A released update was never relayed: the room sends it now.
                        applied.relay_released(outcome.relay, &bytes);
                    }
                    Err(_) => {
                        self.rollback()?;
                        self.replica.unstash(&bytes);
                        self.journal.record(Step::Unstash, &bytes);
                    }
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Rebuilds the replica as of the last journal step. Replaying steps that all succeeded before
    /// cannot fail unless yrs is not deterministic; if it ever did, the document is in no known
    /// state: poisoned.
    fn rollback(&mut self) -> Result<()> {
        match self.journal.replay() {
            Ok(replica) => {
                self.replica = replica;
                Ok(())
            }
            Err(error) => Err(self.poison(&format!("rollback failed: {error}"))),
        }
    }

    /// Refuses an update of `len` bytes when the document plus the update would exceed the limit.
    /// The estimate only grows between measurements, so it is re-measured exactly (a checkpoint)
    /// before refusing; a refusal right after a measurement costs nothing more.
    fn check_doc_size(&mut self, len: usize) -> Result<()> {
        let max = self.limits.max_doc_bytes;
        if self.journal.approx_size().saturating_add(len) <= max {
            return Ok(());
        }
        if !self.journal.is_measured() {
            self.journal.checkpoint(&self.replica);
        }
        let size = self.journal.approx_size();
        if size.saturating_add(len) <= max { Ok(()) } else { Err(Error::DocTooLarge { size, len, max }) }
    }

    /// The encoded v1 state vector (sync step 1).
    pub fn state_vector(&self) -> Result<Vec<u8>> {
        self.guarded(|room| {
            room.fault_check();
            Ok(encode_state_vector(&room.replica.doc))
        })
    }

    /// A v1 update with everything integrated here that the peer with this state vector lacks,
    /// and the whole delete set (sync step 2). Stashed updates are not included: a peer is only
    /// sent what it can integrate, and receives the stashed ones once they integrate.
    pub fn diff(&self, remote_state_vector: &[u8]) -> Result<Vec<u8>> {
        let sv = decode_state_vector(remote_state_vector)?;
        self.guarded(|room| {
            room.fault_check();
            Ok(encode_diff(&room.replica.doc, &sv))
        })
    }

    /// The full state as a v1 update, stashed updates included: what is stored.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        self.guarded(|room| {
            room.fault_check();
            Ok(room.replica.encode())
        })
    }

    /// Under the `fault-injection` feature (tests only), panics like a broken yrs store would
    /// when the document holds [`crate::faults::PANIC_ON_ENCODE`].
    fn fault_check(&self) {
        #[cfg(feature = "fault-injection")]
        crate::faults::on_encode(&self.replica.doc);
    }

    /// The text of the root `Y.Text` named `name` (a session's code is `code`); `None` when the
    /// document has no such root. Reads only: no root is created.
    pub fn text(&self, name: &str) -> Option<String> {
        use yrs::{GetString, ReadTxn, Transact};
        let txn = self.replica.doc.transact();
        txn.get_text(name).map(|text| text.get_string(&txn))
    }

    /// Encoded size at the last measurement plus the updates accepted since. O(1).
    pub fn approx_size(&self) -> usize {
        self.journal.approx_size()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The underlying document, for reading and for tests. It is replaced when a failed update is
    /// rolled back, so do not keep a clone (or observers) on it; and a clone holding a transaction
    /// open would make `apply_update` wait.
    pub fn doc(&self) -> &Doc {
        &self.replica.doc
    }
}

/// Most updates handed to one call of yrs's merge. Its cost per update is flat up to about this
/// many small updates (0.8 µs each) and grows past it (4 µs each for 1,000 updates of one writer,
/// 16 µs for 4,000 of ten: a client's adjacent strings are joined by copying), so more are merged
/// as a tree of merges of at most this many: 1.2 µs per update at any count.
const MERGE_FAN_IN: usize = 64;

/// Several v1 updates as one, by yrs's block-level merge (no document is built: cheap enough to
/// run per batch of updates a room persists together, and per round of its fan-out). For updates
/// a document already accepted; a panic inside yrs is caught and reported as
/// [`Error::InvalidUpdate`].
pub fn merge_updates<'a>(updates: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>> {
    let updates: Vec<&[u8]> = updates.into_iter().collect();
    if updates.len() <= MERGE_FAN_IN {
        return merge_flat(&updates);
    }
    let mut level = updates.chunks(MERGE_FAN_IN).map(merge_flat).collect::<Result<Vec<_>>>()?;
    while level.len() > 1 {
        level = level
            .chunks(MERGE_FAN_IN)
            .map(|chunk| merge_flat(&chunk.iter().map(Vec::as_slice).collect::<Vec<_>>()))
            .collect::<Result<Vec<_>>>()?;
    }
    Ok(level.pop().unwrap_or_default())
}

fn merge_flat(updates: &[&[u8]]) -> Result<Vec<u8>> {
    match std::panic::catch_unwind(|| yrs::merge_updates_v1(updates.iter().copied())) {
        Ok(Ok(merged)) => Ok(merged),
        Ok(Err(error)) => Err(Error::MalformedUpdate(error)),
        Err(_) => Err(Error::InvalidUpdate("yrs panicked while merging updates".into())),
    }
}

/// CRDT merge of two v1 snapshots: the result holds every insertion and deletion from both, in
/// either order, and anything either was holding for missing dependencies. A zero-length input
/// means "no snapshot"; two of them merge to zero length.
pub fn merge_snapshots(a: &[u8], b: &[u8]) -> Result<Vec<u8>> {
    if a.is_empty() && b.is_empty() {
        return Ok(Vec::new());
    }
    let unlimited = Limits { max_update_bytes: usize::MAX, max_doc_bytes: usize::MAX };
    // Integrating (rather than yrs's block-level merge alone) validates both inputs and yields a
    // compact snapshot with deleted content collected.
    let mut room = RoomDoc::from_snapshot(a, unlimited)?;
    if !b.is_empty() {
        room.apply_update(b)?;
    }
    room.snapshot()
}

/// Whether `update` stands alone: it integrates into an empty document with nothing left waiting
/// for missing dependencies (a room's whole state does; one increment of it usually does not).
/// A panic inside yrs counts as no.
pub fn is_self_contained(update: &[u8]) -> bool {
    let unlimited = Limits { max_update_bytes: usize::MAX, max_doc_bytes: usize::MAX };
    std::panic::catch_unwind(|| {
        let mut room = RoomDoc::new(unlimited);
        room.apply_update(update).is_ok_and(|applied| !applied.pending) && room.snapshot().is_ok()
    })
    .unwrap_or(false)
}
