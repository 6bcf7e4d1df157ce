//! Tokens that are validly signed and still must be refused: from the future (`nbf`, `iat`), or
//! naming an account that does not exist (a random id, an empty string) or is disabled — on every
//! write route, on reads, and at the socket.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use server::auth::tokens::{Claims, LEEWAY_SECS};
use server::clock::unix_secs;
use storage::UserStore;
use storage::model::{UserRole, new_id};

use crate::support::http::{Reply, User, call, create_session, register};
use crate::support::{TestServer, YClient};

const WAIT: Duration = Duration::from_secs(5);

fn ws_url(server: &TestServer, session: &str, token: &str) -> String {
    format!("{}?token={token}", server.ws_url(session))
}

/// A token for `user` with its claims changed by `change`, signed with the server's key.
fn minted(server: &TestServer, user: &User, change: impl FnOnce(&mut Claims)) -> String {
    let signer = server.token_signer();
    let mut claims = signer.verify(&user.access).expect("the server's own token");
    change(&mut claims);
    signer.sign(&claims)
}

/// Every route that changes something, with a body it would accept from the session's owner.
/// `{id}` is the session, `{userId}` a collaborator of it.
fn write_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/api/sessions", Some(json!({ "title": "mine now" }))),
        ("PUT", "/api/sessions/{id}", Some(json!({ "title": "renamed" }))),
        ("DELETE", "/api/sessions/{id}", None),
        ("POST", "/api/sessions/{id}/join", None),
        ("POST", "/api/sessions/{id}/lock", None),
        ("POST", "/api/sessions/{id}/unlock", None),
        (
            "POST",
            "/api/sessions/{id}/collaborators",
            Some(json!({ "username": "newcomer", "role": "admin" })),
        ),
        ("PUT", "/api/sessions/{id}/collaborators/{userId}", Some(json!({ "role": "admin" }))),
        ("DELETE", "/api/sessions/{id}/collaborators/{userId}", None),
        ("PUT", "/api/auth/profile", Some(json!({ "firstName": "Mallory" }))),
        // The account is checked before the body is read: any session id does.
        ("POST", "/api/execute", Some(json!({ "sessionId": "0".repeat(24), "code": "print(1)" }))),
    ]
}

const READ_ROUTES: [&str; 3] = ["/api/sessions", "/api/sessions/{id}", "/api/auth/profile"];

/// A session owned by `owner` with `member` as an editor (and a user `newcomer` to invite).
async fn session_with_member(server: &TestServer) -> (User, User, String) {
    let owner = register(server.addr, "owner").await;
    let member = register(server.addr, "member").await;
    register(server.addr, "newcomer").await;
    let session = create_session(server.addr, &owner, json!({ "isPublic": true })).await;
    crate::support::http::invite(server.addr, &owner, &session, &member, "editor").await;
    (owner, member, session)
}

fn fill(path: &str, session: &str, member: &User) -> String {
    path.replace("{id}", session).replace("{userId}", &member.id)
}

#[track_caller]
fn check_refused(reply: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!((reply.status, reply.error_code().as_str()), (status, code), "{what}: {}", reply.body);
}

