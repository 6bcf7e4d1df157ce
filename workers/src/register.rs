//! Which handler each job kind gets in a worker: one function, so the worker binary (one dispatcher
//! per work queue) and any other host of a dispatcher register the same set. A new job kind's
//! handler is one more line here.

use std::sync::Arc;

use storage::Store;

use crate::chat::ChatHandler;
use crate::dispatcher::Dispatcher;
use crate::exec::ExecutionHandler;
use crate::output::RoomOutput;
use crate::snapshot::SnapshotHandler;

/// What the handlers need from the process that runs them.
#[derive(Clone)]
pub struct HandlerDeps {
    pub store: Arc<dyn Store>,
    /// How a handler reaches a room's clients (a worker process: the relay over Redis).
    pub output: Arc<dyn RoomOutput>,
    /// The execution handler, built once by the process: every dispatcher it is registered with
    /// (one per work queue, again after each reconnect) shares its concurrency slots. `None` when
    /// this process runs no programs: execution jobs are then left to the processes that do.
    pub execution: Option<ExecutionHandler>,
}

/// `dispatcher` with every job kind's handler registered (execution's if there is one).
pub fn register_handlers(dispatcher: Dispatcher, deps: &HandlerDeps) -> Dispatcher {
    let dispatcher = register_store_handlers(dispatcher, &deps.store);
    match &deps.execution {
        Some(handler) => register_execution_handler(dispatcher, handler),
        None => dispatcher,
    }
}

/// The handlers that only write the store (snapshots, chat): what the server's in-process queue
/// runs too, so both hosts register the same set from here.
pub fn register_store_handlers(dispatcher: Dispatcher, store: &Arc<dyn Store>) -> Dispatcher {
    dispatcher
        .register(SnapshotHandler::new(store.clone()))
        .register(ChatHandler::new(store.clone() as Arc<dyn storage::MessageStore>))
}

/// `dispatcher` with `handler` for execution jobs: the server's in-process queue calls this with
/// its own handler (its sandbox, its room output), the worker through [`register_handlers`].
pub fn register_execution_handler(dispatcher: Dispatcher, handler: &ExecutionHandler) -> Dispatcher {
    dispatcher.register(handler.clone())
}
