//! CodeCrafter's wire formats, sans-IO: y-protocols frames, awareness updates, app messages, queue jobs.
//!
//! Pure by design: no sockets, no async runtime, no clock, no I/O. Everything here turns bytes into
//! values and values into bytes, so the `server` and `workers` drivers can be tested against it and
//! it can be fuzzed in isolation.
//!
//! Decoding is zero-copy and total: payloads borrow from the input, and every input, however
//! malformed, yields a typed [`DecodeError`] (or [`job::JobDecodeError`]) instead of a panic or an
//! allocation sized by an unchecked length. Accepted client frames re-encode to exactly the bytes
//! received (see [`lib0::Reader::read_var_uint`] for the one place that needs a rule for that).
//!
//! Modules: [`lib0`] primitives; [`message`] y-protocols messages and the frame decoder;
//! [`awareness`] the awareness payload; [`app`] the JSON app messages; [`chat`] chat messages and their checks; [`run`] code execution messages; [`job`] the queue jobs; [`relay`] the node-to-node envelope and sync request.

pub mod app;
pub mod awareness;
pub mod chat;
mod error;
pub mod job;
pub mod lib0;
pub mod message;
pub mod relay;
pub mod run;
mod versioned;

pub use app::AppMessage;
pub use awareness::{
    AwarenessEntry, decode_awareness_update, encode_awareness_update, merge_awareness_updates,
};
pub use error::DecodeError;
pub use job::{ChatJob, ExecutionJob, Job, JobDecodeError, SnapshotJob};
pub use message::{
    AuthMessage, FrameDecoder, MSG_APP, MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, Message,
    MessageKind, SyncMessage, decode_frame,
};
pub use relay::{
    Envelope, RelayKind, SYNC_ANSWER_ONLY, SYNC_ASK_BACK, SyncRequest, decode_update_batch,
    encode_update_batch, update_batch_entry_len,
};
pub use versioned::VersionedDecodeError;
