//! The decoder against frames built by hand as a client masks them: whole, cut at every byte,
//! fragmented, and each way a client can break the framing.

use super::*;

const MAX: usize = 64 * 1024;

/// A client frame: FIN flag, opcode, the payload masked with `mask`.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => bytes.push(0x80 | len as u8),
        len @ 126..=65_535 => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(0x80 | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

fn binary(payload: &[u8]) -> Vec<u8> {
    frame(true, OP_BINARY, payload, [0x12, 0x34, 0x56, 0x78])
}

fn decode_all(chunks: &[&[u8]], max: usize) -> (Vec<Inbound>, Result<(), FrameError>, Decoder) {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(error) = decoder.decode(chunk, max, &mut out) {
            return (out, Err(error), decoder);
        }
    }
    (out, Ok(()), decoder)
}

/// Payload bytes that differ at every position, so a mask applied at the wrong offset shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

#[test]
fn whole_frames_of_each_length_encoding_decode_to_their_payloads() {
    for len in [0, 1, 3, 8, 125, 126, 127, 1000, 65_535, 65_536] {
        let payload = pattern(len);
        let (out, result, decoder) = decode_all(&[&binary(&payload)], 100_000);
        assert_eq!(result, Ok(()));
        assert_eq!(out, vec![Inbound::Binary(Bytes::from(payload))], "length {len}");
        assert!(decoder.pending.is_none(), "nothing is held after a whole frame");
    }
}

