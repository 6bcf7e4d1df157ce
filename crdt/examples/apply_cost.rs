//! Measures `RoomDoc::apply_update` per small update against plain yrs decode + apply, on an empty
//! room and on a room that already holds a large document (to show the cost does not grow with it).
//!
//! Run: `cargo run --release -p crdt --example apply_cost`

use std::time::Instant;

use crdt::{Limits, RoomDoc};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

const UPDATES: usize = 100_000;

/// One update per typed character, as a browser sends them while someone types.
fn typing(client_id: u64, n: usize) -> Vec<Vec<u8>> {
    let doc = Doc::with_options(Options {
        client_id: yrs::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    });
    let text = doc.get_or_insert_text("t");
    (0..n)
        .map(|i| {
            let mut txn = doc.transact_mut();
            // Mostly appending, sometimes jumping back, like real editing.
            let len = text.len(&txn);
            let at = if i % 50 == 0 { len / 2 } else { len };
            text.insert(&mut txn, at, "x");
            txn.encode_update_v1()
        })
        .collect()
}

fn per_update(label: &str, n: usize, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let elapsed = start.elapsed();
    println!(
        "{label:<48} {:>7.0} ns/update ({} updates in {:.1} ms)",
        elapsed.as_nanos() as f64 / n as f64,
        n,
        elapsed.as_secs_f64() * 1e3
    );
}

fn main() {
    let updates = typing(1, UPDATES);
    let bytes: usize = updates.iter().map(Vec::len).sum();
    println!("{UPDATES} updates, {:.1} bytes each on average", bytes as f64 / UPDATES as f64);

    per_update("yrs: Update::decode_v1 + apply_update", UPDATES, || {
        let doc = Doc::new();
        for u in &updates {
            let mut txn = doc.transact_mut();
            txn.apply_update(Update::decode_v1(u).unwrap()).unwrap();
        }
    });

    let mut room = RoomDoc::new(Limits::default());
    per_update("RoomDoc::apply_update, empty room", UPDATES, || {
        for u in &updates {
            room.apply_update(u).unwrap();
        }
    });
    let typed = room.doc().transact().get_text("t").unwrap().get_string(&room.doc().transact());
    assert_eq!(typed.len(), UPDATES);

    // A room holding a document of about 4 MB from another client, then the same typing.
    let big = Doc::new();
    let text = big.get_or_insert_text("big");
    for chunk in 0..4_000 {
        let mut txn = big.transact_mut();
        text.insert(&mut txn, 0, &format!("{chunk:04}").repeat(250));
    }
    let snapshot = big.transact().encode_state_as_update_v1(&StateVector::default());
    let mut room = RoomDoc::from_snapshot(&snapshot, Limits::default()).unwrap();
    println!("large room: {:.1} MB snapshot", snapshot.len() as f64 / 1e6);
    per_update("RoomDoc::apply_update, room holding 4 MB", UPDATES, || {
        for u in &updates {
            room.apply_update(u).unwrap();
        }
    });

    let start = Instant::now();
    let snap = room.snapshot().expect("the document encodes");
    println!(
        "snapshot of that room: {:.1} MB in {:.1} ms",
        snap.len() as f64 / 1e6,
        start.elapsed().as_secs_f64() * 1e3
    );
}
