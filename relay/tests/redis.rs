//! The Redis relay against the conformance suite, on the shared test Redis of
//! `scripts/services.sh` (`CODECRAFTER_TEST_REDIS_URL`). Each set of nodes gets a key prefix of its
//! own, so runs sharing that Redis never hear each other.

use std::time::Duration;

use relay::conformance::{Backend, Node, relay_suite};
use relay::redis::{PublishOptions, RedisRelay};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where to look when Redis is missing: the script installs and starts redis-server.
const HOW_TO_START_REDIS: &str =
    "run scripts/test.sh, or start one with `source scripts/services.sh && services_start`";

fn shared_redis_url() -> String {
    std::env::var("CODECRAFTER_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("CODECRAFTER_TEST_REDIS_URL is not set: {HOW_TO_START_REDIS}"))
}

/// `n` Redis relays on one fresh channel prefix, each stopped when its node is dropped.
async fn connect(url: &str, n: usize, options: PublishOptions) -> Vec<Node> {
    let prefix = format!("test:relay:{:016x}:", rand::random::<u64>());
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let client = redis::Client::open(url).expect("a valid Redis URL");
        let stop = CancellationToken::new();
        let (relay, incoming) = RedisRelay::start(
            client,
            &prefix,
            relay::new_node_id(),
            options,
            &TaskTracker::new(),
            stop.clone(),
        )
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}: {HOW_TO_START_REDIS}"));
        nodes.push(Node { relay, incoming, stop: Some(stop.drop_guard()) });
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_relay_passes_the_conformance_suite() {
    let url = shared_redis_url();
    // A batch delay makes the publisher fold a room's updates into `Updates` envelopes for sure,
    // so the suite checks their order too.
    let options = PublishOptions { coalesce: true, batch_delay: Duration::from_millis(20) };
    let report = relay_suite(Backend {
        name: "redis",
        reports_subscribed: true,
        connect: |n| connect(&url, n, options),
    })
    .await;
    assert!(report.update_batches > 0, "no update was coalesced: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_relay_without_coalescing_passes_the_conformance_suite() {
    let url = shared_redis_url();
    let options = PublishOptions { coalesce: false, batch_delay: Duration::ZERO };
    let report = relay_suite(Backend {
        name: "redis",
        reports_subscribed: true,
        connect: |n| connect(&url, n, options),
    })
    .await;
    assert_eq!(report.update_batches, 0, "coalescing is off");
}
