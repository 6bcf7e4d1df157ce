//! The embedded (redb) store: the conformance suite, data surviving a reopen, log retention.

use std::sync::Arc;

use storage::model::{LOG_RETENTION, LogEntry, LogLevel, Millis, new_id};
use storage::{EmbeddedStore, LogFilter, LogStore, SnapshotStore, SnapshotWrite, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    conformance::store_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn snapshots_survive_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let write = SnapshotWrite { room: "r".into(), update: b"state".to_vec() };
        store.merge_snapshots(vec![write], |_, new| new.to_vec()).await.unwrap();
    }
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.load_snapshot("r").await.unwrap().as_deref(), Some(&b"state"[..]));
}

#[tokio::test]
async fn open_fails_clearly_when_the_data_dir_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = EmbeddedStore::open(&file).err().expect("opening under a file must fail");
    assert!(err.to_string().contains("not-a-dir"), "error names the path: {err}");
}

fn log_aged(age_ms: Millis) -> LogEntry {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    LogEntry {
        id: new_id(),
        level: LogLevel::Info,
        message: format!("{age_ms} ms old"),
        action: "api_request".into(),
        user_id: None,
        session_id: None,
        timestamp: now as Millis - age_ms,
        metadata: serde_json::Value::Null,
    }
}

async fn messages_of_logs(store: &EmbeddedStore) -> Vec<String> {
    let logs = store.logs(&LogFilter::default(), 100).await.unwrap();
    logs.into_iter().map(|e| e.message).collect()
}

#[tokio::test]
async fn log_entries_past_the_retention_are_swept_on_append_and_on_open() {
    const DAY: Millis = 24 * 60 * 60 * 1000;
    let retention = LOG_RETENTION.as_millis() as Millis;
    assert_eq!(retention, 30 * DAY, "the seeds keep logs 30 days");
    let dir = tempfile::tempdir().unwrap();
    let (kept, expired) = (log_aged(retention - DAY), log_aged(retention + DAY));

    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.append_log(&kept).await.unwrap();
    store.append_log(&expired).await.unwrap();
    assert_eq!(messages_of_logs(&store).await, vec![kept.message.clone()], "an append sweeps what expired");
    drop(store);

    // An entry that expires while the server is down goes at the next open. Simulated by writing
    // one already expired with the sweep bypassed: redb directly, in the store's own format.
    {
        let db = redb::Database::create(dir.path().join(storage::DATABASE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let logs: redb::TableDefinition<(Millis, &str), &[u8]> = redb::TableDefinition::new("logs");
            let mut table = txn.open_table(logs).unwrap();
            let json = serde_json::to_vec(&expired).unwrap();
            table.insert((expired.timestamp, expired.id.as_str()), json.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(messages_of_logs(&reopened).await, vec![kept.message], "opening sweeps what expired");
}
