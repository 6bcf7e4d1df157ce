//! The validator against hand-made hostile updates and honest ones from yrs.

use protocol::lib0::{write_var_string, write_var_uint};
use yrs::types::xml::XmlFragment;
use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, WriteTxn, XmlElementPrelim};

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// One client section holding one string item under root type `code`, then `deletes` raw.
fn string_item(client: u64, clock: u64, info_extra: u8, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_var_uint(&mut out, 1); // clients
    write_var_uint(&mut out, 1); // structs
    write_var_uint(&mut out, client);
    write_var_uint(&mut out, clock);
    out.push(4 | info_extra);
    write_var_uint(&mut out, 1); // parent is a root type
    write_var_string(&mut out, "code");
    write_var_string(&mut out, text);
    out.push(0); // empty delete set
    out
}

fn check(bytes: &[u8], expected: Result<(), Invalid>) {
    assert_eq!(validate_update(bytes).map(drop), expected, "{bytes:02x?}");
}

#[test]
fn the_reported_clock_overflow_is_refused_and_its_partner_accepted() {
    // Issue 9: client 777777 inserts "xxxxx" at clock 2^32 - 2 (the sync message's payload).
    let overflow = hex("0101b1bc2ffeffffff0f040104636f646505787878787800");
    check(&overflow, Err(Invalid::ClockOverflow { client: 777_777, clock: (1 << 32) - 2, len: 5 }));
    // The 5-long placeholder at clock 0 is a plain GC struct: harmless alone.
    let placeholder = hex("0101b1bc2f00000500");
    let shape = validate_update(&placeholder).unwrap();
    assert_eq!(
        shape.clients,
        vec![ClientRange { client: 777_777, start: 0, end: 5, has_skip: false, needs: 0 }]
    );
}

#[test]
fn structural_refusals() {
    // A range ending exactly at 2^32 - 1 fits; one more unit does not.
    check(&string_item(1, u64::from(u32::MAX) - 1, 0, "x"), Ok(()));
    check(
        &string_item(1, u64::from(u32::MAX) - 1, 0, "xy"),
        Err(Invalid::ClockOverflow { client: 1, clock: u64::from(u32::MAX) - 1, len: 2 }),
    );
    check(&string_item(1, 0, 0, ""), Err(Invalid::EmptyStruct { client: 1, clock: 0 }));
    // Content ref 20: Yjs throws (no such ref), yrs reads it as 4 (a string).
    check(&string_item(1, 0, 0x10, "x"), Err(Invalid::BadInfo { client: 1, clock: 0, info: 0x14 }));
    // A GC struct with the parent-sub flag: Yjs reads GC, yrs an item.
    check(&hex("01010100200500"), Err(Invalid::BadInfo { client: 1, clock: 0, info: 0x20 }));
    check(&hex("01010100000000"), Err(Invalid::EmptyStruct { client: 1, clock: 0 }));
    // Legacy ContentJSON.
    check(&hex("0101010002010474797065010161" /* [\"a\"] */), Err(Invalid::LegacyJson));
    // Unknown type ref 9.
    check(&hex("01010100070104636f64650900"), Err(Invalid::UnknownTypeRef(9)));
    // Trailing garbage after the delete set.
    let mut trailing = string_item(1, 0, 0, "x");
    trailing.push(7);
    check(&trailing, Err(Invalid::TrailingBytes(1)));
    // A count of clients larger than the input (an allocation bomb for the decoder).
    check(&hex("ffffffff0f"), Err(Invalid::CountTooLarge { count: u64::from(u32::MAX), remaining: 0 }));
    // A delete range past the clock.
    check(
        &hex(concat!("00010101", "feffffff0f", "05")), /* client 1, one range */
        Err(Invalid::ClockOverflow { client: 1, clock: (1 << 32) - 2, len: 5 }),
    );
    // Truncated.
    check(&string_item(1, 0, 0, "x")[..8], Err(Invalid::Decode(DecodeError::UnexpectedEof)));
}

#[test]
fn a_client_listed_twice_is_refused() {
    let mut out = Vec::new();
    write_var_uint(&mut out, 2);
    for clock in [0, 10] {
        write_var_uint(&mut out, 1);
        write_var_uint(&mut out, 7);
        write_var_uint(&mut out, clock);
        out.extend([0, 3]); // GC of length 3
    }
    out.push(0);
    check(&out, Err(Invalid::DuplicateClient(7)));
}

