//! `AwarenessRegistry`: y-protocols `applyAwarenessUpdate` clock rules, removals, the outdated
//! timeout at its edges, malformed payloads, and the `encode_all` cache.

mod common;

use common::awareness_payload as payload;
use crdt::{Accepted, AwarenessChange, AwarenessLimits, AwarenessRegistry, Error, Owner};

const TIMEOUT: u64 = 30_000;

fn change(updated: &[u64], removed: &[u64]) -> AwarenessChange {
    AwarenessChange { updated: updated.to_vec(), removed: removed.to_vec() }
}

/// (name, payload entries, expected change, state of client 1 afterwards).
type Step<'a> = (&'a str, &'a [(u64, u64, &'a str)], AwarenessChange, Option<&'a str>);

/// Table of steps applied in sequence to one registry that starts knowing client 1 at clock 5
/// with `{"a":1}`.
#[test]
fn clock_rules_follow_y_protocols() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    reg.apply(&payload(&[(1, 5, r#"{"a":1}"#)]), 0).unwrap();
    let steps: &[Step] = &[
        ("older clock is ignored", &[(1, 4, r#"{"a":2}"#)], change(&[], &[]), Some(r#"{"a":1}"#)),
        ("same clock with a state is ignored", &[(1, 5, r#"{"a":3}"#)], change(&[], &[]), Some(r#"{"a":1}"#)),
        ("newer clock wins", &[(1, 6, r#"{"a":4}"#)], change(&[1], &[]), Some(r#"{"a":4}"#)),
        ("same clock with null removes", &[(1, 6, "null")], change(&[], &[1]), None),
        ("same clock null again is ignored", &[(1, 6, "null")], change(&[], &[]), None),
        ("newer clock brings it back", &[(1, 7, r#"{"a":5}"#)], change(&[1], &[]), Some(r#"{"a":5}"#)),
        ("null with whitespace is null", &[(1, 8, " null\n")], change(&[], &[1]), None),
        ("unknown client at clock 0 is ignored", &[(2, 0, "{}")], change(&[], &[]), None),
        ("last entry for a client decides", &[(1, 9, "{}"), (1, 10, "null")], change(&[], &[1]), None),
        ("several clients, sorted", &[(9, 1, "{}"), (3, 1, "{}")], change(&[3, 9], &[]), None),
    ];
    for (name, entries, expected, state) in steps {
        let got = reg.apply(&payload(entries), 0).unwrap();
        assert_eq!(&got, expected, "{name}");
        assert_eq!(reg.state(1), *state, "{name}");
    }
    assert_eq!(reg.len(), 2);
    assert_eq!(reg.clock(1), Some(10));
}

#[test]
fn remove_bumps_the_clock_and_sends_null() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    reg.apply(&payload(&[(1, 3, "{}"), (2, 7, "{}")]), 0).unwrap();
    let removal = reg.remove(&[2, 1, 42], 10).expect("two had a state");
    // What y-protocols' applyAwarenessUpdate accepts as a removal: clock + 1, state "null".
    assert_eq!(removal, payload(&[(2, 8, "null"), (1, 4, "null")]));
    assert!(reg.is_empty());
    assert_eq!(reg.remove(&[1, 2], 20), None, "nobody left to remove");
    // A second registry (a peer) holding the old states accepts the removal.
    let mut peer = AwarenessRegistry::new(TIMEOUT);
    peer.apply(&payload(&[(1, 3, "{}"), (2, 7, "{}")]), 0).unwrap();
    assert_eq!(peer.apply(&removal, 0).unwrap(), change(&[], &[1, 2]));
    assert!(peer.is_empty());
    // The bumped clock makes the stale state lose if it arrives late.
    assert_eq!(reg.apply(&payload(&[(1, 4, "{}")]), 30).unwrap(), change(&[], &[]));
}

#[test]
fn expire_at_the_timeout_edges() {
    for (now, expired) in [(TIMEOUT - 1, false), (TIMEOUT, true), (TIMEOUT + 1, true)] {
        let mut reg = AwarenessRegistry::new(TIMEOUT);
        reg.apply(&payload(&[(1, 1, "{}")]), 0).unwrap();
        reg.apply(&payload(&[(2, 1, "{}")]), 5).unwrap();
        let out = reg.expire(now);
        if expired {
            assert_eq!(out, Some(payload(&[(1, 2, "null")])), "now {now}");
            assert_eq!(reg.len(), 1, "client 2 is 5 ms younger");
        } else {
            assert_eq!(out, None, "now {now}");
            assert_eq!(reg.len(), 2);
        }
    }
}

#[test]
fn renewing_postpones_expiry_and_tombstones_are_forgotten() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    reg.apply(&payload(&[(1, 1, "{}")]), 0).unwrap();
    reg.apply(&payload(&[(1, 2, "{}")]), 20_000).unwrap();
    assert_eq!(reg.expire(30_000), None, "renewed at 20 s");
    assert!(reg.expire(50_000).is_some());
    assert_eq!(reg.clock(1), Some(3), "removed, clock remembered");
    assert_eq!(reg.expire(79_999), None);
    assert_eq!(reg.clock(1), Some(3));
    assert_eq!(reg.expire(80_000), None, "forgetting is silent");
    assert_eq!(reg.clock(1), None, "forgotten a timeout after removal");
    assert_eq!(reg.expire(0), None, "time going backwards expires nothing");
}

#[test]
fn malformed_payloads_change_nothing() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    reg.apply(&payload(&[(1, 1, r#"{"x":1}"#)]), 0).unwrap();
    let before = reg.encode_all();
    let mut valid_then_truncated = payload(&[(2, 1, "{}"), (3, 1, "{}")]);
    valid_then_truncated.pop();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("count larger than the payload", vec![0xff, 0xff, 0x03]),
        ("truncated after a valid entry", valid_then_truncated),
        ("second state not JSON", payload(&[(2, 1, "{}"), (3, 1, "{not json")])),
        ("trailing bytes", {
            let mut p = payload(&[(2, 1, "{}")]);
            p.push(0);
            p
        }),
        ("state not UTF-8", vec![1, 2, 1, 1, 0xff]),
        ("client id above 2^53", {
            let mut p = vec![1];
            common::var_uint(&mut p, 1 << 53);
            p.extend_from_slice(&[1, 2, b'{', b'}']);
            p
        }),
    ];
    for (name, bytes) in cases {
        let result = reg.apply(&bytes, 1);
        assert!(
            matches!(result, Err(Error::MalformedAwareness(_) | Error::AwarenessStateNotJson { .. })),
            "{name}: {result:?}"
        );
        assert_eq!(reg.encode_all(), before, "{name}");
        assert_eq!(reg.len(), 1, "{name}");
        assert_eq!(reg.clock(2), None, "{name}");
    }
}

#[test]
fn encode_all_is_cached_until_a_change() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    assert_eq!(reg.encode_all(), None);
    reg.apply(&payload(&[(5, 1, r#"{"u":"b"}"#), (2, 4, r#"{"u":"a"}"#)]), 0).unwrap();
    let all = reg.encode_all().unwrap();
    assert_eq!(all, payload(&[(2, 4, r#"{"u":"a"}"#), (5, 1, r#"{"u":"b"}"#)]));
    assert_eq!(reg.encode_all().unwrap(), all);
    // An ignored (stale) entry is not a change.
    reg.apply(&payload(&[(5, 1, "{}")]), 0).unwrap();
    assert_eq!(reg.encode_all().unwrap(), all);
    reg.apply(&payload(&[(5, 2, "{}")]), 0).unwrap();
    assert_eq!(reg.encode_all().unwrap(), payload(&[(2, 4, r#"{"u":"a"}"#), (5, 2, "{}")]));
    reg.remove(&[2], 0);
    assert_eq!(reg.encode_all().unwrap(), payload(&[(5, 2, "{}")]));
    reg.remove(&[5], 0);
    assert_eq!(reg.encode_all(), None);
}

/// Bytes a JS client sends, as y-protocols writes them:
/// `encodeAwarenessUpdate(awareness, [1234])` after `setLocalState({ user: 'ann' })` at clock 1.
#[test]
fn decodes_y_protocols_bytes() {
    let json = r#"{"user":"ann"}"#;
    let mut bytes = vec![1, 0xd2, 0x09, 1, json.len() as u8];
    bytes.extend_from_slice(json.as_bytes());
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    assert_eq!(reg.apply(&bytes, 0).unwrap(), change(&[1234], &[]));
    assert_eq!(reg.state(1234), Some(json));
    assert_eq!(reg.encode_all().unwrap(), bytes);
}

const LIMITS: AwarenessLimits = AwarenessLimits { max_state_bytes: 16, max_clients: 2 };
const ALICE: Owner = Owner { conn: 1, principal: 100 };
const ALICE_AGAIN: Owner = Owner { conn: 2, principal: 100 };
const BOB: Owner = Owner { conn: 3, principal: 200 };
const ANON: Owner = Owner { conn: 4, principal: 0 };
const ANON_AGAIN: Owner = Owner { conn: 5, principal: 0 };

/// Issue 9, item 3: a connection sets only the ids it introduced; the rest of its update still
/// counts, and what is relayed leaves the refused entries out.
#[test]
fn a_connection_cannot_overwrite_another_connections_state() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    let alice = payload(&[(1, 1, r#"{"u":"alice"}"#)]);
    let got = reg.apply_from(&alice, 0, ALICE, &LIMITS).unwrap();
    assert_eq!(got, Accepted { change: change(&[1], &[]), filtered: None });
    // Bob impersonates Alice's client 1 and sets his own client 2 in the same update.
    let forged = payload(&[(1, 2, r#"{"u":"bob"}"#), (2, 1, r#"{"u":"bob"}"#)]);
    let got = reg.apply_from(&forged, 0, BOB, &LIMITS).unwrap();
    assert_eq!(got.change, change(&[2], &[]));
    assert_eq!(got.filtered, Some(payload(&[(2, 1, r#"{"u":"bob"}"#)])), "relay only Bob's own entry");
    assert_eq!(reg.state(1), Some(r#"{"u":"alice"}"#));
    // Nor can he remove it.
    let got = reg.apply_from(&payload(&[(1, 9, "null")]), 0, BOB, &LIMITS).unwrap();
    assert_eq!(got.change, change(&[], &[]));
    assert_eq!(reg.state(1), Some(r#"{"u":"alice"}"#));
    // Alice renews and removes her own.
    assert_eq!(
        reg.apply_from(&payload(&[(1, 3, "{}")]), 0, ALICE, &LIMITS).unwrap().change,
        change(&[1], &[])
    );
    // A state from another node is held by no local connection: no one here may overwrite it.
    reg.apply(&payload(&[(7, 1, "{}")]), 0).unwrap();
    assert_eq!(
        reg.apply_from(&payload(&[(7, 2, "{}")]), 0, ALICE, &LIMITS).unwrap().change,
        change(&[], &[])
    );
    // Once removed, an id is free to take.
    assert_eq!(
        reg.apply_from(&payload(&[(1, 4, "null")]), 0, ALICE, &LIMITS).unwrap().change,
        change(&[], &[1])
    );
    assert_eq!(reg.apply_from(&payload(&[(1, 5, "{}")]), 0, BOB, &LIMITS).unwrap().change, change(&[1], &[]));
}

/// A reconnecting signed-in user takes over the ids its earlier connection still holds; that
/// connection's leaving then removes nothing of them. Anonymous connections cannot.
#[test]
fn the_same_user_takes_over_and_leaving_removes_only_what_is_still_held() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    reg.apply_from(&payload(&[(1, 1, "{}")]), 0, ALICE, &LIMITS).unwrap();
    let got = reg.apply_from(&payload(&[(1, 2, r#"{"back":1}"#)]), 0, ALICE_AGAIN, &LIMITS).unwrap();
    assert_eq!(got.change, change(&[1], &[]));
    assert_eq!(reg.remove_held_by(ALICE.conn, 10), None, "the old connection holds nothing now");
    assert_eq!(reg.state(1), Some(r#"{"back":1}"#));
    assert_eq!(reg.remove_held_by(ALICE_AGAIN.conn, 10), Some(payload(&[(1, 3, "null")])));

    reg.apply_from(&payload(&[(5, 1, "{}")]), 0, ANON, &LIMITS).unwrap();
    let got = reg.apply_from(&payload(&[(5, 2, "{}")]), 0, ANON_AGAIN, &LIMITS).unwrap();
    assert_eq!(got.change, change(&[], &[]), "anonymous connections share no identity");
}

#[test]
fn limits_refuse_the_whole_update_at_their_edges() {
    let mut reg = AwarenessRegistry::new(TIMEOUT);
    let exactly = "\"0123456789abcd\""; // 16 bytes
    assert_eq!(exactly.len(), LIMITS.max_state_bytes);
    reg.apply_from(&payload(&[(1, 1, exactly)]), 0, ALICE, &LIMITS).unwrap();
    let over = "\"0123456789abcde\"";
    let err = reg.apply_from(&payload(&[(2, 1, over)]), 0, ALICE, &LIMITS).unwrap_err();
    assert!(matches!(err, Error::AwarenessStateTooLarge { client_id: 2, len: 17, max: 16 }), "{err}");
    // Two ids are allowed, a third is not (and nothing of that update is applied).
    reg.apply_from(&payload(&[(2, 1, "{}")]), 0, ALICE, &LIMITS).unwrap();
    let err = reg.apply_from(&payload(&[(1, 2, "{}"), (3, 1, "{}")]), 0, ALICE, &LIMITS).unwrap_err();
    assert!(matches!(err, Error::TooManyAwarenessClients { held: 3, max: 2 }), "{err}");
    assert_eq!(reg.clock(1), Some(1), "refused whole");
    assert_eq!(reg.state(3), None);
    // Giving one up makes room, within the same update.
    let swap = payload(&[(2, 2, "null"), (3, 1, "{}")]);
    assert_eq!(reg.apply_from(&swap, 0, ALICE, &LIMITS).unwrap().change, change(&[3], &[2]));
    // Other nodes' states do not count against a local connection.
    reg.apply(&payload(&[(8, 1, "{}"), (9, 1, "{}")]), 0).unwrap();
    assert_eq!(reg.len(), 4);
}
