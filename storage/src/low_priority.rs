//! One OS thread that runs background work at a lower CPU priority than the threads serving
//! clients. On a machine with few cores, a snapshot merge scheduled at normal priority takes a whole
//! time slice (milliseconds) from whichever thread is fanning an update out; at nice 10 the kernel
//! hands the core back to that thread as soon as it is runnable. Measured on 2 cores, 100 rooms
//! persisting every second: fan-out p99 2.1 ms at normal priority, 0.62 ms here (BENCHMARKS.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::{Error, Result};

/// The nice value the thread asks for (Linux: per thread). 10 yields to normal work without
/// starving: the thread still gets its share when the machine is busy.
const NICE: i32 = 10;

type Job<S> = Box<dyn FnOnce(&S) + Send>;

/// Runs jobs one at a time, in order, on a dedicated low-priority thread owning `S`. Dropping it
/// waits for the jobs already queued and for the thread to end, so `S` (an open database file) is
/// released by then.
pub struct LowPriorityThread<S> {
    jobs: Option<mpsc::Sender<Job<S>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> Drop for LowPriorityThread<S> {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<S: Send + 'static> LowPriorityThread<S> {
    /// Starts the thread; it ends when the last handle is dropped and the queue is empty.
    pub fn spawn(name: &str, state: S) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job<S>>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Err(error) = lower_own_priority() {
                    tracing::warn!(%error, "could not lower the storage writer's priority");
                }
                for job in queue {
                    // A panicking job fails only its own caller (its reply is dropped); the
                    // thread lives on for the next.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&state)));
                }
            })
            .map_err(|e| Error::Task(format!("starting {name}: {e}")))?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Runs `work` on the thread and waits for its result without blocking the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&S) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = reply.send(work(state));
        });
        let stopped = || Error::Task("the storage writer thread stopped or the job panicked".into());
        self.jobs.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

fn lower_own_priority() -> std::io::Result<()> {
    // On Linux `setpriority(PRIO_PROCESS, tid)` sets the nice value of that one thread.
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_lowered_and_survives_a_panicking_job() {
        let thread =
            LowPriorityThread::spawn("test-writer", std::sync::Mutex::new(Vec::new())).expect("spawn");
        for i in 0..5 {
            thread
                .run(move |log| {
                    log.lock().expect("lock").push(i);
                    Ok(())
                })
                .await
                .expect("job");
        }
        let panicked = thread.run(|_| -> Result<()> { panic!("a bad job") }).await;
        assert!(matches!(panicked, Err(Error::Task(_))), "{panicked:?}");
        let (log, nice) = thread
            .run(|log| {
                let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                    .map_err(|e| Error::Task(e.to_string()))?;
                Ok((log.lock().expect("lock").clone(), nice))
            })
            .await
            .expect("the thread outlives a panicking job");
        assert_eq!(log, vec![0, 1, 2, 3, 4]);
        assert_eq!(nice, NICE);
    }
}
