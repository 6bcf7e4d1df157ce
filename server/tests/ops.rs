//! Operations endpoints: health, readiness, Prometheus metrics, and JSON errors.

mod support;

use std::time::Duration;

use support::{TestServer, http_get};
use yrs::{Text, Transact};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_json() {
    let server = TestServer::start(|_| {}).await;
    let (status, body) = http_get(&server.http_url("/health")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = http_get(&server.http_url("/ready")).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready", "{body}");
    assert_eq!(ready["store"], serde_json::json!({ "backend": "embedded", "status": "ok" }));
    assert_eq!(ready["cache"], serde_json::json!({ "backend": "memory", "status": "ok" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_rooms_messages_and_fanout() {
    let server = TestServer::start(|_| {}).await;
    let a = server.client("metrics-room").await;
    let b = server.client("metrics-room").await;
    // Both in the room before the edit: a client that joined after it would get the text in its
    // sync step 2, not as a delivered update.
    for c in [&a, &b] {
        c.wait_for("sync", Duration::from_secs(10), |c| c.shared().synced).await;
    }
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "hi");
    b.wait_for("edit", Duration::from_secs(10), |c| c.text("t") == "hi").await;

    let (status, text) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(status, 200);
    for name in [
        "codecrafter_connections ",
        "codecrafter_rooms ",
        r#"codecrafter_messages_in_total{type="update"}"#,
        r#"codecrafter_messages_out_total{type="update"}"#,
        "codecrafter_bytes_in_total ",
        "codecrafter_bytes_out_total ",
        "codecrafter_fanout_seconds_bucket",
        "codecrafter_room_evictions_total",
        "codecrafter_persist_errors_total",
        "codecrafter_slow_consumers_closed_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    // The fan-out counts its deliveries after writing them, so the client may see the update an
    // instant before the counter moves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = http_get(&server.http_url("/metrics")).await;
        let updates_out = text
            .lines()
            .find(|l| l.starts_with(r#"codecrafter_messages_out_total{type="update"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if updates_out >= 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the update was never counted as delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persist_lag_is_measured_once_a_snapshot_is_written() {
    let server = TestServer::start(|c| c.persist_debounce_ms = 50).await;
    let a = server.client("lag").await;
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "x");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http_get(&server.http_url("/metrics")).await;
        if text.contains("codecrafter_persist_lag_seconds_count")
            && text.contains("codecrafter_persist_writes_total")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no persistence metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_room_id_is_a_json_400() {
    let server = TestServer::start(|_| {}).await;
    let long = "r".repeat(300);
    let error = tokio_tungstenite::connect_async(server.ws_url(&long)).await.expect_err("upgrade refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("not an HTTP refusal: {error}")
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains(r#""code":"invalid_path""#) && body.contains("room"), "{body}");
}
