//! Document durability as clients see it: `{"type":"saved","seq":N}` for app clients, nothing new
//! for stock ones, and what was acknowledged survives `kill -9` of the server (embedded mode, the
//! real binary; the RabbitMQ mode has its fault tests in `tests/services/`).

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::http::{create_session, invite, register};
use support::processes::Node;
use support::{TestServer, YClient};
use yrs::{ReadTxn, Text, Transact};

const WAIT: Duration = Duration::from_secs(20);

/// The `seq` of every `saved` the client received, in order.
fn saved_seqs(client: &YClient) -> Vec<u64> {
    client
        .app_messages()
        .iter()
        .filter(|m| m["type"] == "saved")
        .map(|m| m["seq"].as_u64().expect("a numeric seq"))
        .collect()
}

fn type_text(client: &YClient, edits: usize) {
    let text = client.doc.get_or_insert_text("t");
    for i in 0..edits {
        text.insert(&mut client.doc.transact_mut(), 0, &format!("{i},"));
    }
}

/// Each edit is one sync update; the client's sync step 2 (its answer to the server's step 1) was
/// content message 1, so `edits` edits end at `edits + 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_client_is_told_when_its_edits_are_durable_and_a_stock_client_hears_nothing() {
    let server = TestServer::start(|_| {}).await;
    let stock = server.client("doc").await;
    stock.record_frames();
    let app = YClient::connect_app(&server.ws_url("doc")).await;
    type_text(&app, 30);
    app.wait_for("saved for every edit", WAIT, |c| saved_seqs(c).last() == Some(&31)).await;
    let seqs = saved_seqs(&app);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "saved only grows: {seqs:?}");
    stock.wait_for("the edits", WAIT, |c| c.text("t").starts_with("29,")).await;
    assert!(stock.app_messages().is_empty(), "a stock client got app messages: {:?}", stock.app_messages());
}

/// A content message that changes nothing (here: the same update sent again) is acknowledged
/// too, in its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_message_that_changes_nothing_is_acknowledged_in_turn() {
    let server = TestServer::start(|_| {}).await;
    let app = YClient::connect_app(&server.ws_url("dup")).await;
    type_text(&app, 1);
    app.wait_for("saved 2", WAIT, |c| saved_seqs(c).last() == Some(&2)).await;
    let update = app.doc.transact().encode_state_as_update_v1(&yrs::StateVector::default());
    let frame = protocol::Message::Sync(protocol::SyncMessage::Update(&update)).encode_to_vec();
    app.send_raw(frame);
    app.wait_for("saved 3", WAIT, |c| saved_seqs(c).last() == Some(&3)).await;
}

/// A viewer's edits are refused (permission denied) and never applied; `saved` still covers them in
/// turn, so a client counting its messages is never left waiting for an acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_client_s_refused_edits_are_covered_in_turn() {
    let server = TestServer::start_secure(|_| {}).await;
    let owner = register(server.addr, "owner").await;
    let viewer = register(server.addr, "viewer").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    invite(server.addr, &owner, &session, &viewer, "viewer").await;
    let url = format!("{}?token={}&app=1", server.ws_url(&session), viewer.access);
    let client = YClient::connect(&url).await;
    client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    client.record_frames();
    type_text(&client, 3);
    client.wait_for("permission denied", WAIT, |c| c.shared().denied.len() == 3).await;
    client.wait_for("saved covering the refused edits", WAIT, |c| saved_seqs(c).last() == Some(&4)).await;
}

/// What the server acknowledged is in the store at that moment: SIGKILL right after the last
/// `saved` loses none of it (the debounced snapshot is made far too slow to be what saves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_edit_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--allow-anonymous", "--ws-connects-per-min", "0", "--persist-debounce-ms", "600000"];
    let node = Node::start(dir.path(), &[], &args).await;
    let app = YClient::connect_app(&node.ws_url("kept")).await;
    type_text(&app, 200);
    app.wait_for("saved for every edit", WAIT, |c| saved_seqs(c).last() == Some(&201)).await;
    let expected = app.text("t");
    node.kill();
    drop(app);

    let node = Node::start(dir.path(), &[], &args).await;
    let fresh = YClient::connect(&node.ws_url("kept")).await;
    fresh.wait_for("every acknowledged edit after kill -9", WAIT, |c| c.text("t") == expected).await;
}
