//! Round trips of every message variant through encode and `decode_frame`, with exact byte ranges.

use protocol::{
    AuthMessage, AwarenessEntry, DecodeError, Message, SyncMessage, decode_awareness_update, decode_frame,
    encode_awareness_update,
};

/// Every variant over the given payload (and its text form for the string-carrying variants).
fn all_variants<'a>(payload: &'a [u8], text: &'a str) -> Vec<Message<'a>> {
    vec![
        Message::Sync(SyncMessage::Step1(payload)),
        Message::Sync(SyncMessage::Step2(payload)),
        Message::Sync(SyncMessage::Update(payload)),
        Message::Awareness(payload),
        Message::Auth(AuthMessage::PermissionDenied { reason: text }),
        Message::QueryAwareness,
        Message::App(text),
    ]
}

/// Encodes `message` alone, decodes the frame, and expects the same message covering every byte.
fn check_single(message: Message<'_>) {
    let frame = message.encode_to_vec();
    assert_eq!(frame.len(), message.encoded_len(), "{:?}", message.kind());
    let decoded: Vec<_> = decode_frame(&frame).collect();
    assert_eq!(decoded, vec![Ok((message, 0..frame.len()))], "{:?}", message.kind());
}

#[test]
fn every_variant_with_empty_payload() {
    for message in all_variants(b"", "") {
        check_single(message);
    }
}

#[test]
fn every_variant_with_small_payload() {
    for message in all_variants(b"\x00\x01\x80\xff", "héllo ✓ {\"a\":1}") {
        check_single(message);
    }
}

#[test]
fn every_variant_with_one_mebibyte_payload() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let text = "x".repeat(1 << 20);
    for message in all_variants(&payload, &text) {
        check_single(message);
    }
}

#[test]
fn several_messages_in_one_frame_keep_their_ranges() {
    let big = vec![7u8; 200];
    let messages = [all_variants(b"", ""), all_variants(b"abc", "reason"), all_variants(&big, "{}")].concat();
    let mut frame = Vec::new();
    let mut ranges = Vec::new();
    for message in &messages {
        let start = frame.len();
        message.encode(&mut frame);
        ranges.push(start..frame.len());
    }
    let decoded: Vec<_> = decode_frame(&frame).collect::<Result<_, _>>().expect("valid frame");
    assert_eq!(decoded.len(), messages.len());
    for ((message, range), (expected, expected_range)) in decoded.iter().zip(messages.iter().zip(&ranges)) {
        assert_eq!(message, expected);
        assert_eq!(range, expected_range);
        // The range is what the server re-broadcasts: it must be that message's own bytes.
        assert_eq!(frame.get(range.clone()), Some(expected.encode_to_vec().as_slice()));
    }
}

#[test]
fn valid_messages_before_a_bad_one_are_still_yielded() {
    let mut frame = Message::QueryAwareness.encode_to_vec();
    Message::Awareness(b"\x00").encode(&mut frame);
    frame.push(0x63); // message type 99: unknown
    frame.extend_from_slice(&Message::QueryAwareness.encode_to_vec());
    let decoded: Vec<_> = decode_frame(&frame).collect();
    assert_eq!(
        decoded,
        vec![
            Ok((Message::QueryAwareness, 0..1)),
            Ok((Message::Awareness(b"\x00"), 1..4)),
            Err(DecodeError::UnknownMessageType(99)),
        ]
    );
}

#[test]
fn awareness_message_carrying_an_update_round_trips() {
    let entries = [
        AwarenessEntry { client_id: 1_234_567, clock: 3, state: r#"{"user":{"name":"alice"}}"# },
        AwarenessEntry { client_id: 42, clock: 9, state: "null" },
    ];
    let mut payload = Vec::new();
    encode_awareness_update(entries, &mut payload);
    let frame = Message::Awareness(&payload).encode_to_vec();
    let decoded: Vec<_> = decode_frame(&frame).collect();
    let Some(Ok((Message::Awareness(inner), range))) = decoded.first() else {
        panic!("expected one awareness message, got {decoded:?}");
    };
    assert_eq!(*range, 0..frame.len());
    assert_eq!(decode_awareness_update(inner), Ok(entries.to_vec()));
    assert!(!entries[0].is_removal());
    assert!(entries[1].is_removal());
}
