//! A node whose `App` the test holds (its `AppState`: store, cache, room output), serving on a
//! free port, for tests that look behind the wire (what the store has once a client was told
//! "saved"), and a check that a stock client received no app message.

use std::sync::Arc;
use std::time::Duration;

use protocol::{Message, SyncMessage};
use server::state::{App, AppState};
use tokio_util::sync::CancellationToken;
use workers::RoomOutput;

use super::YClient;

pub struct HeldNode {
    app: Option<App>,
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl HeldNode {
    pub async fn start(hub: &server::LocalHub) -> Self {
        Self::start_with(hub, |_| {}).await
    }

    /// A node of `hub` with a fresh data dir and the test settings, changed by `tweak`.
    pub async fn start_with(hub: &server::LocalHub, tweak: impl FnOnce(&mut server::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = server::Config::for_tests(dir.path());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(config.bind_addr()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = App::build(config.clone(), hub.clone(), shutdown.clone()).await.unwrap();
        let router = server::http::router(app.state.clone());
        let listener = server::socket::SocketListener(listener);
        tokio::spawn(server::serve::serve(listener, router, config.serve_settings(), shutdown.clone()));
        Self { app: Some(app), addr, shutdown, _dir: dir }
    }

    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://{}/ws/{room}", self.addr)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.app.as_ref().unwrap().state
    }

    pub fn output(&self) -> Arc<dyn RoomOutput> {
        self.state().gateway.room_output.clone()
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let app = self.app.take().unwrap();
        app.shutdown(Duration::from_secs(30)).await.unwrap();
    }
}

/// No app message reached `stock`: it asks for a sync step 2 after the message was fanned out
/// (the app clients already have it), and the answer comes after anything written before it.
pub async fn assert_no_app_message_reached(stock: &YClient) {
    stock.send_raw(Message::Sync(SyncMessage::Step1(&[0])).encode_to_vec());
    stock
        .wait_for("the sync step 2", Duration::from_secs(10), |c| {
            c.shared().frames.iter().any(|f| f.starts_with(&[0, 1]))
        })
        .await;
    assert!(stock.app_messages().is_empty(), "a stock client never receives app messages");
}
