//! Who can run programs, as the server sees it: [`Runners`] answers the languages list, `/ready`,
//! and the check that refuses a run nobody could take at once. In the embedded mode that is this
//! process's sandbox; with RabbitMQ, the workers' heartbeats in Redis (`workers::exec::beat`).
//! [`Backlog`] tells how many runs wait in the queue, for `--exec-queue-max`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use workers::exec::beat::{BEAT_STALE, RUNNERS_KEY, RunnerBeat};
use workers::exec::{LanguageInfo, Sandbox};

use super::SubmitRefusal;
use crate::cache::Cache;

/// How execution is doing, for `/ready`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunnersStatus {
    /// `in_process` (this server runs programs) or `workers`.
    pub backend: &'static str,
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Runs going on (in-process), or runners seen (workers).
    pub running: usize,
    pub runners: usize,
}

#[async_trait]
pub trait Runners: Send + Sync + 'static {
    /// Every language of the table, `available` when some runner can run it now.
    async fn languages(&self) -> Vec<LanguageInfo>;

    async fn status(&self) -> RunnersStatus;

    /// Refuses at once a run in `language` nobody can take.
    async fn check(&self, language: &str) -> Result<(), SubmitRefusal> {
        let status = self.status().await;
        if !status.available {
            return Err(SubmitRefusal::Unavailable(status.reason.unwrap_or_else(|| "no runner".to_owned())));
        }
        match self.languages().await.into_iter().find(|known| known.id == language) {
            Some(known) if known.available => Ok(()),
            Some(_) => Err(SubmitRefusal::Unavailable(format!("{language} is not installed on any runner"))),
            None => Err(SubmitRefusal::UnknownLanguage(format!("unknown language {language:?}"))),
        }
    }
}

/// The embedded mode: this process's sandbox.
pub struct LocalRunners(pub Arc<dyn Sandbox>);

#[async_trait]
impl Runners for LocalRunners {
    async fn languages(&self) -> Vec<LanguageInfo> {
        self.0.languages()
    }

    async fn status(&self) -> RunnersStatus {
        let status = self.0.status();
        RunnersStatus {
            backend: "in_process",
            available: status.available,
            reason: status.reason,
            running: status.running,
            runners: 1,
        }
    }
}

/// How long a read of the heartbeats is reused.
const BEATS_REUSED_FOR: Duration = Duration::from_secs(1);

/// With RabbitMQ: the runners are the `codecrafter-worker` processes whose heartbeat in Redis is
/// fresh. Without Redis (a memory cache) no heartbeat can be seen; the server then cannot know and
/// takes runs (the workers' own limits hold), and `/ready` says so.
pub struct WorkerRunners {
    cache: Arc<dyn Cache>,
    visible: bool,
    read: Mutex<Option<(Instant, Vec<RunnerBeat>)>>,
}

impl WorkerRunners {
    pub fn new(cache: Arc<dyn Cache>, visible: bool) -> Self {
        Self { cache, visible, read: Mutex::new(None) }
    }

    async fn beats(&self) -> Result<Vec<RunnerBeat>, String> {
        if let Some((at, beats)) = &*self.read.lock()
            && at.elapsed() < BEATS_REUSED_FOR
        {
            return Ok(beats.clone());
        }
        let entries = self.cache.map_entries(RUNNERS_KEY).await.map_err(|error| error.to_string())?;
        let stale_before = i64::try_from(storage::clock::unix_ms())
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(BEAT_STALE.as_millis()).unwrap_or(i64::MAX));
        let beats: Vec<RunnerBeat> = entries
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_slice::<RunnerBeat>(&json).ok())
            .filter(|beat| beat.at_ms >= stale_before)
            .collect();
        *self.read.lock() = Some((Instant::now(), beats.clone()));
        Ok(beats)
    }
}

fn table(available: bool) -> Vec<LanguageInfo> {
    workers::exec::LANGUAGES
        .iter()
        .map(|language| LanguageInfo {
            id: language.id.to_owned(),
            name: language.name.to_owned(),
            version: None,
            available,
        })
        .collect()
}

#[async_trait]
impl Runners for WorkerRunners {
    async fn languages(&self) -> Vec<LanguageInfo> {
        if !self.visible {
            return table(true);
        }
        let beats = self.beats().await.unwrap_or_default();
        let mut languages = table(false);
        for language in &mut languages {
            let offered = beats
                .iter()
                .filter(|beat| beat.status.available)
                .flat_map(|beat| beat.languages.iter())
                .find(|offered| offered.id == language.id && offered.available);
            if let Some(offered) = offered {
                language.available = true;
                language.version = offered.version.clone();
            }
        }
        languages
    }

    async fn status(&self) -> RunnersStatus {
        if !self.visible {
            return RunnersStatus {
                backend: "workers",
                available: true,
                reason: Some("runners are not visible without REDIS_URL; runs are queued blind".to_owned()),
                running: 0,
                runners: 0,
            };
        }
        match self.beats().await {
            Ok(beats) => {
                let live: Vec<_> = beats.iter().filter(|beat| beat.status.available).collect();
                RunnersStatus {
                    backend: "workers",
                    available: !live.is_empty(),
                    reason: live.is_empty().then(|| match beats.first() {
                        Some(beat) => {
                            beat.status.reason.clone().unwrap_or_else(|| "no runner is available".to_owned())
                        }
                        None => "no codecrafter-worker has reported in the last 15 s".to_owned(),
                    }),
                    running: live.iter().map(|beat| beat.status.running).sum(),
                    runners: live.len(),
                }
            }
            Err(error) => RunnersStatus {
                backend: "workers",
                available: false,
                reason: Some(format!("runner heartbeats unreadable: {error}")),
                running: 0,
                runners: 0,
            },
        }
    }
}

/// Runs waiting to start, for `--exec-queue-max`; `None` when it cannot be told (no limit then).
pub trait Backlog: Send + Sync + 'static {
    fn waiting(&self) -> Option<u64>;
}

/// The in-process execution queue: its jobs published and not yet started.
impl Backlog for workers::InProcessQueue {
    fn waiting(&self) -> Option<u64> {
        Some(self.pending())
    }
}

/// The broker's `execution_jobs` message count, read every so often by a poller.
pub struct PolledBacklog(pub Arc<AtomicU64>);

impl Backlog for PolledBacklog {
    fn waiting(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            u64::MAX => None,
            waiting => Some(waiting),
        }
    }
}