#[tokio::test]
async fn the_table_covers_every_write_route() {
    let server = TestServer::start_secure(|_| {}).await;
    let doc = call(server.addr, "GET", "/api-docs", None, None, &[]).await.json();
    let mut signed_in_writes = BTreeSet::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            if method != "get" && operation.get("security").is_some() {
                signed_in_writes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<_> =
        write_routes().into_iter().map(|(m, p, _)| (m.to_owned(), p.to_owned())).collect();
    assert_eq!(
        table, signed_in_writes,
        "every route that needs a token and changes something is in the table"
    );
}

#[tokio::test]
async fn tokens_from_the_future_are_refused_beyond_the_leeway() {
    let server = TestServer::start_secure(|_| {}).await;
    let user = register(server.addr, "tess").await;
    let session = create_session(server.addr, &user, json!({})).await;
    let now = unix_secs();
    let within = LEEWAY_SECS - 2;
    type Change = Box<dyn FnOnce(&mut Claims)>;
    let cases: [(&str, Change, bool); 6] = [
        ("nbf a minute ahead", Box::new(move |c| c.nbf = Some(now + 60)), false),
        ("iat an hour ahead", Box::new(move |c| (c.iat, c.exp) = (now + 3600, now + 4500)), false),
        ("iat just past the leeway", Box::new(move |c| c.iat = now + LEEWAY_SECS + 30), false),
        ("nbf within the leeway", Box::new(move |c| c.nbf = Some(now + within)), true),
        ("iat within the leeway", Box::new(move |c| c.iat = now + within), true),
        ("nbf in the past", Box::new(move |c| c.nbf = Some(now - 60)), true),
    ];
    for (what, change, accepted) in cases {
        let token = minted(&server, &user, change);
        let read = call(server.addr, "GET", "/api/auth/profile", Some(&token), None, &[]).await;
        let body = json!({ "title": what });
        let write = call(server.addr, "POST", "/api/sessions", Some(&token), Some(&body), &[]).await;
        let socket = YClient::connect(&ws_url(&server, &session, &token)).await;
        if accepted {
            assert_eq!((read.status, write.status), (200, 201), "{what}: {} / {}", read.body, write.body);
            socket.wait_for("synced", WAIT, |c| c.shared().synced).await;
        } else {
            for reply in [&read, &write] {
                assert_eq!(reply.status, 401, "{what}: {}", reply.body);
                assert!(reply.error_message().contains("not valid yet"), "{what}: {}", reply.body);
            }
            assert_eq!(socket.wait_closed(WAIT).await, (4401, "token not valid yet".into()), "{what}");
        }
    }
}

#[tokio::test]
async fn tokens_for_accounts_that_do_not_exist_are_refused_on_every_route() {
    let server = TestServer::start_secure(|_| {}).await;
    let (owner, member, session) = session_with_member(&server).await;
    // Site admins may manage any session: a made-up subject claiming the admin role is the worst case.
    let subjects = [new_id(), String::new(), "not-an-id".into(), "ffffffffffffffffffffffff".into()];
    for sub in subjects {
        let token = minted(&server, &owner, |c| {
            c.sub = sub.clone();
            c.role = UserRole::Admin;
        });
        for (method, path, body) in write_routes() {
            let path = fill(path, &session, &member);
            let reply = call(server.addr, method, &path, Some(&token), body.as_ref(), &[]).await;
            check_refused(&reply, 401, "account_not_found", &format!("sub {sub:?}: {method} {path}"));
        }
        for path in READ_ROUTES {
            let path = fill(path, &session, &member);
            let reply = call(server.addr, "GET", &path, Some(&token), None, &[]).await;
            check_refused(&reply, 401, "account_not_found", &format!("sub {sub:?}: GET {path}"));
        }
        let socket = YClient::connect(&ws_url(&server, &session, &token)).await;
        assert_eq!(
            socket.wait_closed(WAIT).await,
            (4401, "this account does not exist".into()),
            "sub {sub:?}"
        );
    }
    // Nothing was changed: the session is as the owner left it.
    let reply =
        call(server.addr, "GET", &format!("/api/sessions/{session}"), Some(&owner.access), None, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = reply.json();
    assert_eq!((seen["title"].as_str(), seen["isLocked"].as_bool()), (Some("s"), Some(false)), "{seen}");
    let collaborators = seen["collaborators"].as_array().unwrap();
    assert_eq!(collaborators.len(), 1, "{seen}");
    assert_eq!(collaborators[0]["role"], "editor", "{seen}");
    let mine = call(server.addr, "GET", "/api/sessions", Some(&owner.access), None, &[]).await.json();
    assert_eq!(mine["pagination"]["totalItems"], 1, "no session was created: {mine}");
}

#[tokio::test]
async fn a_disabled_account_is_refused_on_every_route_and_at_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    config.allow_anonymous = false;
    let first = TestServer::start_with(config.clone()).await;
    let (owner, member, session) = session_with_member(&first).await;
    first.stop().await.unwrap();
    {
        let store = storage::EmbeddedStore::open(dir.path()).unwrap();
        let mut stored = store.user_by_id(&owner.id).await.unwrap().unwrap();
        stored.is_active = false;
        assert!(store.replace_user(&stored).await.unwrap());
    }
    let server = TestServer::start_with(config).await;
    // The owner's access token is still validly signed and unexpired.
    for (method, path, body) in write_routes() {
        let path = fill(path, &session, &member);
        let reply = call(server.addr, method, &path, Some(&owner.access), body.as_ref(), &[]).await;
        check_refused(&reply, 403, "account_disabled", &format!("{method} {path}"));
    }
    for path in READ_ROUTES {
        let path = fill(path, &session, &member);
        let reply = call(server.addr, "GET", &path, Some(&owner.access), None, &[]).await;
        check_refused(&reply, 403, "account_disabled", &format!("GET {path}"));
    }
    let socket = YClient::connect(&ws_url(&server, &session, &owner.access)).await;
    assert_eq!(socket.wait_closed(WAIT).await, (4403, "this account is disabled".into()));
    let login = json!({ "login": "owner", "password": crate::support::http::PASSWORD });
    let reply = call(server.addr, "POST", "/api/auth/login", None, Some(&login), &[]).await;
    check_refused(&reply, 403, "account_disabled", "login with the right password");

    // The active member is unaffected, in the same session.
    let reply =
        call(server.addr, "GET", &format!("/api/sessions/{session}"), Some(&member.access), None, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let socket = YClient::connect(&ws_url(&server, &session, &member.access)).await;
    socket.wait_for("synced", WAIT, |c| c.shared().synced).await;
}

/// The periodic re-check of live sockets, on the real store and cache (a running server's
/// embedded store cannot be changed from outside while it runs).
#[tokio::test]
async fn live_sockets_of_a_deleted_or_disabled_account_lose_their_grants() {
    use server::access::{Grant, LiveGrants, Revoked, UserSockets};
    use server::auth::Accounts;
    use server::cache::{Cache, MemoryCache};

    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(storage::EmbeddedStore::open(dir.path()).unwrap());
    let store: Arc<dyn storage::Store> = embedded.clone();
    let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new());
    let accounts = Accounts::new(store.clone(), cache.clone(), Duration::from_secs(30));
    let (presence, _recorded) = UserSockets::new(::relay::new_node_id(), cache);
    let live = Arc::new(LiveGrants::new(presence));

    let ada = stored_user(&embedded, "ada").await;
    let bob = stored_user(&embedded, "bob").await;
    let ghost = new_id();
    let grant = |conn, user: &str| {
        let grant = Arc::new(Grant::new(true));
        (live.register("session", conn, user, UserRole::User, grant.clone()), grant)
    };
    let (_a, ada_grant) = grant(1, &ada.id);
    let (_b1, bob_grant) = grant(2, &bob.id);
    let (_b2, bob_second) = grant(3, &bob.id);
    let (_g, ghost_grant) = grant(4, &ghost);

    accounts.recheck(&live).await;
    assert_eq!(ghost_grant.revocation(), Some(Revoked::AccountGone), "an account that does not exist");
    assert_eq!((ada_grant.revocation(), bob_grant.revocation()), (None, None), "active accounts keep theirs");
    assert!(accounts.recently_active(&bob.id).await.is_ok());

    let mut disabled = bob.clone();
    disabled.is_active = false;
    assert!(embedded.replace_user(&disabled).await.unwrap());
    // Until the next re-check, a read may still trust the cached mark (at most --account-check-secs
    // old); a write reads the store and is refused at once.
    assert!(accounts.recently_active(&bob.id).await.is_ok(), "reads: the cached mark");
    assert!(matches!(accounts.current(&bob.id).await, Err(server::auth::AccountError::Disabled)), "writes");

    accounts.recheck(&live).await;
    assert_eq!(bob_grant.revocation(), Some(Revoked::AccountDisabled));
    assert_eq!(bob_second.revocation(), Some(Revoked::AccountDisabled), "every socket of the account");
    assert!(!bob_grant.can_write());
    assert_eq!(ada_grant.revocation(), None);
    assert!(
        matches!(accounts.recently_active(&bob.id).await, Err(server::auth::AccountError::Disabled)),
        "the re-check dropped the cached mark"
    );
}

async fn stored_user(store: &storage::EmbeddedStore, username: &str) -> storage::model::User {
    let user = storage::model::User {
        id: new_id(),
        username: username.into(),
        email: format!("{username}@example.com"),
        password_hash: String::new(),
        first_name: None,
        last_name: None,
        role: UserRole::User,
        preferences: Default::default(),
        is_active: true,
        email_verified: false,
        last_login_at: None,
        created_at: 0,
        updated_at: 0,
    };
    store.create_user(&user).await.unwrap();
    user
}
