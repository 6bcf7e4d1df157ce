//! `RoomDoc::apply_update`: what it accepts, what it refuses, and that a refusal never changes the
//! document (same state vector, same snapshot bytes), including when yrs fails part-way through.

mod common;

use common::*;
use crdt::{Error, Limits, RoomDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, Text, Transact, Update};

/// The document state a refusal must preserve.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    state_vector: Vec<u8>,
    snapshot: Vec<u8>,
}

fn fingerprint(room: &RoomDoc) -> Fingerprint {
    Fingerprint { state_vector: room.state_vector().unwrap(), snapshot: room.snapshot().unwrap() }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Changed,
    Unchanged,
    UpdateTooLarge,
    DocTooLarge,
    Malformed,
    /// Well-formed, but refused by validation before yrs saw it.
    Refused,
    Invalid,
}

fn outcome(result: &crdt::Result<crdt::Applied>) -> Expect {
    match result {
        Ok(applied) if applied.changed => Expect::Changed,
        Ok(_) => Expect::Unchanged,
        Err(Error::UpdateTooLarge { .. }) => Expect::UpdateTooLarge,
        Err(Error::DocTooLarge { .. }) => Expect::DocTooLarge,
        // Bytes that do not even parse (cut short, a count the input cannot hold).
        Err(
            Error::MalformedUpdate(_)
            | Error::Refused(
                crdt::Invalid::Decode(_)
                | crdt::Invalid::CountTooLarge { .. }
                | crdt::Invalid::TrailingBytes(_),
            ),
        ) => Expect::Malformed,
        Err(Error::Refused(_)) => Expect::Refused,
        Err(Error::InvalidUpdate(_)) => Expect::Invalid,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// Applies `update` to a room loaded from `snapshot` and checks the outcome; on any error the
/// room must be byte-identical to before, and must still accept a follow-up update.
fn check(name: &str, snapshot: &[u8], limits: Limits, update: &[u8], expected: Expect) {
    let mut room = RoomDoc::from_snapshot(snapshot, limits).expect("base snapshot loads");
    let before = fingerprint(&room);
    let result = room.apply_update(update);
    assert_eq!(outcome(&result), expected, "{name}: {result:?}");
    if result.is_err() {
        assert_eq!(fingerprint(&room), before, "{name}: refused update changed the document");
    }
    if matches!(expected, Expect::Malformed | Expect::Refused | Expect::Invalid) {
        assert_still_works(&mut room, name);
    }
}

/// A refusal must leave the room usable: a fresh client's edit still integrates.
fn assert_still_works(room: &mut RoomDoc, name: &str) {
    let other = client(999);
    let update = set_key(&other, "after", 1);
    assert!(room.apply_update(&update).is_ok(), "{name}: room stopped accepting updates");
}

/// A client document with some history (text typed and partly deleted, a map key, an array) and
/// its snapshot.
fn base() -> (Doc, Vec<u8>) {
    let doc = client(1);
    insert_text(&doc, 0, "hello world");
    delete_text(&doc, 5, 6);
    set_key(&doc, "k", 7);
    push(&doc, 42);
    let snapshot = doc.transact().encode_state_as_update_v1(&Default::default());
    (doc, snapshot)
}

/// A v1 update, built by hand, with two items from client 77: "a" in the root text `t`, then "b"
/// whose parent is the item "a". A string is not a shared type, so yrs integrates "a" and then
/// fails on "b" with `InvalidParent`.
const INVALID_PARENT: &[u8] = &[
    1, // one client
    2, 77, 0, // two blocks, client 77, first clock 0
    4, 1, 1, b't', 1, b'a', // string item, parent is the root type named "t", content "a"
    4, 0, 77, 0, 1, b'b', // string item, parent is the item (77, 0), content "b"
    0,    // empty delete set
];

/// Issue 9: client 777777 inserts "xxxxx" at clock 2^32 - 2, so its range runs past the 32-bit
/// clock. Accepted, it made every later encode of the room panic.
const CLOCK_OVERFLOW: &[u8] = &[
    1, 1, 0xb1, 0xbc, 0x2f, 0xfe, 0xff, 0xff, 0xff, 0x0f, 4, 1, 4, b'c', b'o', b'd', b'e', 5, b'x', b'x',
    b'x', b'x', b'x', 0,
];

#[test]
fn apply_update_table() {
    let (doc, snapshot) = base();
    let next = insert_text(&doc, 0, ">");
    let snapshot_len = snapshot.len();
    let at = |max_update_bytes, max_doc_bytes| Limits { max_update_bytes, max_doc_bytes };
    let mut valid_truncated = next.clone();
    valid_truncated.truncate(next.len() / 2);
    let cases: Vec<(&str, Limits, Vec<u8>, Expect)> = vec![
        ("valid edit", UNLIMITED, next.clone(), Expect::Changed),
        ("duplicate of the whole state", UNLIMITED, snapshot.clone(), Expect::Unchanged),
        ("empty update", UNLIMITED, vec![0, 0], Expect::Unchanged),
        ("zero bytes", UNLIMITED, vec![], Expect::Malformed),
        ("truncated var-uint", UNLIMITED, vec![0x80], Expect::Malformed),
        ("truncated valid update", UNLIMITED, valid_truncated, Expect::Malformed),
        ("count bomb", UNLIMITED, vec![0xff, 0xff, 0xff, 0xff, 0x0f], Expect::Malformed),
        ("clock past 2^32", UNLIMITED, CLOCK_OVERFLOW.to_vec(), Expect::Refused),
        ("invalid parent", UNLIMITED, INVALID_PARENT.to_vec(), Expect::Invalid),
        ("update exactly at the limit", at(next.len(), usize::MAX), next.clone(), Expect::Changed),
        ("update one over the limit", at(next.len() - 1, usize::MAX), next.clone(), Expect::UpdateTooLarge),
        (
            "doc exactly at the limit",
            at(usize::MAX, snapshot_len + next.len()),
            next.clone(),
            Expect::Changed,
        ),
        (
            "doc one over the limit",
            at(usize::MAX, snapshot_len + next.len() - 1),
            next.clone(),
            Expect::DocTooLarge,
        ),
    ];
    for (name, limits, update, expected) in cases {
        check(name, &snapshot, limits, &update, expected);
    }
}

#[test]
fn duplicate_updates_report_no_change() {
    let doc = client(1);
    let insert = insert_text(&doc, 0, "abc");
    let delete = delete_text(&doc, 1, 1);
    let mut room = RoomDoc::new(UNLIMITED);
    for (update, changed) in [(&insert, true), (&insert, false), (&delete, true), (&delete, false)] {
        assert_eq!(room.apply_update(update).unwrap().changed, changed);
    }
    assert_eq!(content(room.doc()).text, "ac");
}

#[test]
fn every_prefix_of_a_valid_update_is_refused() {
    let (doc, snapshot) = base();
    let next = insert_text(&doc, 3, "inserted");
    for len in 0..next.len() {
        check(&format!("prefix of {len} bytes"), &snapshot, UNLIMITED, &next[..len], Expect::Malformed);
    }
}

/// Bit flips and random bytes may happen to decode into something valid; whatever yrs makes of
/// them, a refusal must change nothing and nothing may panic.
fn refusal_changes_nothing(snapshot: &[u8], update: &[u8]) {
    let mut room = RoomDoc::from_snapshot(snapshot, UNLIMITED).unwrap();
    let before = fingerprint(&room);
    if room.apply_update(update).is_err() {
        assert_eq!(fingerprint(&room), before, "refused {update:?} changed the document");
        assert_still_works(&mut room, "after a refused corrupt update");
    }
}

#[test]
fn bit_flipped_updates_never_half_apply() {
    let (doc, snapshot) = base();
    // Root refs are taken before the transaction: taking one inside it would wait on itself.
    let map = doc.get_or_insert_map(MAP);
    let text = doc.get_or_insert_text(TEXT);
    let next = edit(&doc, |txn| {
        yrs::Text::insert(&text, txn, 2, "xyz");
        yrs::Map::insert(&map, txn, "nested", yrs::MapPrelim::default());
        yrs::Text::remove_range(&text, txn, 0, 1);
    });
    for bit in 0..next.len() * 8 {
        let mut flipped = next.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        refusal_changes_nothing(&snapshot, &flipped);
    }
}

#[test]
fn random_bytes_never_half_apply() {
    let (_, snapshot) = base();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let len = rng.random_range(0..64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        refusal_changes_nothing(&snapshot, &bytes);
    }
}

/// Documents the yrs behaviour the rollback exists for: a plain `apply_update` returns the error
/// with the first item already integrated.
#[test]
fn yrs_alone_half_applies_an_invalid_parent_update() {
    let doc = client(2);
    let update = Update::decode_v1(INVALID_PARENT).expect("decodes");
    let result = doc.transact_mut().apply_update(update);
    assert!(result.is_err(), "yrs refuses the second item");
    assert_eq!(content(&doc).text, "a", "yrs kept the first item");
}

#[test]
fn invalid_update_is_rolled_back_after_checkpoints() {
    // Enough small updates for several checkpoints (64 KiB of log each), so the rollback replays
    // a checkpointed base plus a log rather than an empty document.
    let doc = client(1);
    let mut room = RoomDoc::new(UNLIMITED);
    let mut rng = StdRng::seed_from_u64(3);
    let mut logged_bytes = 0;
    for _ in 0..6000 {
        let update = random_edit(&doc, &mut rng);
        // A random edit can be a no-op (say, a delete on empty text), so `changed` may be false.
        if room.apply_update(&update).unwrap().changed {
            logged_bytes += update.len();
        }
        if rng.random_bool(0.01) {
            let before = fingerprint(&room);
            assert!(matches!(room.apply_update(INVALID_PARENT), Err(Error::InvalidUpdate(_))));
            assert_eq!(fingerprint(&room), before);
        }
    }
    assert_eq!(content(room.doc()), content(&doc));
    // Without a checkpoint the estimate would be exactly the sum of the changing updates.
    assert!(room.approx_size() < logged_bytes, "no checkpoint happened");
}

/// Typing one character per update grows the encoded document by far less than the update, so
/// the estimate overshoots; the room re-measures before refusing.
#[test]
fn doc_limit_is_checked_against_an_exact_measurement() {
    let doc = client(1);
    let updates: Vec<Vec<u8>> = (0..200).map(|i| insert_text(&doc, i, "x")).collect();
    let last = insert_text(&doc, 200, "y");

    let mut probe = RoomDoc::new(UNLIMITED);
    for update in &updates {
        probe.apply_update(update).unwrap();
    }
    let exact = probe.snapshot().unwrap().len();
    assert!(probe.approx_size() > exact + last.len(), "the estimate overshoots");

    for (max_doc_bytes, expected) in
        [(exact + last.len(), Expect::Changed), (exact + last.len() - 1, Expect::DocTooLarge)]
    {
        let limits = Limits { max_update_bytes: usize::MAX, max_doc_bytes };
        let mut room = RoomDoc::new(limits);
        for update in &updates {
            room.apply_update(update).unwrap();
        }
        let before = fingerprint(&room);
        let result = room.apply_update(&last);
        assert_eq!(outcome(&result), expected, "limit {max_doc_bytes}");
        if result.is_err() {
            assert_eq!(fingerprint(&room), before);
        }
    }
}

#[test]
fn corrupt_snapshot_is_refused() {
    let (_, snapshot) = base();
    assert!(matches!(
        RoomDoc::from_snapshot(&snapshot[..snapshot.len() - 1], UNLIMITED),
        Err(Error::Refused(crdt::Invalid::Decode(_)))
    ));
    assert!(matches!(RoomDoc::from_snapshot(INVALID_PARENT, UNLIMITED), Err(Error::InvalidUpdate(_))));
    let empty = RoomDoc::from_snapshot(&[], UNLIMITED).unwrap();
    assert_eq!(empty.state_vector().unwrap(), RoomDoc::new(UNLIMITED).state_vector().unwrap());
    assert_eq!(content(empty.doc()).text, "");
}

/// A mutated update (found by fuzzing) that made yrs 0.28 panic on an `unwrap` in
/// `BlockStore::push`, where it replaces a `Skip` block. Its Skip runs past the 32-bit clock, so
/// validation now refuses it before yrs sees it; and 150,000 valid mutations of valid updates
/// (1.2 million tried, validation and hole-stashing on) found no other.
const PANICS_YRS_UNVALIDATED: &[u8] =
    &[1, 2, 1, 214, 4, 10, 195, 169, 195, 159, 121, 196, 1, 164, 1, 1, 165, 1, 3, 10, 195, 159, 0];

/// A panic inside yrs's transaction, after it changed the document (fault injection), is contained
/// and the document rebuilt as it was.
#[test]
fn yrs_panic_is_contained_and_rolled_back() {
    let mut rng = StdRng::seed_from_u64(42);
    let doc = client(1);
    let mut room = RoomDoc::new(UNLIMITED);
    for _ in 0..59 {
        room.apply_update(&random_edit(&doc, &mut rng)).unwrap();
    }
    assert!(matches!(room.apply_update(PANICS_YRS_UNVALIDATED), Err(Error::Refused(_))));
    let before = fingerprint(&room);
    let code = doc.get_or_insert_text("code");
    let panics = edit(&doc, |txn| code.insert(txn, 0, crdt::faults::PANIC_ON_APPLY));
    let result = room.apply_update(&panics);
    assert!(matches!(&result, Err(Error::InvalidUpdate(m)) if m.contains("panicked")), "{result:?}");
    assert_eq!(fingerprint(&room), before);
    assert!(!room.is_poisoned(), "rolled back, not poisoned");
    assert_still_works(&mut room, "after a yrs panic");
}

/// A panic while encoding (fault injection) poisons the document: every later call says so
/// instead of touching it again.
#[test]
fn yrs_panic_while_encoding_poisons_the_document() {
    let doc = client(1);
    let code = doc.get_or_insert_text("code");
    let mut room = RoomDoc::new(UNLIMITED);
    room.apply_update(&insert_text(&doc, 0, "fine")).unwrap();
    let marker = edit(&doc, |txn| code.insert(txn, 0, crdt::faults::PANIC_ON_ENCODE));
    assert!(room.apply_update(&marker).unwrap().relay_original, "applying does not encode");
    assert!(matches!(room.snapshot(), Err(Error::Poisoned(m)) if m.contains("fault injection")));
    assert!(room.is_poisoned());
    assert!(matches!(room.state_vector(), Err(Error::Poisoned(_))));
    assert!(matches!(room.diff(&[0]), Err(Error::Poisoned(_))));
    assert!(matches!(room.apply_update(&insert_text(&doc, 0, "x")), Err(Error::Poisoned(_))));
}

/// Random mutations of valid updates (bit flips, overwritten or inserted bytes, splices of two
/// updates): whatever yrs makes of them, nothing panics and a refusal changes nothing.
#[test]
fn mutated_updates_never_half_apply() {
    let mut rng = StdRng::seed_from_u64(5);
    let doc = client(1);
    let updates: Vec<Vec<u8>> = (0..100).map(|_| random_edit(&doc, &mut rng)).collect();
    let mut room = RoomDoc::new(UNLIMITED);
    for update in &updates[..50] {
        room.apply_update(update).unwrap();
    }
    let base = room.snapshot().unwrap();
    for _ in 0..1500 {
        let mut u = updates[rng.random_range(0..updates.len())].clone();
        match rng.random_range(0..4) {
            0 => {
                let bit = rng.random_range(0..u.len() * 8);
                u[bit / 8] ^= 1 << (bit % 8);
            }
            1 => {
                let at = rng.random_range(0..u.len());
                u[at] = rng.random();
            }
            2 => {
                let other = &updates[rng.random_range(0..updates.len())];
                u.truncate(rng.random_range(0..u.len()));
                u.extend_from_slice(&other[rng.random_range(0..other.len())..]);
            }
            _ => u.insert(rng.random_range(0..=u.len()), rng.random()),
        }
        refusal_changes_nothing(&base, &u);
    }
}

#[test]
fn peer_updates_pass_the_update_limit_but_not_the_document_limit() {
    let (doc, snapshot) = base();
    let next = insert_text(&doc, 0, ">");
    let tight = Limits { max_update_bytes: next.len() - 1, max_doc_bytes: usize::MAX };
    let mut room = RoomDoc::from_snapshot(&snapshot, tight).unwrap();
    assert!(matches!(room.apply_update(&next), Err(Error::UpdateTooLarge { .. })));
    // A node's sync reply may hold a whole document: only the document limit bounds it.
    assert!(room.apply_peer_update(&next).unwrap().changed);

    let full = Limits { max_update_bytes: usize::MAX, max_doc_bytes: snapshot.len() + next.len() - 1 };
    let mut room = RoomDoc::from_snapshot(&snapshot, full).unwrap();
    let before = fingerprint(&room);
    assert!(matches!(room.apply_peer_update(&next), Err(Error::DocTooLarge { .. })));
    assert_eq!(fingerprint(&room), before);
}

#[test]
fn text_reads_a_root_text_without_creating_it() {
    use yrs::{Text, Transact};
    let source = yrs::Doc::new();
    let code = source.get_or_insert_text("code");
    code.insert(&mut source.transact_mut(), 0, "print('hé')\n");
    let update = source.transact().encode_state_as_update_v1(&yrs::StateVector::default());
    let mut room = crdt::RoomDoc::new(crdt::Limits::default());
    assert_eq!(room.text("code"), None, "an empty document has no code");
    room.apply_update(&update).expect("apply");
    assert_eq!(room.text("code").as_deref(), Some("print('hé')\n"));
    assert_eq!(room.text("other"), None);
}
