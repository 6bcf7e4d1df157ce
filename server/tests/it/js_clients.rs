//! End-to-end tests with the real JavaScript Yjs client: each test starts the server on port 0 and
//! runs a Node script from `tests/js/` that drives yjs through the unchanged y-websocket
//! `WebsocketProvider` (see `tests/js/harness.mjs` for the script contract: one JSON line on stdout,
//! exit 0 on success).
//!
//! Needs Node.js 18+ and `npm ci --prefix server/tests/js`; without them every test here fails and
//! says so.

use crate::support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestServer, YClient};
use tokio::process::{Child, Command};
use yrs::types::ToJson;
use yrs::{Array, GetString, Map, Text, Transact};

/// Backstop only: every script has its own 30 s watchdog and fails with a message first.
const NODE_TIMEOUT: Duration = Duration::from_secs(45);
const WAIT: Duration = Duration::from_secs(10);
const INSTALL: &str = "install Node.js 18 or newer and run `npm ci --prefix server/tests/js`";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("js")
}

/// The `ws://HOST:PORT/ws` base a WebsocketProvider wants: it appends `/<room>` itself.
fn provider_url(server: &TestServer) -> String {
    format!("ws://{}/ws", server.addr)
}

/// Fail (never skip) when Node or the JS dependencies are missing, saying how to get them.
async fn require_node() {
    let output = match Command::new("node").arg("--version").output().await {
        Ok(output) if output.status.success() => output,
        Ok(output) => panic!("`node --version` failed ({}): {INSTALL}", output.status),
        Err(error) => panic!("cannot run `node` ({error}): {INSTALL}"),
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major: u32 =
        version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 18, "Node.js {version} is too old for the JS client tests: {INSTALL}");
    for package in ["yjs", "y-websocket", "y-protocols", "lib0", "ws"] {
        let manifest = js_dir().join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "the JS test dependencies are not installed ({package} is missing): {INSTALL}"
        );
    }
}

/// A running `node tests/js/<script>.mjs ARGS...`, killed if dropped.
struct NodeScript {
    script: String,
    child: Child,
}

