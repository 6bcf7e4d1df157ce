//! The `codecrafter` binary: parse config, set up logging, bind, handle signals, run the server.

use clap::Parser;
use server::{Config, telemetry};
use tokio_util::sync::CancellationToken;

/// jemalloc with its background purge thread hands freed pages back to the OS within seconds:
/// after thousands of rooms are evicted the process shrinks back towards its baseline, where
/// glibc's allocator keeps the peak (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    runtime.enable_all().build()?.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    telemetry::init_tracing(config.log_format);
    // One descriptor per client: lift the soft limit to the hard one, as servers of many sockets do.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open file limit"),
    }
    let bind = config.bind_addr();
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {bind}: {error}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(workers::process::cancel_on_signal(shutdown.clone(), "flushing rooms"));
    server::run(listener, config, shutdown).await
}
