//! The [`Sandbox`] trait: run one program, stream its output, report how it ended.

use async_trait::async_trait;
use bytes::Bytes;
use protocol::run::OutputStream;
use tokio::sync::mpsc;

/// One program to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The job id (for the logs: a warm container was labelled before its job was known).
    pub job: String,
    /// The room (session) the run belongs to.
    pub room: String,
    /// A language id from [`Sandbox::languages`].
    pub language: String,
    pub code: String,
    pub stdin: String,
}

/// Raw output as the program wrote it, in order; not yet coalesced nor valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: OutputStream,
    pub bytes: Bytes,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The program's exit status; `None` if it could not be read.
    pub exit_code: Option<i64>,
    /// From the program's start to its end.
    pub duration_ms: u64,
    /// Killed at the wall-clock limit.
    pub timed_out: bool,
    /// Killed by the kernel for passing the memory limit.
    pub oom_killed: bool,
    /// Killed for passing the output cap; the output sent stops at the cap.
    pub output_truncated: bool,
    /// Whether the container came from the warm pool.
    pub warm: bool,
}

/// Why a program was not run (or its run could not be completed by the sandbox).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// No container runtime is reachable: every run is refused until it is.
    #[error("execution unavailable: {0}")]
    Unavailable(String),
    /// The language is not in the table.
    #[error("unknown language {0:?}")]
    UnknownLanguage(String),
    /// The language is known but its runner image is not installed.
    #[error("language {0:?} is not installed on this runner")]
    LanguageUnavailable(String),
    /// The runtime failed mid-run (not the program's fault).
    #[error("sandbox failure: {0}")]
    Failed(String),
}

/// A language as `GET /api/execute/languages` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LanguageInfo {
    pub id: String,
    pub name: String,
    /// The version its runner reports, once probed; `None` while unknown or not installed.
    pub version: Option<String>,
    /// Whether a run in this language can start now (its image is installed and answered).
    pub available: bool,
}

/// The sandbox's state, for `/ready`, metrics and the languages list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxStatus {
    /// Whether the container runtime answers.
    pub available: bool,
    /// Why not, when it does not.
    pub reason: Option<String>,
    /// Runs in progress.
    pub running: usize,
    /// Warm containers ready, all languages together.
    pub pool_ready: usize,
}

#[async_trait]
pub trait Sandbox: Send + Sync + 'static {
    /// Every language of the table, each with whether it can run here now.
    fn languages(&self) -> Vec<LanguageInfo>;

    fn status(&self) -> SandboxStatus;

    /// Run `spec` to its end: feed the code and stdin, send the output to `output` in the order
    /// it was written, as it is produced (a full channel slows the reading, never drops), enforce
    /// every limit, and remove the container whatever happens. A program that fails is a report,
    /// not an error: errors are for runs the sandbox could not carry out.
    async fn run(&self, spec: RunSpec, output: mpsc::Sender<Chunk>) -> Result<RunReport, SandboxError>;
}
