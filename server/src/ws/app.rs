//! App messages (type 100) from clients that asked for them (`?app=1`): the one place each kind
//! is routed to its handler, after the sender's rights are checked against what the kind needs.
//!
//! A kind is an [`AppHandler`] registered under its `type` in [`AppHandlers`] (built once, in
//! `App::build`): `chat` (`ws/chat/`); run arrives with a later issue as one more handler. Every message gets a definite answer: a malformed one, an unknown kind, or one
//! the sender may not send is answered with a typed `error` echoing the message's `nonce`.
//! Handlers run on the connection task and must not block it: durable work goes to the job queue
//! and its outcome reaches the client later as its own app message.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::app::{AppMessage, AppRequestHead, MAX_NONCE_BYTES};

use crate::access::Grant;
use crate::room::ConnId;

/// What the sender of a kind must be allowed to do in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any admitted connection: a viewer too (e.g. chat).
    Member,
    /// A connection that may change the document now (e.g. run): not a viewer, not a locked session.
    Writer,
}

/// Who sent an app message, and where. Handlers answer the whole room through its id (a room's
/// clients are on every node; `workers::RoomOutput` reaches them all).
pub struct Sender<'a> {
    pub conn: ConnId,
    pub room: &'a str,
    pub grant: &'a Grant,
    /// The signed-in user; `None` for an anonymous client of a free room.
    pub user: Option<&'a SignedIn>,
}

/// The account a connection was admitted with, as its app messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub id: String,
    pub username: String,
}

/// One app message, its head already read.
pub struct Request<'a> {
    pub head: AppRequestHead,
    /// The whole JSON text, for the handler to read its own fields from.
    pub json: &'a str,
}

/// A handler's refusal, answered to the sender as an `error` with the message's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// Handles one kind of app message.
pub trait AppHandler: Send + Sync + 'static {
    fn needs(&self) -> Needs;

    /// Handle a message the sender may send; returns what to answer the sender at once, if
    /// anything. Runs on the connection task: must not block or wait.
    fn handle(&self, sender: &Sender<'_>, request: &Request<'_>) -> Result<Option<AppMessage>, Refusal>;

    /// An app client `conn` joined `room` on this node (e.g. chat sends it the recent history).
    /// Runs on the connection task: must not block or wait.
    fn joined(&self, _conn: ConnId, _room: &str) {}
}

/// The registered kinds, by their `type`.
#[derive(Default)]
pub struct AppHandlers {
    kinds: HashMap<&'static str, Arc<dyn AppHandler>>,
}

impl AppHandlers {
    /// Register the handler of `kind`; a kind registered twice keeps the later handler.
    pub fn register(&mut self, kind: &'static str, handler: Arc<dyn AppHandler>) {
        self.kinds.insert(kind, handler);
    }

    /// Tell every kind that app client `conn` joined `room`.
    pub fn joined(&self, conn: ConnId, room: &str) {
        for handler in self.kinds.values() {
            handler.joined(conn, room);
        }
    }

