//! How y-protocols messages travel on one socket: as they are (y-websocket: one room per socket,
//! named by the URL), or Hocuspocus's framing (one URL for every document; each message in both
//! directions starts with the document's name, and the client authenticates first).
//!
//! Pure: bytes in, bytes out. The client code ([`crate::client`]) does the I/O.

use bytes::{BufMut as _, Bytes, BytesMut};
use clap::ValueEnum;
use protocol::lib0::{Reader, write_var_string, write_var_uint};
use serde::Serialize;

/// The wire dialect of the server under test (`--protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// y-websocket (CodeCrafter, @y/websocket-server): the room is the URL's last path segment.
    #[default]
    YWebsocket,
    /// Hocuspocus: one URL, every message prefixed with the document name, Auth first.
    Hocuspocus,
}

/// Hocuspocus's message types (its `MessageType`); 0 and 1 are y-protocols' sync and awareness.
const HP_SYNC: u64 = 0;
const HP_AWARENESS: u64 = 1;
const HP_AUTH: u64 = 2;
/// A sync message whose step 1 must not be answered with the server's own step 1 again.
const HP_SYNC_REPLY: u64 = 4;
/// Hocuspocus's auth sub-types.
const HP_AUTH_TOKEN: u64 = 0;
const HP_AUTH_DENIED: u64 = 1;
const HP_AUTH_OK: u64 = 2;
/// The client version the Auth message names: the pinned Hocuspocus's (loadtest/peers).
const HP_CLIENT_VERSION: &str = "4.7.0";

/// One socket's framing.
#[derive(Debug, Clone)]
pub enum Framing {
    /// Messages as they are.
    Plain,
    /// Hocuspocus: `prefix` is `doc` as a lib0 varString, computed once per socket.
    Hocuspocus { doc: String, prefix: Bytes, token: String },
}

/// A frame from the server, unwrapped.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// y-protocols messages for [`protocol::decode_frame`].
    Yjs(Bytes),
    /// Hocuspocus accepted our Auth message.
    Authenticated,
    /// Hocuspocus refused it; the reason it gave.
    Denied(String),
    /// Something we neither need nor count (Hocuspocus's sync status, a token request, ...).
    Ignored,
}

impl Framing {
    /// The framing for `doc` on a server speaking `protocol`; `token` goes in Hocuspocus's Auth
    /// message (y-websocket servers take it in the URL).
    pub fn new(protocol: Protocol, doc: &str, token: &str) -> Self {
        match protocol {
            Protocol::YWebsocket => Self::Plain,
            Protocol::Hocuspocus => {
                let mut prefix = Vec::with_capacity(doc.len() + 2);
                write_var_string(&mut prefix, doc);
                Self::Hocuspocus { doc: doc.to_owned(), prefix: prefix.into(), token: token.to_owned() }
            }
        }
    }

    /// What goes before our sync step 1: Hocuspocus's Auth message, as its provider sends it
    /// (`[doc][2][0 = token][token][client version]`).
    pub fn hello(&self) -> Option<Bytes> {
        let Self::Hocuspocus { prefix, token, .. } = self else { return None };
        let mut out = prefix.to_vec();
        write_var_uint(&mut out, HP_AUTH);
        write_var_uint(&mut out, HP_AUTH_TOKEN);
        write_var_string(&mut out, token);
        write_var_string(&mut out, HP_CLIENT_VERSION);
        Some(out.into())
    }

    /// One y-protocols message (type and payload) as it goes on the wire.
    pub fn wrap(&self, message: Bytes) -> Bytes {
        match self {
            Self::Plain => message,
            Self::Hocuspocus { prefix, .. } => {
                let mut out = BytesMut::with_capacity(prefix.len() + message.len());
                out.put_slice(prefix);
                out.put_slice(&message);
                out.freeze()
            }
        }
    }

