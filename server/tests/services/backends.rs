//! The same server on the scaled-out backends: MongoDB (the SecantusDB wire server) for storage
//! and Redis for the cache, both real and started by scripts/test.sh. Accounts, sessions, socket
//! permissions and documents survive a restart of the server; an account disabled or deleted in the
//! database stops writing at once and loses its sockets; an unreachable cache gives a bare 500 and a
//! degraded `/ready`.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::http::{PASSWORD, call, create_session, invite, register, user_of};
use support::processes::OwnRedis;
use support::{TestServer, YClient};
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

fn env_url(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh, which starts Redis and the MongoDB-wire server"))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", storage::model::new_id())
}

fn scaled_out(config: &mut server::Config, database: &str, redis_url: &str, prefix: &str) {
    config.allow_anonymous = false;
    config.mongo_url = Some(env_url("CODECRAFTER_TEST_MONGO_URL"));
    config.mongo_db = database.to_owned();
    config.redis_url = Some(redis_url.to_owned());
    config.redis_prefix = prefix.to_owned();
    config.jwt_secret = Some(SECRET.into());
}

#[tokio::test]
async fn accounts_sessions_and_documents_live_in_mongodb_and_redis() {
    let database = unique("cc_backends_");
    let prefix = unique("test:");
    let redis_url = env_url("CODECRAFTER_TEST_REDIS_URL");
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    scaled_out(&mut config, &database, &redis_url, &prefix);

    let server = TestServer::start_with(config.clone()).await;
    let ready = call(server.addr, "GET", "/ready", None, None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["store"]["backend"], "mongodb");
    assert_eq!(ready.json()["cache"]["backend"], "redis");
    let owner = register(server.addr, "owner").await;
    let viewer = register(server.addr, "viewer").await;
    let dup = json!({ "username": "owner", "email": "x@example.com", "password": PASSWORD });
    assert_eq!(call(server.addr, "POST", "/api/auth/register", None, Some(&dup), &[]).await.status, 409);
    let session = create_session(server.addr, &owner, json!({ "title": "on mongo" })).await;
    invite(server.addr, &owner, &session, &viewer, "viewer").await;
    let url = |user: &support::http::User| format!("{}?token={}", server.ws_url(&session), user.access);
    let writer = YClient::connect(&url(&owner)).await;
    {
        let text = writer.doc.get_or_insert_text("t");
        text.insert(&mut writer.doc.transact_mut(), 0, "persisted in mongo");
    }
    let reader = YClient::connect(&url(&viewer)).await;
    reader.wait_for("edit", WAIT, |c| c.text("t") == "persisted in mongo").await;
    {
        let text = reader.doc.get_or_insert_text("t");
        text.insert(&mut reader.doc.transact_mut(), 0, "nope ");
    }
    reader.wait_for("viewer refused", WAIT, |c| !c.shared().denied.is_empty()).await;
    drop((writer, reader));
    server.stop().await.unwrap();

    // A fresh process: same secret, same stores.
    let server = TestServer::start_with(config).await;
    let profile = call(server.addr, "GET", "/api/auth/profile", Some(&owner.access), None, &[]).await;
    assert_eq!(profile.status, 200, "an access token outlives the process that issued it");
    let body = json!({ "refreshToken": owner.refresh });
    let refreshed = call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &[]).await;
    assert_eq!(refreshed.status, 200, "refresh tokens live in Redis: {}", refreshed.body);
    let again = call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &[]).await;
    assert_eq!(again.status, 401, "and rotation is enforced across processes");
    let list = call(server.addr, "GET", "/api/sessions", Some(&viewer.access), None, &[]).await.json();
    assert_eq!(list["sessions"][0]["title"], "on mongo");
    let back = YClient::connect(&format!("{}?token={}", server.ws_url(&session), owner.access)).await;
    back.wait_for("document from the MongoDB snapshot", WAIT, |c| c.text("t") == "persisted in mongo").await;
    drop(back);
    let login = json!({ "login": "viewer", "password": PASSWORD });
    let reply = call(server.addr, "POST", "/api/auth/login", None, Some(&login), &[]).await;
    assert_eq!(reply.status, 200);
    user_of(&reply.json());
    assert_eq!(
        call(server.addr, "DELETE", &format!("/api/sessions/{session}"), Some(&owner.access), None, &[])
            .await
            .status,
        204
    );
    server.stop().await.unwrap();
    drop_database(&database).await;
}

