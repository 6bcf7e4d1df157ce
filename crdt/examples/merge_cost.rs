//! What a persisted batch costs the store, for the choice between merging each batch into the
//! room's snapshot (what the workers do) and appending updates to a log compacted later (what
//! y-mongodb-provider and y/hub do): `merge_snapshots(stored, batch)` against documents of growing
//! size, and `merge_updates` of a batch of typed updates (the room's journal merging its batch).
//!
//! Run: `cargo run --release -p crdt --example merge_cost`

use std::time::Instant;

use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

/// A document of `chars` characters typed by one client, as a snapshot, and the next `batch`
/// one-character updates typed after it.
fn document(chars: usize, batch: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let doc = Doc::with_client_id(1);
    let text = doc.get_or_insert_text("t");
    let chunk = "x".repeat(1000);
    for _ in 0..chars / 1000 {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, &chunk);
    }
    let snapshot = doc.transact().encode_state_as_update_v1(&StateVector::default());
    let updates = (0..batch)
        .map(|_| {
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, "y");
            txn.encode_update_v1()
        })
        .collect();
    (snapshot, updates)
}

fn main() {
    println!("{:>12} {:>12} {:>16} {:>16}", "doc chars", "snapshot B", "merge 1 upd", "merge 100 upd");
    for chars in [10_000, 100_000, 1_000_000, 10_000_000] {
        let (snapshot, updates) = document(chars, 100);
        let one = &updates[0];
        let runs = (20_000_000 / chars).clamp(3, 2000);
        let start = Instant::now();
        for _ in 0..runs {
            crdt::merge_snapshots(&snapshot, one).unwrap();
        }
        let single = start.elapsed() / runs as u32;
        let batch = crdt::merge_updates(updates.iter().map(Vec::as_slice)).unwrap();
        let start = Instant::now();
        for _ in 0..runs {
            crdt::merge_snapshots(&snapshot, &batch).unwrap();
        }
        let hundred = start.elapsed() / runs as u32;
        println!("{chars:>12} {:>12} {:>16?} {:>16?}", snapshot.len(), single, hundred);
    }
    let (_, updates) = document(0, 100);
    let start = Instant::now();
    let runs = 10_000;
    for _ in 0..runs {
        crdt::merge_updates(updates.iter().map(Vec::as_slice)).unwrap();
    }
    println!("merge_updates of 100 typed updates (the journal's batch): {:?}", start.elapsed() / runs);
}
