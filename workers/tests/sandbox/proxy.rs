//! A TCP door to the real daemon that a test can shut: closed, it drops every connection through
//! it and refuses new ones, which is Docker going away as far as the sandbox can tell, without
//! stopping the daemon other tests (and other people) use.

use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

use crate::docker_host;

pub struct DockerProxy {
    /// `tcp://127.0.0.1:{port}`.
    pub host: String,
    open: watch::Sender<bool>,
}

impl DockerProxy {
    /// A proxy to the test daemon, closed until [`DockerProxy::open`].
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let host = format!("tcp://{}", listener.local_addr().expect("its address"));
        let socket = docker_host().strip_prefix("unix://").expect("a unix:// test daemon").to_owned();
        let (open, _) = watch::channel(false);
        let state = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut closed = state.subscribe();
                if !*closed.borrow() {
                    continue;
                }
                let socket = socket.clone();
                tokio::spawn(async move {
                    let Ok(mut daemon) = UnixStream::connect(&socket).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut daemon) => {}
                        _ = closed.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Self { host, open }
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    pub fn close(&self) {
        self.open.send_replace(false);
    }
}
