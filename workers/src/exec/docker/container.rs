//! One runner container from creation to removal: created, attached (before it starts, so no
//! output is missed), started; removed when its [`Launched`] is dropped, whatever happened before.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{AttachContainerOptions, CreateContainerOptions, RemoveContainerOptions};
use futures_util::Stream;
use tokio::io::AsyncWrite;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

/// The program's stdin: the attach stream's input.
pub(super) type Input = Pin<Box<dyn AsyncWrite + Send>>;
/// The program's stdout and stderr, multiplexed by Docker, in the order they were written.
pub(super) type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// A container created, attached and started; the launcher in it waits for the program.
pub(super) struct Launched {
    pub id: String,
    pub input: Input,
    pub output: Output,
    /// Removes the container when the run is over, completed, failed or dropped half-way.
    _removal: Removal,
}

/// Why a container could not be launched.
#[derive(Debug, thiserror::Error)]
pub(super) enum LaunchError {
    /// The runner image is not installed (we never pull: there is no registry).
    #[error("no such image")]
    NoImage,
    #[error("{0}")]
    Docker(#[from] DockerError),
}

/// Where the removals run and which containers are ours now: shared by the sandbox and every
/// container it made, so a sweep never removes a container a run or the pool still holds.
#[derive(Clone)]
pub(super) struct Keeper {
    tracker: TaskTracker,
    runtime: Handle,
    live: Arc<Mutex<HashSet<String>>>,
}

impl Keeper {
    pub(super) fn new(tracker: TaskTracker, runtime: Handle) -> Self {
        Self { tracker, runtime, live: Arc::default() }
    }

    /// Run `task` in the background; the sandbox's shutdown waits for it.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn_on(task, &self.runtime);
    }

    /// Whether a run or the pool holds this container now.
    pub(super) fn holds(&self, id: &str) -> bool {
        self.live().contains(id)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Create, attach and start a container of `body`.
pub(super) async fn launch(
    docker: &Docker,
    keeper: &Keeper,
    body: ContainerCreateBody,
) -> Result<Launched, LaunchError> {
    let created =
        docker.create_container(None::<CreateContainerOptions>, body).await.map_err(|error| match error {
            DockerError::DockerResponseServerError { status_code: 404, .. } => LaunchError::NoImage,
            other => LaunchError::Docker(other),
        })?;
    keeper.live().insert(created.id.clone());
    // From here on the container is removed whatever fails next.
    let removal = Removal { docker: docker.clone(), id: created.id.clone(), keeper: keeper.clone() };
    let attach = AttachContainerOptions {
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        // Attached before the start, so the live stream has everything: the log driver is
        // `none`, which could not replay anything anyway.
        logs: false,
        detach_keys: None,
    };
    let attached = docker.attach_container(&created.id, Some(attach)).await?;
    docker.start_container(&created.id, None).await?;
    Ok(Launched { id: created.id, input: attached.input, output: attached.output, _removal: removal })
}

/// Removes its container when dropped, on a task of its own: a cancelled run still cleans up, and
/// the caller never waits for it.
struct Removal {
    docker: Docker,
    id: String,
    keeper: Keeper,
}

impl Drop for Removal {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let keeper = self.keeper.clone();
        self.keeper.spawn(async move {
            let options = RemoveContainerOptions { force: true, v: true, link: false };
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
                // Left for the sweeper: it is labelled with our owner and an expiry.
                Err(error) => tracing::warn!(container = %id, %error, "could not remove a runner container"),
            }
            keeper.live().remove(&id);
        });
    }
}
