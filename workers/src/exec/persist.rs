//! The run task's store calls, each retried with backoff: a run has happened (or is about to) and
//! cannot be handed back to the queue, so a blip of the store is waited out here, a few times,
//! then given up with a log and a metric rather than repeating the program.

use std::future::Future;

use storage::model::ExecutionRecord;

use super::handler::Shared;

/// `op` until it succeeds or the configured attempts are spent; `what` names it in the logs.
async fn retrying<T, Fut>(shared: &Shared, what: &str, job: &str, mut op: impl FnMut() -> Fut) -> Option<T>
where
    Fut: Future<Output = storage::Result<T>>,
{
    let attempts = shared.config.store_attempts.max(1);
    let mut delay = shared.config.store_retry_delay;
    for attempt in 1..=attempts {
        match op().await {
            Ok(value) => return Some(value),
            Err(error) if attempt < attempts => {
                tracing::warn!(%error, job, attempt, retry_in = ?delay, "execution store: {what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            Err(error) => {
                tracing::error!(%error, job, attempts, "execution store: {what} failed; giving up");
                shared.metrics.store_gave_up.increment(1);
            }
        }
    }
    None
}

/// The stored record of `job`: `Some(None)` if there is none, `None` if the store did not answer.
pub(super) async fn load(shared: &Shared, job: &str) -> Option<Option<ExecutionRecord>> {
    retrying(shared, "reading the record", job, || shared.store.execution(job)).await
}

/// Saves a record that is not finished (`running`); false if the store did not take it.
pub(super) async fn save(shared: &Shared, record: &ExecutionRecord) -> bool {
    retrying(shared, "saving the record", &record.id, || shared.store.save_execution(record)).await.is_some()
}

/// Saves a finished record, counting it in its session once.
pub(super) async fn finish(shared: &Shared, record: &ExecutionRecord) {
    retrying(shared, "saving the result", &record.id, || shared.store.finish_execution(record)).await;
}
