//! The server's [`RoomOutput`]: an app message sent into a room (by an in-process worker, or by an
//! app message handler answering the whole room) reaches this node's app clients directly, and the
//! other nodes' through the relay. A room not open here goes to the relay alone.

use std::sync::Arc;

use async_trait::async_trait;
use protocol::RelayKind;
use protocol::app::AppMessage;
use relay::Relay;
use workers::{OutputError, RoomOutput};

use super::Rooms;

pub struct RoomsOutput {
    rooms: Arc<Rooms>,
    relay: Arc<dyn Relay>,
}

impl RoomsOutput {
    pub fn new(rooms: Arc<Rooms>, relay: Arc<dyn Relay>) -> Self {
        Self { rooms, relay }
    }
}

#[async_trait]
impl RoomOutput for RoomsOutput {
    async fn send(&self, room: &str, message: &AppMessage) -> Result<(), OutputError> {
        let json = message.to_json();
        match self.rooms.get(room) {
            // Fans out to this node's app clients and publishes to the other nodes.
            Some(open) => open.broadcast_app(&json),
            None => self.relay.publish(RelayKind::App, room, json.as_bytes()),
        }
        Ok(())
    }
}
