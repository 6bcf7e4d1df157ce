//! The token each update carries: `@@t` + 16-digit send time (unix µs) + `:writer:seq;`.
//!
//! Yjs v1 updates store inserted strings (and string map values) verbatim as UTF-8, so a receiver
//! finds the token by scanning the raw relayed bytes: no decoding, no allocation, and the harness
//! stays cheap enough not to be the bottleneck. The same tokens, read back from a synced document,
//! let the convergence check attribute every piece of content to its writer and sequence number.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &[u8] = b"@@t";
const TIME_DIGITS: usize = 16;

/// One parsed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// When the writer made the update, unix epoch microseconds.
    pub sent_us: u64,
    /// Writer index within its room.
    pub writer: u32,
    /// The writer's update counter, from 0.
    pub seq: u32,
}

impl Marker {
    /// Appends the token text to `out`.
    pub fn write_to(&self, out: &mut String) {
        // Infallible: fmt::Write for String never errors.
        let _ = write!(out, "@@t{:016}:{}:{};", self.sent_us, self.writer, self.seq);
    }

    /// The token text.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(40);
        self.write_to(&mut out);
        out
    }
}

/// Unix epoch microseconds now. Sender and receivers live in one process, so one clock serves both.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The first well-formed token in `bytes`, if any.
pub fn find(bytes: &[u8]) -> Option<Marker> {
    find_from(bytes, 0).map(|(marker, _)| marker)
}

/// The first well-formed token at or after `from`, with its byte range.
pub fn find_from(bytes: &[u8], from: usize) -> Option<(Marker, std::ops::Range<usize>)> {
    let mut at = from;
    while let Some(offset) = bytes.get(at..)?.windows(PREFIX.len()).position(|w| w == PREFIX) {
        let start = at + offset;
        if let Some((marker, len)) = parse_at(&bytes[start..]) {
            return Some((marker, start..start + len));
        }
        at = start + 1;
    }
    None
}

/// Parses a token at the very start of `bytes`; returns it and its length.
fn parse_at(bytes: &[u8]) -> Option<(Marker, usize)> {
    let rest = bytes.strip_prefix(PREFIX)?;
    let time = rest.get(..TIME_DIGITS)?;
    let sent_us = digits(time)?;
    let rest = rest[TIME_DIGITS..].strip_prefix(b":")?;
    let (writer, rest) = number_until(rest, b':')?;
    let (seq, rest) = number_until(rest, b';')?;
    let len = bytes.len() - rest.len();
    Some((Marker { sent_us, writer: u32::try_from(writer).ok()?, seq: u32::try_from(seq).ok()? }, len))
}

/// A decimal number of 1-10 digits followed by `end`; returns it and what follows `end`.
fn number_until(bytes: &[u8], end: u8) -> Option<(u64, &[u8])> {
    let stop = bytes.iter().take(11).position(|&b| b == end)?;
    Some((digits(&bytes[..stop])?, &bytes[stop + 1..]))
}

fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let mut value = 0u64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Every token of `text` in order, with the number of bytes that are not part of any token.
pub fn scan_all(text: &str) -> (Vec<(Marker, &str)>, usize) {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut covered = 0;
    let mut at = 0;
    while let Some((marker, range)) = find_from(bytes, at) {
        covered += range.len();
        at = range.end;
        // Tokens are ASCII, so their ranges are char boundaries.
        tokens.push((marker, &text[range]));
    }
    (tokens, bytes.len() - covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, Map, Text, Transact};

    #[test]
    fn round_trip() {
        let marker = Marker { sent_us: 1_732_300_000_123_456, writer: 3, seq: 17 };
        assert_eq!(marker.text(), "@@t1732300000123456:3:17;");
        assert_eq!(find(marker.text().as_bytes()), Some(marker));
        let zero = Marker { sent_us: 0, writer: 0, seq: 0 };
        assert_eq!(zero.text(), "@@t0000000000000000:0:0;");
        assert_eq!(find(zero.text().as_bytes()), Some(zero));
    }

    #[test]
    fn find_cases() {
        let check = |input: &[u8], expected: Option<(u64, u32, u32)>| {
            let got = find(input).map(|m| (m.sent_us, m.writer, m.seq));
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        };
        check(b"", None);
        check(b"@@t", None);
        check(b"@@t123:1:2;", None); // too few time digits
        check(b"@@t000000000000000x:1:2;", None);
        check(b"@@t0000000000000001:1:2", None); // unterminated
        check(b"@@t0000000000000001::2;", None);
        check(b"@@t0000000000000001:99999999999:2;", None); // writer overflows u32
        check(b"\x00\x02@@t0000000000000042:7:9;\x00", Some((42, 7, 9)));
        // A broken token before a good one is skipped.
        check(b"@@t12@@t0000000000000005:0:1;", Some((5, 0, 1)));
        check(b"@@@t0000000000000005:0:1;", Some((5, 0, 1)));
    }

    #[test]
    fn scan_counts_foreign_bytes() {
        let a = Marker { sent_us: 1, writer: 0, seq: 0 }.text();
        let b = Marker { sent_us: 2, writer: 1, seq: 0 }.text();
        let both = format!("{a}{b}");
        let (tokens, foreign) = scan_all(&both);
        assert_eq!(tokens.len(), 2);
        assert_eq!(foreign, 0);
        assert_eq!(tokens[1].1, b);
        let padded = format!("x{a}yz");
        let (tokens, foreign) = scan_all(&padded);
        assert_eq!((tokens.len(), foreign), (1, 3));
    }

    /// The premise of the cheap receiver: the token is verbatim in a real v1 update.
    #[test]
    fn marker_is_verbatim_in_v1_updates() {
        let marker = Marker { sent_us: now_us(), writer: 2, seq: 5 };
        let doc = Doc::new();
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let text_update = {
            let mut txn = doc.transact_mut();
            text.push(&mut txn, &marker.text());
            txn.encode_update_v1()
        };
        assert_eq!(find(&text_update), Some(marker));
        let map_update = {
            let mut txn = doc.transact_mut();
            map.insert(&mut txn, "2:5", marker.text());
            txn.encode_update_v1()
        };
        assert_eq!(find(&map_update), Some(marker));
        assert_eq!(text.get_string(&doc.transact()), marker.text());
    }
}