/// The stream a real client might send: messages, a ping, a fragmented message with a pong
/// between its fragments, a close. Cut anywhere, at one byte or at every split point, it decodes
/// to the same messages.
#[test]
fn a_stream_cut_anywhere_decodes_the_same() {
    let long = pattern(300);
    let mut stream = binary(b"first");
    stream.extend(frame(true, OP_PING, b"hi", [1, 2, 3, 4]));
    stream.extend(frame(false, OP_BINARY, &long[..100], [9, 8, 7, 6]));
    stream.extend(frame(true, OP_PONG, b"", [5, 5, 5, 5]));
    stream.extend(frame(false, OP_CONTINUATION, &long[100..101], [0xFF, 0, 0xFF, 0]));
    stream.extend(frame(true, OP_CONTINUATION, &long[101..], [3, 1, 4, 1]));
    stream.extend(binary(&pattern(MAX)));
    stream.extend(frame(true, OP_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e'], [7, 7, 7, 7]));
    let expected = vec![
        Inbound::Binary(Bytes::from_static(b"first")),
        Inbound::Ping(Bytes::from_static(b"hi")),
        Inbound::Pong,
        Inbound::Binary(Bytes::from(long)),
        Inbound::Binary(Bytes::from(pattern(MAX))),
        Inbound::Close(Some(1000)),
    ];
    let (whole, result, _) = decode_all(&[&stream], MAX);
    assert_eq!((whole, result), (expected.clone(), Ok(())));
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let (byte_by_byte, result, decoder) = decode_all(&bytes, MAX);
    assert_eq!((byte_by_byte, result), (expected.clone(), Ok(())));
    assert!(decoder.pending.is_none());
    for cut in (0..stream.len()).step_by(7) {
        let (out, result, _) = decode_all(&[&stream[..cut], &stream[cut..]], MAX);
        assert_eq!((out, result), (expected.clone(), Ok(())), "cut at {cut}");
    }
}

#[test]
fn a_text_message_is_reported_without_its_content() {
    let (out, result, _) = decode_all(&[&frame(true, OP_TEXT, b"hello", [1, 2, 3, 4])], MAX);
    assert_eq!((out, result), (vec![Inbound::Text], Ok(())));
    let mut fragmented = frame(false, OP_TEXT, b"hel", [1, 2, 3, 4]);
    fragmented.extend(frame(true, OP_CONTINUATION, b"lo", [1, 2, 3, 4]));
    assert_eq!(decode_all(&[&fragmented], MAX).0, vec![Inbound::Text]);
}

#[test]
fn the_message_limit_holds_at_its_edge_and_across_fragments() {
    let (out, result, _) = decode_all(&[&binary(&pattern(1000))], 1000);
    assert_eq!((out.len(), result), (1, Ok(())), "exactly the limit is accepted");
    let (out, result, _) = decode_all(&[&binary(&pattern(1001))], 1000);
    assert_eq!((out, result), (vec![], Err(FrameError::TooBig)), "one byte over is refused");
    // Refused from the header alone: the payload need not arrive.
    let header_only = &binary(&pattern(1001))[..8];
    assert_eq!(decode_all(&[header_only], 1000).1, Err(FrameError::TooBig));
    let mut fragments = frame(false, OP_BINARY, &pattern(600), [1, 2, 3, 4]);
    fragments.extend(frame(true, OP_CONTINUATION, &pattern(401), [1, 2, 3, 4]));
    assert_eq!(decode_all(&[&fragments], 1000).1, Err(FrameError::TooBig));
    let mut fragments = frame(false, OP_BINARY, &pattern(600), [1, 2, 3, 4]);
    fragments.extend(frame(true, OP_CONTINUATION, &pattern(400), [1, 2, 3, 4]));
    assert_eq!(
        decode_all(&[&fragments], 1000).0,
        vec![Inbound::Binary(Bytes::from([pattern(600), pattern(400)].concat()))]
    );
    // A length whose top bit is set is broken framing (RFC 6455 §5.2), whatever the limit.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    assert!(matches!(decode_all(&[&huge], usize::MAX).1, Err(FrameError::Protocol(_))));
    // Below that, a length past what this machine can address is simply too big.
    let mut past = vec![0x82, 0x80 | 127];
    past.extend_from_slice(&(1u64 << 62).to_be_bytes());
    past.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(decode_all(&[&past], 1 << 20).1, Err(FrameError::TooBig));
}

/// A client announcing a large frame holds only what it actually sent, and a frame that arrived
/// whole sits in a buffer of its own length (a payload the room keeps pins nothing larger).
#[test]
fn buffers_follow_the_bytes_that_arrived_not_the_header() {
    let big = binary(&pattern(60_000));
    let (_, result, decoder) = decode_all(&[&big[..100]], MAX);
    assert_eq!(result, Ok(()));
    let pending = decoder.pending.as_ref().expect("a frame is half read");
    let held = pending.frame.as_ref().expect("its payload is arriving").body.capacity();
    assert!(held < 1024, "{held} bytes held for 92 received");
    let (mut out, _, _) = decode_all(&[&binary(&pattern(300))], MAX);
    let Some(Inbound::Binary(payload)) = out.pop() else { panic!("{out:?}") };
    let own = payload.try_into_mut().expect("the payload's buffer is its own");
    assert_eq!(own.capacity(), 300);
}

#[test]
fn broken_framing_is_refused_with_what_broke() {
    let protocol = |bytes: Vec<u8>, says: &str| {
        let (out, result, _) = decode_all(&[&bytes], MAX);
        match result {
            Err(FrameError::Protocol(what)) => assert!(what.contains(says), "{what}"),
            other => panic!("expected a protocol error about {says}, got {other:?} after {out:?}"),
        }
    };
    let mut unmasked = binary(b"x");
    unmasked[1] &= 0x7F;
    protocol(unmasked, "masked");
    let mut reserved = binary(b"x");
    reserved[0] |= 0x40;
    protocol(reserved, "reserved");
    protocol(frame(true, 0x3, b"", [0; 4]), "opcode");
    protocol(frame(true, 0xB, b"", [0; 4]), "opcode");
    protocol(frame(false, OP_PING, b"", [0; 4]), "fragmented");
    protocol(frame(true, OP_PING, &[0; 126], [0; 4]), "125");
    protocol(frame(true, OP_CONTINUATION, b"x", [0; 4]), "continue");
    let mut restart = frame(false, OP_BINARY, b"x", [0; 4]);
    restart.extend(binary(b"y"));
    protocol(restart, "before the fragmented one ended");
    protocol(frame(true, OP_CLOSE, &[3], [0; 4]), "two bytes");
    for code in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
        protocol(frame(true, OP_CLOSE, &code.to_be_bytes(), [0; 4]), "may not be sent");
    }
    let bad_reason = frame(true, OP_CLOSE, &[0x03, 0xE8, 0xC3, 0x28], [0; 4]);
    assert_eq!(decode_all(&[&bad_reason], MAX).1, Err(FrameError::InvalidUtf8));
    assert_eq!(
        decode_all(&[&frame(true, OP_CLOSE, &[0x0F, 0xA0], [0; 4])], MAX).0,
        vec![Inbound::Close(Some(4000))]
    );
    assert_eq!(decode_all(&[&frame(true, OP_CLOSE, b"", [0; 4])], MAX).0, vec![Inbound::Close(None)]);
}

#[test]
fn messages_before_a_broken_frame_stand() {
    let mut stream = binary(b"one");
    stream.extend(binary(b"two"));
    stream.extend(frame(true, 0x3, b"", [0; 4]));
    stream.extend(binary(b"never"));
    let (out, result, _) = decode_all(&[&stream], MAX);
    assert_eq!(
        out,
        vec![Inbound::Binary(Bytes::from_static(b"one")), Inbound::Binary(Bytes::from_static(b"two"))]
    );
    assert!(matches!(result, Err(FrameError::Protocol(_))));
}

#[test]
fn unmasking_is_right_at_every_offset_and_length() {
    let mask = [0xA1, 0xB2, 0xC3, 0xD4];
    for start in 0..9 {
        for len in 0..40 {
            let plain = pattern(start + len);
            let masked: Vec<u8> = plain.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            let mut body = BytesMut::new();
            unmask_onto(&mut body, &masked[..start], mask);
            unmask_onto(&mut body, &masked[start..], mask);
            assert_eq!(&body[..], &plain[..], "split at {start}, length {}", start + len);
        }
    }
}
