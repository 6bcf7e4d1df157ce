//! The dispatcher: takes deliveries from a [`JobConsumer`], hands each to the handler of its kind,
//! and settles it from the outcome: done → ack; transient failure → the same jobs again after a
//! backoff; poison, no handler for the kind, or a handler panic → dead letter with the reason.
//!
//! The in-process queue and a separate worker process run this same code, with handlers
//! registered the same way.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Delivery, JobConsumer};
use crate::handler::{Attempt, Handled, JobHandler, Transient};
use crate::kind::{JobKind, JobPayload};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Jobs taken from the queue at once; a handler gets at most this many (the snapshot handler
    /// writes them in one store transaction).
    pub batch: usize,
    /// First wait before handing a transiently failed batch again; doubles each time.
    pub retry_delay: Duration,
    /// The longest wait between two attempts.
    pub max_retry_delay: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self { batch: 64, retry_delay: Duration::from_millis(200), max_retry_delay: Duration::from_secs(30) }
    }
}

/// Routes each job to the handler registered for its kind.
pub struct Dispatcher {
    handlers: [Option<Box<dyn Route>>; JobKind::COUNT],
    config: DispatchConfig,
}

impl Dispatcher {
    /// A dispatcher with no handlers: every job is dead-lettered until its kind gets one.
    pub fn new(config: DispatchConfig) -> Self {
        Self { handlers: std::array::from_fn(|_| None), config }
    }

    /// Hand `H::Job`'s kind to `handler` (replacing an earlier handler of that kind).
    pub fn register<H: JobHandler>(mut self, handler: H) -> Self {
        self.handlers[H::Job::KIND as usize] = Some(Box::new(Typed(handler)));
        self
    }

    /// Take and handle jobs until `cancel`; then take no new ones but handle what the consumer
    /// still holds (retrying without giving up: nothing is dropped at shutdown), and return. Also
    /// returns if the queue closes.
    pub async fn run(self, mut consumer: impl JobConsumer, cancel: CancellationToken) {
        loop {
            let batch = tokio::select! {
                // Requeued jobs are ready at once: without `biased` a stop could keep losing to them.
                biased;
                () = cancel.cancelled() => break,
                batch = consumer.next_batch(self.config.batch.max(1)) => batch,
            };
            let Some(batch) = batch else { return };
            self.dispatch(batch, &cancel).await;
        }
        consumer.close();
        let never = CancellationToken::new();
        while let Some(batch) = consumer.next_batch(self.config.batch.max(1)).await {
            self.dispatch(batch, &never).await;
        }
    }

    /// Handle one batch as runs of one kind, in order, so a room's jobs keep their order even
    /// across kinds. If `cancel` fires while a run waits to be retried, that run and everything
    /// after it are requeued.
    async fn dispatch(&self, batch: Vec<Delivery>, cancel: &CancellationToken) {
        let mut rest = batch.into_iter().peekable();
        while let Some(first) = rest.next() {
            let kind = JobKind::of(first.job());
            let mut run = vec![first];
            while let Some(next) = rest.next_if(|d| JobKind::of(d.job()) == kind) {
                run.push(next);
            }
            let Some(handler) = &self.handlers[kind as usize] else {
                let reason = format!("no handler for {} jobs", kind.as_str());
                for delivery in run {
                    dead_letter(delivery, reason.clone()).await;
                }
                continue;
            };
            if let Some(unhandled) = self.handle_run(&**handler, kind, run, cancel).await {
                tracing::warn!(jobs = unhandled.len() + rest.len(), "stopping during retries: jobs requeued");
                for delivery in unhandled.into_iter().chain(rest) {
                    let kind = JobKind::of(delivery.job());
                    settle("requeue", kind, delivery.requeue().await);
                }
                return;
            }
        }
    }

    /// Hand `run` to its handler until it is handled, and settle it. Returns the run unsettled if
    /// `cancel` fires while it waits for a retry.
    async fn handle_run(
        &self,
        handler: &dyn Route,
        kind: JobKind,
        run: Vec<Delivery>,
        cancel: &CancellationToken,
    ) -> Option<Vec<Delivery>> {
        let mut delay = self.config.retry_delay;
        let mut retries = 0u32;
        loop {
            let started = std::time::Instant::now();
            let outcome = AssertUnwindSafe(handler.handle(&run, retries)).catch_unwind().await;
            let metrics = Metrics::get();
            metrics.handler_seconds(kind).record(started.elapsed().as_secs_f64());
            let error = match outcome {
                Ok(Ok(handled)) => {
                    for (index, delivery) in run.into_iter().enumerate() {
                        match handled.poison_reason(index) {
                            None => {
                                metrics.handled(kind).increment(1);
                                settle("ack", kind, delivery.ack().await);
                            }
                            Some(reason) => dead_letter(delivery, reason.to_owned()).await,
                        }
                    }
                    return None;
                }
                Ok(Err(error)) => error,
                Err(panic) => {
                    let reason = format!("handler panicked: {}", panic_message(&*panic));
                    for delivery in run {
                        dead_letter(delivery, reason.clone()).await;
                    }
                    return None;
                }
            };
            metrics.failed(kind).increment(run.len() as u64);
            tracing::warn!(%error, kind = kind.as_str(), jobs = run.len(), retry_in = ?delay, "job batch failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Some(run),
            }
            delay = delay.saturating_mul(2).min(self.config.max_retry_delay);
            retries = retries.saturating_add(1);
        }
    }
}

/// Dead-letter `delivery`: logged and counted here, whatever the backend does with it.
async fn dead_letter(delivery: Delivery, reason: String) {
    let kind = JobKind::of(delivery.job());
    tracing::error!(kind = kind.as_str(), %reason, delivery_count = delivery.delivery_count(), "job dead-lettered");
    Metrics::get().dead_lettered(kind).increment(1);
    settle("dead-letter", kind, delivery.dead_letter(reason).await);
}

/// A settle that failed (a broker connection lost) is redelivered by the broker: worth a warning.
fn settle(what: &'static str, kind: JobKind, result: Result<(), crate::QueueError>) {
    if let Err(error) = result {
        tracing::warn!(%error, kind = kind.as_str(), "could not {what} a job; the queue will deliver it again");
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("?")
}

/// A handler behind its kind: finds each delivery's payload and counts the dispatcher's retries.
#[async_trait]
trait Route: Send + Sync {
    async fn handle(&self, run: &[Delivery], retries: u32) -> Result<Handled, Transient>;
}

struct Typed<H>(H);

#[async_trait]
impl<H: JobHandler> Route for Typed<H> {
    async fn handle(&self, run: &[Delivery], retries: u32) -> Result<Handled, Transient> {
        let attempts: Vec<Attempt<'_, H::Job>> = run
            .iter()
            .filter_map(|delivery| {
                let job = H::Job::from_job(delivery.job())?;
                Some(Attempt { job, delivery_count: delivery.delivery_count().saturating_add(retries) })
            })
            .collect();
        if attempts.len() != run.len() {
            // `JobKind::of` and the payload impls disagree: a bug, but not worth a panic.
            let mut handled = Handled::all();
            for index in 0..run.len() {
                handled.poison(index, format!("not a {} job", H::Job::KIND.as_str()));
            }
            return Ok(handled);
        }
        self.0.handle(&attempts).await
    }
}
