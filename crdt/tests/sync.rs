//! Round trips through `state_vector`, `diff`, `snapshot` and `from_snapshot`, and
//! `merge_snapshots` of documents that diverged.

mod common;

use common::*;
use crdt::{Error, Limits, RoomDoc, merge_snapshots};
use rand::SeedableRng;
use rand::rngs::StdRng;
use yrs::Doc;

fn room_with(updates: &[Vec<u8>]) -> RoomDoc {
    let mut room = RoomDoc::new(Limits::default());
    for update in updates {
        room.apply_update(update).expect("client update applies");
    }
    room
}

/// A client that has made `n` random edits, and the updates they produced.
fn edited_client(id: u64, seed: u64, n: usize) -> (Doc, Vec<Vec<u8>>) {
    let doc = client(id);
    let mut rng = StdRng::seed_from_u64(seed);
    let updates = (0..n).map(|_| random_edit(&doc, &mut rng)).collect();
    (doc, updates)
}

#[test]
fn empty_room_has_the_empty_state_vector() {
    let room = RoomDoc::new(Limits::default());
    // Yjs: encodeStateVector(new Y.Doc()) -> Uint8Array [0]
    assert_eq!(room.state_vector().unwrap(), [0]);
    assert_eq!(room.approx_size(), 0);
}

#[test]
fn diff_against_the_empty_state_vector_is_everything() {
    let (doc, updates) = edited_client(1, 1, 50);
    let room = room_with(&updates);
    let fresh = client(2);
    apply(&fresh, &room.diff(&[0]).unwrap());
    assert_eq!(content(&fresh), content(&doc));
    assert_eq!(state_vector(&fresh), state_vector(&doc));
}

#[test]
fn diff_brings_a_lagging_client_up_to_date_both_ways() {
    let (_, updates) = edited_client(1, 2, 60);
    // The room saw everything; a second client saw the first half and then edited offline.
    let mut room = room_with(&updates);
    let lagging = client(2);
    for update in &updates[..30] {
        apply(&lagging, update);
    }
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..10 {
        random_edit(&lagging, &mut rng);
    }
    // Sync step 1/2 in both directions, as on a reconnect.
    let to_client = room.diff(&encoded_sv(&lagging)).unwrap();
    let to_room = diff(&lagging, &room.state_vector().unwrap());
    apply(&lagging, &to_client);
    assert!(room.apply_update(&to_room).unwrap().changed);
    assert_eq!(content(room.doc()), content(&lagging));
    assert_eq!(decode_sv(&room.state_vector().unwrap()), state_vector(&lagging));
    // The diff against an up-to-date client carries no blocks: applying it changes nothing.
    let nothing_new = room.diff(&encoded_sv(&lagging)).unwrap();
    assert!(!room.apply_update(&nothing_new).unwrap().changed);
}

