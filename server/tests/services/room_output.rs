//! A worker process reaching a room's app clients over Redis: a `RelayOutput` on a `RedisRelay`
//! node that holds no room, as `codecrafter-worker` will run, and a `codecrafter` node relaying
//! through the same Redis.

use crate::support;

use std::time::Duration;

use protocol::app::AppMessage;

use support::{TestServer, YClient};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::{RelayOutput, RoomOutput};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_redis_reaches_the_rooms_app_clients() {
    let url = std::env::var("CODECRAFTER_TEST_REDIS_URL").expect(
        "CODECRAFTER_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts Redis",
    );
    let prefix = format!("test:{}:", storage::model::new_id());
    let server = TestServer::start(|config| {
        config.redis_url = Some(url.clone());
        config.redis_prefix = prefix.clone();
        // Nodes sharing a Redis must share their JWT secret; the server refuses to start without.
        config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes-long".into());
    })
    .await;
    let client = YClient::connect_app(&server.ws_url("room")).await;

    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let redis = redis::Client::open(url.as_str()).unwrap();
    let options = relay::redis::PublishOptions::default();
    let (node, _incoming) =
        relay::redis::RedisRelay::start(redis, &prefix, relay::new_node_id(), options, &tasks, stop.clone())
            .await
            .expect("the worker's relay connects");
    let output = RelayOutput::new(node);

    // Delivery is at most once: until the server's subscription to the room is live, a message
    // reaches nobody. Send until one arrives, then the next ones arrive in order.
    tokio::time::timeout(WAIT, async {
        // A probe, not the room's `chat_history` greeting, which comes without the relay.
        while !client.app_messages().iter().any(|m| m["type"] == "error") {
            output.send("room", &AppMessage::error("probe", "hello?")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a message from the worker reaches the app client");
    for n in 0..3 {
        output.send("room", &AppMessage::error("probe", format!("line {n}"))).await.unwrap();
    }
    // Probes still in flight may land among them; the lines keep their order.
    let lines = |c: &YClient| -> Vec<String> {
        c.app_messages()
            .iter()
            .filter_map(|m| m["message"].as_str().filter(|text| text.starts_with("line")).map(str::to_owned))
            .collect()
    };
    client.wait_for("three lines", WAIT, |c| lines(c).len() >= 3).await;
    assert_eq!(lines(&client), ["line 0", "line 1", "line 2"]);
    stop.cancel();
}
