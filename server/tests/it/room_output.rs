//! The `RoomOutput` seam: an app message sent into a room reaches its app clients (`?app=1`) on
//! every node, and never a stock Yjs client. Sent by the server itself (in-process workers, app
//! handlers) or by a worker process that joins the relay as a node holding no room.

use crate::support;

use std::time::Duration;

use protocol::app::AppMessage;
use support::held::{HeldNode, assert_no_app_message_reached};
use support::{TestServer, YClient};
use workers::{RelayOutput, RoomOutput};

const WAIT: Duration = Duration::from_secs(10);

/// The probes a client received: app messages of type `error` (a joining app client is also
/// greeted with `chat_history`, at a moment of its own).
fn probes(client: &YClient) -> Vec<serde_json::Value> {
    client.app_messages().into_iter().filter(|m| m["type"] == "error").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_output_reaches_app_clients_on_every_node() {
    let hub = server::LocalHub::new();
    let here = HeldNode::start(&hub).await;
    let there = TestServer::start_node(&hub).await;
    let local = YClient::connect_app(&here.ws_url("room")).await;
    let remote = YClient::connect_app(&there.ws_url("room")).await;
    let stock = YClient::connect(&here.ws_url("room")).await;
    stock.wait_for("sync", WAIT, |c| c.shared().synced).await;
    stock.record_frames();

    for n in 0..3 {
        here.output().send("room", &AppMessage::error("probe", format!("line {n}"))).await.unwrap();
    }
    for client in [&local, &remote] {
        client.wait_for("three messages", WAIT, |c| probes(c).len() >= 3).await;
        let lines: Vec<_> =
            probes(client).iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect();
        assert_eq!(lines, ["line 0", "line 1", "line 2"], "in the order sent");
    }
    assert_no_app_message_reached(&stock).await;

    // A room this node does not hold still reaches the nodes that do.
    let elsewhere = YClient::connect_app(&there.ws_url("other")).await;
    here.output().send("other", &AppMessage::error("probe", "to the other node")).await.unwrap();
    elsewhere.wait_for("the message", WAIT, |c| probes(c).len() == 1).await;
    here.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_the_relay_reaches_app_clients_on_every_node() {
    let hub = server::LocalHub::new();
    let a = TestServer::start_node(&hub).await;
    let b = TestServer::start_node(&hub).await;
    let on_a = YClient::connect_app(&a.ws_url("room")).await;
    let on_b = YClient::connect_app(&b.ws_url("room")).await;
    let stock = b.client("room").await;
    stock.wait_for("sync", WAIT, |c| c.shared().synced).await;
    stock.record_frames();

    // A worker process: a node of the relay that holds no room.
    let (relay, _incoming) = hub.join(::relay::new_node_id());
    let output = RelayOutput::new(relay);
    output.send("room", &AppMessage::error("probe", "from a worker")).await.unwrap();
    for client in [&on_a, &on_b] {
        client.wait_for("the message", WAIT, |c| probes(c).len() == 1).await;
        assert_eq!(probes(client)[0]["message"], "from a worker");
    }
    assert_no_app_message_reached(&stock).await;
}