    /// One frame from the server, without its framing. Zero-copy for sync and awareness messages.
    pub fn unwrap(&self, frame: Bytes) -> Result<Incoming, String> {
        let Self::Hocuspocus { prefix, .. } = self else { return Ok(Incoming::Yjs(frame)) };
        let Some(rest) = frame.strip_prefix(&prefix[..]) else {
            // The socket carries our one document only; anything else is the server's mistake.
            return Err(format!("a Hocuspocus frame for another document: {}", hex_start(&frame)));
        };
        let mut reader = Reader::new(rest);
        let kind = reader.read_var_uint().map_err(|e| format!("a Hocuspocus frame without a type: {e}"))?;
        let body = prefix.len() + reader.position();
        match kind {
            HP_SYNC | HP_AWARENESS => Ok(Incoming::Yjs(frame.slice(prefix.len()..))),
            // The same sync message; only the answer a server owes differs, and we owe none.
            HP_SYNC_REPLY => {
                let mut out = Vec::with_capacity(frame.len() - body + 1);
                write_var_uint(&mut out, HP_SYNC);
                out.extend_from_slice(&frame[body..]);
                Ok(Incoming::Yjs(out.into()))
            }
            HP_AUTH => match reader.read_var_uint() {
                Ok(HP_AUTH_OK) => Ok(Incoming::Authenticated),
                Ok(HP_AUTH_DENIED) => {
                    let reason = reader.read_var_string().unwrap_or("(no reason)");
                    Ok(Incoming::Denied(reason.to_owned()))
                }
                _ => Ok(Incoming::Ignored),
            },
            _ => Ok(Incoming::Ignored),
        }
    }
}

/// The first bytes of a frame in hex, for error messages.
fn hex_start(frame: &[u8]) -> String {
    frame.iter().take(32).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use protocol::{Message, SyncMessage, decode_frame};

    use super::*;

    fn hex(s: &str) -> Bytes {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    /// The bytes are a capture of the official provider (@hocuspocus/provider 4.7.0) talking to
    /// Hocuspocus 4.7.0 about document "room1".
    #[test]
    fn hocuspocus_bytes_match_the_official_provider() {
        let f = Framing::new(Protocol::Hocuspocus, "room1", "");
        assert_eq!(f.hello(), Some(hex("05726f6f6d3102000005342e372e30")), "auth");
        let step1 = Message::Sync(SyncMessage::Step1(&[0])).encode_to_vec();
        assert_eq!(f.wrap(step1.into()), hex("05726f6f6d3100000100"), "sync step 1, empty SV");
        let step2 = Message::Sync(SyncMessage::Step2(&[0, 0])).encode_to_vec();
        assert_eq!(f.wrap(step2.into()), hex("05726f6f6d310001020000"));
        let update = hex("0101bcbdb3a007000401017402686900");
        let message = Message::Sync(SyncMessage::Update(&update)).encode_to_vec();
        assert_eq!(f.wrap(message.into()), hex("05726f6f6d310002100101bcbdb3a007000401017402686900"));

        assert_eq!(f.unwrap(hex("05726f6f6d3102020a726561642d7772697465")), Ok(Incoming::Authenticated));
        assert_eq!(f.unwrap(hex("05726f6f6d310801")), Ok(Incoming::Ignored), "sync status");
        let Ok(Incoming::Yjs(yjs)) = f.unwrap(hex("05726f6f6d310001020000")) else { panic!("sync") };
        let Some(Ok((Message::Sync(SyncMessage::Step2(u)), _))) = decode_frame(&yjs).next() else {
            panic!("step 2 expected")
        };
        assert_eq!(u, [0, 0]);
    }

    #[test]
    fn hocuspocus_replies_and_refusals() {
        let f = Framing::new(Protocol::Hocuspocus, "d", "secret");
        let hello = f.hello().expect("auth");
        assert_eq!(&hello[..], b"\x01d\x02\x00\x06secret\x054.7.0");
        // A SyncReply (4) carrying step 1 reads as an ordinary sync message.
        let Ok(Incoming::Yjs(yjs)) = f.unwrap(hex("0164040000")) else { panic!("sync reply") };
        assert_eq!(&yjs[..], [0, 0, 0]);
        assert_eq!(f.unwrap(hex("016402010466756e6e")), Ok(Incoming::Denied("funn".into())));
        assert!(f.unwrap(hex("0165000000")).is_err(), "another document");
        assert!(f.unwrap(hex("0164")).is_err(), "no type");
    }

    #[test]
    fn plain_frames_pass_through() {
        let f = Framing::new(Protocol::YWebsocket, "ignored", "t");
        assert!(f.hello().is_none());
        assert_eq!(f.wrap(Bytes::from_static(b"\x00\x02")), Bytes::from_static(b"\x00\x02"));
        assert_eq!(
            f.unwrap(Bytes::from_static(b"\x08\x01")),
            Ok(Incoming::Yjs(Bytes::from_static(b"\x08\x01")))
        );
    }
}
