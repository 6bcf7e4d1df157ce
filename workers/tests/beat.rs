//! The runner beat against a real Redis (`CODECRAFTER_TEST_REDIS_URL`, exported by
//! `scripts/services.sh`): written with its expiry, removed at cancel, and a Redis that cannot be
//! reached is retried without ending or panicking.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use workers::exec::beat::{BEAT_STALE, RUNNERS_KEY, RunnerBeat, run_beats};
use workers::exec::{Chunk, LanguageInfo, RunReport, RunSpec, Sandbox, SandboxError, SandboxStatus};

const TIMEOUT: Duration = Duration::from_secs(20);

fn redis_url() -> String {
    std::env::var("CODECRAFTER_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "CODECRAFTER_TEST_REDIS_URL is not set: these tests need Redis. Start it with \
             `source scripts/services.sh && services_start` (or run scripts/test.sh)"
        )
    })
}

/// A sandbox with a fixed status and language list: the beat only reads those two.
struct Fixed;

#[async_trait]
impl Sandbox for Fixed {
    fn languages(&self) -> Vec<LanguageInfo> {
        vec![LanguageInfo { id: "c".into(), name: "C".into(), version: Some("14".into()), available: true }]
    }

    fn status(&self) -> SandboxStatus {
        SandboxStatus { available: true, reason: None, running: 1, pool_ready: 2 }
    }

    async fn run(&self, _spec: RunSpec, _output: mpsc::Sender<Chunk>) -> Result<RunReport, SandboxError> {
        Err(SandboxError::Unavailable("a beat test runs nothing".into()))
    }
}

#[tokio::test]
async fn a_beat_is_written_with_its_expiry_and_removed_at_cancel() {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = format!("test-beat-{}:", storage::model::new_id());
    let key = format!("{prefix}{RUNNERS_KEY}");
    let cancel = CancellationToken::new();
    let beats =
        tokio::spawn(run_beats(client.clone(), prefix, "owner-1".into(), Arc::new(Fixed), 3, cancel.clone()));

    let json: String = tokio::time::timeout(TIMEOUT, async {
        loop {
            let found: Option<String> =
                redis::cmd("HGET").arg(&key).arg("owner-1").query_async(&mut redis).await.unwrap();
            if let Some(json) = found {
                return json;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a beat within the timeout");
    let beat: RunnerBeat = serde_json::from_str(&json).unwrap();
    assert_eq!((beat.owner.as_str(), beat.concurrency), ("owner-1", 3));
    assert_eq!(beat.status, Fixed.status());
    assert_eq!(beat.languages, Fixed.languages());
    assert!(beat.at_ms > 0);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.unwrap();
    assert!(ttl > 0 && ttl <= BEAT_STALE.as_millis() as i64, "the hash expires with the beat: {ttl} ms");

    cancel.cancel();
    tokio::time::timeout(TIMEOUT, beats).await.expect("run_beats ends at cancel").unwrap();
    let left: bool = redis::cmd("HEXISTS").arg(&key).arg("owner-1").query_async(&mut redis).await.unwrap();
    assert!(!left, "a runner that stops removes its beat");
}

#[tokio::test]
async fn an_unreachable_redis_is_retried_and_cancel_still_ends_it() {
    // A port nothing listens on: every beat fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let cancel = CancellationToken::new();
    let beats = tokio::spawn(run_beats(client, "x:".into(), "o".into(), Arc::new(Fixed), 1, cancel.clone()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!beats.is_finished(), "failures are retried, never the end of the beats");
    cancel.cancel();
    tokio::time::timeout(TIMEOUT, beats).await.expect("cancel ends it").expect("no panic");
}
