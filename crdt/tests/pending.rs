//! Updates that arrive before their dependencies: kept (in snapshots too), not served until they
//! integrate, integrated when the dependencies arrive, and never encoded through yrs's own pending
//! state, which yrs 0.28 gets wrong.

mod common;

use common::*;
use crdt::{Applied, RoomDoc};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

#[test]
fn pending_update_is_kept_across_snapshot_and_reload() {
    let doc = client(1);
    let first = insert_text(&doc, 0, "ab");
    let second = insert_text(&doc, 2, "cd");
    let mut room = RoomDoc::new(UNLIMITED);
    let sv_before = room.state_vector().unwrap();
    // `second` depends on `first`: kept pending, but it is news.
    let applied = room.apply_update(&second).unwrap();
    assert_eq!(applied, Applied { changed: true, pending: true, ..Applied::default() });
    assert_eq!(room.state_vector().unwrap(), sv_before, "pending blocks are not in the state vector");
    let again = room.apply_update(&second).unwrap();
    assert_eq!(
        again,
        Applied { changed: false, pending: true, ..Applied::default() },
        "the same pending update again"
    );
    assert_eq!(room.diff(&[0]).unwrap(), RoomDoc::new(UNLIMITED).diff(&[0]).unwrap(), "not served");

    let mut reloaded = RoomDoc::from_snapshot(&room.snapshot().unwrap(), UNLIMITED).unwrap();
    let applied = reloaded.apply_update(&first).unwrap();
    assert!(applied.changed && !applied.pending);
    // `first` integrated as sent; `second`, released by it, was never relayed: it goes out now.
    assert!(applied.relay_original);
    assert_eq!(applied.relay_encoded, vec![second.clone()]);
    assert_eq!(content(reloaded.doc()).text, "abcd", "the snapshot carried the pending update");
    assert!(!has_pending(reloaded.doc()));
    // Once integrated it is served, and the snapshot holds no stash any more.
    assert_eq!(reloaded.snapshot().unwrap(), reloaded.diff(&[0]).unwrap());
}

#[test]
fn pending_delete_is_kept_across_snapshot_and_reload() {
    let doc = client(1);
    let insert = insert_text(&doc, 0, "abc");
    let delete = delete_text(&doc, 0, 1);
    let mut room = RoomDoc::new(UNLIMITED);
    assert!(room.apply_update(&delete).unwrap().changed, "a delete of unknown items is kept");
    let mut reloaded = RoomDoc::from_snapshot(&room.snapshot().unwrap(), UNLIMITED).unwrap();
    reloaded.apply_update(&insert).unwrap();
    assert_eq!(content(reloaded.doc()).text, "bc");
}

/// Seven single-client updates (text and array inserts) found by a random search, in the order
/// that breaks yrs alone; u0..u6 is the order they were made in.
const UPDATES: [&[u8]; 7] = [
    &[1, 1, 1, 0, 4, 1, 1, 116, 1, 120, 0],
    &[1, 1, 1, 1, 132, 1, 0, 2, 120, 121, 0],
    &[1, 1, 1, 3, 68, 1, 0, 2, 120, 121, 0],
    &[1, 1, 1, 5, 8, 1, 1, 97, 1, 125, 22, 0],
    &[1, 1, 1, 6, 136, 1, 5, 1, 125, 147, 1, 0],
    &[1, 1, 1, 7, 196, 1, 4, 1, 0, 2, 120, 121, 0],
    &[1, 1, 1, 9, 72, 1, 5, 1, 125, 23, 0],
];
const ARRIVAL: [usize; 7] = [3, 5, 1, 6, 4, 2, 0];

fn in_order() -> Content {
    let doc = client(2);
    for update in UPDATES {
        apply(&doc, update);
    }
    content(&doc)
}

