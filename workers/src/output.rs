//! The seam through which a worker writes into a room: app messages (type 100) to the room's app
//! clients on every node, e.g. an execution's output as it streams.
//!
//! A handler holds an `Arc<dyn RoomOutput>`. A worker process uses [`RelayOutput`]: it joins the
//! node-to-node relay as a node holding no room and publishes into the room's channel, which every
//! server node holding the room hears and hands to its app clients. Inside the server the output
//! also reaches the node's own clients directly (`server/src/room/output.rs`). Tests of handlers
//! use [`RecordingOutput`] (feature `conformance`).

use std::sync::Arc;

use async_trait::async_trait;
use protocol::RelayKind;
use protocol::app::AppMessage;
use relay::Relay;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("room output is closed")]
    Closed,
    #[error("room output backend: {0}")]
    Backend(String),
}

#[async_trait]
pub trait RoomOutput: Send + Sync + 'static {
    /// Send `message` to every client of `room` that asked for app messages (`?app=1`), on every
    /// node holding the room; stock Yjs clients never receive it. Clients see one sender's
    /// messages to a room in the order they were sent.
    ///
    /// Returns once the message is handed to the transport, which may wait for room but never
    /// for the clients. Delivery is at most once: a client that is not connected, or a node cut
    /// off from the others at that moment, misses the message (app messages are not part of the
    /// document, so no resync brings them back). A room nobody holds is not an error.
    async fn send(&self, room: &str, message: &AppMessage) -> Result<(), OutputError>;
}

/// [`RoomOutput`] over the relay, for a worker process: publishes each message as an app envelope
/// into the room's channel. Never waits: the relay queues it (and counts what it must drop).
pub struct RelayOutput {
    relay: Arc<dyn Relay>,
}

impl RelayOutput {
    pub fn new(relay: Arc<dyn Relay>) -> Self {
        Self { relay }
    }
}

#[async_trait]
impl RoomOutput for RelayOutput {
    async fn send(&self, room: &str, message: &AppMessage) -> Result<(), OutputError> {
        self.relay.publish(RelayKind::App, room, message.to_json().as_bytes());
        Ok(())
    }
}

#[cfg(feature = "conformance")]
pub use recording::RecordingOutput;

#[cfg(feature = "conformance")]
mod recording {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use protocol::app::AppMessage;
    use tokio::sync::Notify;

    use super::{OutputError, RoomOutput};

    /// A [`RoomOutput`] that records what was sent, for tests of handlers.
    #[derive(Default)]
    pub struct RecordingOutput {
        sent: Mutex<Vec<(String, AppMessage)>>,
        added: Notify,
    }

    impl RecordingOutput {
        /// Everything sent so far, as `(room, message)`, in order.
        pub fn sent(&self) -> Vec<(String, AppMessage)> {
            self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
        }

        /// Waits until at least `n` messages were sent, then returns them all; `None` if `timeout`
        /// passes first.
        pub async fn wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<(String, AppMessage)>> {
            tokio::time::timeout(timeout, async {
                loop {
                    let added = self.added.notified();
                    let sent = self.sent();
                    if sent.len() >= n {
                        return sent;
                    }
                    added.await;
                }
            })
            .await
            .ok()
        }
    }

    #[async_trait]
    impl RoomOutput for RecordingOutput {
        async fn send(&self, room: &str, message: &AppMessage) -> Result<(), OutputError> {
            self.sent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((room.to_owned(), message.clone()));
            self.added.notify_waiters();
            Ok(())
        }
    }
}
