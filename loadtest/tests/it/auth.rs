//! `loadtest fanout --sign-up` against a `codecrafter` started without `--allow-anonymous`, as an
//! operator would run it: the harness registers a user, creates a session per room, and every
//! client gets in with the token; without it the same server refuses the harness.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server_bin::codecrafter;

/// How long the server may take to print `listening on ADDR`.
const STARTUP: Duration = Duration::from_secs(30);

/// A server with auth on (the default), stopped on drop.
struct AuthServer {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl AuthServer {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(codecrafter())
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            // What the harness's --help asks of a measured server; no --allow-anonymous.
            .args(["--ws-connects-per-min", "0"])
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting codecrafter");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads on until the server exits, so its logging never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let started = Instant::now();
        let addr = rx.recv_timeout(STARTUP).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("codecrafter did not print `listening on ADDR` within {:?}", started.elapsed())
        });
        Self { child, addr, _data: data }
    }

    fn fanout(&self, extra: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .arg("fanout")
            .args(["--url", &format!("ws://{}/ws", self.addr)])
            .args(["--server-pid", &self.child.id().to_string()])
            .args(["--rooms", "3", "--clients", "4", "--rate", "10", "--duration", "1s", "--warmup", "500ms"])
            .args(["--timeout", "1m"])
            .args(extra)
            .output()
            .expect("running loadtest")
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sign_up_opens_sessions_on_a_server_with_auth_on() {
    let server = AuthServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let out = server.fanout(&[
        "--sign-up",
        &format!("http://{}", server.addr),
        "--report",
        report.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!("loadtest {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{context}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(r["ok"], true, "{context}");
    assert_eq!(r["deliveries"]["missing"], 0, "{context}");
    assert!(r["deliveries"]["received"].as_u64() > Some(0), "{context}");
    assert_eq!(r["convergence"]["passed"], 3, "{context}");
    assert!(stdout.contains("1s measured after 500ms warm-up"), "human durations; {context}");

    // The same server turns the harness away without a token: the run above was let in by it.
    let out = server.fanout(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("4401"), "{stderr}");
}
