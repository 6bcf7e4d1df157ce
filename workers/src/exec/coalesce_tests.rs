//! The coalescer's tests: order and `seq` across streams, the three flush triggers, and UTF-8 that
//! arrives split, invalid or unfinished.

use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::run::OutputStream::{self, Stderr, Stdout};

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Chunks pushed, and the messages expected from them.
type Case = (&'static [(OutputStream, &'static [u8])], &'static [(OutputStream, &'static str)]);

fn chunk(stream: OutputStream, bytes: &[u8]) -> Chunk {
    Chunk { stream, bytes: Bytes::copy_from_slice(bytes) }
}

/// Without the leading edge, so every trigger but the quiet spell can be seen on its own.
fn coalescer(max_bytes: usize) -> Coalescer {
    Coalescer::new("job", CoalesceConfig { max_bytes, max_delay: 20 * MS, leading_edge: false })
}

/// Each message as `(seq, stream, data)`.
fn view(messages: &[RunOutput]) -> Vec<(u64, OutputStream, String)> {
    messages.iter().map(|m| (m.seq, m.stream, m.data.clone())).collect()
}

/// Pushes every `(stream, bytes)` at `t0`, then finishes; returns everything produced, in order.
fn run_all(max_bytes: usize, chunks: &[(OutputStream, &[u8])]) -> Vec<RunOutput> {
    let mut c = coalescer(max_bytes);
    let t0 = Instant::now();
    let mut out = Vec::new();
    for (stream, bytes) in chunks {
        out.extend(c.push(&chunk(*stream, bytes), t0));
    }
    out.extend(c.finish());
    out
}

fn check(max_bytes: usize, chunks: &[(OutputStream, &[u8])], expected: &[(OutputStream, &str)]) {
    let got = run_all(max_bytes, chunks);
    let expected: Vec<_> = expected
        .iter()
        .enumerate()
        .map(|(seq, (stream, data))| (seq as u64, *stream, (*data).to_owned()))
        .collect();
    assert_eq!(view(&got), expected, "chunks {chunks:?}");
    assert!(got.iter().all(|m| m.job == "job"));
}

#[test]
fn merges_a_stream_and_keeps_order_and_seq_across_streams() {
    let cases: &[Case] = &[
        (&[], &[]),
        (&[(Stdout, b"a"), (Stdout, b"b"), (Stdout, b"c")], &[(Stdout, "abc")]),
        (
            &[(Stdout, b"a"), (Stderr, b"E"), (Stdout, b"b"), (Stdout, b"c"), (Stderr, b"F")],
            &[(Stdout, "a"), (Stderr, "E"), (Stdout, "bc"), (Stderr, "F")],
        ),
        (&[(Stderr, b"only err\n")], &[(Stderr, "only err\n")]),
        // Empty chunks change nothing, not even the stream.
        (&[(Stdout, b"a"), (Stderr, b""), (Stdout, b""), (Stdout, b"b")], &[(Stdout, "ab")]),
    ];
    for (chunks, expected) in cases {
        check(4096, chunks, expected);
    }
}

#[test]
fn pending_text_of_max_bytes_is_sent_in_pieces_without_splitting_a_character() {
    check(4, &[(Stdout, b"abcdefghij")], &[(Stdout, "abcd"), (Stdout, "efgh"), (Stdout, "ij")]);
    check(3, &[(Stdout, b"ab"), (Stdout, b"c"), (Stdout, b"d")], &[(Stdout, "abc"), (Stdout, "d")]);
    // "é" is 2 bytes: a 3-byte piece stops before the one that would cross it.
    check(3, &[(Stdout, "aéé".as_bytes())], &[(Stdout, "aé"), (Stdout, "é")]);
    // A character wider than max_bytes still goes out, whole and alone.
    check(2, &[(Stdout, "😀a".as_bytes())], &[(Stdout, "😀"), (Stdout, "a")]);
}

#[test]
fn a_full_piece_goes_out_at_once_and_a_partial_one_waits() {
    let mut c = coalescer(4);
    let t0 = Instant::now();
    assert!(c.push(&chunk(Stdout, b"abc"), t0).is_empty());
    assert_eq!(view(&c.push(&chunk(Stdout, b"de"), t0 + MS)), [(0, Stdout, "abcd".to_owned())]);
    assert_eq!(c.deadline(), Some(t0 + MS + 20 * MS), "the rest counts from when it arrived");
}

#[test]
fn pending_text_is_sent_max_delay_after_its_first_byte() {
    let mut c = coalescer(4096);
    let t0 = Instant::now();
    assert_eq!(c.deadline(), None, "nothing pending, no timer");
    assert!(c.push(&chunk(Stdout, b"a"), t0).is_empty());
    assert!(c.push(&chunk(Stdout, b"b"), t0 + 15 * MS).is_empty());
    assert_eq!(c.deadline(), Some(t0 + 20 * MS), "from the first pending byte, not the last");
    assert!(c.flush_due(t0 + 19 * MS).is_empty(), "not yet due");
    assert_eq!(view(&c.flush_due(t0 + 20 * MS)), [(0, Stdout, "ab".to_owned())]);
    assert_eq!(c.deadline(), None);
    assert!(c.flush_due(t0 + 40 * MS).is_empty(), "nothing left");
    // A push after a missed deadline sends the overdue text first, alone.
    assert!(c.push(&chunk(Stdout, b"c"), t0 + 50 * MS).is_empty());
    let late = c.push(&chunk(Stdout, b"d"), t0 + 90 * MS);
    assert_eq!(view(&late), [(1, Stdout, "c".to_owned())]);
    assert_eq!(view(&c.finish()), [(2, Stdout, "d".to_owned())]);
    assert_eq!(c.sent(), 3);
}

