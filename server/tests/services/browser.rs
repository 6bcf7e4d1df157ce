//! The browser client end to end: `server/web/e2e/run.mjs` drives Debian's Chromium through
//! playwright-core against this build's `codecrafter` binary, with Docker execution on
//! (`CODECRAFTER_TEST_DOCKER_HOST`). The script holds the scenario (two users converge, see each
//! other's cursors, chat, stream a run, a viewer cannot type, a killed and restarted server loses
//! nothing, a server without Docker says so); this test runs it, and fails with its output and how to install what is missing.
//! Screenshots of the main screens are kept in `target/tmp/browser-screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::support;

const INSTALL: &str = "run `bash scripts/test.sh` (it installs chromium with apt and \
    `npm ci --prefix server/web`), or install them by hand";

/// The screens the script photographs (and the README shows one of).
const SCREENS: [&str; 10] = [
    "sign-in",
    "sessions",
    "session",
    "share",
    "viewer",
    "offline",
    "sign-in-again",
    "locked",
    "narrow",
    "no-docker",
];

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_edit_chat_and_run_in_real_browsers_and_a_restart_loses_nothing() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(std::path::Path::new(&chromium).exists(), "no browser at {chromium}: {INSTALL}");
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "server/web/node_modules/playwright-core is missing: {INSTALL}"
    );
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let run = Command::new("node")
        .current_dir(web_dir())
        .arg("e2e/run.mjs")
        .arg("--server")
        .arg(env!("CARGO_BIN_EXE_codecrafter"))
        .arg("--artifacts")
        .arg(&artifacts)
        .env("DOCKER_HOST", support::docker_host())
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished within 240 s")
        .unwrap_or_else(|e| panic!("cannot run node ({e}): {INSTALL}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        artifacts.display()
    );
    assert!(
        stdout.contains("all browser checks passed"),
        "the script ended without its last check:\n{stdout}"
    );
    for screen in SCREENS {
        assert!(artifacts.join(format!("{screen}.png")).is_file(), "no screenshot of {screen}");
    }
    println!("{stdout}screenshots in {}", artifacts.display());
}
