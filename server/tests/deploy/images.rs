//! The server and worker images, built offline by `deploy/build-images.sh` from this test's own
//! binaries (its debug build: the image layout is what is under test, and a release build would
//! double the test command's compile time), then run under the local `dockerd`
//! (`CODECRAFTER_TEST_DOCKER_HOST`, which `scripts/services.sh` starts).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use yrs::{Text, Transact};

use crate::support::client::YClient;
use crate::support::{docker_host, http_get, processes::free_port, stack::worker_binary};

const TAG: &str = "deploy-test";
const WAIT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `docker ARGS` against the test daemon; its stdout, or a panic with its stderr.
fn docker(args: &[&str]) -> String {
    let out =
        Command::new("docker").env("DOCKER_HOST", docker_host()).args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs deploy/build-images.sh with the binaries this test binary sits beside.
fn build_images(tag: &str, extra: &[&str]) {
    let binaries = worker_binary().parent().unwrap().to_path_buf();
    assert!(binaries.join("codecrafter").exists(), "codecrafter missing beside {}", binaries.display());
    let out = Command::new("bash")
        .arg(repo().join("deploy/build-images.sh"))
        .args(["--binaries", binaries.to_str().unwrap(), "--tag", tag])
        .args(extra)
        .env("DOCKER_HOST", docker_host())
        .output()
        .expect("run deploy/build-images.sh");
    assert!(
        out.status.success(),
        "deploy/build-images.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container removed (with its anonymous volumes) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .env("DOCKER_HOST", docker_host())
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

fn health(id: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Health.Status}}", id])
}

async fn wait_healthy(id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = health(id);
        if status == "healthy" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} is {status} after {WAIT:?}:\n{}",
            docker(&["logs", "--tail", "30", id])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_build_offline_and_run_non_root_with_health_checks() {
    build_images(TAG, &[]);

    for (image, entrypoint) in
        [("server", "/usr/local/bin/codecrafter"), ("worker", "/usr/local/bin/codecrafter-worker")]
    {
        let name = format!("codecrafter/{image}:{TAG}");
        let config = docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Healthcheck.Test}}",
            &name,
        ]);
        assert!(config.starts_with("10001:10001 "), "{name} does not run as the unprivileged user: {config}");
        assert!(config.contains(&format!("[\"{entrypoint}\"]")), "{name}'s entrypoint: {config}");
        assert!(config.contains("/health"), "{name} has no health check on /health: {config}");
        // Stripped: no symbol table left (a debug build unstripped is several times larger).
        let listing = docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/bash",
            &name,
            "-c",
            &format!("ls -l {entrypoint}; ls /; id -u"),
        ]);
        assert!(!listing.contains("src"), "the build context leaked into {name}:\n{listing}");
        assert!(listing.ends_with("10001"), "{name} runs as {listing}");
    }

    // The server: embedded store in its volume, healthy by its own check, serves a real client,
    // flushes on SIGTERM (exit 0), and has the edit after a restart of the same container.
    let image = format!("codecrafter/server:{TAG}");
    let id =
        docker(&["run", "-d", "-p", "127.0.0.1::5000", "-e", "CODECRAFTER_ALLOW_ANONYMOUS=true", &image]);
    let server = Container(id.clone());
    wait_healthy(&id).await;
    let port = docker(&["port", &id, "5000/tcp"]);
    let addr = port.lines().next().unwrap().to_owned();
    let (status, body) = http_get(&format!("http://{addr}/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""store":{"backend":"embedded","status":"ok"}"#), "{body}");

    let writer = YClient::connect(&format!("ws://{addr}/ws/deploy-image")).await;
    writer.wait_for("sync", WAIT, |c| c.shared().synced).await;
    {
        let text = writer.doc.get_or_insert_text("text");
        let mut txn = writer.doc.transact_mut();
        text.insert(&mut txn, 0, "kept across a restart");
    }
    let witness = YClient::connect(&format!("ws://{addr}/ws/deploy-image")).await;
    witness
        .wait_for("the edit reached the server", WAIT, |c| c.text("text") == "kept across a restart")
        .await;
    drop((writer, witness));

    docker(&["stop", "--time", "45", &id]);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &id]),
        "0",
        "SIGTERM must end in a clean exit"
    );
    docker(&["start", &id]);
    wait_healthy(&id).await;
    let addr = docker(&["port", &id, "5000/tcp"]).lines().next().unwrap().to_owned();
    let reader = YClient::connect(&format!("ws://{addr}/ws/deploy-image")).await;
    reader.wait_for("the edit after the restart", WAIT, |c| c.text("text") == "kept across a restart").await;
    drop(server);

    // The worker: on the test broker (host network: it listens on 127.0.0.1), its ops port moved
    // by env, which its health check follows.
    let amqp =
        std::env::var("CODECRAFTER_TEST_AMQP_URL").expect("CODECRAFTER_TEST_AMQP_URL (scripts/services.sh)");
    let ops = free_port();
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        &format!("AMQP_URL={amqp}"),
        "-e",
        &format!("CODECRAFTER_WORKER_PORT={ops}"),
        "-e",
        "CODECRAFTER_WORKER_HOST=127.0.0.1",
        "-e",
        "DOCKER_HOST=none",
        &format!("codecrafter/worker:{TAG}"),
    ]);
    let _worker = Container(id.clone());
    wait_healthy(&id).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(&format!("http://127.0.0.1:{ops}/ready")).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker is not ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
