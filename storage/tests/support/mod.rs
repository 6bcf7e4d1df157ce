//! What the MongoDB test targets share: the test server's URL (or a failure saying how to start
//! it) and a fresh database per test, dropped afterwards even when the test fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use storage::{MongoConfig, MongoStore};

/// The MongoDB-wire test server. Missing is a failure, never a skip: the tests of the MongoDB
/// backend must run wherever the test command runs.
pub fn mongo_url() -> String {
    std::env::var("CODECRAFTER_TEST_MONGO_URL").unwrap_or_else(|_| {
        panic!(
            "CODECRAFTER_TEST_MONGO_URL is not set. Run the tests with scripts/test.sh, which starts the \
             MongoDB-wire test server, or by hand: source scripts/services.sh && services_start && \
             cargo nextest run -p storage; services_stop"
        )
    })
}

/// A database name no other test uses (MongoDB allows 64 characters).
fn fresh_database_name(purpose: &str) -> String {
    format!("cc_test_{purpose}_{}", storage::model::new_id())
}

/// Connects a store to `database` with snapshot chunks of `chunk_bytes`.
pub async fn connect(database: &str, chunk_bytes: usize) -> MongoStore {
    let config = MongoConfig { snapshot_chunk_bytes: chunk_bytes, ..MongoConfig::new(mongo_url(), database) };
    MongoStore::connect(config).await.expect("connecting to the test MongoDB")
}

/// Runs `test` with the name of a fresh database, then drops that database, whether the test
/// passed or panicked (the panic goes on afterwards).
pub async fn with_fresh_database<F, Fut>(purpose: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = fresh_database_name(purpose);
    let outcome = AssertUnwindSafe(test(name.clone())).catch_unwind().await;
    let client =
        mongodb::Client::with_uri_str(mongo_url()).await.expect("a client to drop the test database");
    client.database(&name).drop().await.expect("dropping the test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
