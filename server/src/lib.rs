//! CodeCrafter collaboration server: Yjs rooms over WebSocket, the JSON API, operations
//! endpoints, and the wiring of rooms to their storage, job queue and relay.
//!
//! `main.rs` parses [`Config`] and calls [`run`]; tests call [`run`] on a port-0 listener. The
//! application is assembled in [`state`] (see ARCHITECTURE.md for the layering of the modules).

pub mod access;
pub mod auth;
pub mod cache;
pub mod cidr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod exec;
pub mod http;
pub mod redis_tls;
pub mod room;
pub mod serve;
pub mod socket;
pub mod state;
pub mod telemetry;
pub mod ws;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub use relay::LocalHub;

use crate::state::App;

/// Serve on `listener` until `shutdown` is cancelled, then stop accepting, close every connection,
/// persist every changed room durably, and return.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_hub(listener, config, shutdown, LocalHub::new()).await
}

/// [`run`] as one node of `hub`: nodes started on the same hub in one process share rooms, as
/// nodes on one Redis do.
pub async fn run_with_hub(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    hub: LocalHub,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (serve_settings, deadline) =
        (config.serve_settings(), Duration::from_secs(config.shutdown_timeout_secs));
    let app = App::build(config, hub, shutdown.clone()).await?;
    let state = app.state.clone();
    println!("listening on {addr}");
    tracing::info!(
        %addr,
        store = state.store.backend_name(),
        cache = state.cache.backend_name(),
        anonymous = state.config.allow_anonymous,
        "codecrafter serving"
    );
    serve::serve(socket::SocketListener(listener), http::router(state), serve_settings, shutdown).await;
    app.shutdown(deadline).await?;
    tracing::info!("all rooms persisted; bye");
    Ok(())
}
