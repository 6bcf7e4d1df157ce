//! Seeded fuzzing of every decoder: over a million random and mutated inputs, no panic, and every
//! accepted input re-encodes to exactly its own bytes.
//!
//! Deterministic (fixed seeds, hand-rolled PRNG) so a failure reproduces; inputs stay small so the
//! whole file runs in a few seconds in a debug build. Canonical encoding holds because the reader
//! rejects non-minimal var-uints (`80 00`) with `NonCanonicalVarUint` instead of accepting a
//! second spelling, so the round-trip assertion needs no exclusions. Jobs are the exception: bincode
//! accepts non-minimal varints, so for them we assert that the decoded value is stable instead.

use std::collections::BTreeSet;

use protocol::{
    AppMessage, AuthMessage, AwarenessEntry, DecodeError, Job, Message, SnapshotJob, SyncMessage,
    decode_awareness_update, decode_frame, encode_awareness_update,
};

/// splitmix64: tiny, fast in debug builds, and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes that matter to the formats: message types, subtypes, var-uint edges, UTF-8 edges.
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 14] =
            [0x00, 0x01, 0x02, 0x03, 0x04, 0x64, 0x7f, 0x80, 0x81, 0xc3, 0xe2, 0xed, 0xfb, 0xff];
        if self.below(2) == 0 { INTERESTING[self.below(INTERESTING.len())] } else { self.next() as u8 }
    }
}

/// What one fuzz run saw, so we can check it exercised both the accept and the reject paths.
#[derive(Debug, Default)]
struct Stats {
    inputs: usize,
    frames_accepted: usize,
    awareness_accepted: usize,
    jobs_accepted: usize,
    codes: BTreeSet<&'static str>,
}

/// Valid encodings of every message variant, awareness payload and job, to mutate from.
fn corpus() -> Vec<Vec<u8>> {
    let mut awareness = Vec::new();
    encode_awareness_update(
        [
            AwarenessEntry { client_id: 7, clock: 1, state: r#"{"a":1}"# },
            AwarenessEntry { client_id: 300, clock: 2, state: "null" },
        ],
        &mut awareness,
    );
    let messages = [
        Message::Sync(SyncMessage::Step1(b"\x01\x87\xad\x4b\x22")),
        Message::Sync(SyncMessage::Step2(b"\x01\x01\x07\x00\x04\x01\x01a")),
        Message::Sync(SyncMessage::Update(b"")),
        Message::Awareness(&awareness),
        Message::Awareness(b"\x00"),
        Message::Auth(AuthMessage::PermissionDenied { reason: "read-only ✓" }),
        Message::QueryAwareness,
        Message::App(r#"{"type":"error","code":"x","message":"y"}"#),
    ];
    let mut corpus: Vec<Vec<u8>> = messages.iter().map(Message::encode_to_vec).collect();
    // Several messages in one frame.
    corpus.push(messages.iter().flat_map(Message::encode_to_vec).collect());
    corpus.push(awareness.clone());
    corpus.push(
        Job::Snapshot(SnapshotJob {
            room: "room".to_owned(),
            update: vec![1, 2, 3],
            changes: 300,
            dirty_since_ms: 1_700_000_000_000,
        })
        .encode(),
    );
    corpus
}

/// Applies 1 to 4 random edits to a copy of a corpus entry (or splices two entries).
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.byte();
            }
            2 => input.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                for _ in 0..=rng.below(3) {
                    input.insert(at, rng.byte());
                }
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(4)).min(len);
                input.drain(from..to);
            }
            5 => {
                // Splice: our prefix, another entry's suffix.
                let other = &corpus[rng.below(corpus.len())];
                input.truncate(rng.below(len + 1));
                input.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            6 => {
                // A run of continuation bytes: long, overflowing and non-minimal var-uints.
                let at = rng.below(len + 1);
                for _ in 0..=rng.below(10) {
                    input.insert(at, if rng.below(2) == 0 { 0xff } else { 0x80 });
                }
            }
            _ => {
                // Append another whole message, so multi-message frames get mutated too.
                let other = &corpus[rng.below(corpus.len())];
                input.extend_from_slice(other);
            }
        }
    }
    input
}

fn random_input(rng: &mut Rng) -> Vec<u8> {
    (0..rng.below(25)).map(|_| rng.byte()).collect()
}

