//! What a worker that runs programs tells the servers, so that `/ready`, the languages list and
//! the refusal of runs nobody could take hold in the broker mode too: a heartbeat in Redis (hash
//! `{prefix}exec:runners`, one field per runner, refreshed every [`BEAT_EVERY`], written by
//! [`run_beats`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exec::{LanguageInfo, Sandbox, SandboxStatus};

/// The Redis hash (after the key prefix) that holds one [`RunnerBeat`] per runner.
pub const RUNNERS_KEY: &str = "exec:runners";

/// How often a runner writes its beat.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);

/// A beat older than this is a runner gone.
pub const BEAT_STALE: Duration = Duration::from_secs(15);

/// One runner's state, as JSON in its field of [`RUNNERS_KEY`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunnerBeat {
    /// The runner's owner id (its containers' `codecrafter.owner` label).
    pub owner: String,
    /// When the beat was written (unix ms).
    pub at_ms: i64,
    pub status: SandboxStatus,
    pub languages: Vec<LanguageInfo>,
    /// Runs it takes at once.
    pub concurrency: usize,
}

/// First wait after a failed beat; doubles up to [`BEAT_EVERY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Writes this runner's beat every [`BEAT_EVERY`] until `cancel`, then removes it, so servers
/// stop counting on a runner that stopped (one that dies is dropped once its beat is
/// [`BEAT_STALE`]). Redis errors are logged and retried with backoff on a new connection; nothing
/// here ends the process.
pub async fn run_beats(
    client: redis::Client,
    key_prefix: String,
    owner: String,
    sandbox: Arc<dyn Sandbox>,
    concurrency: usize,
    cancel: CancellationToken,
) {
    let key = format!("{key_prefix}{RUNNERS_KEY}");
    let mut connection = None;
    let mut retry = FIRST_RETRY;
    loop {
        let beat = RunnerBeat {
            owner: owner.clone(),
            at_ms: storage::clock::now_millis(),
            status: sandbox.status(),
            languages: sandbox.languages(),
            concurrency,
        };
        let wait = match write_beat(&client, &mut connection, &key, &beat).await {
            Ok(()) => {
                retry = FIRST_RETRY;
                BEAT_EVERY
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?retry, "could not write the runner beat");
                connection = None;
                let wait = retry;
                retry = (retry * 2).min(BEAT_EVERY);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => break,
        }
    }
    if let Err(error) = remove_beat(&client, &mut connection, &key, &owner).await {
        tracing::warn!(%error, "could not remove the runner beat; it goes stale by itself");
    }
}

/// HSET the beat and PEXPIRE the hash in one atomic round trip (the field never lives without the
/// expiry), on `connection`, opened first if needed.
async fn write_beat(
    client: &redis::Client,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    key: &str,
    beat: &RunnerBeat,
) -> Result<(), String> {
    let json = serde_json::to_string(beat).map_err(|error| error.to_string())?;
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("HSET").arg(key).arg(&beat.owner).arg(json).ignore();
    pipe.cmd("PEXPIRE").arg(key).arg(BEAT_STALE.as_millis() as u64).ignore();
    let connection = connected(client, connection).await?;
    bounded(pipe.query_async::<()>(connection)).await
}

async fn remove_beat(
    client: &redis::Client,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    key: &str,
    owner: &str,
) -> Result<(), String> {
    let connection = connected(client, connection).await?;
    bounded(redis::cmd("HDEL").arg(key).arg(owner).query_async::<()>(connection)).await
}

async fn connected<'a>(
    client: &redis::Client,
    connection: &'a mut Option<redis::aio::MultiplexedConnection>,
) -> Result<&'a mut redis::aio::MultiplexedConnection, String> {
    if connection.is_none() {
        let opened = bounded(client.get_multiplexed_async_connection()).await?;
        *connection = Some(opened);
    }
    connection.as_mut().ok_or_else(|| "no connection".to_owned())
}

/// A Redis call that gives up after [`BEAT_EVERY`]: a hung connection must not stop the beats.
async fn bounded<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(BEAT_EVERY, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer from Redis within {BEAT_EVERY:?}")),
    }
}
