//! The link to the Docker daemon: connect (and keep retrying while it is away), sweep, probe the
//! languages, then ping; a failed ping drops the link and starts over.

use std::sync::Arc;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::StreamExt;
use tokio::time::{Instant, timeout};

use super::Shared;
use super::sweep::sweep;
use crate::exec::languages::{LANGUAGES, Language};

/// Longest a request to the daemon may take before its response starts (streams such as attach
/// and wait send their headers at once, then last as long as the container).
const REQUEST_TIMEOUT_S: u64 = 60;
/// A daemon that answers no ping in this long is gone, as far as runs are concerned.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Languages not available are asked again this often: their image may have been installed since.
const REPROBE_EVERY: Duration = Duration::from_secs(30);
/// Version probes at once: each starts a container, and a small runner has few cores.
const PROBES_AT_ONCE: usize = 2;

/// Keep the link up until the sandbox stops.
pub(super) async fn maintain(shared: Arc<Shared>) {
    let host = shared.config.exec.docker_host.clone();
    if shared.config.exec.disabled() {
        shared.link_down("execution is turned off (--docker-host none)".to_owned());
        return;
    }
    loop {
        let docker = match connect(&host).await {
            Ok(docker) => docker,
            Err(reason) => {
                shared.link_down(reason);
                if pause(&shared, shared.config.retry_every).await {
                    continue;
                }
                return;
            }
        };
        match sweep(&docker, &shared.config.owner, &shared.keeper).await {
            Ok(removed) => shared.swept(removed),
            Err(error) => tracing::warn!(%error, "sweeper could not list runner containers"),
        }
        shared.link_up(docker.clone());
        tracing::info!(%host, "Docker connected: execution available");
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = probe(&shared, &docker, shared.config.languages.clone()) => {}
        }
        shared.probed.store(true, std::sync::atomic::Ordering::Release);
        let mut probed_at = Instant::now();
        loop {
            tokio::select! {
                () = shared.cancel.cancelled() => return,
                () = tokio::time::sleep(shared.config.retry_every) => {}
                () = shared.link_suspect.notified() => {}
            }
            if let Err(reason) = ping(&docker).await {
                tracing::warn!(%host, %reason, "Docker lost: execution unavailable until it is back");
                shared.link_down(format!("Docker at {host} stopped answering: {reason}"));
                shared.pool.drain(&shared.metrics.pool_ready);
                break;
            }
            if probed_at.elapsed() >= REPROBE_EVERY {
                let offered = shared.config.languages.iter().copied();
                let missing = offered.filter(|language| !shared.language_available(language)).collect();
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = probe(&shared, &docker, missing) => {}
                }
                probed_at = Instant::now();
            }
        }
    }
}

/// Wait `delay`, unless the sandbox stops first (then `false`).
async fn pause(shared: &Shared, delay: Duration) -> bool {
    tokio::select! {
        () = shared.cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// A client for `host` (`unix:///path` or `tcp://host:port`), speaking the daemon's API version.
async fn connect(host: &str) -> Result<Docker, String> {
    let client = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION)
    } else {
        return Err(format!("unsupported Docker host {host:?}: use unix:///path, tcp://host:port or none"));
    };
    let unreachable_for = |error: &dyn std::fmt::Display| format!("Docker at {host} is unreachable: {error}");
    let client = client.map_err(|error| unreachable_for(&error))?;
    // bollard speaks a newer API than a Debian dockerd (1.41) knows: agree on the daemon's.
    match timeout(PING_TIMEOUT, client.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(error)) => Err(unreachable_for(&error)),
        Err(_) => Err(unreachable_for(&format!("no answer in {} s", PING_TIMEOUT.as_secs()))),
    }
}

async fn ping(docker: &Docker) -> Result<(), String> {
    match timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer in {} s", PING_TIMEOUT.as_secs())),
    }
}

/// Probe `languages` and record what was found; wake the pool to fill what became available.
async fn probe(shared: &Shared, docker: &Docker, languages: Vec<&'static Language>) {
    let context = Arc::new(shared.probe_context(docker));
    // By index: a closure over `&Language` trips the compiler's proof that the task is `Send`.
    let probes =
        futures_util::stream::iter(languages.iter().map(|language| language.index()).collect::<Vec<_>>())
            .map(move |index| {
                let context = context.clone();
                async move { (index, super::probe::probe(&context, &LANGUAGES[index]).await) }
            })
            .buffer_unordered(PROBES_AT_ONCE);
    let mut probes = std::pin::pin!(probes);
    while let Some((index, probe)) = probes.next().await {
        shared.set_probe(&LANGUAGES[index], probe);
    }
    shared.pool.wake();
}