#[test]
fn malformed_state_vectors_are_refused() {
    let room = room_with(&edited_client(1, 3, 5).1);
    let cases: &[(&str, &[u8])] = &[
        ("zero bytes", &[]),
        ("truncated count", &[0x80]),
        ("entry missing", &[1]),
        ("clock missing", &[1, 5]),
        ("count bomb", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (name, sv) in cases {
        assert!(matches!(room.diff(sv), Err(Error::MalformedStateVector(_))), "{name}");
    }
}

#[test]
fn snapshot_round_trips_through_from_snapshot() {
    for seed in 0..20 {
        let (doc, updates) = edited_client(1, seed, 40);
        let room = room_with(&updates);
        let snapshot = room.snapshot().unwrap();
        let reloaded = RoomDoc::from_snapshot(&snapshot, Limits::default()).unwrap();
        assert_eq!(content(reloaded.doc()), content(&doc), "seed {seed}");
        assert_eq!(reloaded.state_vector().unwrap(), room.state_vector().unwrap(), "seed {seed}");
        assert_eq!(reloaded.snapshot().unwrap(), snapshot, "seed {seed}: re-encoding is stable");
        assert_eq!(reloaded.approx_size(), snapshot.len());
    }
}

/// Two clients start from a shared document and edit concurrently, each through its own server
/// that persisted a snapshot: the merged snapshot must hold both sides.
fn diverged() -> (Doc, Doc, Vec<u8>, Vec<u8>) {
    let (a, common) = edited_client(1, 10, 20);
    let b = client(2);
    for update in &common {
        apply(&b, update);
    }
    let mut rng_a = StdRng::seed_from_u64(11);
    let mut rng_b = StdRng::seed_from_u64(12);
    let mut room_a = room_with(&common);
    let mut room_b = room_with(&common);
    for _ in 0..30 {
        room_a.apply_update(&random_edit(&a, &mut rng_a)).unwrap();
        room_b.apply_update(&random_edit(&b, &mut rng_b)).unwrap();
    }
    // Named edits on each side, so the check below does not depend on the random ones.
    room_a.apply_update(&insert_text(&a, 0, "<A>")).unwrap();
    room_a.apply_update(&set_key(&a, "from_a", 1)).unwrap();
    room_a.apply_update(&push(&a, 111)).unwrap();
    room_b.apply_update(&insert_text(&b, 0, "<B>")).unwrap();
    room_b.apply_update(&set_key(&b, "from_b", 2)).unwrap();
    room_b.apply_update(&push(&b, 222)).unwrap();
    (a, b, room_a.snapshot().unwrap(), room_b.snapshot().unwrap())
}

fn loaded(snapshot: &[u8]) -> Content {
    content(RoomDoc::from_snapshot(snapshot, Limits::default()).unwrap().doc())
}

#[test]
fn merge_holds_both_sides() {
    let (a, b, snap_a, snap_b) = diverged();
    // What the two clients converge to when they sync directly.
    apply(&a, &diff(&b, &encoded_sv(&a)));
    apply(&b, &diff(&a, &encoded_sv(&b)));
    assert_eq!(content(&a), content(&b));

    let merged = loaded(&merge_snapshots(&snap_a, &snap_b).unwrap());
    assert_eq!(merged, content(&a));
    assert!(merged.text.contains("<A>") && merged.text.contains("<B>"));
    let map = merged.map.to_string();
    assert!(map.contains("from_a") && map.contains("from_b"), "{map}");
    let array = merged.array.to_string();
    assert!(array.contains("111") && array.contains("222"), "{array}");
}

#[test]
fn merge_is_commutative_and_idempotent() {
    let (_, _, snap_a, snap_b) = diverged();
    let ab = merge_snapshots(&snap_a, &snap_b).unwrap();
    let ba = merge_snapshots(&snap_b, &snap_a).unwrap();
    assert_eq!(loaded(&ab), loaded(&ba));
    assert_eq!(loaded(&merge_snapshots(&ab, &ab).unwrap()), loaded(&ab));
    assert_eq!(loaded(&merge_snapshots(&ab, &snap_a).unwrap()), loaded(&ab));
    let sv = |s: &[u8]| RoomDoc::from_snapshot(s, Limits::default()).unwrap().state_vector().unwrap();
    assert_eq!(decode_sv(&sv(&ab)), decode_sv(&sv(&ba)));
}

#[test]
fn merge_with_no_snapshot() {
    let (_, _, snap_a, _) = diverged();
    assert_eq!(merge_snapshots(&[], &[]).unwrap(), Vec::<u8>::new());
    assert_eq!(loaded(&merge_snapshots(&snap_a, &[]).unwrap()), loaded(&snap_a));
    assert_eq!(loaded(&merge_snapshots(&[], &snap_a).unwrap()), loaded(&snap_a));
}

#[test]
fn merge_refuses_corrupt_input() {
    let (_, _, snap_a, snap_b) = diverged();
    let truncated = &snap_b[..snap_b.len() / 2];
    assert!(matches!(merge_snapshots(&snap_a, truncated), Err(Error::Refused(_))));
    assert!(matches!(merge_snapshots(truncated, &[]), Err(Error::Refused(_))));
}

#[test]
fn merge_keeps_pending_updates() {
    let doc = client(1);
    let first = insert_text(&doc, 0, "ab");
    let second = insert_text(&doc, 2, "cd");
    let mut only_second = RoomDoc::new(Limits::default());
    only_second.apply_update(&second).unwrap();
    let only_first = room_with(&[first]);
    let merged = merge_snapshots(&only_second.snapshot().unwrap(), &only_first.snapshot().unwrap()).unwrap();
    assert_eq!(loaded(&merged).text, "abcd");
}
