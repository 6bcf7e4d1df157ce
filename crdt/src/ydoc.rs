//! The yrs calls everything else goes through: decoding untrusted v1 bytes, integrating one update
//! in one transaction with yrs failures contained and yrs's pending state taken out, and encoding.
//!
//! What yrs 0.28.1 does, read in `transaction.rs` and `update.rs` and checked by tests:
//! - `TransactionMut::apply_update` integrates blocks one by one and can return
//!   `UpdateError::InvalidParent` part-way (a block whose parent is an item that is not a shared
//!   type). Earlier blocks stay integrated and the transaction commits on drop: the document is
//!   half-updated and nothing in yrs undoes it. The caller rebuilds (`journal.rs`).
//! - yrs has internal `unwrap`s and clock arithmetic on decoded values. A panic is caught and
//!   treated like that error. The transaction is then dropped (it commits) inside a second
//!   `catch_unwind`, so a commit that panics on the broken state cannot abort the process.
//! - Blocks whose dependencies are missing go to the store's pending update. yrs merges later
//!   leftovers into it, and that merge (with the `Skip` blocks it inserts for clock gaps) can
//!   produce overlapping skips; encoding such a pending update (`encode_state_as_update_v1`
//!   appends it) then shifts the clocks of the blocks after it, so peers receive items under the
//!   wrong ids and documents diverge (reproduced with seven single-client updates delivered out of
//!   order and snapshotted after each). Integration in memory is right; only the pending encoding
//!   is wrong. So pending state never stays in yrs: it is pruned after every update and the
//!   caller keeps the update's original bytes instead (`replica.rs`).
//! - Decoding pre-allocates from counts in the input with `try_reserve` (no abort), but a
//!   five-byte input can still make it reserve and zero gigabytes; clock arithmetic is `u32` and
//!   wraps; nested values are decoded by recursion. So every update is walked by `validate.rs`
//!   before yrs sees it.
//! - What yrs integrated is not always what it was sent: blocks it already has are skipped, even
//!   when the sender reused their ids for other content. An update that integrated exactly as sent
//!   (every client's range new and whole, nothing left pending) can be relayed as received; for
//!   any other, [`Integrated::relay`] is yrs's encoding of what this transaction added, so every
//!   peer receives what the server's document holds and nothing else.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::encoding::read::Error as ReadError;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update, WriteTxn,
};

use crate::validate::{Shape, validate_update};
use crate::{Error, Result};

/// A document configured like a Yjs one: text offsets in UTF-16 code units, deleted content
/// garbage-collected.
pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options { offset_kind: OffsetKind::Utf16, skip_gc: false, ..Options::default() })
}

/// Validates and decodes a v1 update from untrusted bytes without touching any document.
pub(crate) fn decode_update(bytes: &[u8]) -> Result<(Update, Shape)> {
    let shape = validate_update(bytes)?;
    match catch_unwind(|| Update::decode_v1(bytes)) {
        Ok(Ok(update)) => Ok((update, shape)),
        Ok(Err(e)) => Err(Error::MalformedUpdate(e)),
        Err(_) => Err(Error::MalformedUpdate(ReadError::Custom("the decoder panicked".into()))),
    }
}

/// Decodes a v1 state vector from untrusted bytes.
pub(crate) fn decode_state_vector(bytes: &[u8]) -> Result<StateVector> {
    if !leading_count_fits(bytes) {
        return Err(Error::MalformedStateVector(ReadError::UnexpectedValue));
    }
    StateVector::decode_v1(bytes).map_err(Error::MalformedStateVector)
}

/// Updates and state vectors both open with a count of entries, each at least one byte long: a
/// larger count only serves to make the decoder reserve memory.
fn leading_count_fits(bytes: &[u8]) -> bool {
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return n <= bytes.len() as u64;
        }
    }
    // Truncated or over-long: the decoder reports it.
    true
}

/// Per client, the clock the document's state vector must pass before a stashed update is worth
/// trying again.
pub(crate) type Waits = Vec<(ClientID, u32)>;

/// What peers need to receive for an integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Relay {
    /// Nothing changed.
    Nothing,
    /// The update integrated exactly as sent: its own bytes say it.
    Exact,
    /// What the transaction added, encoded by yrs from the document.
    Encoded(Vec<u8>),
}

/// Each client's clock in a document: its state vector, mirrored so that telling an update that
/// extends the document from one that overlaps it costs a lookup per client of the update, not a
/// walk over every client the document has ever seen.
pub(crate) type Clocks = HashMap<u64, u32>;

