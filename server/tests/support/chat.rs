//! Chat from a test client: the frames it sends, an app member of a room, and waiting for the
//! answers to its messages.

use std::net::SocketAddr;
use std::time::Duration;

use protocol::Message;
use serde_json::{Value, json};

use super::YClient;
use super::http::User;

const WAIT: Duration = Duration::from_secs(10);

/// A `chat` app message frame.
pub fn chat(text: &str, nonce: &str) -> Vec<u8> {
    Message::App(&json!({ "type": "chat", "text": text, "nonce": nonce }).to_string()).encode_to_vec()
}

/// An app client of `room` on the server at `addr`, signed in as `user` (anonymous if `None`),
/// synced. Every frame since it connected is kept: the history may come before the sync completes.
pub async fn member(addr: SocketAddr, room: &str, user: Option<&User>) -> YClient {
    let token = user.map(|user| format!("&token={}", user.access)).unwrap_or_default();
    let client = YClient::connect(&format!("ws://{addr}/ws/{room}?app=1{token}")).await;
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    client
}

/// The app messages `client` received of type `kind`.
pub fn of_type(client: &YClient, kind: &str) -> Vec<Value> {
    client.app_messages().into_iter().filter(|m| m["type"] == kind).collect()
}

/// Waits for the answer (`chat_saved` or `error`) carrying `nonce`.
pub async fn answer(client: &YClient, nonce: &str) -> Value {
    let find = |c: &YClient| {
        c.app_messages()
            .into_iter()
            .find(|m| m["nonce"] == nonce && (m["type"] == "chat_saved" || m["type"] == "error"))
    };
    client.wait_for(&format!("the answer to {nonce}"), WAIT, |c| find(c).is_some()).await;
    find(client).unwrap()
}
