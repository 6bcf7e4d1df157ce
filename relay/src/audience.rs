//! Which rooms no other node holds, so that their updates and awareness need not be published.
//!
//! Behind a load balancer with sticky sessions most rooms live on one node, and publishing their
//! every update to a channel nobody else listens on costs this node and Redis for nothing. A
//! PUBLISH answers with how many subscribers received it: when only this node's own subscription
//! did, the room is marked alone, and its updates and awareness are not published until another
//! node speaks in it.
//!
//! Why nothing is missed: a node that opens a room subscribes and then sends a sync request, which
//! this node hears (it is subscribed). Hearing it clears the mark before the request is answered,
//! and the answer is the diff against the room as it is then, which holds every update applied
//! before, published or not; every update applied after is published. A publish whose answer
//! comes back after another node spoke in the room does not set the mark (the `heard` counter).
//! When the subscription is lost, every mark goes.

use dashmap::DashMap;

#[derive(Default)]
pub struct Audience {
    rooms: DashMap<String, Listening>,
}

#[derive(Debug, Default)]
struct Listening {
    /// The last publish reached no other node, and no other node has spoken since.
    alone: bool,
    /// Times another node spoke in the room (updates the mark only if unchanged meanwhile).
    heard: u64,
}

impl Audience {
    /// Whether `room`'s updates and awareness may go unpublished.
    pub fn is_alone(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|listening| listening.alone)
    }

    /// This node's subscription to `room` is confirmed: track it, not alone until a publish says so.
    pub fn subscribed(&self, room: &str) {
        self.rooms.insert(room.to_owned(), Listening::default());
    }

    /// This node no longer listens to `room`.
    pub fn unsubscribed(&self, room: &str) {
        self.rooms.remove(room);
    }

    /// The subscription connection was lost: nothing is known any more.
    pub fn forget_all(&self) {
        self.rooms.clear();
    }

    /// Another node spoke in `room`: it has company.
    pub fn heard_from(&self, room: &str) {
        if let Some(mut listening) = self.rooms.get_mut(room) {
            listening.heard += 1;
            listening.alone = false;
        }
    }

    /// Taken just before a publish to `room`, handed back to [`Audience::published`].
    pub fn before_publish(&self, room: &str) -> u64 {
        self.rooms.get(room).map_or(0, |listening| listening.heard)
    }

    /// A publish to `room` reached `receivers` subscribers, this node's own included.
    pub fn published(&self, room: &str, heard_before: u64, receivers: u64) {
        if let Some(mut listening) = self.rooms.get_mut(room)
            && listening.heard == heard_before
        {
            // Tracked rooms are confirmed subscriptions, so one receiver is this node itself.
            listening.alone = receivers <= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_once_a_publish_reaches_only_this_node_until_another_node_speaks() {
        let audience = Audience::default();
        assert!(!audience.is_alone("r"), "an untracked room is never alone");
        audience.subscribed("r");
        let token = audience.before_publish("r");
        audience.published("r", token, 2);
        assert!(!audience.is_alone("r"), "another node received it");
        let token = audience.before_publish("r");
        audience.published("r", token, 1);
        assert!(audience.is_alone("r"));
        audience.heard_from("r");
        assert!(!audience.is_alone("r"), "a peer's sync request ends it");
    }

    #[test]
    fn a_publish_answered_after_a_peer_spoke_does_not_mark_the_room() {
        let audience = Audience::default();
        audience.subscribed("r");
        let token = audience.before_publish("r");
        audience.heard_from("r");
        audience.published("r", token, 1);
        assert!(!audience.is_alone("r"), "the count predates the peer");
    }

    #[test]
    fn losing_or_ending_the_subscription_forgets_the_mark() {
        let audience = Audience::default();
        for room in ["a", "b"] {
            audience.subscribed(room);
            audience.published(room, 0, 1);
        }
        audience.unsubscribed("a");
        assert!(!audience.is_alone("a"));
        audience.published("a", 0, 1);
        assert!(!audience.is_alone("a"), "an answer for a room no longer held changes nothing");
        assert!(audience.is_alone("b"));
        audience.forget_all();
        assert!(!audience.is_alone("b"));
    }
}