impl NodeScript {
    async fn spawn(script: &str, args: &[&str]) -> Self {
        require_node().await;
        let child = Command::new("node")
            .arg(js_dir().join(format!("{script}.mjs")))
            .args(args)
            .current_dir(js_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning node {script}.mjs: {e}"));
        Self { script: script.to_owned(), child }
    }

    /// Wait for the script to exit; assert it succeeded and return its JSON result line.
    async fn finish(self) -> Value {
        let script = self.script;
        let output = tokio::time::timeout(NODE_TIMEOUT, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("node {script}.mjs did not finish within {NODE_TIMEOUT:?} (killed)"))
            .unwrap_or_else(|e| panic!("waiting for node {script}.mjs: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Shown by the test harness on failure (or with --nocapture).
        eprint!("{stderr}");
        assert!(
            output.status.success(),
            "node {script}.mjs failed ({}):\n{stderr}\nstdout:\n{stdout}",
            output.status
        );
        let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
        let line =
            line.unwrap_or_else(|| panic!("node {script}.mjs printed no result line; stderr:\n{stderr}"));
        let result: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("node {script}.mjs printed {line:?}: {e}"));
        assert_eq!(result["ok"], true, "node {script}.mjs reported {result}");
        eprintln!("node {script}.mjs: {}", shorten(&result));
        result
    }

    /// Poll `condition` while the script runs; a script that exits first fails the test with its output.
    async fn wait_for(mut self, what: &str, mut condition: impl FnMut() -> bool) -> Self {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !condition() {
            if self.child.try_wait().expect("polling node").is_some() {
                let result = self.finish().await;
                panic!("the script ended before {what}: {result}");
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out after {WAIT:?} waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self
    }
}

async fn node(script: &str, args: &[&str]) -> Value {
    NodeScript::spawn(script, args).await.finish().await
}

fn shorten(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// The Rust client's copy of the three roots the scripts use, shaped like `snapshot()` in
/// harness.mjs. Numbers become f64 on both sides: Yjs has only doubles, so 42 and 42.0 are one value.
fn content(client: &YClient) -> Value {
    let doc = &client.doc;
    let (text, map, list) =
        (doc.get_or_insert_text("text"), doc.get_or_insert_map("map"), doc.get_or_insert_array("list"));
    let txn = doc.transact();
    let to_value = |any: yrs::Any| {
        let mut json = String::new();
        any.to_json(&mut json);
        serde_json::from_str::<Value>(&json).expect("yrs prints JSON")
    };
    normalize(
        json!({ "text": text.get_string(&txn), "map": to_value(map.to_json(&txn)), "list": to_value(list.to_json(&txn)) }),
    )
}

fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().expect("finite")),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_js_clients_editing_text_map_and_array_concurrently_converge() {
    let server = TestServer::start(|_| {}).await;
    let url = provider_url(&server);
    // Three seeds (three interleavings) at once, each in its own room with three providers.
    let runs = (1..=3).map(|seed| {
        let (url, room, seed) = (url.clone(), format!("converge-{seed}"), seed.to_string());
        async move { node("converge", &[&url, &room, &seed]).await }
    });
    for result in futures_util::future::join_all(runs).await {
        assert_eq!(result["listLength"], 90, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_removes_the_awareness_of_a_killed_js_client_within_seconds() {
    // With the server's awareness timeout at 30 s, as in y-protocols, only noticing the dead socket
    // can remove the state within the script's 5 s limit.
    let server = TestServer::start(|c| c.awareness_timeout_ms = 30_000).await;
    let result = node("awareness", &[&provider_url(&server), "presence"]).await;
    for who in ["bob", "carol"] {
        let ms = result["removedAfterMs"][who].as_u64().unwrap_or(u64::MAX);
        assert!(ms < 5_000, "{who} saw the removal after {ms} ms");
    }
}

/// Issue 9, item 2, with the stock client: a forger reusing a JS client's ids for other content
/// (partial histories, merges, replays), 20 rooms of 12 forgeries each; in every room the JS client
/// connected throughout and a JS client joining after hold the same document, and Yjs never threw
/// ("Unexpected case"). The script itself says which round split and how.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_updates_reusing_ids_cannot_split_js_clients() {
    let server = TestServer::start(|_| {}).await;
    let result = node("forgery", &[&provider_url(&server), "forgery", "20", "9"]).await;
    assert_eq!(result["forged"], 240, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_js_joiner_gets_the_full_state() {
    let server = TestServer::start(|_| {}).await;
    let result = node("late-joiner", &[&provider_url(&server), "late"]).await;
    assert_eq!(result["edits"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_offline_edits_merge_on_reconnect() {
    let server = TestServer::start(|_| {}).await;
    let result = node("offline", &[&provider_url(&server), "offline"]).await;
    assert_eq!(result["text"], "offline-bob base online-alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_mib_js_text_syncs_to_a_fresh_js_client() {
    let server = TestServer::start(|_| {}).await;
    let result = node("large-doc", &[&provider_url(&server), "big"]).await;
    assert_eq!(result["bytes"], 5 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_edits_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(server::Config::for_tests(dir.path())).await;
    let written = node("persist", &[&provider_url(&server), "kept", "write"]).await;
    server.stop().await.expect("graceful shutdown persists every room");

    let server = TestServer::start_with(server::Config::for_tests(dir.path())).await;
    let read = node("persist", &[&provider_url(&server), "kept", "read"]).await;
    assert_eq!(read["content"], written["content"]);
    // The Rust client reads the same document from the restarted server.
    let rust = server.client("kept").await;
    let expected = normalize(written["content"].clone());
    rust.wait_for("the persisted document", WAIT, |c| content(c) == expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_and_rust_clients_converge_in_one_room() {
    let server = TestServer::start(|_| {}).await;
    let rust = server.client("mixed").await;
    rust.wait_for("initial sync", WAIT, |c| c.shared().synced).await;
    let (text, map, list) = (
        rust.doc.get_or_insert_text("text"),
        rust.doc.get_or_insert_map("map"),
        rust.doc.get_or_insert_array("list"),
    );
    {
        let mut txn = rust.doc.transact_mut();
        text.insert(&mut txn, 0, "héllo 🌍 from yrs");
        map.insert(&mut txn, "rust", "yrs");
        list.push_back(&mut txn, "rust-1");
    }

    // The script's side of the exchange is described in tests/js/mixed.mjs.
    let js = NodeScript::spawn("mixed", &[&provider_url(&server), "mixed"])
        .await
        .wait_for("the JS client's edits", || {
            let c = content(&rust);
            c["map"]["js"] == "yjs" && c["text"].as_str().is_some_and(|t| t.contains("[js]"))
        })
        .await;
    {
        let mut txn = rust.doc.transact_mut();
        let current = text.get_string(&txn);
        // A UTF-16 offset, as the document is configured (and as Yjs counts).
        let before_emoji = current[..current.find('🌍').unwrap()].encode_utf16().count() as u32;
        text.insert(&mut txn, before_emoji, "[rs]");
        map.insert(&mut txn, "ack", "rust saw js");
    }
    let result = js.finish().await;

    let expected = normalize(result["content"].clone());
    assert_eq!(expected["text"], "héllo [rs]🌍[js] from yrs");
    rust.wait_for("the Rust client to match the JS client", WAIT, |c| content(c) == expected).await;
    // A fresh Rust client gets the same document from the server.
    let late = server.client("mixed").await;
    late.wait_for("a late Rust joiner to match", WAIT, |c| content(c) == expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_js_clients_pass_the_token_in_params_and_a_viewer_cannot_write() {
    use support::http::{create_session, invite, register};
    let server = TestServer::start_secure(|config| config.auth_timeout_ms = 2000).await;
    let owner = register(server.addr, "js_owner").await;
    let viewer = register(server.addr, "js_viewer").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    invite(server.addr, &owner, &session, &viewer, "viewer").await;
    let result =
        node("permissions", &[&provider_url(&server), &session, &owner.access, &viewer.access]).await;
    assert_eq!(result["refusal"]["code"], 4401, "{result}");
    assert_eq!(result["viewerStillConnected"], true, "{result}");
}

/// The fenced code block of README.md in `lang` whose first line starts with `first_line`.
fn readme_block(lang: &str, first_line: &str) -> String {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let fence = format!("```{lang}\n");
    let mut rest = readme.as_str();
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("a closed code block");
        if body.starts_with(first_line) {
            return body[..end].to_owned();
        }
        rest = &body[end + 3..];
    }
    panic!("README.md has no ```{lang} block starting with {first_line:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_runs_as_written() {
    use support::http::call;
    require_node().await;
    let curl = std::process::Command::new("curl").arg("--version").output();
    assert!(curl.is_ok_and(|o| o.status.success()), "the quick start needs curl: apt-get install curl");
    let server = TestServer::start_secure(|_| {}).await;
    let url = format!("http://{}", server.addr);
    let dir = tempfile::tempdir().unwrap();

    // The shell block, byte for byte; its first line takes the server's address from URL. A line
    // after it reports what it exported (a reader's shell keeps them for the next step).
    let shell = readme_block("sh", "URL=${URL:-http://localhost:5000}\n");
    let script = format!("{shell}\nprintf '\\nTOKEN=%s\\nSESSION=%s\\n' \"$TOKEN\" \"$SESSION\"\n");
    let output = Command::new("bash")
        .args(["-eo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("URL", &url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the quick start's shell block failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exported = |name: &str| {
        let prefix = format!("{name}=");
        stdout.lines().rev().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_default().to_owned()
    };
    let (token, session) = (exported("TOKEN"), exported("SESSION"));
    let reply = call(server.addr, "GET", &format!("/api/sessions/{session}"), Some(&token), None, &[]).await;
    assert_eq!(reply.status, 200, "the session the quick start created ({session}): {}", reply.body);
    assert_eq!(reply.json()["title"], "Kata");

    // The JS block as quickstart.mjs, next to the test's npm packages (yjs, y-websocket, ws).
    std::fs::write(dir.path().join("quickstart.mjs"), readme_block("js", "// quickstart.mjs")).unwrap();
    std::os::unix::fs::symlink(js_dir().join("node_modules"), dir.path().join("node_modules")).unwrap();
    let _editor = Command::new("node")
        .arg("quickstart.mjs")
        .current_dir(dir.path())
        .envs([("URL", url.as_str()), ("SESSION", session.as_str()), ("TOKEN", token.as_str())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node quickstart.mjs");
    // Its edit reached the room: another client of the session reads it from the server.
    let reader = YClient::connect(&format!("{}?token={token}", server.ws_url(&session))).await;
    reader
        .wait_for("the quick start's edit in the room", WAIT, |c| c.text("code") == "print(\"hello\")\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_editor_keeps_syncing_past_token_expiry_with_the_readme_refresh_recipe() {
    use support::http::{create_session, register};
    // Tokens live one second; the server then refuses them after its leeway.
    let server = TestServer::start_secure(|config| config.access_token_ttl_secs = 1).await;
    let user = register(server.addr, "refresher").await;
    let session = create_session(server.addr, &user, json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("auth-refresh.mjs");
    std::fs::write(&recipe, readme_block("js", "// auth-refresh.mjs")).unwrap();
    let api = format!("http://{}", server.addr);
    let args = [provider_url(&server), session, api, recipe.display().to_string(), user.access, user.refresh];
    let result = node("refresh", &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(result["closed"], json!([4401]), "{result}");
    assert_eq!(result["tokenRenewed"], true, "{result}");
    assert_eq!(result["refreshRotated"], true, "{result}");
    assert_eq!(result["text"], "before;offline;after;");
}
