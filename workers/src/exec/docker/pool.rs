//! The warm pool: per available language, containers created, attached and started ahead, their
//! launcher blocked on the program's length line, so a run only writes its program and reads.
//! One use each: a taken container is never given back, and a replacement is made in the
//! background. Never more than the pool size per language; failed creations back off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use metrics::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;
use super::container::{LaunchError, Launched, launch};
use crate::exec::languages::{LANGUAGES, Language};

/// How often the filler looks for containers past their age when nothing else wakes it.
const TICK: Duration = Duration::from_secs(1);
/// The first retry after a failed creation; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub(super) struct Pool {
    size: usize,
    max_age: Duration,
    slots: [Mutex<Slot>; LANGUAGES.len()],
    /// Something changed: a container was taken or made, or the languages were probed.
    wake: Notify,
}

#[derive(Default)]
struct Slot {
    ready: VecDeque<Warm>,
    /// Creations under way (they count against the size).
    creating: usize,
    failures: u32,
    retry_at: Option<Instant>,
}

struct Warm {
    launched: Launched,
    born: Instant,
}

impl Warm {
    /// Young enough, and its launcher still waiting in silence. A container that died meanwhile
    /// (killed from outside, the daemon restarted) has its attach stream ended, and one that
    /// speaks before it has a program is not in the state a run expects: either is replaced.
    fn usable(&mut self, max_age: Duration) -> bool {
        self.born.elapsed() < max_age && self.launched.output.next().now_or_never().is_none()
    }
}

impl Pool {
    pub(super) fn new(size: usize, max_age: Duration) -> Self {
        Self { size, max_age, slots: std::array::from_fn(|_| Mutex::default()), wake: Notify::new() }
    }

    /// A warm container of `language`, if one is ready (the oldest, so none ages out unused).
    pub(super) fn take(&self, language: &Language, gauge: &Gauge) -> Option<Launched> {
        let mut slot = self.slot(language);
        let mut stale = Vec::new();
        let found = loop {
            let Some(mut warm) = slot.ready.pop_front() else { break None };
            if warm.usable(self.max_age) {
                break Some(warm.launched);
            }
            stale.push(warm);
        };
        gauge.set(slot.ready.len() as f64);
        drop(slot);
        // Dropping removes them; a replacement is made for what was taken.
        drop(stale);
        self.wake.notify_one();
        found
    }

    /// Warm containers ready, all languages together.
    pub(super) fn ready(&self) -> usize {
        self.slots.iter().map(|slot| lock(slot).ready.len()).sum()
    }

    /// Give up every warm container (they are removed): Docker went away, or we are stopping.
    pub(super) fn drain(&self, gauges: &[Gauge]) {
        for (slot, gauge) in self.slots.iter().zip(gauges) {
            let drained = std::mem::take(&mut lock(slot).ready);
            gauge.set(0.0);
            drop(drained);
        }
    }

    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    fn slot(&self, language: &Language) -> MutexGuard<'_, Slot> {
        lock(&self.slots[language.index()])
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keep every available language's pool full until the sandbox stops, then empty it.
pub(super) async fn fill(shared: Arc<Shared>) {
    if shared.pool.size == 0 {
        return;
    }
    loop {
        if let Some(docker) = shared.docker() {
            for language in &LANGUAGES {
                if shared.language_available(language) {
                    top_up(&shared, &docker, language);
                }
            }
        }
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            () = shared.pool.wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
    shared.pool.drain(&shared.metrics.pool_ready);
}

/// Replace the containers past their age or dead, and start the creations the pool lacks.
fn top_up(shared: &Arc<Shared>, docker: &Docker, language: &'static Language) {
    let pool = &shared.pool;
    let mut slot = pool.slot(language);
    let before = slot.ready.len();
    let mut stale = Vec::new();
    for mut warm in std::mem::take(&mut slot.ready) {
        if warm.usable(pool.max_age) {
            slot.ready.push_back(warm);
        } else {
            stale.push(warm);
        }
    }
    if slot.ready.len() != before {
        shared.metrics.pool_ready[language.index()].set(slot.ready.len() as f64);
    }
    let backing_off = slot.retry_at.is_some_and(|at| Instant::now() < at);
    let missing = if backing_off { 0 } else { pool.size.saturating_sub(slot.ready.len() + slot.creating) };
    slot.creating += missing;
    drop(slot);
    drop(stale);
    for _ in 0..missing {
        shared.keeper.spawn(create(shared.clone(), docker.clone(), language));
    }
}

/// Make one warm container and put it in the pool, if it is still wanted then.
async fn create(shared: Arc<Shared>, docker: Docker, language: &'static Language) {
    let launched = launch(&docker, &shared.keeper, shared.run_container(language)).await;
    let pool = &shared.pool;
    let mut slot = pool.slot(language);
    slot.creating -= 1;
    let mut unwanted = None;
    match launched {
        Ok(launched) => {
            slot.failures = 0;
            slot.retry_at = None;
            // Checked under the slot's lock, which `drain` takes after the cancellation: a
            // container made during the shutdown is never left in a pool nobody empties.
            let wanted = !shared.cancel.is_cancelled()
                && shared.docker().is_some()
                && shared.language_available(language)
                && slot.ready.len() < pool.size;
            if wanted {
                slot.ready.push_back(Warm { launched, born: Instant::now() });
            } else {
                unwanted = Some(launched);
            }
        }
        Err(error) => {
            slot.failures = slot.failures.saturating_add(1);
            let backoff = BACKOFF_FIRST.saturating_mul(1 << slot.failures.min(6)).min(BACKOFF_MAX);
            slot.retry_at = Some(Instant::now() + backoff);
            tracing::warn!(language = language.id, %error, ?backoff, "could not make a warm container");
            if matches!(error, LaunchError::NoImage) {
                shared.lose_language(language);
            }
        }
    }
    shared.metrics.pool_ready[language.index()].set(slot.ready.len() as f64);
    drop(slot);
    drop(unwanted);
    pool.wake();
}
