//! The embedded (redb) store: the conformance suite, and data surviving a reopen.

use std::sync::Arc;

use storage::{EmbeddedStore, SnapshotStore, SnapshotWrite, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    conformance::snapshot_store_suite(Arc::new(store)).await;
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
