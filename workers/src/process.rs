//! What every CodeCrafter process does the same way at its edges, the server (`codecrafter`) and
//! the worker (`codecrafter-worker`) alike: log format and setup, and how signals stop it. Here
//! because the server depends on this crate, never the other way round.

use tokio_util::sync::CancellationToken;

/// How log events are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`). A second call (several
/// servers in one test process) keeps the first setup.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The first SIGINT/SIGTERM cancels `shutdown` (logged with `what` the process now does); a
/// second one exits at once with 130.
pub async fn cancel_on_signal(shutdown: CancellationToken, what: &'static str) {
    wait_for_signal().await;
    tracing::info!("shutdown signal received: {what}");
    shutdown.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(130);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
