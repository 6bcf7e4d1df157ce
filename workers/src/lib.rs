//! CodeCrafter's job queue and the workers that drain it.
//!
//! Producer side: the server hands jobs to a [`JobQueue`] (`publish` waits for room rather than
//! dropping; `flush` waits until everything published is settled). Consumer side: a backend yields
//! [`Delivery`]s through a [`JobConsumer`]; the [`Dispatcher`] routes each to the [`JobHandler`] of
//! its [`JobKind`] and settles it: done → ack, transient failure → the same jobs again after a
//! backoff, poison → dead letter with a reason. The handlers are snapshot persistence
//! ([`snapshot::SnapshotHandler`]), chat persistence ([`chat::ChatHandler`]) and code execution
//! ([`exec::ExecutionHandler`], writing into rooms through a [`RoomOutput`]); the workers run as
//! their own process behind the same traits, on the RabbitMQ backend ([`amqp`]). In the embedded mode the
//! [`InProcessQueue`] runs the same dispatcher inside the server process.
//!
//! Every backend passes the one suite in `conformance` (feature `conformance`, tests only).

pub mod amqp;
pub mod chat;
#[cfg(feature = "conformance")]
pub mod conformance;
mod dead_letters;
mod delivery;
mod dispatcher;
pub mod exec;
mod handler;
mod in_process;
mod kind;
pub mod metrics;
pub mod outbox;
mod output;
pub mod process;
mod queue;
mod register;
pub mod snapshot;

pub use dead_letters::DeadLetters;
pub use delivery::{DeadLetter, Delivery, JobConsumer, Settle};
pub use dispatcher::{DispatchConfig, Dispatcher};
pub use handler::{Attempt, Handled, JobHandler, Transient};
pub use in_process::{InProcessQueue, InProcessQueueConfig};
pub use kind::{JobKind, JobPayload};
#[cfg(feature = "conformance")]
pub use output::RecordingOutput;
pub use output::{OutputError, RelayOutput, RoomOutput};
pub use queue::{JobQueue, QueueError, QueueStatus};
pub use register::{HandlerDeps, register_execution_handler, register_handlers, register_store_handlers};
