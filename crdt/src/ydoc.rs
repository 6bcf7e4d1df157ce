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
//!   five-byte input can still make it reserve and zero gigabytes; a leading count larger than the
//!   input is refused before yrs sees it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::encoding::read::Error as ReadError;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update, WriteTxn,
};

use crate::{Error, Result};

/// A document configured like a Yjs one: text offsets in UTF-16 code units, deleted content
/// garbage-collected.
pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options { offset_kind: OffsetKind::Utf16, skip_gc: false, ..Options::default() })
}

/// Decodes a v1 update from untrusted bytes without touching any document.
pub(crate) fn decode_update(bytes: &[u8]) -> Result<Update> {
    if !leading_count_fits(bytes) {
        return Err(Error::MalformedUpdate(ReadError::UnexpectedValue));
    }
    match catch_unwind(|| Update::decode_v1(bytes)) {
        Ok(Ok(update)) => Ok(update),
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

/// What integrating one update did.
pub(crate) struct Integrated {
    /// New blocks or deletions were integrated.
    pub(crate) changed: bool,
    /// Part of the update could not be integrated yet (it was dropped from yrs; the caller keeps
    /// the bytes), and what it waits for.
    pub(crate) pending: Option<Waits>,
}

/// Integrates a decoded update into `doc` in one transaction.
///
/// On `Err` the document may be half-updated: the caller must discard or rebuild it.
pub(crate) fn integrate(doc: &Doc, update: Update) -> Result<Integrated> {
    let mut txn = doc.transact_mut();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        txn.apply_update(update)?;
        let changed = txn.has_changes();
        let pending = pending_waits(&txn);
        if pending.is_some() {
            txn.prune_pending();
        }
        // Commit inside the guard, so observers and GC run where a panic is contained.
        txn.commit();
        Ok::<_, yrs::error::UpdateError>(Integrated { changed, pending })
    }));
    // Dropping commits a transaction not committed yet. After a panic that commit works on a
    // broken store and may panic too; this is no longer unwinding, so it is caught.
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(txn)));
    match (outcome, dropped) {
        (Ok(Ok(integrated)), Ok(())) => Ok(integrated),
        (Ok(Err(e)), _) => Err(Error::InvalidUpdate(e.to_string())),
        (Err(panic), _) | (Ok(Ok(_)), Err(panic)) => {
            Err(Error::InvalidUpdate(format!("yrs panicked: {}", panic_message(&*panic))))
        }
    }
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
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

pub(crate) fn state_vector(doc: &Doc) -> StateVector {
    doc.transact().state_vector()
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
        assert!(matches!(decode_update(&bomb), Err(Error::MalformedUpdate(_))));
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
        let out = integrate(&doc, decode_update(&second).unwrap()).unwrap();
        assert!(!out.changed);
        let waits = out.pending.expect("second waits for first");
        assert_eq!(waits, vec![(source.client_id(), 0)]);
        assert!(doc.transact().store().pending_update().is_none(), "pruned");
        let out = integrate(&doc, decode_update(&first).unwrap()).unwrap();
        assert!(out.changed && out.pending.is_none());
        let out = integrate(&doc, decode_update(&first).unwrap()).unwrap();
        assert!(!out.changed, "a duplicate changes nothing");
    }
}
