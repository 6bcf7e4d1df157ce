//! The MongoDB store against the MongoDB-wire test server (scripts/services.sh): the conformance
//! suite, snapshots cut into many chunks, concurrent merges from two clients (as two processes
//! would), and documents written by other code. Each test uses a fresh database and drops it.

mod support;

use std::sync::Arc;

use mongodb::bson::{Document, doc, oid::ObjectId};
use storage::conformance::{self, concat_merge, random_bytes, write};
use storage::model::{Page, SessionStatus, UserRole};
use storage::{MongoConfig, MongoStore, SessionStore, SnapshotStore, UserStore};
use support::{connect, mongo_url, with_fresh_database};

/// Small enough that the suite's 64 KiB-boundary sizes and its 20 MB snapshot span many chunks.
const SMALL_CHUNK: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_passes_the_conformance_suite() {
    with_fresh_database("suite", |database| async move {
        let store = connect(&database, MongoConfig::DEFAULT_SNAPSHOT_CHUNK_BYTES).await;
        assert_eq!(storage::Store::backend_name(&store), "mongodb");
        conformance::store_suite(Arc::new(store)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_cut_into_many_small_chunks_pass_the_snapshot_suite() {
    with_fresh_database("chunks", |database| async move {
        let store = connect(&database, SMALL_CHUNK).await;
        conformance::snapshot_store_suite(Arc::new(store.clone())).await;

        let snapshot = random_bytes(10 * SMALL_CHUNK + 1);
        store.merge_snapshots(vec![write("probe", &snapshot)], concat_merge).await.unwrap();
        let chunks = store.database().collection::<Document>("snapshot_chunks");
        let stored = chunks.count_documents(doc! { "room": "probe" }).await.unwrap();
        assert_eq!(stored, 11, "a snapshot of ten chunks and a byte is eleven documents");
        store.merge_snapshots(vec![write("probe", b"x")], concat_merge).await.unwrap();
        let stored = chunks.count_documents(doc! { "room": "probe" }).await.unwrap();
        assert_eq!(stored, 11, "a merge replaces the old generation's chunks instead of adding to them");
        assert!(store.delete_snapshot("probe").await.unwrap());
        let stored = chunks.count_documents(doc! { "room": "probe" }).await.unwrap();
        assert_eq!(stored, 0, "delete removes the chunks with the head");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_from_two_clients_lose_nothing() {
    with_fresh_database("race", |database| async move {
        // Two stores, two connection pools: to the server these are two processes. Chunks of 8
        // bytes make every snapshot many documents, so a lost race leaves many chunks to clean.
        let stores = [connect(&database, 8).await, connect(&database, 8).await];
        let writers: Vec<_> = (0..24u8)
            .map(|i| {
                let store = stores[usize::from(i % 2)].clone();
                tokio::spawn(async move {
                    let marker = format!("<{i}>");
                    store.merge_snapshots(vec![write("contested", marker.as_bytes())], concat_merge).await
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().expect("every merge eventually wins its swap");
        }
        let merged = stores[0].load_snapshot("contested").await.unwrap().expect("a snapshot");
        let merged = String::from_utf8(merged).unwrap();
        for i in 0..24 {
            assert!(merged.contains(&format!("<{i}>")), "writer {i}'s merge was lost: {merged}");
        }
        let head = stores[1].database().collection::<Document>("snapshots");
        let head = head.find_one(doc! { "_id": "contested" }).await.unwrap().expect("a head");
        let chunks = stores[1].database().collection::<Document>("snapshot_chunks");
        let left = chunks.count_documents(doc! { "room": "contested" }).await.unwrap();
        assert_eq!(left as i64, head.get_i64("chunks").unwrap(), "losers and winners left no stray chunks");
    })
    .await;
}

#[tokio::test]
async fn documents_from_other_code_read_with_defaults_and_accept_revision_zero() {
    with_fresh_database("legacy", |database| async move {
        let store = connect(&database, MongoConfig::DEFAULT_SNAPSHOT_CHUNK_BYTES).await;
        let (user_id, session_id) = (ObjectId::new(), ObjectId::new());
        // As the seeds' mongo-init.js and session model write them: no revision, no metadata, no
        // collaborators, `lastLogin` instead of `lastLoginAt`, numbers as the shell stores them.
        let now = mongodb::bson::DateTime::now();
        let users = store.database().collection::<Document>("users");
        users
            .insert_one(doc! {
                "_id": user_id, "username": "legacy", "email": "legacy@example.com", "password": "$2b$10$x",
                "role": "admin", "createdAt": now, "updatedAt": now, "lastLogin": now,
                "preferences": { "theme": "dark", "editorSettings": { "fontSize": 14_i32, "tabSize": 2_i32 } },
            })
            .await
            .unwrap();
        let sessions = store.database().collection::<Document>("sessions");
        let session_doc = doc! {
            "_id": session_id, "title": "old", "owner": user_id, "language": "python",
            "createdAt": now, "updatedAt": now, "executions": [], "content": "print(1)",
        };
        sessions.insert_one(session_doc).await.unwrap();

        let user = store.user_by_id(&user_id.to_hex()).await.unwrap().expect("the legacy user");
        assert_eq!((user.role, user.is_active, user.email_verified), (UserRole::Admin, true, false));
        assert_eq!(user.last_login_at, Some(now.timestamp_millis()), "lastLogin is read as lastLoginAt");
        assert!(user.preferences.editor_settings.word_wrap, "missing settings take the model's defaults");

        let mut session = store.session(&session_id.to_hex()).await.unwrap().expect("the legacy session");
        assert_eq!((session.revision, session.max_collaborators, session.status), (0, 10, SessionStatus::Active));
        let (listed, total) = store.sessions_of_user(&user.id, Page { skip: 0, limit: 10 }).await.unwrap();
        assert_eq!((listed.len(), total), (1, 1), "found through its ObjectId owner");
        session.title = "renamed".to_owned();
        let revision = store.replace_session(&session).await.unwrap();
        assert_eq!(revision, Some(1), "revision 0 matches a session stored without one");
        let raw = sessions.find_one(doc! { "_id": session_id }).await.unwrap().unwrap();
        assert_eq!(raw.get_str("content").unwrap(), "print(1)", "a replace keeps fields it does not know");
        assert_eq!(raw.get_object_id("owner").unwrap(), user_id, "the owner stays an ObjectId");
    })
    .await;
}

#[tokio::test]
async fn connecting_twice_keeps_the_indexes_and_bad_configs_fail_clearly() {
    with_fresh_database("connect", |database| async move {
        connect(&database, SMALL_CHUNK).await;
        let again = connect(&database, SMALL_CHUNK).await;
        storage::Store::ping(&again).await.unwrap();

        let zero = MongoConfig { snapshot_chunk_bytes: 0, ..MongoConfig::new(mongo_url(), &database) };
        let error = MongoStore::connect(zero).await.err().expect("a zero chunk size is refused");
        assert!(error.to_string().contains("snapshot_chunk_bytes"), "{error}");

        let nowhere = MongoConfig::new("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "x");
        let error = MongoStore::connect(nowhere).await.err().expect("nothing listens on port 1");
        assert!(error.to_string().contains("MongoDB at mongodb://127.0.0.1:1"), "names the server: {error}");
    })
    .await;
}