#[test]
fn a_four_byte_character_split_at_every_position_arrives_whole() {
    let emoji = "😀".as_bytes();
    assert_eq!(emoji.len(), 4);
    for first in 0..=4 {
        for second in first..=4 {
            let parts = [&emoji[..first], &emoji[first..second], &emoji[second..]];
            let mut chunks: Vec<(OutputStream, &[u8])> = vec![(Stdout, b"<")];
            chunks.extend(parts.iter().map(|part| (Stdout, *part)));
            chunks.push((Stdout, b">"));
            check(4096, &chunks, &[(Stdout, "<😀>")]);
        }
    }
    // A split character waits for its end while the other stream writes.
    check(
        4096,
        &[(Stdout, &emoji[..2]), (Stderr, b"x"), (Stdout, &emoji[2..])],
        &[(Stderr, "x"), (Stdout, "😀")],
    );
}

#[test]
fn a_flush_never_sends_half_a_character() {
    let emoji = "😀".as_bytes();
    let mut c = coalescer(4096);
    let t0 = Instant::now();
    assert!(c.push(&chunk(Stdout, b"a"), t0).is_empty());
    assert!(c.push(&chunk(Stdout, &emoji[..3]), t0 + MS).is_empty());
    assert_eq!(
        view(&c.flush_due(t0 + 20 * MS)),
        [(0, Stdout, "a".to_owned())],
        "the partial character stays"
    );
    assert!(c.push(&chunk(Stdout, &emoji[3..]), t0 + 30 * MS).is_empty());
    assert_eq!(view(&c.finish()), [(1, Stdout, "😀".to_owned())]);
}

#[test]
fn invalid_and_unfinished_bytes_become_replacement_characters() {
    let cases: &[Case] = &[
        (&[(Stdout, b"a\xffb")], &[(Stdout, "a\u{fffd}b")]),
        (&[(Stdout, b"\xc3\x28")], &[(Stdout, "\u{fffd}(")]),
        // A truncated sequence followed by ASCII: one U+FFFD for the maximal bad prefix.
        (&[(Stdout, b"\xf0\x9f"), (Stdout, b"x")], &[(Stdout, "\u{fffd}x")]),
        // Unfinished at the end of the run.
        (&[(Stdout, b"ok\xf0\x9f\x98")], &[(Stdout, "ok\u{fffd}")]),
        (&[(Stderr, b"\xe2\x82")], &[(Stderr, "\u{fffd}")]),
        (
            &[(Stdout, b"a\xe2"), (Stderr, b"b\xc3")],
            &[(Stdout, "a"), (Stderr, "b\u{fffd}"), (Stdout, "\u{fffd}")],
        ),
        // Surrogates and overlongs are invalid, byte by byte as std decodes them.
        (&[(Stdout, b"\xed\xa0\x80")], &[(Stdout, "\u{fffd}\u{fffd}\u{fffd}")]),
        (&[(Stdout, b"\xc0\xaf")], &[(Stdout, "\u{fffd}\u{fffd}")]),
    ];
    for (chunks, expected) in cases {
        check(4096, chunks, expected);
    }
}

/// Many tiny chunks, each at its own time, with both streams: every byte arrives exactly once, in
/// the program's order per stream, `seq` counts from 0 without gaps, and there are few messages.
#[test]
fn a_long_mixed_run_loses_nothing_and_numbers_everything() {
    let mut c = coalescer(64);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut written = [String::new(), String::new()];
    for i in 0..2000u32 {
        let stream = if i % 97 < 90 { Stdout } else { Stderr };
        let text = format!("{}", i % 10);
        written[slot(stream)].push_str(&text);
        let now = t0 + Duration::from_micros(u64::from(i) * 300);
        out.extend(c.flush_due(now));
        out.extend(c.push(&chunk(stream, text.as_bytes()), now));
    }
    out.extend(c.finish());
    let seqs: Vec<u64> = out.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>(), "seq from 0, no gaps, in order");
    for stream in [Stdout, Stderr] {
        let got: String = out.iter().filter(|m| m.stream == stream).map(|m| m.data.as_str()).collect();
        assert_eq!(got, written[slot(stream)], "{stream:?} whole and in order");
    }
    assert!(out.iter().all(|m| !m.data.is_empty() && m.data.len() <= 64));
    assert!(out.len() < 200, "2000 chunks coalesced into {} messages", out.len());
}

#[test]
fn output_after_a_quiet_spell_goes_out_at_once_and_a_stream_of_it_is_gathered() {
    let mut c =
        Coalescer::new("job", CoalesceConfig { max_bytes: 4096, max_delay: 20 * MS, leading_edge: true });
    let t0 = Instant::now();
    assert_eq!(
        view(&c.push(&chunk(Stdout, b"first\n"), t0)),
        [(0, Stdout, "first\n".to_owned())],
        "no delay"
    );
    assert!(c.push(&chunk(Stdout, b"a"), t0 + MS).is_empty(), "right after a send: gathered");
    assert!(c.push(&chunk(Stdout, b"b"), t0 + 2 * MS).is_empty());
    assert_eq!(c.deadline(), Some(t0 + 21 * MS), "the delay runs from the gathered text's first byte");
    assert_eq!(view(&c.flush_due(t0 + 21 * MS)), [(1, Stdout, "ab".to_owned())]);
    // Quiet for the delay since that send: the next line goes out at once again.
    assert_eq!(view(&c.push(&chunk(Stderr, b"late"), t0 + 41 * MS)), [(2, Stderr, "late".to_owned())]);
    assert!(c.finish().is_empty());
}
