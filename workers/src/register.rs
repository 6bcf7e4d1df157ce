//! Which handler each job kind gets in a worker: one function, so the worker binary (one dispatcher
//! per work queue) and any other host of a dispatcher register the same set. A new job kind's
//! handler is one more line here.

use std::sync::Arc;

use storage::Store;

use crate::chat::ChatHandler;
use crate::dispatcher::Dispatcher;
use crate::output::RoomOutput;
use crate::snapshot::SnapshotHandler;

/// What the handlers need from the process that runs them.
#[derive(Clone)]
pub struct HandlerDeps {
    pub store: Arc<dyn Store>,
    /// How a handler reaches a room's clients (a worker process: the relay over Redis).
    pub output: Arc<dyn RoomOutput>,
}

/// `dispatcher` with every job kind's handler registered.
pub fn register_handlers(dispatcher: Dispatcher, deps: &HandlerDeps) -> Dispatcher {
    // The output is for the handlers that talk to rooms (execution), coming next.
    let _ = &deps.output;
    register_store_handlers(dispatcher, &deps.store)
}

/// The handlers that only write the store (snapshots, chat): what the server's in-process queue
/// runs too, so both hosts register the same set from here.
pub fn register_store_handlers(dispatcher: Dispatcher, store: &Arc<dyn Store>) -> Dispatcher {
    dispatcher
        .register(SnapshotHandler::new(store.clone()))
        .register(ChatHandler::new(store.clone() as Arc<dyn storage::MessageStore>))
}
