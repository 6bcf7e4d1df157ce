//! Golden bytes produced by the real JS Yjs stack: our decoder reads them and our encoder writes them.
//!
//! Generated with yjs 13.6.33, y-protocols 1.0.7, lib0 0.2.120 (node 20) by the script below, run
//! from `server/tests/js` (where `npm install` puts those packages) as
//! `node --input-type=module < gen.mjs`; each printed `NAME hex` line became the constant `NAME`.
//! The test itself needs no node. To regenerate, paste the script into a file there and run it.
//!
//! ```js
//! import * as Y from 'yjs'
//! import * as encoding from 'lib0/encoding'
//! import * as syncProtocol from 'y-protocols/sync'
//! import * as awarenessProtocol from 'y-protocols/awareness'
//! import * as authProtocol from 'y-protocols/auth'
//!
//! const hex = (bytes) => Buffer.from(bytes).toString('hex')
//! // One y-websocket frame: the outer message type, then what `body` writes.
//! const frame = (type, body) => {
//!   const encoder = encoding.createEncoder()
//!   encoding.writeVarUint(encoder, type)
//!   body(encoder)
//!   return hex(encoding.toUint8Array(encoder))
//! }
//!
//! const doc = new Y.Doc()
//! doc.clientID = 1234567 // fixed, so the bytes are reproducible
//! doc.getText('code').insert(0, 'fn main() {}')
//! let update = null
//! doc.on('update', (u) => { update = u })
//! doc.getText('code').insert(11, ' println!("héllo ✓"); ')
//!
//! console.log('STATE_VECTOR', hex(Y.encodeStateVector(doc)))
//! console.log('FULL_STATE', hex(Y.encodeStateAsUpdate(doc)))
//! console.log('UPDATE', hex(update))
//! console.log('SYNC_STEP1', frame(0, (e) => syncProtocol.writeSyncStep1(e, doc)))
//! console.log('SYNC_STEP2', frame(0, (e) => syncProtocol.writeSyncStep2(e, doc)))
//! console.log('SYNC_UPDATE', frame(0, (e) => syncProtocol.writeUpdate(e, update)))
//!
//! // Two clients: alice is online, bob went offline (state null, clock bumped).
//! const alice = new awarenessProtocol.Awareness(doc)
//! alice.setLocalState({ user: { name: 'alice', color: '#30bced' }, cursor: null })
//! const bobDoc = new Y.Doc()
//! bobDoc.clientID = 3000000000
//! const bob = new awarenessProtocol.Awareness(bobDoc)
//! bob.setLocalState({ user: { name: 'bob' } })
//! awarenessProtocol.applyAwarenessUpdate(alice, awarenessProtocol.encodeAwarenessUpdate(bob, [bob.clientID]), 'ws')
//! bob.setLocalState(null)
//! awarenessProtocol.applyAwarenessUpdate(alice, awarenessProtocol.encodeAwarenessUpdate(bob, [bob.clientID]), 'ws')
//! const awarenessUpdate = awarenessProtocol.encodeAwarenessUpdate(alice, [alice.clientID, bob.clientID])
//! console.log('AWARENESS_UPDATE', hex(awarenessUpdate))
//! console.log('AWARENESS', frame(1, (e) => encoding.writeVarUint8Array(e, awarenessUpdate)))
//! console.log('QUERY_AWARENESS', frame(3, () => {}))
//! console.log('AUTH_DENIED', frame(2, (e) => authProtocol.writePermissionDenied(e, 'read-only session')))
//! console.log('APP_ERROR', frame(100, (e) => encoding.writeVarString(e, JSON.stringify({ type: 'error', code: 'unexpected_eof', message: 'frame ended early' }))))
//! alice.destroy()
//! bob.destroy()
//! ```

use protocol::{
    AppMessage, AuthMessage, AwarenessEntry, Message, SyncMessage, decode_awareness_update, decode_frame,
    encode_awareness_update,
};

const STATE_VECTOR: &str = "0187ad4b22";
const FULL_STATE: &str = concat!(
    "010387ad4b00040104636f64650b666e206d61696e2829207b8487ad4b0a017dc487ad4b0a87ad4b",
    "0b19207072696e746c6e21282268c3a96c6c6f20e29c9322293b2000",
);
const UPDATE: &str =
    concat!("010187ad4b0cc487ad4b0a87ad4b0b19207072696e746c6e21282268c3a96c6c6f20e29c9322293b", "2000",);
