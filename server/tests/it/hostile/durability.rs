//! What a `kill -9` loses today: the real `codecrafter` binary on the embedded store, a client
//! typing one character per WebSocket message, SIGKILL after a quiet period, a restart on the same
//! data dir, and a count of the edits the reopened room still holds. Snapshots are written at most
//! `--persist-debounce-ms` after a room's first unsaved change, so anything younger is lost; these
//! tests pin what holds regardless (nothing lost after twice the debounce, what survives is always
//! a prefix, the room reopens) and print the lossy figures for BENCHMARKS.md.

use std::time::{Duration, Instant};

use yrs::{Text, Transact};

use crate::support::YClient;
use crate::support::processes::Node;

const WAIT: Duration = Duration::from_secs(15);
const ROOM: &str = "durability";
/// The default, passed explicitly so the figures describe the default configuration.
const DEBOUNCE_MS: &str = "1000";

async fn start(data_dir: &std::path::Path) -> Node {
    Node::start(data_dir, &[], &["--allow-anonymous", "--persist-debounce-ms", DEBOUNCE_MS]).await
}

/// The character of edit `i`: all distinct (CJK ideographs, one UTF-16 unit each), so a restored
/// text with a hole or a reordering cannot pass for a prefix.
fn edit_char(i: usize) -> char {
    char::from_u32(0x4E00 + i as u32).unwrap()
}

fn expected_text(n: usize) -> String {
    (0..n).map(edit_char).collect()
}

/// Append edit `i` in its own transaction: one update, one WebSocket message, as a keystroke.
fn type_edit(writer: &YClient, i: usize) {
    let text = writer.doc.get_or_insert_text("t");
    let mut txn = writer.doc.transact_mut();
    let end = text.len(&txn);
    text.insert(&mut txn, end, &edit_char(i).to_string());
}

/// A writer and a watcher on `ROOM`, both synced.
async fn writer_and_watcher(node: &Node) -> (YClient, YClient) {
    let writer = YClient::connect(&node.ws_url(ROOM)).await;
    let watcher = YClient::connect(&node.ws_url(ROOM)).await;
    for client in [&writer, &watcher] {
        client.wait_for("sync", WAIT, |c| c.shared().synced).await;
    }
    (writer, watcher)
}

/// The watcher (another connection) holds all `n` edits: the server received and applied every
/// one, so whatever the kill loses is lost by the server, not the network.
async fn confirm_applied(watcher: &YClient, n: usize) {
    let expected = expected_text(n);
    watcher.wait_for("the server applied every edit", WAIT, |c| c.text("t") == expected).await;
}

/// SIGKILL `node`, restart on the same data dir, and return how many of the `n` edits survived,
/// after checking that they are a prefix of what was typed and that the reopened room serves.
async fn kill_restart_and_count(node: Node, data_dir: &std::path::Path, n: usize) -> usize {
    node.signal("KILL");
    assert_eq!(node.exit_code().await, None, "killed by the signal, not exited");

    let node = start(data_dir).await;
    let reader = YClient::connect(&node.ws_url(ROOM)).await;
    reader.wait_for("the reopened room syncs", WAIT, |c| c.shared().synced).await;
    let restored = reader.text("t");
    let expected = expected_text(n);
    assert!(
        expected.starts_with(&restored),
        "what survives must be a prefix of what was typed (a consistent state, no holes): \
         {} characters restored, {restored:?}",
        restored.chars().count(),
    );
    let kept = restored.chars().count();
    assert!(kept <= n);

    // The reopened room takes new edits and relays them.
    type_edit(&reader, kept);
    let late = YClient::connect(&node.ws_url(ROOM)).await;
    let after = expected_text(kept + 1);
    late.wait_for("an edit after the restart", WAIT, |c| c.text("t") == after).await;

    // Reap it before the test ends: a child still running would hold the test's stderr open.
    node.signal("KILL");
    node.exit_code().await;
    kept
}

fn report(scenario: &str, n: usize, kept: usize, detail: &str) {
    eprintln!("durability: {scenario}: {}/{n} edits lost ({kept} kept; {detail})", n - kept);
}

/// `n` edits typed back to back, confirmed, then `quiet` without edits, then kill -9.
async fn burst_then_quiet(n: usize, quiet: Duration) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (writer, watcher) = writer_and_watcher(&node).await;
    let started = Instant::now();
    for i in 0..n {
        type_edit(&writer, i);
    }
    confirm_applied(&watcher, n).await;
    let applied = started.elapsed();
    // Deliberate: the quiet interval before the kill is the quantity measured, not a wait for a
    // condition to assert on.
    tokio::time::sleep(quiet).await;
    let kept = kill_restart_and_count(node, dir.path(), n).await;
    let detail = format!(
        "all applied {} ms after the first edit, killed after {} ms of quiet",
        applied.as_millis(),
        quiet.as_millis()
    );
    report(&format!("{n} edits, {} ms quiet", quiet.as_millis()), n, kept, &detail);
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_200_edits_and_0_2_s_of_quiet_keeps_a_prefix() {
    // Typically all 200 are lost: the first snapshot is due a second after the first edit.
    let kept = burst_then_quiet(200, Duration::from_millis(200)).await;
    assert!(kept <= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_200_edits_and_2_s_of_quiet_loses_nothing() {
    // Every change is in a snapshot taken at most one debounce after it; the second debounce is
    // the margin for the queue and the store's commit.
    let kept = burst_then_quiet(200, Duration::from_secs(2)).await;
    assert_eq!(kept, 200, "2 s (twice the debounce) after the last edit, a kill -9 must lose nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_steady_typing_keeps_a_prefix() {
    const N: usize = 500;
    const PERIOD: Duration = Duration::from_millis(5); // 500 edits over 2.5 s
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let (writer, watcher) = writer_and_watcher(&node).await;
    let started = Instant::now();
    // Burst (the default) catches up on late ticks, so the pace stays 200 edits/s on average.
    let mut keystrokes = tokio::time::interval(PERIOD);
    for i in 0..N {
        keystrokes.tick().await;
        type_edit(&writer, i);
    }
    let typed = started.elapsed();
    confirm_applied(&watcher, N).await;
    let applied = started.elapsed();
    // No quiet period: the kill follows the confirmation at once.
    let kept = kill_restart_and_count(node, dir.path(), N).await;
    let detail = format!(
        "typed over {} ms, all applied at {} ms, killed at once",
        typed.as_millis(),
        applied.as_millis()
    );
    report("500 edits of steady typing, no quiet", N, kept, &detail);
    assert!(kept <= N);
}
