//! The awareness update payload (y-protocols `encodeAwarenessUpdate`): who is present and their state.
//!
//! Layout: `varUint(count)` then `count` times `varUint(clientID) varUint(clock) varString(JSON)`,
//! where the JSON text `null` means the client left. The JSON is kept as borrowed text: the server
//! only needs client ids, clocks and removals, and parsing every cursor move would be wasted work.

use crate::error::{DecodeError, Result};
use crate::lib0::{Reader, write_var_string, write_var_uint};

/// Fewest bytes one entry can take: a one-byte client id, a one-byte clock, a zero-length string.
/// Dividing what is left by this bounds the count before anything is allocated.
const MIN_ENTRY_LEN: usize = 3;

/// The JSON a client sends for a state it removed (`JSON.stringify(null)`).
const REMOVED_STATE: &str = "null";

/// One client's awareness state at a given clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwarenessEntry<'a> {
    /// The Yjs client id (a uint32 in practice; up to 2^53 - 1 on the wire).
    pub client_id: u64,
    /// Increases with every change of this client's state; higher wins.
    pub clock: u64,
    /// The state as JSON text, exactly as received.
    pub state: &'a str,
}

impl AwarenessEntry<'_> {
    /// True when this entry announces the client left (state `null`).
    pub fn is_removal(&self) -> bool {
        self.state == REMOVED_STATE
    }
}

/// Decodes an awareness update payload. The whole payload must be entries: trailing bytes are an
/// error, because the relay forwards the original bytes and must not forward hidden extras.
pub fn decode_awareness_update(payload: &[u8]) -> Result<Vec<AwarenessEntry<'_>>> {
    let mut reader = Reader::new(payload);
    let claimed = reader.read_var_uint()?;
    let remaining = reader.remaining().len();
    // A lying count must not become a huge allocation; this also makes the cast below lossless.
    let count = usize::try_from(claimed)
        .ok()
        .filter(|count| *count <= remaining / MIN_ENTRY_LEN)
        .ok_or(DecodeError::AwarenessCountTooLarge { count: claimed, remaining })?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(AwarenessEntry {
            client_id: reader.read_var_uint()?,
            clock: reader.read_var_uint()?,
            state: reader.read_var_string()?,
        });
    }
    match reader.remaining().len() {
        0 => Ok(entries),
        trailing => Err(DecodeError::AwarenessTrailingBytes(trailing)),
    }
}

/// Appends an awareness update payload (no message type; wrap it in `Message::Awareness`).
pub fn encode_awareness_update<'e>(entries: impl IntoIterator<Item = AwarenessEntry<'e>>, out: &mut Vec<u8>) {
    // The count comes first, so the entries are gathered before anything is written.
    let entries: Vec<AwarenessEntry<'e>> = entries.into_iter().collect();
    write_var_uint(out, entries.len() as u64);
    for entry in &entries {
        write_var_uint(out, entry.client_id);
        write_var_uint(out, entry.clock);
        write_var_string(out, entry.state);
    }
}

/// Several awareness update payloads as one, as a receiver applying them in order would end up:
/// per client id the entry that wins under y-protocols' rule (a higher clock, or an equal clock
/// carrying a removal while a state is known), in the order the ids first appear. For the fan-out
/// in rounds, which sends one awareness frame for every update that queued meanwhile.
pub fn merge_awareness_updates<'p>(payloads: impl IntoIterator<Item = &'p [u8]>) -> Result<Vec<u8>> {
    let mut merged: Vec<AwarenessEntry<'p>> = Vec::new();
    // Where each client id sits in `merged`: a round may hold a thousand cursor moves.
    let mut at = std::collections::HashMap::new();
    for payload in payloads {
        for entry in decode_awareness_update(payload)? {
            match at.get(&entry.client_id).map(|&i: &usize| &mut merged[i]) {
                None => {
                    at.insert(entry.client_id, merged.len());
                    merged.push(entry);
                }
                Some(known) => {
                    let newer = entry.clock > known.clock
                        || (entry.clock == known.clock && entry.is_removal() && !known.is_removal());
                    if newer {
                        *known = entry;
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    encode_awareness_update(merged, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(entries: &[AwarenessEntry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_awareness_update(entries.iter().copied(), &mut out);
        out
    }

    #[test]
    fn merged_updates_keep_the_entry_each_client_ends_at() {
        let first = encoded(&[entry(1, 1, "{\"a\":1}"), entry(2, 5, "{\"b\":5}")]);
        let second = encoded(&[entry(1, 2, "{\"a\":2}"), entry(3, 1, "{}")]);
        // An older clock loses; an equal clock with a removal wins over a state.
        let third = encoded(&[entry(1, 1, "{\"old\":1}"), entry(2, 5, "null")]);
        let merged = merge_awareness_updates([first.as_slice(), &second, &third]).unwrap();
        assert_eq!(
            decode_awareness_update(&merged).unwrap(),
            vec![entry(1, 2, "{\"a\":2}"), entry(2, 5, "null"), entry(3, 1, "{}")]
        );
    }

    #[test]
    fn a_malformed_payload_fails_the_merge() {
        let good = encoded(&[entry(1, 1, "{}")]);
        assert!(merge_awareness_updates([good.as_slice(), &[2, 1]]).is_err());
    }

    fn entry(client_id: u64, clock: u64, state: &str) -> AwarenessEntry<'_> {
        AwarenessEntry { client_id, clock, state }
    }

    fn check(input: &[u8], expected: Result<Vec<AwarenessEntry<'_>>>) {
        assert_eq!(decode_awareness_update(input), expected, "{input:02x?}");
    }

    #[test]
    fn decodes_entries_and_errors() {
        check(&[0], Ok(vec![]));
        check(b"\x01\x05\x02\x04null", Ok(vec![entry(5, 2, "null")]));
        check(b"\x02\x01\x01\x02{}\x80\x01\x00\x00", Ok(vec![entry(1, 1, "{}"), entry(128, 0, "")]));
        check(&[], Err(DecodeError::UnexpectedEof));
        check(&[5, 1, 1, 0], Err(DecodeError::AwarenessCountTooLarge { count: 5, remaining: 3 }));
        // Count fits the byte budget, but the entries run out.
        check(&[2, 1, 1, 0, 1, 1, 5], Err(DecodeError::UnexpectedEof));
        check(&[1, 1, 1, 0, 0xaa], Err(DecodeError::AwarenessTrailingBytes(1)));
        check(&[1, 1, 1, 1, 0xff], Err(DecodeError::InvalidUtf8));
        check(&[1, 0x80, 0x00, 1, 0], Err(DecodeError::NonCanonicalVarUint));
        let lying = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0];
        check(&lying, Err(DecodeError::AwarenessCountTooLarge { count: (1 << 53) - 1, remaining: 3 }));
    }

    #[test]
    fn removal_is_null_state() {
        assert!(entry(1, 2, "null").is_removal());
        assert!(!entry(1, 2, "{}").is_removal());
        assert!(!entry(1, 2, " null").is_removal());
    }

    #[test]
    fn round_trip() {
        let entries = vec![
            entry(3_000_000_000, 7, r#"{"user":{"name":"ünï"}}"#),
            entry(1, 0, "null"),
            entry((1 << 53) - 1, (1 << 53) - 1, ""),
        ];
        let mut out = Vec::new();
        encode_awareness_update(entries.iter().copied(), &mut out);
        assert_eq!(decode_awareness_update(&out), Ok(entries));

        let mut empty = Vec::new();
        encode_awareness_update([], &mut empty);
        assert_eq!(empty, [0]);
    }
}
