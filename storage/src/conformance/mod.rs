//! The one conformance suite every backend must pass. Backends call [`store_suite`] (or, for a
//! snapshot-only store, [`snapshot_store_suite`]) from their own test targets with a fresh, empty
//! store. Each part panics with a message naming the property the store broke.
//!
//! The parts only assert what could really fail in a backend: unique indexes on create and on
//! replace, index tables kept right when a record moves, revision checks under concurrency,
//! ordering and pagination, idempotent writes, and sizes beyond a document limit.

mod executions;
mod logs;
mod messages;
mod sessions;
mod snapshots;
mod users;

use std::sync::Arc;

pub use executions::{
    execution_store_suite, executions_page_by_cursor, finished_executions_count_once_in_their_session,
};
pub use logs::log_store_suite;
pub use messages::{
    a_batch_of_messages_saves_like_one_by_one, message_store_suite, messages_count_in_their_session,
};
pub use sessions::session_store_suite;
pub use snapshots::{concat_merge, random_bytes, snapshot_store_suite, write};
pub use users::user_store_suite;

use crate::records::Store;

/// Every part of the suite, one after the other, on one store.
pub async fn store_suite(store: Arc<dyn Store>) {
    store.ping().await.expect("a fresh store answers ping");
    assert!(!store.backend_name().is_empty(), "a backend has a name");
    user_store_suite(store.clone()).await;
    session_store_suite(store.clone()).await;
    message_store_suite(store.clone()).await;
    messages_count_in_their_session(store.clone()).await;
    a_batch_of_messages_saves_like_one_by_one(store.clone()).await;
    execution_store_suite(store.clone()).await;
    executions_page_by_cursor(store.clone()).await;
    finished_executions_count_once_in_their_session(store.clone()).await;
    log_store_suite(store.clone()).await;
    snapshot_store_suite(store).await;
}

/// A time in the suites' records (Unix ms), so tests read as offsets from it.
const T0: crate::model::Millis = 1_700_000_000_000;

/// Records listed in order, compared by id first so a failure shows the order, not pages of fields.
trait Listed {
    fn id(&self) -> &str;
}

macro_rules! listed_by_id {
    ($($record:ty),*) => {$(
        impl Listed for $record {
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}
listed_by_id!(
    crate::model::Session,
    crate::model::ChatMessage,
    crate::model::ExecutionRecord,
    crate::model::LogEntry
);

/// The ids of `items`, in order.
fn ids<T: Listed>(items: &[T]) -> Vec<&str> {
    items.iter().map(Listed::id).collect()
}
