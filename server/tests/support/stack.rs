//! The scaled-out stack as real processes of the test's own, for the fault tests: a RabbitMQ node
//! and a MongoDB-wire server (SecantusDB from the test venv) that a test may stop and restart on
//! the same data, and `codecrafter-worker` processes. `scripts/services.sh` installs them; each
//! test runs its own on free ports, so restarting one disturbs no other test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::processes::free_port;

/// Where `scripts/services.sh` installs the test tools (`.test-env/` at the repository root).
fn test_env() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(".test-env")
}

async fn wait_for_port(port: u16, what: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "{what} is not listening on {port} after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A RabbitMQ node of the test's own (`rabbitmq-server` from Debian), its data kept across
/// restarts.
pub struct OwnRabbit {
    pub port: u16,
    dist_port: u16,
    node: String,
    dir: tempfile::TempDir,
    /// The `rabbitmq-server` script, which runs until the node stops.
    child: Option<std::process::Child>,
}

impl OwnRabbit {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut rabbit = Self {
            port,
            dist_port: free_port(),
            node: format!("cc-fault-{port}@localhost"),
            dir,
            child: None,
        };
        std::fs::create_dir_all(rabbit.dir.path().join("mnesia")).unwrap();
        std::fs::write(rabbit.dir.path().join("plugins"), "[].").unwrap();
        std::fs::write(
            rabbit.dir.path().join("rabbitmq.conf"),
            "loopback_users.guest = true\ndisk_free_limit.absolute = 50MB\n",
        )
        .unwrap();
        rabbit.restart().await;
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn command(&self, program: &str) -> std::process::Command {
        let dir = self.dir.path();
        let mut command = std::process::Command::new(program);
        command
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"));
        command
    }

    /// Start (again) on the same ports and data, and wait until it takes connections.
    pub async fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = self
            .command("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server (scripts/services.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "rabbitmq-server", Duration::from_secs(90)).await;
    }

    /// Stop the node (its durable queues and their messages stay on disk).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let stopped = self
            .command("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A MongoDB-wire server (SecantusDB) of the test's own, its data kept across restarts.
pub struct OwnMongo {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnMongo {
    pub async fn start() -> Self {
        let mut mongo = Self { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        mongo.restart().await;
        mongo
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new(test_env().join("venv/bin/python"))
            .args(["-m", "secantus", "--port", &self.port.to_string(), "--storage-path"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("secantus in .test-env/venv (scripts/services.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "secantus", Duration::from_secs(60)).await;
    }

    /// Stop it (SIGTERM, so its storage is closed cleanly; the data stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").args(["-s", "TERM", &pid.to_string()]).status();
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

/// The `codecrafter-worker` binary next to this test's own (cargo builds every binary of the
/// workspace for `cargo nextest run --workspace`).
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join("codecrafter-worker");
    assert!(binary.exists(), "{} missing: build it with `cargo build -p workers`", binary.display());
    binary
}

/// A `codecrafter-worker` process, killed when dropped.
pub struct Worker {
    pub ops_port: u16,
    child: Child,
}

impl Worker {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let ops_port = free_port();
        let child = Command::new(worker_binary())
            .args(["--host", "127.0.0.1", "--port", &ops_port.to_string()])
            // No Docker unless a test asks for it: a sandbox would start a warm pool per worker.
            .env("DOCKER_HOST", "none")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start codecrafter-worker");
        wait_for_port(ops_port, "codecrafter-worker's ops port", Duration::from_secs(30)).await;
        Self { ops_port, child }
    }

    /// SIGKILL: no chance to ack or requeue anything.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}
