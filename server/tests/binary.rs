//! The `codecrafter` binary as users run it: startup line, `--help`, debounced persistence that
//! survives SIGKILL, and SIGTERM flushing every room before exiting 0.

mod support;

use std::time::Duration;

use support::YClient;
use support::processes::Node;
use tokio::process::Command;
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

/// Start the binary on port 0 (it prints `listening on ADDR`).
async fn start(data_dir: &std::path::Path, extra: &[&str]) -> Node {
    // These tests exercise the core with plain y-websocket clients (no accounts).
    let mut args = vec!["--allow-anonymous", "--ws-connects-per-min", "0"];
    args.extend_from_slice(extra);
    Node::start(data_dir, &[], &args).await
}

async fn write_text(running: &Node, room: &str, text: &str) {
    let writer = YClient::connect(&running.ws_url(room)).await;
    writer.doc.get_or_insert_text("t").insert(&mut writer.doc.transact_mut(), 0, text);
    // A second client seeing it proves the server applied it.
    let reader = YClient::connect(&running.ws_url(room)).await;
    reader.wait_for("edit applied", WAIT, |c| c.text("t") == text).await;
}

async fn read_text(running: &Node, room: &str) -> String {
    let reader = YClient::connect(&running.ws_url(room)).await;
    reader.wait_for("sync", WAIT, |c| c.shared().synced).await;
    reader.text("t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_room_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A long debounce: only the shutdown flush can have written these rooms.
    let running = start(dir.path(), &["--persist-debounce-ms", "600000"]).await;
    for room in ["a", "b", "c"] {
        write_text(&running, room, &format!("room {room}")).await;
    }
    running.signal("TERM");
    assert_eq!(running.exit_code().await, Some(0));

    let running = start(dir.path(), &[]).await;
    for room in ["a", "b", "c"] {
        assert_eq!(read_text(&running, room).await, format!("room {room}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_persisted_within_about_a_second_even_if_the_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]).await;
    write_text(&running, "debounced", "saved by the debounce").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.signal("KILL");
    running.exit_code().await;

    let running = start(dir.path(), &[]).await;
    assert_eq!(read_text(&running, "debounced").await, "saved by the debounce");
}

#[tokio::test]
async fn help_documents_every_limit() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_codecrafter")).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--bind",
        "--data-dir",
        "--max-message-bytes",
        "--max-doc-bytes",
        "--max-messages-per-sec",
        "--message-burst",
        "--send-queue",
        "--ping-interval-secs",
        "--awareness-timeout-ms",
        "--room-idle-secs",
        "--persist-debounce-ms",
        "--max-connections",
        "--shutdown-timeout-secs",
        "--mongo-url",
        "--redis-url",
        "--jwt-secret",
        "--access-token-ttl-secs",
        "--refresh-token-ttl-secs",
        "--allow-anonymous",
        "--rate-limit-requests",
        "--rate-limit-window-secs",
        "--ip-rate-limit-requests",
        "--login-failures-per-account",
        "--login-failures-per-ip",
        "--register-rate-limit-requests",
        "--refresh-rate-limit-requests",
        "--account-check-secs",
        "--ws-connects-per-min",
        "--cors-origins",
        "--max-body-bytes",
        "--trusted-proxies",
        "--proxy-hops",
        "--trust-proxy",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("[env: CODECRAFTER_MAX_MESSAGE_BYTES="), "every flag names its env var:\n{help}");
}

#[tokio::test]
async fn scaled_out_without_a_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_codecrafter"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env_remove("JWT_SECRET")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET is required"), "{stderr}");
}
