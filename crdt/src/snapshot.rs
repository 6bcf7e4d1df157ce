//! The yrs calls every entry point shares: decoding untrusted v1 bytes, integrating an update in one
//! transaction with yrs failures contained, encoding state; and [`merge_snapshots`] built on them.
//!
//! What yrs 0.28 does with a decoded update (read in `transaction.rs` and `update.rs`):
//! - `TransactionMut::apply_update` integrates blocks one by one and can return
//!   `UpdateError::InvalidParent` part-way, when a block names as its parent an item that is not a
//!   shared type. The blocks before it stay integrated and the transaction commits on drop: the
//!   document is half-updated. Nothing in yrs undoes it, so the caller must (`journal.rs`).
//! - The same error can come from the pending-update retry at the end of `apply_update`, after the
//!   stash of pending blocks has been taken out of the store: those blocks are lost too.
//! - yrs has internal `unwrap`s and arithmetic on decoded clocks. A panic is caught here and
//!   treated like the error above. The transaction is then dropped (it commits) in a second
//!   `catch_unwind`, so a commit that panics on the broken state does not abort the process.
//! - Decoding pre-allocates from counts in the input (`try_reserve`, so no abort), but a five-byte
//!   input can still make it reserve and zero gigabytes; a count larger than the input is refused
//!   before yrs sees it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update};

use crate::{Error, Result};

/// A document configured like a Yjs one: text offsets in UTF-16 code units, deleted content
/// garbage-collected.
pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        skip_gc: false,
        ..Options::default()
    })
}

/// Decodes a v1 update from untrusted bytes without touching any document.
pub(crate) fn decode_update(bytes: &[u8]) -> Result<Update> {
    // Both v1 updates and state vectors open with a count of entries, each of which takes at
    // least one byte: a larger count is a lie meant to make the decoder reserve memory.
    if !leading_count_fits(bytes) {
        return Err(Error::MalformedUpdate(yrs::encoding::read::Error::UnexpectedValue));
    }
    match catch_unwind(|| Update::decode_v1(bytes)) {
        Ok(Ok(update)) => Ok(update),
        Ok(Err(e)) => Err(Error::MalformedUpdate(e)),
        Err(_) => Err(Error::MalformedUpdate(yrs::encoding::read::Error::Custom(
            "the decoder panicked".into(),
        ))),
    }
}

/// Decodes a v1 state vector from untrusted bytes.
pub(crate) fn decode_state_vector(bytes: &[u8]) -> Result<StateVector> {
    if !leading_count_fits(bytes) {
        return Err(Error::MalformedStateVector(
            yrs::encoding::read::Error::UnexpectedValue,
        ));
    }
    StateVector::decode_v1(bytes).map_err(Error::MalformedStateVector)
}

fn leading_count_fits(bytes: &[u8]) -> bool {
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return n <= bytes.len() as u64;
        }
    }
    // Truncated or over-long: let the decoder produce its own error for it.
    true
}

/// Integrates a decoded update into `doc` in one transaction. Returns whether the document changed:
/// new blocks, new deletions, or a change to the blocks and deletions yrs keeps pending until their
/// dependencies arrive.
///
/// On `Err` the document may be half-updated: the caller must discard or rebuild it.
pub(crate) fn integrate(doc: &Doc, update: Update) -> Result<bool> {
    let mut txn = doc.transact_mut();
    let pending_before = pending_fingerprint(&txn);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        txn.apply_update(update)?;
        let changed = txn.has_changes() || pending_fingerprint(&txn) != pending_before;
        // Commit here, inside the guard, so observers and GC run where a panic is contained.
        txn.commit();
        Ok::<_, yrs::error::UpdateError>(changed)
    }));
    // Dropping commits a transaction that has not been committed yet. After a panic that commit
    // works on a broken store and may panic too; this is not unwinding any more, so it is caught.
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(txn)));
    match (outcome, dropped) {
        (Ok(Ok(changed)), Ok(())) => Ok(changed),
        (Ok(Err(e)), _) => Err(Error::InvalidUpdate(e.to_string())),
        (Err(panic), _) | (Ok(Ok(_)), Err(panic)) => {
            Err(Error::InvalidUpdate(format!("yrs panicked: {}", panic_message(&*panic))))
        }
    }
}

/// What yrs holds back for missing dependencies, compared before and after an update so that an
/// update which only adds to the pending set still counts as a change (it is in the snapshot).
/// Empty, and so free, in the common case.
fn pending_fingerprint(txn: &TransactionMut) -> (Option<(yrs::IdSet, StateVector)>, Option<yrs::IdSet>) {
    let store = ReadTxn::store(txn);
    let blocks = store
        .pending_update()
        .map(|p| (p.update.insertions(true), p.missing.clone()));
    (blocks, store.pending_ds().cloned())
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

/// The whole state of `doc` as a v1 update. yrs appends the pending blocks and deletions, so an
/// update that is still waiting for its dependencies survives a snapshot and reload.
pub(crate) fn encode_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

pub(crate) fn encode_state_vector(doc: &Doc) -> Vec<u8> {
    doc.transact().state_vector().encode_v1()
}

/// CRDT merge of two v1 snapshots: the result holds every insertion and deletion from both, in
/// either order. A zero-length input means "no snapshot"; two of them merge to zero length.
pub fn merge_snapshots(a: &[u8], b: &[u8]) -> Result<Vec<u8>> {
    if a.is_empty() && b.is_empty() {
        return Ok(Vec::new());
    }
    // Integrating (rather than yrs's block-level `merge_updates_v1`) validates both inputs and
    // yields a compact snapshot with deleted content collected.
    let doc = new_doc();
    for snapshot in [a, b] {
        if !snapshot.is_empty() {
            integrate(&doc, decode_update(snapshot)?)?;
        }
    }
    Ok(encode_state(&doc))
}