/// Runs every decoder on `input` and checks the invariants.
fn check(input: &[u8], stats: &mut Stats) {
    stats.inputs += 1;
    let items: Vec<_> = decode_frame(input).collect();
    let errors = items.iter().filter(|item| item.is_err()).count();
    assert!(errors <= 1, "{input:02x?}: more than one error");
    match items.last() {
        Some(Err(err)) => {
            stats.codes.insert(err.code());
        }
        Some(Ok(_)) => {
            stats.frames_accepted += 1;
            let mut reencoded = Vec::new();
            for item in &items {
                let Ok((message, range)) = item else { unreachable!("errors come last") };
                assert_eq!(range.start, reencoded.len(), "{input:02x?}: ranges must be contiguous");
                message.encode(&mut reencoded);
                assert_eq!(range.end, reencoded.len(), "{input:02x?}: range length");
                assert_eq!(message.encoded_len(), range.len(), "{input:02x?}: encoded_len");
                check_payload(message, stats);
            }
            assert_eq!(reencoded, input, "accepted frame must re-encode byte for byte");
        }
        None => unreachable!("a frame yields at least one item"),
    }
    check_awareness(input, stats);
    if let Ok(job) = Job::decode(input) {
        stats.jobs_accepted += 1;
        // bincode accepts non-minimal varints, so compare values, not bytes.
        assert_eq!(Job::decode(&job.encode()).ok(), Some(job), "{input:02x?}");
    }
    if let Ok(envelope) = protocol::Envelope::decode(input) {
        assert_eq!(protocol::Envelope::decode(&envelope.encode()).ok(), Some(envelope), "{input:02x?}");
    }
    if let Ok(updates) = protocol::decode_update_batch(input) {
        // var-uint lengths are canonical, so an accepted batch re-encodes byte for byte.
        assert_eq!(protocol::encode_update_batch(updates), input, "{input:02x?}");
    }
    // Total: any input is a request; one with a flag nodes write re-encodes byte for byte.
    let request = protocol::SyncRequest::decode(input);
    if matches!(input.first(), Some(&(protocol::SYNC_ASK_BACK | protocol::SYNC_ANSWER_ONLY))) {
        assert_eq!(request.encode(), input, "{input:02x?}");
    }
}

/// Nested payloads: awareness updates and app JSON.
fn check_payload(message: &Message<'_>, stats: &mut Stats) {
    match message {
        Message::Awareness(payload) => check_awareness(payload, stats),
        Message::App(json) => {
            if let Ok(app) = AppMessage::from_json(json) {
                assert_eq!(AppMessage::from_json(&app.to_json()).ok(), Some(app));
            }
        }
        _ => {}
    }
}

fn check_awareness(payload: &[u8], stats: &mut Stats) {
    match decode_awareness_update(payload) {
        Ok(entries) => {
            stats.awareness_accepted += 1;
            let mut reencoded = Vec::new();
            encode_awareness_update(entries, &mut reencoded);
            assert_eq!(reencoded, payload, "accepted awareness update must re-encode exactly");
        }
        Err(err) => {
            stats.codes.insert(err.code());
        }
    }
}

const RANDOM_INPUTS: usize = 500_000;
const MUTATED_INPUTS: usize = 400_000;

#[test]
fn random_inputs_never_panic_and_round_trip() {
    let mut rng = Rng(0x5eed_0001);
    let mut stats = Stats::default();
    check(&[], &mut stats);
    for _ in 0..RANDOM_INPUTS {
        check(&random_input(&mut rng), &mut stats);
    }
    eprintln!("random: {stats:?}");
    assert_eq!(stats.inputs, RANDOM_INPUTS + 1);
    // Most random bytes are unknown message types, but short ones like `03` or `00 02 00` pass.
    assert!(stats.frames_accepted > RANDOM_INPUTS / 1000, "accepted {}", stats.frames_accepted);
    assert!(stats.awareness_accepted > 0);
}

/// Two independently seeded halves so the test harness can run them on both cores.
fn run_mutated(seed: u64) -> Stats {
    let corpus = corpus();
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    for entry in &corpus {
        check(entry, &mut stats);
    }
    for _ in 0..MUTATED_INPUTS {
        check(&mutate(&mut rng, &corpus), &mut stats);
    }
    stats
}

#[test]
fn mutated_frames_never_panic_and_round_trip() {
    let stats = run_mutated(0x5eed_0002);
    eprintln!("mutated: {stats:?}");
    assert!(stats.frames_accepted > MUTATED_INPUTS / 20, "accepted {}", stats.frames_accepted);
    assert!(stats.jobs_accepted > 0);
    assert!(stats.awareness_accepted > 0);
    let every_code = [
        DecodeError::EmptyFrame,
        DecodeError::UnexpectedEof,
        DecodeError::VarUintOverflow,
        DecodeError::NonCanonicalVarUint,
        DecodeError::InvalidUtf8,
        DecodeError::UnknownMessageType(0),
        DecodeError::UnknownSyncType(0),
        DecodeError::UnknownAuthType(0),
        DecodeError::AwarenessCountTooLarge { count: 0, remaining: 0 },
        DecodeError::AwarenessTrailingBytes(0),
    ];
    let missing: Vec<_> =
        every_code.iter().map(DecodeError::code).filter(|code| !stats.codes.contains(code)).collect();
    assert!(missing.is_empty(), "the fuzzer never produced {missing:?}");
}

#[test]
fn more_mutated_frames_never_panic_and_round_trip() {
    let stats = run_mutated(0x5eed_0003);
    assert_eq!(stats.inputs, MUTATED_INPUTS + corpus().len());
}
