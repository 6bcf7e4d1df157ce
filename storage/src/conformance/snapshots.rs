//! The snapshot part of the suite: merge, never overwrite; every size round trips, including
//! snapshots far over MongoDB's 16 MB document limit; concurrent writers lose nothing.

use std::sync::Arc;

use rand::RngCore;

use crate::snapshot::{SnapshotStore, SnapshotWrite};

/// A stand-in merge for the suites: concatenation with a separator, so a test can see that the
/// store called merge with (stored, incoming) in order instead of overwriting.
pub fn concat_merge(stored: &[u8], incoming: &[u8]) -> Vec<u8> {
    let mut out = stored.to_vec();
    out.push(b'|');
    out.extend_from_slice(incoming);
    out
}

/// A write of `bytes` into `room`.
pub fn write(room: &str, bytes: &[u8]) -> SnapshotWrite {
    SnapshotWrite { room: room.to_owned(), update: bytes.to_vec() }
}

/// `len` random bytes: incompressible, so no layer below can make a big snapshot small.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Panics (with a message naming the failed property) if the store breaks the contract.
pub async fn snapshot_store_suite(store: Arc<dyn SnapshotStore>) {
    merges_in_order(&*store).await;
    sizes_round_trip(&*store).await;
    huge_snapshot_round_trips_and_merges(&*store).await;
    deletes(&*store).await;
    concurrent_writers_lose_nothing(store).await;
}

async fn load(store: &dyn SnapshotStore, room: &str) -> Option<Vec<u8>> {
    store.load_snapshot(room).await.expect("load_snapshot")
}

async fn merge(store: &dyn SnapshotStore, batch: Vec<SnapshotWrite>) {
    store.merge_snapshots(batch, concat_merge).await.expect("merge_snapshots");
}

async fn merges_in_order(store: &dyn SnapshotStore) {
    assert_eq!(load(store, "absent").await, None, "an unknown room has no snapshot");

    merge(store, vec![write("a", b"one")]).await;
    assert_eq!(load(store, "a").await.as_deref(), Some(&b"one"[..]), "the first write is stored as is");

    merge(store, vec![write("a", b"two")]).await;
    assert_eq!(load(store, "a").await.as_deref(), Some(&b"one|two"[..]), "a second write is merged");

    merge(store, vec![write("b", b"x"), write("c", b"y"), write("b", b"z")]).await;
    assert_eq!(
        load(store, "b").await.as_deref(),
        Some(&b"x|z"[..]),
        "same-room writes in a batch merge in order"
    );
    assert_eq!(load(store, "c").await.as_deref(), Some(&b"y"[..]));

    merge(store, Vec::new()).await;

    let odd_room = "room/with spaces/ünïcode";
    merge(store, vec![write(odd_room, b"k")]).await;
    assert_eq!(load(store, odd_room).await.as_deref(), Some(&b"k"[..]), "any room id is a key");
}

/// Sizes around 64 KiB, the chunk size the MongoDB tests also run with, so chunk boundaries are
/// crossed exactly, by one byte either way, and many times.
async fn sizes_round_trip(store: &dyn SnapshotStore) {
    const CHUNK: usize = 64 * 1024;
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7, 6 * 1024 * 1024] {
        let room = format!("size-{len}");
        let bytes = random_bytes(len);
        merge(store, vec![write(&room, &bytes)]).await;
        // assert! rather than assert_eq!: a failure should not print megabytes.
        assert!(load(store, &room).await == Some(bytes.clone()), "a {len}-byte snapshot round trips");
        merge(store, vec![write(&room, b"more")]).await;
        let expected = concat_merge(&bytes, b"more");
        assert!(load(store, &room).await == Some(expected), "a {len}-byte snapshot merges");
    }
}

/// 20 MB: more than a MongoDB document can hold, so a backend with a document limit must split it.
async fn huge_snapshot_round_trips_and_merges(store: &dyn SnapshotStore) {
    let huge = random_bytes(20 * 1024 * 1024);
    merge(store, vec![write("huge", &huge)]).await;
    assert!(load(store, "huge").await == Some(huge.clone()), "a 20 MB snapshot round trips byte for byte");
    merge(store, vec![write("huge", b"tail")]).await;
    let expected = concat_merge(&huge, b"tail");
    assert!(load(store, "huge").await == Some(expected), "a 20 MB snapshot merges");
    assert!(store.delete_snapshot("huge").await.expect("delete"), "a 20 MB snapshot deletes");
    assert_eq!(load(store, "huge").await, None, "a deleted 20 MB snapshot is gone");
}

async fn deletes(store: &dyn SnapshotStore) {
    assert!(store.delete_snapshot("a").await.expect("delete"), "delete reports an existing snapshot");
    assert!(!store.delete_snapshot("a").await.expect("delete"), "delete reports a missing snapshot");
    assert_eq!(load(store, "a").await, None, "a deleted snapshot is gone");
    merge(store, vec![write("a", b"again")]).await;
    assert_eq!(load(store, "a").await.as_deref(), Some(&b"again"[..]), "a deleted room starts afresh");
}

async fn concurrent_writers_lose_nothing(store: Arc<dyn SnapshotStore>) {
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { merge(&*store, vec![write("shared", &[b'0' + i])]).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let shared = load(&*store, "shared").await.expect("the shared room has a snapshot");
    for i in 0..8u8 {
        assert!(
            shared.contains(&(b'0' + i)),
            "concurrent write {i} was lost: {:?}",
            String::from_utf8_lossy(&shared)
        );
    }
}
