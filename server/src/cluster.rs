//! This node's side of the cluster: applies what other nodes relay to this node's rooms, answers
//! their sync requests, resyncs every room after the relay lost messages, and applies permission
//! changes made on other nodes. The relay crate carries the envelopes; what they mean to rooms
//! and sessions is decided here.

use std::sync::Arc;

use protocol::{Envelope, RelayKind, SyncRequest};
use relay::{Incoming, Relay};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::access::SessionDirectory;
use crate::clock::unix_ms;
use crate::room::Rooms;

pub async fn run(
    mut incoming: mpsc::Receiver<Incoming>,
    rooms: Arc<Rooms>,
    relay: Arc<dyn Relay>,
    sessions: Arc<SessionDirectory>,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = incoming.recv() => match next { Some(next) => next, None => return },
            () = cancel.cancelled() => return,
        };
        match next {
            Incoming::Envelope(envelope) => apply(envelope, &rooms, relay.as_ref(), &sessions).await,
            Incoming::Resync => resync(&rooms),
            Incoming::Subscribed(room) => {
                if let Some(room) = rooms.get(&room) {
                    room.ask_peers(true);
                }
            }
        }
    }
}

/// A coalesced batch: every update in order. One refused update does not stop the others (each
/// is applied or refused whole, as if it had come alone).
fn apply_batch(room: &Arc<crate::room::Room>, payload: &[u8]) -> Result<(), Refused> {
    let updates = protocol::decode_update_batch(payload).map_err(Refused::Batch)?;
    let mut first_error = None;
    for update in updates {
        if let Err(error) = room.apply_remote_update(update, unix_ms()) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), |error| Err(error.into()))
}

/// Why a relayed message was not applied.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Room(#[from] crate::room::RoomError),
    #[error("malformed update batch: {0}")]
    Batch(protocol::DecodeError),
    #[error(transparent)]
    App(#[from] crate::room::AppRefused),
}

/// Ask the other nodes for what every open room lacks, and to ask back for what they lack.
fn resync(rooms: &Rooms) {
    let open = rooms.all();
    tracing::info!(rooms = open.len(), "relay reconnected; resyncing every room");
    for room in open {
        room.ask_peers(true);
    }
}

async fn apply(envelope: Envelope, rooms: &Rooms, relay: &dyn Relay, sessions: &SessionDirectory) {
    if envelope.origin == relay.node_id() {
        return; // a broker may echo our own messages
    }
    if envelope.kind == RelayKind::Access {
        sessions.refresh_live(&envelope.room).await;
        return;
    }
    // Only rooms held here are subscribed; anything else arrived after an eviction.
    let Some(room) = rooms.get(&envelope.room) else { return };
    let result: Result<(), Refused> = match envelope.kind {
        RelayKind::Update | RelayKind::SyncReply => {
            room.apply_remote_update(&envelope.payload, unix_ms()).map_err(Refused::from)
        }
        RelayKind::Updates => apply_batch(&room, &envelope.payload),
        RelayKind::Awareness => {
            room.apply_remote_awareness(&envelope.payload, unix_ms()).map_err(Refused::from)
        }
        RelayKind::SyncRequest => {
            let request = SyncRequest::decode(&envelope.payload);
            room.diff(request.state_vector).map_err(Refused::from).map(|diff| {
                relay.publish(RelayKind::SyncReply, room.id(), &diff);
                if request.ask_back {
                    room.ask_peers(false);
                }
            })
        }
        RelayKind::App => room.apply_remote_app(&envelope.payload).map_err(Refused::from),
        RelayKind::Access => Ok(()),
    };
    if let Err(error) = result {
        relay::metrics::get().rejected.increment(1);
        tracing::warn!(room = room.id(), origin = envelope.origin, kind = ?envelope.kind, %error, "relayed message rejected");
    }
}
