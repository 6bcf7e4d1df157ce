//! The Docker sandbox against a real dockerd (`CODECRAFTER_TEST_DOCKER_HOST`, e.g.
//! `unix:///var/run/docker.sock`) and the runner images of `deploy/runners/` (python at least).
//! No mocks: every run is a real container. Each test starts its own sandbox under a unique owner
//! (so parallel tests never sweep each other's containers), with small limits so the edges are
//! reached fast, and ends with [`Harness::finish`], which checks that none of its containers is
//! left behind.

mod hostile;
mod io;
mod languages;
mod lifecycle;
mod limits;
mod proxy;
mod spec;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use clap::Parser;
use protocol::run::OutputStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::exec::{
    Chunk, DockerConfig, DockerSandbox, ExecArgs, Language, RunReport, RunSpec, Sandbox, SandboxError,
};

/// Longest any condition is waited for.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn docker_host() -> String {
    std::env::var("CODECRAFTER_TEST_DOCKER_HOST").unwrap_or_else(|_| {
        panic!(
            "CODECRAFTER_TEST_DOCKER_HOST is not set: these tests need a Docker daemon and the runner \
             images. Start dockerd (`dockerd &`, Debian package docker.io), build the images with \
             `deploy/runners/build-offline.sh`, then `export CODECRAFTER_TEST_DOCKER_HOST=unix:///var/run/docker.sock`"
        )
    })
}

/// An owner no other test (or run) uses.
pub fn unique_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("test-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    exec: ExecArgs,
}

/// The execution flags of a test: small limits, a cold path (pool 0), with `changes` (each
/// `--flag=value`) in place of the defaults they name.
pub fn exec_args(changes: &[&str]) -> ExecArgs {
    let host = format!("--docker-host={}", docker_host());
    let defaults = [
        host.as_str(),
        "--exec-timeout-ms=3000",
        "--exec-memory-mb=64",
        "--exec-cpus=1",
        "--exec-pids=32",
        "--exec-tmpfs-mb=8",
        "--exec-output-max-kb=4",
        "--exec-pool-size=0",
    ];
    let flag = |arg: &str| arg.split('=').next().unwrap_or_default().to_owned();
    let changed: Vec<String> = changes.iter().map(|change| flag(change)).collect();
    let argv = std::iter::once("test")
        .chain(defaults.into_iter().filter(|default| !changed.contains(&flag(default))))
        .chain(changes.iter().copied());
    Flags::parse_from(argv).exec
}

/// One sandbox of one test.
pub struct Harness {
    pub sandbox: Arc<DockerSandbox>,
    pub owner: String,
    pub config: DockerConfig,
    tracker: TaskTracker,
    cancel: CancellationToken,
    cleanup: Cleanup,
}

/// Removes the containers of a test that panicked before [`Harness::finish`]: its runtime ends
/// with the panic, and the removals it had spawned with it.
struct Cleanup {
    owner: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let owner = self.owner.clone();
        let removal = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                let docker = docker().await;
                for id in containers_of(&owner).await {
                    let options = RemoveContainerOptions { force: true, v: true, link: false };
                    let _ = docker.remove_container(&id, Some(options)).await;
                }
            });
        });
        let _ = removal.join();
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub report: RunReport,
    pub chunks: Vec<Chunk>,
}

impl Outcome {
    pub fn stdout(&self) -> Vec<u8> {
        self.bytes(Some(OutputStream::Stdout))
    }

    pub fn stderr(&self) -> Vec<u8> {
        self.bytes(Some(OutputStream::Stderr))
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }

    /// Stdout and stderr together, in the order they came.
    pub fn bytes(&self, stream: Option<OutputStream>) -> Vec<u8> {
        self.chunks
            .iter()
            .filter(|chunk| stream.is_none_or(|only| chunk.stream == only))
            .flat_map(|chunk| chunk.bytes.iter().copied())
            .collect()
    }

    /// Exited 0 and nothing was cut.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert_eq!(self.report.exit_code, Some(0), "{self}");
        assert!(!self.report.timed_out && !self.report.oom_killed && !self.report.output_truncated, "{self}");
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clip = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes[..bytes.len().min(600)]).into_owned();
        write!(
            f,
            "{:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.report,
            clip(self.stdout()),
            clip(self.stderr())
        )
    }
}

