//! Convergence: after sending stops, a fresh client per sampled room syncs, and its document must
//! hold exactly what each writer wrote, no more and no less.
//!
//! Writers never apply each other's updates (that keeps them cheap), so a writer's own doc holds
//! only its own tokens. The room's doc holds everyone's, interleaved; grouping its tokens by writer
//! and comparing each group with that writer's doc is an exact check that needs no decoding of
//! relayed traffic. Each insert is one Yjs item that nobody else edits, so its token stays contiguous.

use std::collections::HashMap;

use futures_util::{StreamExt as _, stream};
use serde::Serialize;
use yrs::{Any, Doc, GetString as _, Map as _, Out, ReadTxn as _, Transact as _};

use crate::cli::Op;
use crate::client;
use crate::marker;

/// One writer's content in canonical form: its tokens in document order (text) or its map entries
/// sorted by sequence number (map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub updates: usize,
    pub text: String,
}

/// Per-writer fingerprints of a document, plus how much of it belongs to no known writer (bytes
/// of text, or map entries).
pub fn fingerprints(doc: &Doc, op: Op, writers: usize) -> (Vec<Fingerprint>, usize) {
    let mut prints = vec![Fingerprint::default(); writers];
    let mut foreign = 0;
    let txn = doc.transact();
    match op {
        Op::Text => {
            let Some(text) = txn.get_text("text") else { return (prints, 0) };
            let content = text.get_string(&txn);
            let (tokens, stray) = marker::scan_all(&content);
            foreign += stray;
            for (m, token) in tokens {
                match prints.get_mut(m.writer as usize) {
                    Some(p) => {
                        p.updates += 1;
                        p.text.push_str(token);
                    }
                    None => foreign += token.len(),
                }
            }
        }
        Op::Map => {
            let Some(map) = txn.get_map("map") else { return (prints, 0) };
            let mut entries: Vec<Vec<(u32, String)>> = vec![Vec::new(); writers];
            for (key, value) in map.iter(&txn) {
                let Out::Any(Any::String(value)) = value else {
                    foreign += 1;
                    continue;
                };
                // A writer's entry is `writer:seq` = its token; anything else is foreign.
                let slot = marker::find(value.as_bytes())
                    .filter(|m| key == format!("{}:{}", m.writer, m.seq))
                    .and_then(|m| Some((m.seq, entries.get_mut(m.writer as usize)?)));
                match slot {
                    Some((seq, list)) => list.push((seq, format!("{key}={value}\n"))),
                    None => foreign += 1,
                }
            }
            for (p, mut list) in prints.iter_mut().zip(entries) {
                list.sort_unstable_by_key(|(seq, _)| *seq);
                p.updates = list.len();
                p.text = list.into_iter().map(|(_, line)| line).collect();
            }
        }
    }
    (prints, foreign)
}

/// Compares what a room holds with what its writers wrote; `Err` says what differs.
pub fn compare(expected: &[Fingerprint], got: &(Vec<Fingerprint>, usize)) -> Result<(), String> {
    let (prints, foreign) = got;
    let mut problems = Vec::new();
    for (w, (want, have)) in expected.iter().zip(prints).enumerate() {
        if want != have {
            problems.push(format!(
                "writer {w}: wrote {} updates ({} bytes), room holds {} ({} bytes){}",
                want.updates,
                want.text.len(),
                have.updates,
                have.text.len(),
                if want.updates == have.updates { ", content differs" } else { "" }
            ));
        }
    }
    if *foreign > 0 {
        problems.push(format!("{foreign} bytes/entries from no known writer"));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The outcome for one room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomCheck {
    pub room: String,
    pub ok: bool,
    pub detail: Option<String>,
}

/// Indices of up to `n` rooms out of `rooms`, evenly spread.
pub fn sample(rooms: usize, n: usize) -> Vec<usize> {
    if n >= rooms {
        return (0..rooms).collect();
    }
    (0..n).map(|i| i * rooms / n).collect()
}

/// Fetches each sampled room with a fresh client and compares; a few rooms at a time.
pub async fn check_rooms(
    endpoints: Vec<(String, client::Endpoint)>,
    expected: &HashMap<String, Vec<Fingerprint>>,
    op: Op,
    writers: usize,
) -> Vec<RoomCheck> {
    stream::iter(endpoints)
        .map(|(room, endpoint)| async move {
            let result = match client::fetch_doc(&endpoint).await {
                Ok(doc) => {
                    let want = expected.get(&room).map_or(&[][..], Vec::as_slice);
                    compare(want, &fingerprints(&doc, op, writers))
                }
                Err(e) => Err(format!("fresh client failed: {e:#}")),
            };
            RoomCheck { room, ok: result.is_ok(), detail: result.err() }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Marker;
    use yrs::updates::decoder::Decode as _;
    use yrs::{StateVector, Text as _, Update};

    /// Two writers who never see each other's updates, merged in a third doc, as the server would.
    fn run(op: Op, drop_one: bool) -> (Vec<Fingerprint>, (Vec<Fingerprint>, usize)) {
        let writers: Vec<Doc> = (0..2).map(|_| Doc::new()).collect();
        let room = Doc::new();
        for seq in 0..5u32 {
            for (w, doc) in writers.iter().enumerate() {
                let token = Marker { sent_us: 7, writer: w as u32, seq }.text();
                // Root refs first: getting one needs the doc's write lock.
                let (text, map) = (doc.get_or_insert_text("text"), doc.get_or_insert_map("map"));
                let mut txn = doc.transact_mut();
                match op {
                    Op::Text => text.push(&mut txn, &token),
                    Op::Map => {
                        map.insert(&mut txn, format!("{w}:{seq}"), token);
                    }
                }
                let update = txn.encode_update_v1();
                drop(txn);
                if !(drop_one && w == 1 && seq == 4) {
                    let u = Update::decode_v1(&update).expect("v1");
                    room.transact_mut().apply_update(u).expect("apply");
                }
            }
        }
        let expected =
            writers.iter().enumerate().map(|(w, d)| fingerprints(d, op, 2).0.swap_remove(w)).collect();
        // Round-trip the room through a full-state update, as a fresh client receives it.
        let state = room.transact().encode_diff_v1(&StateVector::default());
        let fresh = Doc::new();
        fresh.transact_mut().apply_update(Update::decode_v1(&state).expect("v1")).expect("apply");
        (expected, fingerprints(&fresh, op, 2))
    }

    #[test]
    fn converged_rooms_pass() {
        for op in [Op::Text, Op::Map] {
            let (expected, got) = run(op, false);
            assert_eq!(expected[0].updates, 5);
            assert_eq!(compare(&expected, &got), Ok(()), "{op:?}");
        }
    }

    #[test]
    fn a_missing_update_fails() {
        for op in [Op::Text, Op::Map] {
            let (expected, got) = run(op, true);
            let err = compare(&expected, &got).expect_err("one update was dropped");
            assert!(err.contains("writer 1: wrote 5 updates"), "{op:?}: {err}");
        }
    }

    #[test]
    fn samples_spread_evenly() {
        assert_eq!(sample(3, 10), vec![0, 1, 2]);
        assert_eq!(sample(100, 4), vec![0, 25, 50, 75]);
    }
}
