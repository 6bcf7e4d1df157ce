//! App messages (type 100) from clients over a real socket: an app client (`?app=1`) gets a typed
//! error for every kind the server does not handle, echoing its nonce, and stays connected; a
//! stock Yjs client's app messages are ignored, as y-websocket ignores them.

use crate::support;

use std::time::Duration;

use protocol::{Message, SyncMessage};
use support::{TestServer, YClient};
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

fn app_frame(json: &str) -> Vec<u8> {
    Message::App(json).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_client_gets_a_typed_error_for_each_kind_the_server_does_not_handle() {
    let server = TestServer::start(|_| {}).await;
    let app = YClient::connect_app(&server.ws_url("room")).await;

    app.send_raw(app_frame(r#"{"type":"teleport","nonce":"n-1","to":"mars"}"#));
    app.send_raw(app_frame("not json"));
    // Only the errors: the room's greeting (`chat_history`) may come before or between them.
    let errors =
        |c: &YClient| -> Vec<_> { c.app_messages().into_iter().filter(|m| m["type"] == "error").collect() };
    app.wait_for("two answers", WAIT, |c| errors(c).len() >= 2).await;
    let answers = errors(&app);
    assert_eq!(answers[0]["type"], "error");
    assert_eq!(answers[0]["code"], "unsupported_app_message");
    assert_eq!(answers[0]["nonce"], "n-1");
    assert_eq!(answers[1]["code"], "malformed_app_message");
    assert!(answers[1].get("nonce").is_none());

    // Still connected and editing.
    app.doc.get_or_insert_text("t").insert(&mut app.doc.transact_mut(), 0, "still here");
    let late = server.client("room").await;
    late.wait_for("the edit", WAIT, |c| c.text("t") == "still here").await;
    assert!(!app.shared().ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_clients_app_messages_are_ignored() {
    let server = TestServer::start(|_| {}).await;
    let stock = server.client("room").await;
    stock.wait_for("sync", WAIT, |c| c.shared().synced).await;
    stock.record_frames();
    stock.send_raw(app_frame(r#"{"type":"teleport","nonce":"n-1"}"#));
    // A sentinel after it on the same socket: once its effect is back, the app message was read.
    stock.doc.get_or_insert_text("t").insert(&mut stock.doc.transact_mut(), 0, "sentinel");
    let other = server.client("room").await;
    other.wait_for("the sentinel", WAIT, |c| c.text("t") == "sentinel").await;
    // Anything the server answers after it arrives after the app message would have been answered.
    stock.send_raw(Message::Sync(SyncMessage::Step1(&[0])).encode_to_vec());
    stock
        .wait_for("the sync step 2", WAIT, |c| c.shared().frames.iter().any(|f| f.starts_with(&[0, 1])))
        .await;
    assert!(stock.app_messages().is_empty(), "a stock client never receives app messages");
    assert!(!stock.shared().ended);
}