/// Documents why the stash exists: a yrs document snapshotted (pending blocks included) after each
/// out-of-order update and reloaded ends up with different content. If this starts failing, yrs
/// has fixed its pending encoding and the stash could be reconsidered.
#[test]
fn yrs_alone_loses_pending_blocks_across_snapshots() {
    let mut snapshot = vec![0, 0];
    for i in ARRIVAL {
        let doc = client(3);
        for update in [snapshot.as_slice(), UPDATES[i]] {
            let update = Update::decode_v1(update).unwrap();
            doc.transact_mut().apply_update(update).unwrap();
        }
        snapshot = doc.transact().encode_state_as_update_v1(&StateVector::default());
    }
    let doc = client(4);
    apply(&doc, &snapshot);
    assert_ne!(content(&doc), in_order(), "yrs 0.28 pending encoding has been fixed");
}

#[test]
fn out_of_order_updates_survive_a_reload_after_each() {
    let mut room = RoomDoc::new(UNLIMITED);
    for i in ARRIVAL {
        room.apply_update(UPDATES[i]).unwrap();
        room = RoomDoc::from_snapshot(&room.snapshot().unwrap(), UNLIMITED).unwrap();
    }
    assert_eq!(content(room.doc()), in_order());
    let reference = client(5);
    for update in UPDATES {
        apply(&reference, update);
    }
    assert_eq!(decode_sv(&room.state_vector().unwrap()), state_vector(&reference));
}

/// An attacker stashes an item whose parent (client 55's first item) is missing; when client 55's
/// honest update arrives, that parent turns out to be text, not a shared type, and yrs refuses the
/// stashed item half-way. The honest update must still be accepted, the stashed one dropped.
#[test]
fn stashed_update_that_fails_later_is_dropped_alone() {
    // One block from client 77: a string whose parent is the item (55, 0).
    let poisoned: &[u8] = &[1, 1, 77, 0, 4, 0, 55, 0, 1, b'b', 0];
    let honest = client(55);
    let first = insert_text(&honest, 0, "a");
    let second = insert_text(&honest, 1, "c");

    let mut room = RoomDoc::new(UNLIMITED);
    assert_eq!(
        room.apply_update(poisoned).unwrap(),
        Applied { changed: true, pending: true, ..Applied::default() }
    );
    let applied = room.apply_update(&first).unwrap();
    assert!(applied.changed && !applied.pending && applied.relay_original);
    assert!(applied.relay_encoded.is_empty(), "the failed stashed update reaches no one");
    assert_eq!(content(room.doc()).text, "a");
    assert!(room.apply_update(&second).unwrap().changed, "later updates are not blocked");
    assert_eq!(content(room.doc()).text, "ac");
    let reloaded = RoomDoc::from_snapshot(&room.snapshot().unwrap(), UNLIMITED).unwrap();
    assert_eq!(content(reloaded.doc()).text, "ac", "the poisoned update is gone");
    assert_eq!(room.snapshot().unwrap(), room.diff(&[0]).unwrap(), "nothing left stashed");
}

#[test]
fn merge_of_snapshots_with_stashed_updates() {
    let doc = client(1);
    let updates: Vec<Vec<u8>> = (0..6).map(|i| insert_text(&doc, i, "x")).collect();
    // One room saw the odd updates, the other the even ones: both hold stashed updates.
    let mut odd = RoomDoc::new(UNLIMITED);
    let mut even = RoomDoc::new(UNLIMITED);
    for (i, update) in updates.iter().enumerate() {
        let room = if i % 2 == 0 { &mut even } else { &mut odd };
        room.apply_update(update).unwrap();
    }
    let merged = crdt::merge_snapshots(&odd.snapshot().unwrap(), &even.snapshot().unwrap()).unwrap();
    let room = RoomDoc::from_snapshot(&merged, UNLIMITED).unwrap();
    assert_eq!(content(room.doc()).text, "xxxxxx");
    assert_eq!(decode_sv(&room.state_vector().unwrap()), state_vector(&doc));
}
