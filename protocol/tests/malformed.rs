//! Every class of malformed client input maps to its typed error (table-driven).

use protocol::{DecodeError, Message, decode_awareness_update, decode_frame};

/// Decodes `frame` and expects its first error to be `expected`, with no panic and nothing after it.
fn check(name: &str, frame: &[u8], expected: DecodeError) {
    let items: Vec<_> = decode_frame(frame).collect();
    let errors: Vec<_> = items.iter().filter_map(|item| item.as_ref().err()).collect();
    assert_eq!(errors, vec![&expected], "{name}: {frame:02x?} gave {items:?}");
    assert!(items.last().is_some_and(Result::is_err), "{name}: the error must be last");
}

#[test]
fn malformed_frames() {
    use DecodeError::*;
    let max_safe = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("empty frame", vec![], EmptyFrame),
        ("truncated type var-uint", vec![0x80], UnexpectedEof),
        ("truncated multi-byte type", vec![0xe4], UnexpectedEof),
        ("type var-uint overflow", vec![0xff; 10], VarUintOverflow),
        ("type over 2^53", vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10], VarUintOverflow),
        ("non-canonical type", vec![0x80, 0x00], NonCanonicalVarUint),
        ("non-canonical app type", vec![0xe4, 0x80, 0x00, 0x00], NonCanonicalVarUint),
        ("unknown type", vec![0x04], UnknownMessageType(4)),
        ("unknown type 99", vec![0x63, 0x00], UnknownMessageType(99)),
        ("unknown large type", [&max_safe[..], &[0]].concat(), UnknownMessageType((1 << 53) - 1)),
        ("sync without subtype", vec![0x00], UnexpectedEof),
        ("sync subtype overflow", [&[0x00][..], &[0xff; 9]].concat(), VarUintOverflow),
        ("unknown sync subtype", vec![0x00, 0x03, 0x00], UnknownSyncType(3)),
        ("unknown sync subtype, no payload", vec![0x00, 0x7f], UnknownSyncType(127)),
        ("sync without payload length", vec![0x00, 0x02], UnexpectedEof),
        ("sync payload beyond end", vec![0x00, 0x02, 0x05, 1, 2, 3, 4], UnexpectedEof),
        ("sync payload length 2^53-1", [&[0x00, 0x01][..], &max_safe[..]].concat(), UnexpectedEof),
        ("sync payload length overflow", [&[0x00, 0x00][..], &[0xff; 10]].concat(), VarUintOverflow),
        ("awareness without length", vec![0x01], UnexpectedEof),
        ("awareness beyond end", vec![0x01, 0x03, 0x00], UnexpectedEof),
        ("auth without subtype", vec![0x02], UnexpectedEof),
        ("unknown auth subtype", vec![0x02, 0x02, 0x00], UnknownAuthType(2)),
        ("auth reason beyond end", vec![0x02, 0x00, 0x02, b'a'], UnexpectedEof),
        ("auth reason invalid UTF-8", vec![0x02, 0x00, 0x02, 0xc3, 0x28], InvalidUtf8),
        ("auth reason lone surrogate", vec![0x02, 0x00, 0x03, 0xed, 0xa0, 0x80], InvalidUtf8),
        ("app without length", vec![0x64], UnexpectedEof),
        ("app beyond end", vec![0x64, 0x02, b'{'], UnexpectedEof),
        ("app invalid UTF-8", vec![0x64, 0x02, b'{', 0xff], InvalidUtf8),
        ("app overlong UTF-8", vec![0x64, 0x02, 0xc0, 0xaf], InvalidUtf8),
    ];
    for (name, frame, expected) in cases {
        check(name, &frame, expected);
    }
}

#[test]
fn error_after_valid_messages_in_a_frame() {
    let mut frame = Message::QueryAwareness.encode_to_vec();
    frame.extend_from_slice(&[0x00, 0x09, 0x00]);
    check("bad sync subtype after query", &frame, DecodeError::UnknownSyncType(9));

    let mut frame = Message::App("{}").encode_to_vec();
    frame.push(0x80);
    check("truncated second message", &frame, DecodeError::UnexpectedEof);
}

/// Decodes an awareness payload and expects `expected`.
fn check_awareness(name: &str, payload: &[u8], expected: DecodeError) {
    assert_eq!(decode_awareness_update(payload), Err(expected), "{name}: {payload:02x?}");
}

#[test]
fn malformed_awareness_updates() {
    use DecodeError::*;
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("empty", vec![], UnexpectedEof),
        ("count overflow", vec![0xff; 10], VarUintOverflow),
        ("lying count", vec![0x03, 0x01, 0x01, 0x00], AwarenessCountTooLarge { count: 3, remaining: 3 }),
        (
            "huge lying count",
            vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3],
            AwarenessCountTooLarge { count: (1 << 28) - 1, remaining: 3 },
        ),
        ("count within budget, entries short", vec![0x02, 0x01, 0x01, 0x02, b'{', b'}', 0x01], UnexpectedEof),
        ("trailing bytes", vec![0x01, 0x01, 0x01, 0x00, 0x00, 0x00], AwarenessTrailingBytes(2)),
        ("zero entries then trailing", vec![0x00, 0xaa], AwarenessTrailingBytes(1)),
        ("state invalid UTF-8", vec![0x01, 0x01, 0x01, 0x01, 0xff], InvalidUtf8),
        ("state beyond end", vec![0x01, 0x01, 0x01, 0x05, b'n'], UnexpectedEof),
        ("client id overflow", [&[0x01][..], &[0xff; 9], &[0x01, 0x00]].concat(), VarUintOverflow),
        ("non-canonical clock", vec![0x01, 0x01, 0x80, 0x00, 0x00], NonCanonicalVarUint),
    ];
    for (name, payload, expected) in cases {
        check_awareness(name, &payload, expected);
    }
}

#[test]
fn error_codes_are_stable() {
    let cases = [
        (DecodeError::EmptyFrame, "empty_frame"),
        (DecodeError::UnexpectedEof, "unexpected_eof"),
        (DecodeError::VarUintOverflow, "var_uint_overflow"),
        (DecodeError::NonCanonicalVarUint, "non_canonical_var_uint"),
        (DecodeError::InvalidUtf8, "invalid_utf8"),
        (DecodeError::UnknownMessageType(5), "unknown_message_type"),
        (DecodeError::UnknownSyncType(5), "unknown_sync_type"),
        (DecodeError::UnknownAuthType(5), "unknown_auth_type"),
        (DecodeError::AwarenessCountTooLarge { count: 1, remaining: 0 }, "awareness_count_too_large"),
        (DecodeError::AwarenessTrailingBytes(1), "awareness_trailing_bytes"),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
    }
}
