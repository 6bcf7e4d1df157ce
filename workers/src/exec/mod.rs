//! Code execution: a job from `execution_jobs` runs in a [`Sandbox`] (Docker in production, see
//! `docker/`), its output is coalesced into `run_output` chunks (`coalesce.rs`) and sent into the
//! room through the [`RoomOutput`](crate::RoomOutput) seam as it is produced; the result is stored
//! as an execution record (`handler.rs`).
//!
//! Trust: the program is hostile. It sees only its container (no network, no capabilities, a
//! read-only root, tmpfs scratch space); the code and stdin go in over the attach stream and the
//! output comes back over it, so the worker never touches a path inside the container (a program
//! that plants symlinks has nothing to redirect).

mod args;
pub mod beat;
mod coalesce;
pub mod docker;
mod handler;
pub mod languages;
mod outcome;
mod persist;
mod run;
mod sandbox;

pub use args::ExecArgs;
pub use coalesce::{CoalesceConfig, Coalescer};
pub use docker::{DockerConfig, DockerSandbox};
pub use handler::{ExecutionConfig, ExecutionHandler};
pub use languages::{LANGUAGES, Language};
pub use run::queued_record;
pub use sandbox::{Chunk, LanguageInfo, RunReport, RunSpec, Sandbox, SandboxError, SandboxStatus};