const SYNC_STEP1: &str = "0000050187ad4b22";
const SYNC_STEP2: &str = concat!(
    "000144010387ad4b00040104636f64650b666e206d61696e2829207b8487ad4b0a017dc487ad4b0a",
    "87ad4b0b19207072696e746c6e21282268c3a96c6c6f20e29c9322293b2000",
);
const SYNC_UPDATE: &str = concat!(
    "00022a010187ad4b0cc487ad4b0a87ad4b0b19207072696e746c6e21282268c3a96c6c6f20e29c93",
    "22293b2000",
);
const AWARENESS_UPDATE: &str = concat!(
    "0287ad4b01397b2275736572223a7b226e616d65223a22616c696365222c22636f6c6f72223a2223",
    "333062636564227d2c22637572736f72223a6e756c6c7d80bcc1960b02046e756c6c",
);
const AWARENESS: &str = concat!(
    "014a0287ad4b01397b2275736572223a7b226e616d65223a22616c696365222c22636f6c6f72223a",
    "2223333062636564227d2c22637572736f72223a6e756c6c7d80bcc1960b02046e756c6c",
);
const QUERY_AWARENESS: &str = "03";
const AUTH_DENIED: &str = "020011726561642d6f6e6c792073657373696f6e";
const APP_ERROR: &str = concat!(
    "64467b2274797065223a226572726f72222c22636f6465223a22756e65787065637465645f656f66",
    "222c226d657373616765223a226672616d6520656e646564206561726c79227d",
);

/// Hex to bytes; the constants above are trusted test data, so a bad digit is a test bug.
fn bytes(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit")).collect()
}

/// The JS frame decodes to exactly `expected` spanning the whole frame, and `expected` encodes
/// back to exactly the JS bytes.
fn check(name: &str, js_frame: &[u8], expected: Message<'_>) {
    let decoded: Vec<_> = decode_frame(js_frame).collect();
    assert_eq!(decoded, vec![Ok((expected, 0..js_frame.len()))], "{name} decode");
    assert_eq!(expected.encode_to_vec(), js_frame, "{name} encode");
    assert_eq!(expected.encoded_len(), js_frame.len(), "{name} encoded_len");
}

#[test]
fn sync_step1_carries_the_state_vector() {
    let state_vector = bytes(STATE_VECTOR);
    check("step1", &bytes(SYNC_STEP1), Message::Sync(SyncMessage::Step1(&state_vector)));
}

#[test]
fn sync_step2_carries_the_full_state() {
    let full_state = bytes(FULL_STATE);
    check("step2", &bytes(SYNC_STEP2), Message::Sync(SyncMessage::Step2(&full_state)));
}

#[test]
fn sync_update_carries_the_update() {
    let update = bytes(UPDATE);
    check("update", &bytes(SYNC_UPDATE), Message::Sync(SyncMessage::Update(&update)));
}

#[test]
fn awareness_with_one_present_and_one_removed_client() {
    let payload = bytes(AWARENESS_UPDATE);
    check("awareness", &bytes(AWARENESS), Message::Awareness(&payload));

    let entries = vec![
        AwarenessEntry {
            client_id: 1_234_567,
            clock: 1,
            state: r##"{"user":{"name":"alice","color":"#30bced"},"cursor":null}"##,
        },
        AwarenessEntry { client_id: 3_000_000_000, clock: 2, state: "null" },
    ];
    assert_eq!(decode_awareness_update(&payload), Ok(entries.clone()));
    assert!(!entries[0].is_removal());
    assert!(entries[1].is_removal());
    let mut ours = Vec::new();
    encode_awareness_update(entries, &mut ours);
    assert_eq!(ours, payload);
}

#[test]
fn query_awareness() {
    check("query awareness", &bytes(QUERY_AWARENESS), Message::QueryAwareness);
}

#[test]
fn auth_permission_denied() {
    let reason = "read-only session";
    check("auth", &bytes(AUTH_DENIED), Message::Auth(AuthMessage::PermissionDenied { reason }));
}

#[test]
fn app_error_matches_serde_output() {
    let json = r#"{"type":"error","code":"unexpected_eof","message":"frame ended early"}"#;
    check("app", &bytes(APP_ERROR), Message::App(json));
    let app = AppMessage::error("unexpected_eof", "frame ended early");
    assert_eq!(app.to_frame(), bytes(APP_ERROR));
    assert_eq!(AppMessage::from_json(json).ok(), Some(app));
}

#[test]
fn all_js_frames_back_to_back_decode_in_order() {
    let frames: Vec<Vec<u8>> =
        [SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, AWARENESS, QUERY_AWARENESS, AUTH_DENIED, APP_ERROR]
            .into_iter()
            .map(bytes)
            .collect();
    let joined = frames.concat();
    let ranges: Vec<_> = decode_frame(&joined)
        .map(|item| item.map(|(_, range)| range))
        .collect::<Result<_, _>>()
        .expect("JS frames decode");
    let pieces: Vec<&[u8]> = ranges.iter().filter_map(|range| joined.get(range.clone())).collect();
    assert_eq!(pieces, frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
}
