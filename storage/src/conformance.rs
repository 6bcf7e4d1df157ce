//! The one conformance suite every [`SnapshotStore`] backend must pass. Backends call
//! [`snapshot_store_suite`] from their own test targets with a fresh, empty store.

use std::sync::Arc;

use crate::snapshot::{SnapshotStore, SnapshotWrite};

/// A stand-in merge for the suite: concatenation with a separator, so the test can see that the
/// store called merge with (stored, incoming) in order instead of overwriting.
fn concat_merge(stored: &[u8], incoming: &[u8]) -> Vec<u8> {
    let mut out = stored.to_vec();
    out.push(b'|');
    out.extend_from_slice(incoming);
    out
}

fn write(room: &str, bytes: &[u8]) -> SnapshotWrite {
    SnapshotWrite { room: room.to_owned(), update: bytes.to_vec() }
}

/// Panics (with a message naming the failed property) if the store breaks the contract.
pub async fn snapshot_store_suite(store: Arc<dyn SnapshotStore>) {
    assert_eq!(store.load_snapshot("absent").await.unwrap(), None, "an unknown room has no snapshot");

    store.merge_snapshots(vec![write("a", b"one")], concat_merge).await.unwrap();
    assert_eq!(
        store.load_snapshot("a").await.unwrap().as_deref(),
        Some(&b"one"[..]),
        "the first write is stored as is"
    );

    store.merge_snapshots(vec![write("a", b"two")], concat_merge).await.unwrap();
    assert_eq!(
        store.load_snapshot("a").await.unwrap().as_deref(),
        Some(&b"one|two"[..]),
        "a second write is merged, not overwritten"
    );

    let batch = vec![write("b", b"x"), write("c", b"y"), write("b", b"z")];
    store.merge_snapshots(batch, concat_merge).await.unwrap();
    assert_eq!(
        store.load_snapshot("b").await.unwrap().as_deref(),
        Some(&b"x|z"[..]),
        "same-room writes in a batch merge in order"
    );
    assert_eq!(store.load_snapshot("c").await.unwrap().as_deref(), Some(&b"y"[..]));

    store.merge_snapshots(Vec::new(), concat_merge).await.unwrap();

    let big = vec![7u8; 6 * 1024 * 1024];
    store.merge_snapshots(vec![write("big", &big)], concat_merge).await.unwrap();
    assert_eq!(
        store.load_snapshot("big").await.unwrap().map(|b| b.len()),
        Some(big.len()),
        "large snapshots round trip"
    );

    let odd_room = "room/with spaces/ünïcode";
    store.merge_snapshots(vec![write(odd_room, b"k")], concat_merge).await.unwrap();
    assert_eq!(
        store.load_snapshot(odd_room).await.unwrap().as_deref(),
        Some(&b"k"[..]),
        "any room id is a key"
    );

    assert!(store.delete_snapshot("a").await.unwrap(), "delete reports an existing snapshot");
    assert!(!store.delete_snapshot("a").await.unwrap(), "delete reports a missing snapshot");
    assert_eq!(store.load_snapshot("a").await.unwrap(), None, "a deleted snapshot is gone");

    // Concurrent writers to one room must not lose each other's writes.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.merge_snapshots(vec![write("shared", &[b'0' + i])], concat_merge).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let shared = store.load_snapshot("shared").await.unwrap().unwrap();
    for i in 0..8u8 {
        assert!(
            shared.contains(&(b'0' + i)),
            "concurrent write {i} was lost: {:?}",
            String::from_utf8_lossy(&shared)
        );
    }
}