impl Harness {
    /// A sandbox offering python on the test daemon with [`exec_args`]`(changes)`, once python
    /// can run on it. (Probing every runner would cost each test seconds of CPU.)
    pub async fn start(changes: &[&str]) -> Self {
        let mut config = DockerConfig::new(&exec_args(changes), unique_owner());
        config.languages = Language::find("python").into_iter().collect();
        let harness = Self::start_with(config);
        harness.wait_probed().await;
        let python = harness.sandbox.languages().into_iter().find(|language| language.id == "python");
        assert!(
            python.as_ref().is_some_and(|python| python.available),
            "the python runner is not available ({python:?}): build it with deploy/runners/build-offline.sh"
        );
        harness
    }

    /// A sandbox of `config`, not waited for.
    pub fn start_with(config: DockerConfig) -> Self {
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let sandbox = DockerSandbox::start(config.clone(), &tracker, cancel.clone());
        let cleanup = Cleanup { owner: config.owner.clone(), armed: true };
        Self { sandbox, owner: config.owner.clone(), config, tracker, cancel, cleanup }
    }

    pub async fn wait_probed(&self) {
        wait_until("the sandbox to connect and probe the languages", || async { self.sandbox.probed() })
            .await;
    }

    pub async fn run(&self, language: &str, code: &str, stdin: &str) -> Result<Outcome, SandboxError> {
        static JOB: AtomicU64 = AtomicU64::new(0);
        let spec = RunSpec {
            job: format!("job-{}", JOB.fetch_add(1, Ordering::Relaxed)),
            room: "room".to_owned(),
            language: language.to_owned(),
            code: code.to_owned(),
            stdin: stdin.to_owned(),
        };
        // A small channel: the sandbox must wait for room, never drop.
        let (sender, mut receiver) = mpsc::channel(4);
        let collect = async {
            let mut chunks = Vec::new();
            while let Some(chunk) = receiver.recv().await {
                chunks.push(chunk);
            }
            chunks
        };
        let (report, chunks) = tokio::join!(self.sandbox.run(spec, sender), collect);
        Ok(Outcome { report: report?, chunks })
    }

    /// Run a python program that must be run (whatever it then does).
    pub async fn python(&self, code: &str) -> Outcome {
        self.python_with_stdin(code, "").await
    }

    pub async fn python_with_stdin(&self, code: &str, stdin: &str) -> Outcome {
        match self.run("python", code, stdin).await {
            Ok(outcome) => outcome,
            Err(error) => panic!("the sandbox refused or failed a run: {error}"),
        }
    }

    /// The sandbox still serves: a trivial program runs and says so.
    pub async fn assert_still_serves(&self) {
        let outcome = self.python("print('still here')").await;
        outcome.assert_ok();
        assert_eq!(outcome.stdout_text(), "still here\n");
    }

    /// Stop the sandbox, wait for its removals, and check none of its containers is left.
    pub async fn finish(self) {
        let Self { sandbox, owner, tracker, cancel, mut cleanup, .. } = self;
        cancel.cancel();
        drop(sandbox);
        tracker.close();
        tokio::time::timeout(TIMEOUT, tracker.wait()).await.expect("the sandbox stopped in time");
        let left = containers_of(&owner).await;
        assert!(left.is_empty(), "containers of owner {owner} left behind: {left:?}");
        cleanup.armed = false;
    }
}

/// A client of the test daemon, for the checks the sandbox's API does not answer.
pub async fn docker() -> Docker {
    let host = docker_host();
    let path = host.strip_prefix("unix://").unwrap_or(&host);
    Docker::connect_with_unix(path, 60, bollard::API_DEFAULT_VERSION)
        .expect("a Docker client")
        .negotiate_version()
        .await
        .expect("the test daemon answers")
}

/// Ids of the containers labelled with `owner`.
pub async fn containers_of(owner: &str) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some([("label".to_owned(), vec![format!("codecrafter.owner={owner}")])].into()),
        ..Default::default()
    };
    docker()
        .await
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|container| container.id)
        .collect()
}

/// Wait until `check` holds, polling, for at most [`TIMEOUT`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