/// What integrating one update did.
pub(crate) struct Integrated {
    /// New blocks or deletions were integrated.
    pub(crate) changed: bool,
    /// Part of the update could not be integrated yet (it was dropped from yrs; the caller keeps
    /// the bytes), and what it waits for.
    pub(crate) pending: Option<Waits>,
    pub(crate) relay: Relay,
}

/// Integrates a decoded update into `doc` in one transaction. `shape` is what validation found in
/// its bytes; `clocks` mirrors the document's state vector and is kept in step.
///
/// The fast path, taken by every update that only extends the document: each client's range
/// starts at that client's clock, nothing is left pending, and yrs reports inserting exactly
/// those ranges. Then the update's bytes are what peers need. Anything else reads the document's
/// state vector and encodes what it gained since `clocks` (yrs's own `encode_update_v1` derives
/// its start from the transaction's insert set, which misses blocks released from pending).
///
/// On `Err` the document may be half-updated: the caller must discard or rebuild it.
pub(crate) fn integrate(doc: &Doc, update: Update, shape: &Shape, clocks: &mut Clocks) -> Result<Integrated> {
    let mut txn = doc.transact_mut();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        txn.apply_update(update).map_err(|e| Error::InvalidUpdate(e.to_string()))?;
        #[cfg(feature = "fault-injection")]
        crate::faults::on_integrate(&txn);
        let pending = pending_waits(&txn);
        if pending.is_some() {
            txn.prune_pending();
        }
        let extends = pending.is_none() && extends_exactly(&txn, shape, clocks);
        let (changed, relay) = if extends {
            for range in &shape.clients {
                clocks.insert(range.client, range.end);
            }
            let changed = !shape.clients.is_empty() || !txn.delete_set().is_empty();
            (changed, if changed { Relay::Exact } else { Relay::Nothing })
        } else {
            let after = txn.state_vector();
            // yrs integrates a block whose predecessors are missing but which depends on nothing
            // else behind a placeholder, where the state vector does not show it (Yjs would keep
            // it pending). Callers stash such updates before they get here; should one slip
            // through, it is refused and rolled back rather than left invisible to every peer.
            let hidden = txn.insert_set().iter().any(|(client, ranges)| {
                ranges.iter().next_back().is_some_and(|range| range.end > after.get(client))
            });
            if hidden {
                return Err(Error::InvalidUpdate("it would integrate blocks behind a hole".into()));
            }
            let grew =
                after.iter().any(|(client, &clock)| clock > clocks.get(&client.get()).copied().unwrap_or(0));
            let changed = grew || !txn.delete_set().is_empty();
            let relay = if changed { Relay::Encoded(encode_gained(&txn, clocks)) } else { Relay::Nothing };
            clocks.clear();
            clocks.extend(after.iter().map(|(client, &clock)| (client.get(), clock)));
            (changed, relay)
        };
        // Commit inside the guard, so observers and GC run where a panic is contained.
        txn.commit();
        Ok(Integrated { changed, pending, relay })
    }));
    // Dropping commits a transaction not committed yet. After a panic that commit works on a
    // broken store and may panic too; this is no longer unwinding, so it is caught.
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(txn)));
    match (outcome, dropped) {
        (Ok(Ok(integrated)), Ok(())) => Ok(integrated),
        (Ok(Err(e)), _) => Err(e),
        (Err(panic), _) | (Ok(Ok(_)), Err(panic)) => {
            Err(Error::InvalidUpdate(format!("yrs panicked: {}", panic_message(&*panic))))
        }
    }
}

/// Whether the update extended the document exactly: every client's range began at that
/// client's clock (nothing in it was known before), had no holes, and yrs reports inserting all of
/// it, so no block was skipped as already known, whatever its content.
fn extends_exactly(txn: &TransactionMut, shape: &Shape, clocks: &Clocks) -> bool {
    let inserted = txn.insert_set();
    if inserted.len() != shape.clients.len() {
        return false;
    }
    shape.clients.iter().all(|range| {
        !range.has_skip
            && clocks.get(&range.client).copied().unwrap_or(0) == range.start
            && inserted.iter().any(|(client, ranges)| {
                client.get() == range.client && {
                    let mut ranges = ranges.iter();
                    ranges.next() == Some(&(range.start..range.end)) && ranges.next().is_none()
                }
            })
    })
}

/// Every block the document gained beyond `before` (the state vector mirrored before the
/// transaction), and the deletions the transaction made. yrs's diff carries the document's whole
/// delete set; it is cut off and replaced by the transaction's own.
fn encode_gained(txn: &TransactionMut, before: &Clocks) -> Vec<u8> {
    let sv: StateVector = before.iter().map(|(&client, &clock)| (ClientID::new(client), clock)).collect();
    let mut out = txn.encode_diff_v1(&sv);
    let structs = crate::validate::struct_section_len(&out).expect("yrs encodes valid updates");
    out.truncate(structs);
    out.extend(txn.delete_set().encode_v1());
    out
}

