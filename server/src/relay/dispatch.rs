//! Applies what other nodes relay to this node's rooms, and answers their sync requests.

use std::sync::Arc;

use protocol::{Envelope, RelayKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Relay;
use crate::room::Rooms;
use crate::time::unix_ms;

pub async fn run(
    mut incoming: mpsc::Receiver<Envelope>,
    rooms: Arc<Rooms>,
    relay: Arc<dyn Relay>,
    cancel: CancellationToken,
) {
    loop {
        let envelope = tokio::select! {
            envelope = incoming.recv() => match envelope { Some(e) => e, None => return },
            () = cancel.cancelled() => return,
        };
        if envelope.origin == relay.node_id() {
            continue; // a broker may echo our own messages
        }
        // Only rooms held here are subscribed; anything else arrived after an eviction.
        let Some(room) = rooms.get(&envelope.room) else { continue };
        let result = match envelope.kind {
            RelayKind::Update | RelayKind::SyncReply => {
                room.apply_remote_update(&envelope.payload, unix_ms())
            }
            RelayKind::Awareness => room.apply_remote_awareness(&envelope.payload, unix_ms()),
            RelayKind::SyncRequest => room.diff(&envelope.payload).map(|diff| {
                relay.publish(RelayKind::SyncReply, room.id(), &diff);
            }),
            // No app message crosses nodes yet: chat and run output arrive with their features.
            RelayKind::App => Ok(()),
        };
        if let Err(error) = result {
            metrics::counter!("codecrafter_relay_rejected_total").increment(1);
            tracing::warn!(room = room.id(), origin = envelope.origin, kind = ?envelope.kind, %error, "relayed message rejected");
        }
    }
}