    /// Route one app message from `sender`: the answer to send back, if any.
    pub fn dispatch(&self, sender: &Sender<'_>, json: &str) -> Option<AppMessage> {
        let head = match AppRequestHead::from_json(json) {
            Ok(head) => head,
            Err(error) => {
                return Some(AppMessage::error(
                    "malformed_app_message",
                    format!("an app message is a JSON object with a string \"type\": {error}"),
                ));
            }
        };
        if head.nonce.as_ref().is_some_and(|nonce| nonce.len() > MAX_NONCE_BYTES) {
            return Some(AppMessage::error(
                "malformed_app_message",
                format!("nonce: at most {MAX_NONCE_BYTES} bytes"),
            ));
        }
        let refuse = |code: &str, message: String, head: AppRequestHead| {
            Some(AppMessage::error_for(code, message, head.nonce))
        };
        let Some(handler) = self.kinds.get(head.kind.as_str()) else {
            let message = format!("this server does not handle app messages of type {:?}", head.kind);
            return refuse("unsupported_app_message", message, head);
        };
        if handler.needs() == Needs::Writer && !sender.grant.can_write() {
            let message = "read-only: viewers and locked sessions may not do this".to_owned();
            return refuse("read_only", message, head);
        }
        let request = Request { head, json };
        match handler.handle(sender, &request) {
            Ok(answer) => answer,
            Err(refusal) => refuse(refusal.code, refusal.message, request.head),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts what it handles and echoes the nonce back as an error code it can be told apart by.
    struct Echo {
        needs: Needs,
        handled: AtomicUsize,
    }

    impl AppHandler for Echo {
        fn needs(&self) -> Needs {
            self.needs
        }

        fn handle(&self, _: &Sender<'_>, request: &Request<'_>) -> Result<Option<AppMessage>, Refusal> {
            self.handled.fetch_add(1, Ordering::Relaxed);
            if request.json.contains("\"refuse\"") {
                return Err(Refusal { code: "too_long", message: "text: too long".into() });
            }
            Ok(Some(AppMessage::error_for("echo", request.head.kind.clone(), request.head.nonce.clone())))
        }
    }

    fn handlers() -> (AppHandlers, Arc<Echo>, Arc<Echo>) {
        let chat = Arc::new(Echo { needs: Needs::Member, handled: AtomicUsize::new(0) });
        let run = Arc::new(Echo { needs: Needs::Writer, handled: AtomicUsize::new(0) });
        let mut handlers = AppHandlers::default();
        handlers.register("chat", chat.clone());
        handlers.register("run", run.clone());
        (handlers, chat, run)
    }

    fn dispatch(handlers: &AppHandlers, writable: bool, json: &str) -> serde_json::Value {
        let grant = Grant::new(writable);
        let sender = Sender { conn: 1, room: "app-dispatch", grant: &grant, user: None };
        let answer = handlers.dispatch(&sender, json).expect("every message is answered here");
        serde_json::from_str(&answer.to_json()).expect("answers are JSON")
    }

    #[test]
    fn an_unknown_kind_is_answered_with_a_typed_error_and_its_nonce() {
        let (handlers, chat, run) = handlers();
        let answer = dispatch(&handlers, true, r#"{"type":"teleport","nonce":"n-1","to":"mars"}"#);
        assert_eq!(answer["code"], "unsupported_app_message");
        assert_eq!(answer["nonce"], "n-1");
        assert_eq!(chat.handled.load(Ordering::Relaxed) + run.handled.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_kind_reaches_its_handler() {
        let (handlers, chat, _) = handlers();
        let answer = dispatch(&handlers, false, r#"{"type":"chat","nonce":"a","text":"hi"}"#);
        assert_eq!((answer["code"].as_str(), answer["message"].as_str()), (Some("echo"), Some("chat")));
        assert_eq!(answer["nonce"], "a");
        assert_eq!(chat.handled.load(Ordering::Relaxed), 1, "a viewer may send what members may");
    }

    #[test]
    fn a_writer_kind_is_refused_to_a_read_only_sender_before_its_handler() {
        let (handlers, _, run) = handlers();
        let answer = dispatch(&handlers, false, r#"{"type":"run","nonce":"r"}"#);
        assert_eq!((answer["code"].as_str(), answer["nonce"].as_str()), (Some("read_only"), Some("r")));
        assert_eq!(run.handled.load(Ordering::Relaxed), 0);
        let answer = dispatch(&handlers, true, r#"{"type":"run","nonce":"r"}"#);
        assert_eq!(answer["code"], "echo");
        assert_eq!(run.handled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_handler_refusal_carries_its_code_and_the_nonce() {
        let (handlers, ..) = handlers();
        let answer = dispatch(&handlers, true, r#"{"type":"chat","nonce":"z","text":"refuse"}"#);
        assert_eq!((answer["code"].as_str(), answer["nonce"].as_str()), (Some("too_long"), Some("z")));
    }

    #[test]
    fn malformed_messages_and_overlong_nonces_are_refused_without_an_echo() {
        let (handlers, chat, _) = handlers();
        let long = "x".repeat(MAX_NONCE_BYTES + 1);
        let at_limit = "x".repeat(MAX_NONCE_BYTES);
        for json in [
            "not json".to_owned(),
            r#"{"nonce":"n"}"#.to_owned(),
            r#"{"type":7}"#.to_owned(),
            format!(r#"{{"type":"chat","nonce":"{long}"}}"#),
        ] {
            let answer = dispatch(&handlers, true, &json);
            assert_eq!(answer["code"], "malformed_app_message", "{json}");
            assert!(answer.get("nonce").is_none(), "{json}");
        }
        assert_eq!(chat.handled.load(Ordering::Relaxed), 0);
        let answer = dispatch(&handlers, true, &format!(r#"{{"type":"chat","nonce":"{at_limit}"}}"#));
        assert_eq!(answer["nonce"].as_str(), Some(at_limit.as_str()), "a nonce at the limit is fine");
    }
}
