//! mongo-init.js (top level) run by the real MongoDB shell against the MongoDB-wire test server,
//! as the mongo image runs it: twice (the second run must change nothing), then the store
//! connects to the same database. Its indexes must equal `storage::mongo_index_plan()` both ways,
//! and the seeded users must be readable through the store with bcrypt hashes of "password".
//!
//! The shell is the npm `mongosh` package: `npm ci --prefix storage/tests/mongosh` (scripts/test.sh
//! does it), or any mongosh binary named by `CODECRAFTER_TEST_MONGOSH`.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Database, IndexModel};
use storage::UserStore;
use storage::model::UserRole;
use support::{connect, mongo_url, with_fresh_database};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../mongo-init.js");

fn mongosh() -> PathBuf {
    let path = std::env::var_os("CODECRAFTER_TEST_MONGOSH").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mongosh/node_modules/.bin/mongosh"))
    });
    assert!(
        path.exists(),
        "no mongosh at {}: run `npm ci --prefix storage/tests/mongosh` (scripts/test.sh does), or set \
         CODECRAFTER_TEST_MONGOSH to a mongosh binary",
        path.display()
    );
    path
}

/// Runs mongo-init.js on `database` and returns what it printed.
async fn run_mongo_init(database: &str) -> String {
    let output = tokio::process::Command::new(mongosh())
        .args([mongo_url().as_str(), "--quiet", "--file", SCRIPT])
        .env("MONGO_DB", database)
        // No telemetry: the test machine may have no internet, and the shell must not wait for it.
        .env("DO_NOT_TRACK", "1")
        .output()
        .await
        .expect("starting mongosh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "mongo-init.js failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// An index as compared: collection, name, keys with integer directions, unique, TTL seconds.
type IndexShape = (String, String, Vec<(String, i64)>, bool, Option<u64>);

fn direction(value: &Bson) -> i64 {
    // The shell sends numbers as it likes (int or double); the direction is what counts.
    match value {
        Bson::Int32(n) => (*n).into(),
        Bson::Int64(n) => *n,
        Bson::Double(n) => *n as i64,
        other => panic!("an index direction that is not a number: {other}"),
    }
}

fn keys_shape(keys: &Document) -> Vec<(String, i64)> {
    keys.iter().map(|(field, value)| (field.clone(), direction(value))).collect()
}

/// Every index in the database except the `_id_` ones MongoDB makes itself.
async fn indexes_in(db: &Database) -> BTreeSet<IndexShape> {
    let mut found = BTreeSet::new();
    for collection in db.list_collection_names().await.unwrap() {
        let models: Vec<IndexModel> =
            db.collection::<Document>(&collection).list_indexes().await.unwrap().try_collect().await.unwrap();
        for model in models {
            let options = model.options.unwrap_or_default();
            let name = options.name.unwrap_or_default();
            if name == "_id_" {
                continue;
            }
            let ttl = options.expire_after.map(|ttl| ttl.as_secs());
            found.insert((
                collection.clone(),
                name,
                keys_shape(&model.keys),
                options.unique.unwrap_or(false),
                ttl,
            ));
        }
    }
    found
}

fn planned_indexes() -> BTreeSet<IndexShape> {
    storage::mongo_index_plan()
        .iter()
        .map(|spec| {
            let ttl = spec.expire_after.map(|ttl| ttl.as_secs());
            (spec.collection.to_owned(), spec.name.to_owned(), keys_shape(&spec.keys()), spec.unique, ttl)
        })
        .collect()
}

/// What a re-run must leave alone: the collections, every index, every user document.
async fn state_of(db: &Database) -> (BTreeSet<String>, BTreeSet<IndexShape>, Vec<Document>) {
    let collections = db.list_collection_names().await.unwrap().into_iter().collect();
    let users = db.collection::<Document>("users");
    let users = users.find(doc! {}).sort(doc! { "_id": 1 }).await.unwrap().try_collect().await.unwrap();
    (collections, indexes_in(db).await, users)
}

#[tokio::test]
async fn mongo_init_matches_the_store_and_seeds_users_it_can_read() {
    let shell = mongosh();
    with_fresh_database("init", |database| async move {
        let started = std::time::Instant::now();
        let first = run_mongo_init(&database).await;
        assert!(first.contains("Test user created") && first.contains("Admin user created"), "{first}");
        let client = mongodb::Client::with_uri_str(mongo_url()).await.unwrap();
        let db = client.database(&database);
        let after_first = state_of(&db).await;

        let second = run_mongo_init(&database).await;
        assert!(second.contains("Test user already present"), "the second run finds the users: {second}");
        let after_second = state_of(&db).await;
        assert!(
            after_second == after_first,
            "running mongo-init.js again changes nothing: {after_second:#?}"
        );
        eprintln!("{} ran mongo-init.js twice in {:?}", shell.display(), started.elapsed());

        let (made_by_script, planned) = (&after_first.1, planned_indexes());
        let missing: Vec<_> = planned.difference(made_by_script).collect();
        assert!(missing.is_empty(), "planned by the store but not made by mongo-init.js: {missing:#?}");
        let extra: Vec<_> = made_by_script.difference(&planned).collect();
        assert!(extra.is_empty(), "made by mongo-init.js but not in the store's plan: {extra:#?}");

        // The server ensures its indexes at startup: that must neither fail (an index of the same
        // name with other options) nor add anything to what the script made.
        let store = connect(&database, storage::MongoConfig::DEFAULT_SNAPSHOT_CHUNK_BYTES).await;
        let (collections, indexes, users) = state_of(&db).await;
        assert_eq!(collections, after_first.0, "connecting creates no collection mongo-init.js did not");
        assert_eq!(indexes, after_first.1, "connecting creates no index mongo-init.js did not");
        assert!(users == after_first.2, "connecting leaves the seeded users alone");

        for (email, username, role) in [
            ("test@example.com", "testuser", UserRole::User),
            ("admin@example.com", "admin", UserRole::Admin),
        ] {
            let user = store.user_by_email(email).await.unwrap().unwrap_or_else(|| panic!("{email} seeded"));
            assert_eq!((user.username.as_str(), user.role), (username, role), "{email}");
            assert!(user.password_hash.starts_with("$2b$10$"), "a bcrypt hash: {}", user.password_hash);
            assert!(
                bcrypt::verify("password", &user.password_hash).unwrap(),
                "{email}'s password is \"password\""
            );
            assert!(!bcrypt::verify("Password", &user.password_hash).unwrap());
            assert!(user.is_active && user.created_at > 0 && user.last_login_at.is_none(), "{user:?}");
            let by_id = store.user_by_id(&user.id).await.unwrap();
            assert_eq!(by_id.as_ref(), Some(&user), "the seeded ObjectId is the user's id");
            let by_name = store.user_by_username(username).await.unwrap();
            assert_eq!(by_name.as_ref(), Some(&user), "found by username");

            let mut logged_in = user.clone();
            logged_in.last_login_at = Some(user.created_at + 1);
            assert!(store.replace_user(&logged_in).await.unwrap(), "the store updates a seeded user");
            assert_eq!(store.user_by_id(&user.id).await.unwrap(), Some(logged_in));
        }
    })
    .await;
}
