//! The real `loadtest` binary spreading a fan-out run over two real `codecrafter` nodes that share
//! rooms through Redis: every update crosses the relay for some receivers, so no loss, no
//! duplicates and convergence mean the harness and the relay both did their part.
//!
//! Needs the `codecrafter` binary built next to `loadtest` (`cargo build -p server`; the
//! workspace's test command builds it) and a Redis at `CODECRAFTER_TEST_REDIS_URL`, which
//! `scripts/services.sh` starts. Without either the test fails and says so: it never skips.

use std::process::Command;

use serde_json::Value;

use crate::server_bin::codecrafter;

#[path = "support/server_bin.rs"]
mod server_bin;

/// Where to look when Redis is missing: the script installs and starts redis-server.
const HOW_TO_START_REDIS: &str =
    "run scripts/test.sh, or start one with `source scripts/services.sh && services_start`";

fn redis_url() -> String {
    std::env::var("CODECRAFTER_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("CODECRAFTER_TEST_REDIS_URL is not set: {HOW_TO_START_REDIS}"))
}

#[test]
fn fanout_over_two_nodes_sharing_redis() {
    let (server, redis) = (codecrafter(), redis_url());
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("fanout")
        .arg("--spawn")
        .arg(&server)
        .args(["--nodes", "2", "--redis-url", &redis])
        .args(["--rooms", "4", "--clients", "4", "--writers", "2", "--rate", "20"])
        .args(["--duration", "2s", "--warmup", "1s", "--timeout", "2m", "--report"])
        .arg(&report)
        .output()
        .expect("running loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadtest {}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);

    let json = std::fs::read_to_string(&report).expect("the report was written");
    let r: Value = serde_json::from_str(&json).expect("the report is JSON");
    let context = format!("report:\n{json}\nstdout:\n{stdout}");
    assert_eq!(r["ok"], true, "{context}");

    let nodes = r["server"]["nodes"].as_array().unwrap_or_else(|| panic!("no server.nodes; {context}"));
    assert_eq!(nodes.len(), 2, "{context}");
    assert_ne!(nodes[0]["url"], nodes[1]["url"], "{context}");
    for node in nodes {
        assert!(node["window"]["cpu_secs"].as_f64() > Some(0.0), "a node did no work; {context}");
    }
    let total = r["server"]["window"]["cpu_secs"].as_f64().expect("total cpu");
    let by_node: f64 = nodes.iter().filter_map(|n| n["window"]["cpu_secs"].as_f64()).sum();
    assert!((total - by_node).abs() < 1e-9, "the total is the nodes' sum; {context}");

    let d = &r["deliveries"];
    assert!(d["received"].as_u64() > Some(0), "{context}");
    assert_eq!(d["received"], d["expected"], "{context}");
    for field in ["missing", "extra", "gaps", "disconnected_clients"] {
        assert_eq!(d[field], 0, "{field}; {context}");
    }
    let c = &r["convergence"];
    assert_eq!(c["rooms_checked"], 4, "{context}");
    assert_eq!(c["passed"], 4, "{context}");

    assert!(r["redis"]["publishes"].as_u64() > Some(0), "the relay published nothing; {context}");
    assert!(r["redis"]["publishes_per_sec"].as_f64() > Some(0.0), "{context}");
}
