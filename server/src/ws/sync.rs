//! What a connection does with each message a client sends, decided without I/O: the y-sync
//! rules of one client (answer a sync step 1, refuse a read-only client's edits, apply and relay
//! the rest) and where app messages go. The connection task carries each [`Step`] out against its
//! room; these rules are tested here without sockets.

use protocol::{Message, SyncMessage};

/// An update that carries nothing (Yjs v1: no structs, empty delete set), which is what a client
/// with no local changes answers to our sync step 1, even when it may not write.
pub const EMPTY_UPDATE: [u8; 2] = [0, 0];

/// What the connection must do for one client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Sync step 1: answer with what the room has that this state vector lacks.
    AnswerStep1 { state_vector: &'a [u8] },
    /// Apply a document update and relay what it changed.
    Apply { update: &'a [u8], relay: RelayAs },
    /// A read-only client's edit: never applied; the client is told so.
    RefuseWrite,
    /// Apply an awareness update from this client.
    Awareness { payload: &'a [u8] },
    /// Answer with every known awareness state.
    QueryAwareness,
    /// An app message from an app client: to the app dispatch.
    App { json: &'a str },
    /// Nothing to do: an empty update from a read-only client (what every client answers our
    /// sync step 1 with), an auth message after admission (a connection's identity is fixed; a
    /// permission-denied message is server-to-client only), or an app message from a stock
    /// client (ignored, as y-websocket does).
    Nothing,
}

/// How an applied update is relayed to the room's other clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayAs {
    /// As the bytes it came in (a sync update): no copy.
    Received,
    /// Re-framed as a plain sync update (a sync step 2), as y-websocket does.
    Update,
}

/// The step for `message` from a client that may write now (`can_write`) and asked for app
/// messages (`app`).
pub fn step(message: Message<'_>, can_write: bool, app: bool) -> Step<'_> {
    match message {
        Message::Sync(SyncMessage::Step1(state_vector)) => Step::AnswerStep1 { state_vector },
        Message::Sync(SyncMessage::Update(update) | SyncMessage::Step2(update)) if !can_write => {
            if update == EMPTY_UPDATE { Step::Nothing } else { Step::RefuseWrite }
        }
        Message::Sync(SyncMessage::Update(update)) => Step::Apply { update, relay: RelayAs::Received },
        Message::Sync(SyncMessage::Step2(update)) => Step::Apply { update, relay: RelayAs::Update },
        Message::Awareness(payload) => Step::Awareness { payload },
        Message::QueryAwareness => Step::QueryAwareness,
        Message::Auth(_) => Step::Nothing,
        Message::App(json) if app => Step::App { json },
        Message::App(_) => Step::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use protocol::AuthMessage;

    use super::*;

    const UPDATE: &[u8] = &[1, 1, 7, 0, 4, 1, 1, 116, 1, 104, 0];

    #[test]
    fn a_sync_step_1_is_answered_whatever_the_rights() {
        for (can_write, app) in [(true, false), (false, true)] {
            let message = Message::Sync(SyncMessage::Step1(&[1, 2]));
            assert_eq!(step(message, can_write, app), Step::AnswerStep1 { state_vector: &[1, 2] });
        }
    }

    #[test]
    fn a_writer_s_updates_are_applied_and_a_step_2_is_relayed_as_an_update() {
        let update = Message::Sync(SyncMessage::Update(UPDATE));
        assert_eq!(step(update, true, false), Step::Apply { update: UPDATE, relay: RelayAs::Received });
        let step2 = Message::Sync(SyncMessage::Step2(UPDATE));
        assert_eq!(step(step2, true, false), Step::Apply { update: UPDATE, relay: RelayAs::Update });
    }

    #[test]
    fn a_read_only_client_s_edits_are_refused_but_its_empty_answer_is_not() {
        for message in [SyncMessage::Update(UPDATE), SyncMessage::Step2(UPDATE)] {
            assert_eq!(step(Message::Sync(message), false, true), Step::RefuseWrite);
        }
        for message in [SyncMessage::Update(&EMPTY_UPDATE), SyncMessage::Step2(&EMPTY_UPDATE)] {
            assert_eq!(step(Message::Sync(message), false, true), Step::Nothing);
        }
    }

    #[test]
    fn awareness_goes_to_the_room_from_every_client() {
        assert_eq!(step(Message::Awareness(&[1, 2]), false, false), Step::Awareness { payload: &[1, 2] });
        assert_eq!(step(Message::QueryAwareness, false, false), Step::QueryAwareness);
    }

    #[test]
    fn app_messages_reach_the_dispatch_only_from_app_clients() {
        assert_eq!(step(Message::App("{}"), true, true), Step::App { json: "{}" });
        assert_eq!(step(Message::App("{}"), true, false), Step::Nothing);
    }

    #[test]
    fn auth_messages_after_admission_change_nothing() {
        let token = Message::Auth(AuthMessage::Token { token: "t" });
        assert_eq!(step(token, false, true), Step::Nothing);
        let denied = Message::Auth(AuthMessage::PermissionDenied { reason: "x" });
        assert_eq!(step(denied, true, true), Step::Nothing);
    }
}
