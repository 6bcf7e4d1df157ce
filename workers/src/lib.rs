//! CodeCrafter's job queue and the workers that drain it.
//!
//! The server hands jobs to a [`JobQueue`]; workers consume them and do the slow, durable part.
//! Today: snapshot persistence (CRDT-merge a room's state into the store). Chat persistence and
//! code execution in Docker, and a RabbitMQ backend with `workers` as its own process, come later
//! behind the same trait. In the embedded mode the [`InProcessQueue`] runs the same worker code
//! inside the server process.

mod in_process;
mod queue;
pub mod snapshot;

pub use in_process::{InProcessQueue, InProcessQueueConfig};
pub use queue::{JobQueue, QueueError};