#[tokio::test]
async fn an_unreachable_cache_is_a_bare_500_and_a_degraded_node() {
    let redis = OwnRedis::start();
    let database = unique("cc_outage_");
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    scaled_out(&mut config, &database, &redis.url(), "outage:");
    let server = TestServer::start_with(config).await;
    let user = register(server.addr, "someone").await;
    drop(redis);

    let body = json!({ "refreshToken": user.refresh });
    let reply = call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &[]).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json(), json!({ "error": { "code": "internal", "message": "internal server error" } }));
    let ready = call(server.addr, "GET", "/ready", None, None, &[]).await;
    assert_eq!(ready.status, 200, "the node still serves its clients: {}", ready.body);
    assert_eq!(ready.json()["status"], "degraded");
    assert_eq!(ready.json()["cache"]["status"], "degraded");
    // Sessions still open: their cache is only a shortcut to the store.
    let profile = call(server.addr, "GET", "/api/auth/profile", Some(&user.access), None, &[]).await;
    assert_eq!(profile.status, 200);
    server.stop().await.unwrap();
    drop_database(&database).await;
}

/// An account disabled or deleted in the database, behind the server's back, can no longer write
/// (at once) and its open sockets are closed within `--account-check-secs`. (The hostile suite
/// covers the rest on the embedded store, which cannot be changed while the server runs.)
#[tokio::test]
async fn accounts_disabled_or_deleted_in_the_database_lose_their_sockets() {
    use mongodb::bson::{Document, doc, oid::ObjectId};

    let database = unique("cc_accounts_");
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    scaled_out(&mut config, &database, &env_url("CODECRAFTER_TEST_REDIS_URL"), &unique("test:"));
    config.account_check_secs = 1;
    let server = TestServer::start_with(config).await;
    let owner = register(server.addr, "owner").await;
    let editor = register(server.addr, "editor").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    invite(server.addr, &owner, &session, &editor, "editor").await;
    let url = |user: &support::http::User| format!("{}?token={}", server.ws_url(&session), user.access);
    let owner_socket = YClient::connect(&url(&owner)).await;
    let editor_socket = YClient::connect(&url(&editor)).await;
    for socket in [&owner_socket, &editor_socket] {
        socket.wait_for("synced", WAIT, |c| c.shared().synced).await;
    }

    let client = mongodb::Client::with_uri_str(env_url("CODECRAFTER_TEST_MONGO_URL")).await.unwrap();
    let users = client.database(&database).collection::<Document>("users");
    let id = |user: &support::http::User| ObjectId::parse_str(&user.id).unwrap();
    let disabled =
        users.update_one(doc! { "_id": id(&editor) }, doc! { "$set": { "isActive": false } }).await;
    assert_eq!(disabled.unwrap().modified_count, 1);
    assert_eq!(users.delete_one(doc! { "_id": id(&owner) }).await.unwrap().deleted_count, 1);

    let body = json!({ "firstName": "Still here?" });
    let reply = call(server.addr, "PUT", "/api/auth/profile", Some(&editor.access), Some(&body), &[]).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "account_disabled"), "a write, at once");
    let reply =
        call(server.addr, "POST", "/api/sessions", Some(&owner.access), Some(&json!({"title": "x"})), &[])
            .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "account_not_found"), "a write, at once");
    assert_eq!(editor_socket.wait_closed(WAIT).await, (4403, "this account is disabled".into()));
    assert_eq!(owner_socket.wait_closed(WAIT).await, (4401, "this account does not exist".into()));
    server.stop().await.unwrap();
    drop_database(&database).await;
}

async fn drop_database(name: &str) {
    let client = mongodb::Client::with_uri_str(env_url("CODECRAFTER_TEST_MONGO_URL")).await.unwrap();
    client.database(name).drop().await.unwrap();
}