/// Reads yrs's pending state: blocks wait for a client's clock to pass `missing` (yrs retries when
/// it does); deletions of unknown items wait for their client to advance at all.
fn pending_waits(txn: &TransactionMut) -> Option<Waits> {
    let store = ReadTxn::store(txn);
    let blocks = store.pending_update();
    let deletes = store.pending_ds();
    if blocks.is_none() && deletes.is_none() {
        return None;
    }
    let mut waits: Waits =
        blocks.map(|p| p.missing.iter().map(|(&c, &clock)| (c, clock)).collect()).unwrap_or_default();
    if let Some(deletes) = deletes {
        let sv = txn.state_vector();
        waits.extend(deletes.iter().map(|(&c, _)| (c, sv.get(&c))));
    }
    Some(waits)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "non-string payload"
    }
}

/// The integrated state of `doc` beyond `sv` as a v1 update, with the whole delete set. yrs's
/// pending state is always empty here (see above), so nothing un-integrable is ever served.
pub(crate) fn encode_diff(doc: &Doc, sv: &StateVector) -> Vec<u8> {
    doc.transact().encode_diff_v1(sv)
}

pub(crate) fn encode_state_vector(doc: &Doc) -> Vec<u8> {
    doc.transact().state_vector().encode_v1()
}

/// `n` updates inserting `chunk` at offset `i` of Y.Text `t`, in order: each depends on the one
/// before.
#[cfg(test)]
pub(crate) fn typing(n: usize, chunk: &str) -> Vec<Vec<u8>> {
    use yrs::{Text, Transact};
    let doc = new_doc();
    let text = doc.get_or_insert_text("t");
    (0..n)
        .map(|i| {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, i as u32, chunk);
            txn.encode_update_v1()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_count_must_fit_the_input() {
        let cases: &[(&[u8], bool)] = &[
            (&[], true),                              // empty: the decoder reports EOF
            (&[0], true),                             // zero entries
            (&[1, 0], true),                          // one entry, one byte left... fits
            (&[3, 0], false),                         // three entries in two bytes
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], false), // 2^32 - 1 entries
            (&[0x80, 0x80], true),                    // truncated var-uint: the decoder says so
        ];
        for (bytes, fits) in cases {
            assert_eq!(leading_count_fits(bytes), *fits, "{bytes:?}");
        }
    }

    #[test]
    fn count_bombs_are_refused_before_decoding() {
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode_update(&bomb), Err(Error::Refused(_))));
        assert!(matches!(decode_state_vector(&bomb), Err(Error::MalformedStateVector(_))));
    }

    #[test]
    fn integrate_reports_changes_and_prunes_pending() {
        let source = new_doc();
        let text = source.get_or_insert_text("t");
        let first = {
            let mut txn = source.transact_mut();
            yrs::Text::insert(&text, &mut txn, 0, "a");
            txn.encode_update_v1()
        };
        let second = {
            let mut txn = source.transact_mut();
            yrs::Text::insert(&text, &mut txn, 1, "b");
            txn.encode_update_v1()
        };
        let doc = new_doc();
        let clocks = std::cell::RefCell::new(Clocks::new());
        let apply = |bytes: &[u8]| {
            let (update, shape) = decode_update(bytes).unwrap();
            integrate(&doc, update, &shape, &mut clocks.borrow_mut()).unwrap()
        };
        let out = apply(&second);
        assert!(!out.changed);
        assert_eq!(out.relay, Relay::Nothing);
        let waits = out.pending.expect("second waits for first");
        assert_eq!(waits, vec![(source.client_id(), 0)]);
        assert!(doc.transact().store().pending_update().is_none(), "pruned");
        let out = apply(&first);
        assert!(out.changed && out.pending.is_none());
        assert_eq!(out.relay, Relay::Exact, "new and whole: relayed as sent");
        assert_eq!(clocks.borrow().get(&source.client_id().get()), Some(&1), "the mirror follows");
        let out = apply(&first);
        assert!(!out.changed, "a duplicate changes nothing");
        assert_eq!(out.relay, Relay::Nothing);
        // Both updates merged: the first half is known, only "b" is new.
        let both = yrs::merge_updates_v1([first.as_slice(), second.as_slice()]).unwrap();
        let out = apply(&both);
        assert!(out.changed);
        let Relay::Encoded(encoded) = out.relay else { panic!("an overlapping update is re-encoded") };
        let (relayed, shape) = decode_update(&encoded).unwrap();
        assert_eq!(shape.clients[0].start, 1, "only what was new: {shape:?}");
        drop(relayed);
    }
}
