//! `deploy/docker-compose.yml`, the whole stack, brought up under the local `dockerd` by
//! `deploy/compose/smoke.sh` with images built offline (the server and worker from this test's own
//! binaries, the stand-in image for the services with no offline image) and checked end to end:
//! Yjs clients on both nodes and through nginx, workers writing snapshots to the MongoDB stand-in,
//! Prometheus scraping every node and worker with the rules loaded, a rolling SIGTERM restart that
//! loses nothing. What the stand-ins replace, and that Grafana cannot run here, is in
//! deploy/README.md.

use std::path::Path;
use std::process::Command;

use crate::support::{docker_host, stack::worker_binary};

#[test]
fn the_full_stack_comes_up_serves_clients_persists_and_survives_a_rolling_restart() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let binaries = worker_binary().parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .arg(repo.join("deploy/compose/smoke.sh"))
        .env("DOCKER_HOST", docker_host())
        .env("SMOKE_BINARIES", &binaries)
        .output()
        .expect("run deploy/compose/smoke.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "deploy/compose/smoke.sh failed:\n{stdout}\n{stderr}");
    for step in ["snapshots written by the workers", "node2 stopped cleanly", "== smoke: passed"] {
        assert!(stdout.contains(step), "the smoke test did not report {step:?}:\n{stdout}");
    }
}
