//! Shared test helpers: yrs client documents that stand in for browsers, random edits on Y.Text,
//! Y.Map and Y.Array, content read-out for comparisons, and an awareness payload writer that is
//! independent of the crate's own.
#![allow(dead_code)] // each test target uses a different subset

use rand::Rng;
use rand::rngs::StdRng;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, Doc, GetString, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact,
    TransactionMut, Update,
};

/// Limits that never bite, for tests about something else.
pub const UNLIMITED: crdt::Limits = crdt::Limits { max_update_bytes: usize::MAX, max_doc_bytes: usize::MAX };

pub const TEXT: &str = "t";
pub const MAP: &str = "m";
pub const ARRAY: &str = "a";

/// A client document like a Yjs one in a browser, with a fixed client id so runs are repeatable.
pub fn client(id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: yrs::ClientID::new(id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Runs `f` in one transaction on `doc` and returns the v1 update it produced.
pub fn edit(doc: &Doc, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    f(&mut txn);
    let update = txn.encode_update_v1();
    txn.commit();
    update
}

pub fn insert_text(doc: &Doc, index: u32, s: &str) -> Vec<u8> {
    let text = doc.get_or_insert_text(TEXT);
    edit(doc, |txn| text.insert(txn, index, s))
}

pub fn delete_text(doc: &Doc, index: u32, len: u32) -> Vec<u8> {
    let text = doc.get_or_insert_text(TEXT);
    edit(doc, |txn| text.remove_range(txn, index, len))
}

pub fn set_key(doc: &Doc, key: &str, value: i64) -> Vec<u8> {
    let map = doc.get_or_insert_map(MAP);
    edit(doc, |txn| {
        map.insert(txn, key, value);
    })
}

pub fn push(doc: &Doc, value: i64) -> Vec<u8> {
    let array = doc.get_or_insert_array(ARRAY);
    edit(doc, |txn| {
        array.push_back(txn, value);
    })
}

/// Single-unit characters only: UTF-16 offsets then equal char offsets, and no edit can land
/// inside a surrogate pair.
const ALPHABET: &[char] = &['a', 'b', 'c', 'x', 'y', 'z', ' ', 'é', 'ß', '中', '\n'];

/// One to three random operations across the text, map and array, in one transaction.
pub fn random_edit(doc: &Doc, rng: &mut StdRng) -> Vec<u8> {
    let text = doc.get_or_insert_text(TEXT);
    let map = doc.get_or_insert_map(MAP);
    let array = doc.get_or_insert_array(ARRAY);
    edit(doc, |txn| {
        for _ in 0..rng.random_range(1..=3) {
            match rng.random_range(0..10) {
                0..=3 => {
                    let len = text.len(txn);
                    let at = rng.random_range(0..=len);
                    let s: String = (0..rng.random_range(1..6))
                        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                        .collect();
                    text.insert(txn, at, &s);
                }
                4 => {
                    let len = text.len(txn);
                    if len > 0 {
                        let at = rng.random_range(0..len);
                        let n = rng.random_range(1..=(len - at).min(4));
                        text.remove_range(txn, at, n);
                    }
                }
                5 | 6 => {
                    let key = format!("k{}", rng.random_range(0..6));
                    if rng.random_bool(0.8) {
                        map.insert(txn, key, rng.random_range(0..1000) as i64);
                    } else {
                        map.remove(txn, &key);
                    }
                }
                7 | 8 => {
                    let len = array.len(txn);
                    let at = rng.random_range(0..=len);
                    array.insert(txn, at, rng.random_range(0..1000) as i64);
                }
                _ => {
                    let len = array.len(txn);
                    if len > 0 {
                        let at = rng.random_range(0..len);
                        array.remove_range(txn, at, 1);
                    }
                }
            }
        }
    })
}

/// Everything a user sees: the text, and the map and array as JSON values.
#[derive(Debug, PartialEq)]
pub struct Content {
    pub text: String,
    pub map: Any,
    pub array: Any,
}

/// Reads content without creating root types, so reading never changes the document.
pub fn content(doc: &Doc) -> Content {
    let txn = doc.transact();
    Content {
        text: txn.get_text(TEXT).map(|t| t.get_string(&txn)).unwrap_or_default(),
        map: txn
            .get_map(MAP)
            .map(|m| m.to_json(&txn))
            .unwrap_or_else(|| Any::from(std::collections::HashMap::<String, Any>::new())),
        array: txn.get_array(ARRAY).map(|a| a.to_json(&txn)).unwrap_or_else(|| Any::from(Vec::<Any>::new())),
    }
}

pub fn state_vector(doc: &Doc) -> StateVector {
    doc.transact().state_vector()
}

pub fn decode_sv(bytes: &[u8]) -> StateVector {
    StateVector::decode_v1(bytes).expect("state vector decodes")
}

/// What a client sends in sync step 2. `encode_diff_v1` leaves out yrs's pending blocks: yrs
/// 0.28 encodes those with wrong clocks once several have been merged (see the crate's `ydoc.rs`),
/// and they are never the client's own edits, which are always integrated.
pub fn diff(doc: &Doc, remote_sv: &[u8]) -> Vec<u8> {
    doc.transact().encode_diff_v1(&decode_sv(remote_sv))
}

pub fn encoded_sv(doc: &Doc) -> Vec<u8> {
    doc.transact().state_vector().encode_v1()
}

/// Applies an update to a plain client document, the way a browser would.
pub fn apply(doc: &Doc, update: &[u8]) {
    let update = Update::decode_v1(update).expect("update from the server decodes");
    doc.transact_mut().apply_update(update).expect("update from the server applies");
}

pub fn has_pending(doc: &Doc) -> bool {
    let txn = doc.transact();
    let store = txn.store();
    store.pending_update().is_some() || store.pending_ds().is_some()
}

/// lib0 var-uint, written here independently of the crate's private codec.
pub fn var_uint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// An awareness update payload as y-protocols `encodeAwarenessUpdate` writes it.
pub fn awareness_payload(entries: &[(u64, u64, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    var_uint(&mut out, entries.len() as u64);
    for &(client_id, clock, state) in entries {
        var_uint(&mut out, client_id);
        var_uint(&mut out, clock);
        var_uint(&mut out, state.len() as u64);
        out.extend_from_slice(state.as_bytes());
    }
    out
}