#[test]
fn references_must_point_back_in_their_own_client() {
    // Item 5:3 whose origin is 5:3 (itself), then 5:4, then another client's 5:9 is fine.
    let item = |origin_client: u64, origin_clock: u64| {
        let mut out = Vec::new();
        write_var_uint(&mut out, 1);
        write_var_uint(&mut out, 1);
        write_var_uint(&mut out, 5);
        write_var_uint(&mut out, 3);
        out.push(4 | HAS_ORIGIN);
        write_var_uint(&mut out, origin_client);
        write_var_uint(&mut out, origin_clock);
        write_var_string(&mut out, "x");
        out.push(0);
        out
    };
    check(&item(5, 2), Ok(()));
    check(&item(6, 9), Ok(()));
    check(&item(5, 3), Err(Invalid::ForwardReference { client: 5, clock: 3, ref_clock: 3 }));
    check(&item(5, 4), Err(Invalid::ForwardReference { client: 5, clock: 3, ref_clock: 4 }));
    check(
        &item(6, u64::from(u32::MAX)),
        Err(Invalid::ReferenceOverflow { client: 6, clock: u64::from(u32::MAX) }),
    );
}

#[test]
fn nesting_is_bounded_without_recursing_into_the_stack() {
    // One Any item holding arrays nested `depth` deep around a null.
    let nested = |depth: usize| {
        let mut out = hex("01010100080104636f646501");
        for _ in 0..depth {
            out.extend([117, 1]);
        }
        out.extend([126, 0]);
        out
    };
    check(&nested(MAX_NESTING - 1), Ok(()));
    check(&nested(MAX_NESTING), Err(Invalid::TooDeep));
    // Deep enough to overflow yrs's recursive decoder on a 2 MiB stack.
    check(&nested(200_000), Err(Invalid::TooDeep));
}

#[test]
fn honest_updates_of_every_content_kind_pass_with_their_ranges() {
    let doc = Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(42),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    });
    let mut updates = Vec::new();
    let mut edit = |f: &dyn Fn(&mut yrs::TransactionMut)| {
        let mut txn = doc.transact_mut();
        f(&mut txn);
        updates.push(txn.encode_update_v1());
    };
    edit(&|txn| {
        let text = txn.get_or_insert_text("code");
        text.insert(txn, 0, "héllo 👋 wörld");
    });
    edit(&|txn| {
        let text = txn.get_or_insert_text("code");
        text.remove_range(txn, 2, 5);
        text.format(txn, 0, 3, [("bold".into(), Any::Bool(true))].into_iter().collect());
        text.insert_embed(txn, 1, Any::from(vec![Any::from("image")]));
    });
    edit(&|txn| {
        let map = txn.get_or_insert_map("meta");
        map.insert(txn, "nested", Any::from_json(r#"{"a":[1,2.5,{"b":null}],"c":"d"}"#).unwrap());
        map.insert(txn, "bytes", Any::from(vec![1u8, 2, 3]));
        let array = txn.get_or_insert_array("list");
        array.insert_range(txn, 0, [1, 2, 3]);
        array.insert(txn, 1, yrs::MapPrelim::default());
    });
    edit(&|txn| {
        let xml = txn.get_or_insert_xml_fragment("xml");
        xml.insert(txn, 0, XmlElementPrelim::empty("p"));
    });
    for update in &updates {
        let shape = validate_update(update).unwrap_or_else(|e| panic!("{e}: {update:02x?}"));
        assert_eq!(shape.clients.len(), 1);
    }
    // The whole state too, with its delete set; its range is the state vector.
    let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
    let shape = validate_update(&state).unwrap();
    let end = doc.transact().state_vector().get(&yrs::ClientID::new(42));
    assert_eq!(shape.clients, vec![ClientRange { client: 42, start: 0, end, has_skip: false, needs: 0 }]);
    assert!(shape.has_deletes);
}

#[test]
fn merged_updates_with_gaps_carry_skips() {
    let updates = crate::ydoc::typing(3, "ab");
    let merged = yrs::merge_updates_v1([updates[0].as_slice(), updates[2].as_slice()]).unwrap();
    let shape = validate_update(&merged).unwrap();
    assert!(shape.clients[0].has_skip, "{shape:?}");
    assert_eq!((shape.clients[0].start, shape.clients[0].end), (0, 6));
    assert_eq!(shape.clients[0].needs, 4, "the third update's structs begin after the hole");
}
