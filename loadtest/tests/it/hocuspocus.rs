//! `loadtest fanout --protocol hocuspocus` against the real Hocuspocus 4.7.0 of `loadtest/peers`,
//! started with `peers/start.sh` (which installs the pinned packages with `npm ci` when
//! `peers/node_modules` is missing): every update delivered once, in order, and every room
//! converged, with Hocuspocus's framing, Auth and echoes. Fails, never skips, when Hocuspocus
//! cannot be started.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `npm ci` on a cold cache plus Node's start.
const STARTUP: Duration = Duration::from_secs(180);

/// A Hocuspocus server, killed on drop.
struct Hocuspocus {
    child: Child,
    port: u16,
}

impl Hocuspocus {
    fn start() -> Self {
        // A port the kernel just handed out and took back: free unless something races us to it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/start.sh");
        let mut child = Command::new(&script)
            .args(["hocuspocus", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Both pipes are read to their end, so neither npm nor Node blocks on a full one.
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(format!("stderr: {line}"));
            }
        });
        let mut server = Self { child, port };
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(&format!("listening on {port}")) => return server,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    panic!(
                        "Hocuspocus did not start on {port} within {STARTUP:?} (exit {status:?}); it needs \
                         npm (for `npm ci` in loadtest/peers) and network access to the npm registry \
                         the first time. Its output:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }
}

impl Drop for Hocuspocus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `loadtest fanout` at Hocuspocus with `args`; returns the report, asserting a clean pass.
fn fanout(server: &Hocuspocus, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["fanout", "--url", &format!("ws://127.0.0.1:{}", server.port), "--protocol", "hocuspocus"])
        .args(["--server-pid", &server.child.id().to_string(), "--timeout", "1m", "--report"])
        .arg(&path)
        .args(args)
        .output()
        .expect("running loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("loadtest {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(out.status.success(), "{context}");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("no report ({e}); {context}"));
    let report: serde_json::Value = serde_json::from_str(&json).expect("the report is JSON");
    let d = &report["deliveries"];
    for zero in ["missing", "extra", "gaps", "unmarked", "malformed", "disconnected_clients"] {
        assert_eq!(d[zero], 0, "{zero}; {context}");
    }
    assert!(d["received"].as_u64() > Some(0), "{context}");
    assert_eq!(d["received"], d["expected"], "{context}");
    let c = &report["convergence"];
    assert_eq!(c["passed"], c["rooms_checked"], "{context}");
    assert!(
        report["server"]["window"]["cpu_secs"].as_f64() > Some(0.0),
        "Hocuspocus's CPU was read; {context}"
    );
    report
}

#[test]
fn fanout_rooms_and_crowd_against_hocuspocus() {
    let server = Hocuspocus::start();
    let rooms =
        fanout(&server, &["--shape", "rooms", "--rooms", "5", "--duration", "2s", "--warmup", "500ms"]);
    assert_eq!(rooms["convergence"]["rooms_checked"], 5);
    // Hocuspocus sends each update back to its writer too: counted apart, not as deliveries.
    assert!(rooms["deliveries"]["echoes"].as_u64() > Some(0), "{rooms}");
    let crowd =
        fanout(&server, &["--shape", "crowd", "--clients", "50", "--duration", "2s", "--warmup", "500ms"]);
    assert_eq!(crowd["config"]["clients"], 50);
}
