//! The `codecrafter` binary as users run it: startup line, `--help`, debounced persistence that
//! survives SIGKILL, and SIGTERM flushing every room before exiting 0.

use crate::support;

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
    // Killed once the snapshot worker has counted the write (it counts after the store's commit),
    // which must be within about a second of the edit: its persist lag is at most 2 s.
    let metrics = wait_for_metrics(&running, "the debounced snapshot written", |m| {
        value(m, "codecrafter_persist_writes_total") >= 1.0
    })
    .await;
    assert_eq!(
        value(&metrics, r#"codecrafter_persist_lag_seconds_bucket{le="2"}"#),
        value(&metrics, "codecrafter_persist_lag_seconds_count"),
        "persisted more than 2 s after the edit:\n{metrics}"
    );
    running.signal("KILL");
    running.exit_code().await;

    let running = start(dir.path(), &[]).await;
    assert_eq!(read_text(&running, "debounced").await, "saved by the debounce");
}

/// Scrape `running`'s `/metrics` until `condition` holds; the text that satisfied it.
async fn wait_for_metrics(running: &Node, what: &str, condition: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, text) = support::http_get(&format!("http://{}/metrics", running.addr)).await;
        if condition(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one metric series in a scrape (0 when absent).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
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
        "--amqp-url",
        "--outbox-max-mb",
        "--queue-barrier-timeout-ms",
        "--group-commit-ms",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("[env: CODECRAFTER_MAX_MESSAGE_BYTES="), "every flag names its env var:\n{help}");
}

/// With RabbitMQ the workers write MongoDB, so a server loading rooms from its own embedded file
/// would serve stale rooms: refused at start, saying what is missing.
#[tokio::test]
async fn a_broker_without_mongodb_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_codecrafter"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("JWT_SECRET", "a-secret-of-at-least-32-bytes-for-this-test")
        .env_remove("MONGO_URL")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AMQP_URL needs MONGO_URL"), "{stderr}");
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

/// Start the binary with `env` and `args` (no `--bind`), return the address it says it listens on.
async fn listening_address(env: &[(&str, &str)], args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codecrafter"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env_remove("CODECRAFTER_BIND")
        .env_remove("HOST")
        .env_remove("PORT")
        .env("DOCKER_HOST", "none")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("startup line").unwrap().unwrap();
    let addr = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected {line:?}")).to_owned();
    (child, addr)
}

#[tokio::test]
async fn port_and_host_are_honoured_when_bind_is_not_given_and_bind_wins_over_them() {
    let port = support::processes::free_port().to_string();
    let (_child, addr) = listening_address(&[("PORT", &port), ("HOST", "127.0.0.1")], &[]).await;
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let (status, _) = support::http_get(&format!("http://{addr}/health")).await;
    assert_eq!(status, 200);

    // PORT alone keeps the default host.
    let port = support::processes::free_port().to_string();
    let (_child, addr) = listening_address(&[("PORT", &port)], &[]).await;
    assert_eq!(addr, format!("127.0.0.1:{port}"));

    // --bind and CODECRAFTER_BIND come first (port 0: a free port, not PORT's).
    let (_child, addr) =
        listening_address(&[("PORT", "1"), ("HOST", "0.0.0.0")], &["--bind", "127.0.0.1:0"]).await;
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":1"), "{addr}");
    let (_child, addr) =
        listening_address(&[("PORT", "1"), ("HOST", "0.0.0.0"), ("CODECRAFTER_BIND", "127.0.0.1:0")], &[])
            .await;
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":1"), "{addr}");
}

#[tokio::test]
async fn a_port_that_is_not_a_number_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_codecrafter"))
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("CODECRAFTER_BIND")
        .env("PORT", "http")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--port") && stderr.contains("http"), "{stderr}");
}

#[tokio::test]
async fn help_groups_the_flags_under_headings() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_codecrafter")).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    // Each heading with one flag that belongs to it: the flag is listed after its heading and
    // before the next one.
    let groups = [
        ("Network:", "--bind"),
        ("WebSocket limits:", "--max-message-bytes"),
        ("Rate limits:", "--rate-limit-requests"),
        ("Rooms and storage:", "--data-dir"),
        ("Redis and cluster:", "--redis-url"),
        ("Accounts and tokens:", "--jwt-secret"),
        ("Runtime and logging:", "--log-format"),
    ];
    let sections: Vec<(usize, &str)> = groups
        .iter()
        .map(|(heading, _)| {
            let at = help.lines().position(|l| l == *heading);
            (at.unwrap_or_else(|| panic!("--help has no {heading:?} heading:\n{help}")), *heading)
        })
        .collect();
    for (heading, flag) in groups {
        let start = sections.iter().find(|(_, h)| *h == heading).unwrap().0;
        let end = sections.iter().map(|(at, _)| *at).filter(|at| *at > start).min().unwrap_or(usize::MAX);
        let line = help.lines().position(|l| l.trim_start().starts_with(&format!("{flag} "))).unwrap();
        assert!(start < line && line < end, "{flag} is not under {heading:?}:\n{help}");
    }
    // Nothing is left in clap's catch-all group but --help and --version.
    let options_start = help.lines().position(|l| l == "Options:").expect("Options:");
    let options_end = sections.iter().map(|(at, _)| *at).filter(|at| *at > options_start).min().unwrap();
    let ungrouped: Vec<&str> = help.lines().collect::<Vec<_>>()[options_start + 1..options_end]
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("--").or_else(|| l.trim_start().strip_prefix("-h, --")))
        .filter(|l| !l.starts_with("help") && !l.starts_with("version"))
        .collect();
    assert!(ungrouped.is_empty(), "flags without a heading: {ungrouped:?}");
}
