//! `/api/sessions` and collaborators over real HTTP: every route, validation at the edges,
//! permissions, pagination, seats.

use crate::support;

use serde_json::json;
use support::TestServer;
use support::http::{User, call, create_session, invite, register};

async fn get(server: &TestServer, path: &str, user: &User) -> support::http::Reply {
    call(server.addr, "GET", path, Some(&user.access), None, &[]).await
}

#[tokio::test]
async fn create_validates_at_the_edges() {
    let server = TestServer::start_secure(|_| {}).await;
    let owner = register(server.addr, "owner").await;
    let post = |body: serde_json::Value| {
        let token = owner.access.clone();
        async move { call(server.addr, "POST", "/api/sessions", Some(&token), Some(&body), &[]).await }
    };
    let reply = post(json!({ "title": "  Kata  ", "language": "python" })).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let created = reply.json();
    assert_eq!(created["title"], "Kata");
    assert_eq!(created["language"], "python");
    assert_eq!(created["maxCollaborators"], 10);
    assert_eq!(created["status"], "active");
    assert_eq!(created["isPublic"], false);
    assert_eq!(created["isLocked"], false);
    assert_eq!(created["owner"], owner.id);
    assert_eq!(created["yourRole"], "owner");
    assert_eq!(created["metadata"]["totalEdits"], 0);
    assert_eq!(created["id"].as_str().unwrap().len(), 24);

    for (body, field) in [
        (json!({ "title": "" }), "title"),
        (json!({ "title": "x".repeat(101) }), "title"),
        (json!({ "title": "t", "description": "d".repeat(501) }), "description"),
        (json!({ "title": "t", "language": "cobol" }), "language"),
        (json!({ "title": "t", "maxCollaborators": 0 }), "maxCollaborators"),
        (json!({ "title": "t", "maxCollaborators": 51 }), "maxCollaborators"),
        (json!({ "description": "no title" }), "title"),
        (json!({ "title": "t", "owner": "me" }), "owner"),
    ] {
        let reply = post(body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.error_message().contains(field), "{body} should name {field}: {}", reply.body);
    }
    for body in [
        json!({ "title": "x".repeat(100), "description": "d".repeat(500), "maxCollaborators": 50 }),
        json!({ "title": "x", "maxCollaborators": 1 }),
    ] {
        assert_eq!(post(body).await.status, 201);
    }
    assert_eq!(
        call(server.addr, "POST", "/api/sessions", None, Some(&json!({"title": "t"})), &[]).await.status,
        401
    );
}

#[tokio::test]
async fn list_is_mine_newest_first_and_paginated() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let me = register(addr, "myself").await;
    let other = register(addr, "other").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(create_session(addr, &me, json!({ "title": format!("mine {i}") })).await);
        // Sessions sort by creation time in ms, ties in (random) id order: let the clock pass the
        // millisecond this one was created in, so that the next is strictly newer.
        let created_by = unix_ms();
        while unix_ms() <= created_by {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    let shared = create_session(addr, &other, json!({ "title": "shared with me" })).await;
    invite(addr, &other, &shared, &me, "editor").await;
    create_session(addr, &other, json!({ "title": "not mine" })).await;

    let page1 = get(&server, "/api/sessions?limit=3", &me).await.json();
    let titles: Vec<_> = page1["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["shared with me", "mine 2", "mine 1"]);
    assert_eq!(page1["sessions"][0]["yourRole"], "editor");
    assert_eq!(
        page1["pagination"],
        json!({ "currentPage": 1, "totalPages": 2, "totalItems": 4, "hasNext": true, "hasPrev": false })
    );
    let page2 = get(&server, "/api/sessions?limit=3&page=2", &me).await.json();
    assert_eq!(page2["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(page2["sessions"][0]["id"], mine[0].as_str());
    assert_eq!(page2["pagination"]["hasPrev"], true);
    assert_eq!(page2["pagination"]["hasNext"], false);
    for bad in
        ["/api/sessions?page=0", "/api/sessions?limit=0", "/api/sessions?limit=101", "/api/sessions?page=x"]
    {
        assert_eq!(get(&server, bad, &me).await.status, 400, "{bad}");
    }
    assert_eq!(get(&server, "/api/sessions?limit=100", &me).await.status, 200);
}

#[tokio::test]
async fn get_update_delete_follow_roles() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let admin = register(addr, "admin_c").await;
    let editor = register(addr, "editor").await;
    let stranger = register(addr, "stranger").await;
    let id = create_session(addr, &owner, json!({})).await;
    invite(addr, &owner, &id, &admin, "admin").await;
    invite(addr, &owner, &id, &editor, "editor").await;
    let path = format!("/api/sessions/{id}");

    assert_eq!(get(&server, &path, &editor).await.json()["yourRole"], "editor");
    assert_eq!(get(&server, &path, &stranger).await.status, 403);
    assert_eq!(
        get(&server, &format!("/api/sessions/{}", storage::model::new_id()), &owner).await.status,
        404
    );
    assert_eq!(get(&server, "/api/sessions/not-an-id", &owner).await.status, 404);

    let put = |user: &User, body: serde_json::Value| {
        let (token, path) = (user.access.clone(), path.clone());
        async move { call(addr, "PUT", &path, Some(&token), Some(&body), &[]).await }
    };
    assert_eq!(put(&editor, json!({ "title": "nope" })).await.status, 403);
    assert_eq!(put(&stranger, json!({ "title": "nope" })).await.status, 403);
    let reply =
        put(&admin, json!({ "title": "renamed", "isPublic": true, "status": "paused", "language": "rust" }))
            .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (reply.json()["title"].clone(), reply.json()["status"].clone()),
        (json!("renamed"), json!("paused"))
    );
    let reply = put(&owner, json!({ "maxCollaborators": 1 })).await;
    assert_eq!(reply.status, 400, "below the 2 collaborators: {}", reply.body);
    assert!(reply.error_message().contains("maxCollaborators"));
    assert_eq!(put(&owner, json!({ "maxCollaborators": 2 })).await.status, 200);
    assert_eq!(put(&owner, json!({ "status": "gone" })).await.status, 400);
    // Public now: a stranger may look (without a role) but not change.
    let seen = get(&server, &path, &stranger).await;
    assert_eq!(seen.status, 200);
    assert!(seen.json()["yourRole"].is_null());

    assert_eq!(call(addr, "DELETE", &path, Some(&admin.access), None, &[]).await.status, 403);
    assert_eq!(call(addr, "DELETE", &path, Some(&owner.access), None, &[]).await.status, 204);
    assert_eq!(get(&server, &path, &owner).await.status, 404);
    assert_eq!(call(addr, "DELETE", &path, Some(&owner.access), None, &[]).await.status, 404);
}

#[tokio::test]
async fn join_public_or_invited_within_the_seats() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let first = register(addr, "first").await;
    let second = register(addr, "second").await;
    let invited = register(addr, "invited").await;
    let public = create_session(addr, &owner, json!({ "isPublic": true, "maxCollaborators": 1 })).await;
    let private = create_session(addr, &owner, json!({})).await;
    let join = |user: &User, id: &str| {
        let (token, path) = (user.access.clone(), format!("/api/sessions/{id}/join"));
        async move { call(addr, "POST", &path, Some(&token), None, &[]).await }
    };
    let reply = join(&first, &public).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["yourRole"], "viewer");
    assert_eq!(reply.json()["collaborators"][0]["username"], "first", "a seat keeps the username");
    assert_eq!(join(&first, &public).await.status, 200, "joining twice is fine");
    let full = join(&second, &public).await;
    assert_eq!((full.status, full.error_code().as_str()), (409, "session_full"));
    assert_eq!(join(&second, &private).await.status, 403);
    invite(addr, &owner, &private, &invited, "editor").await;
    let before = get(&server, &format!("/api/sessions/{private}"), &invited).await.json();
    assert_eq!(before["collaborators"][0]["isActive"], false);
    let reply = join(&invited, &private).await;
    assert_eq!(reply.json()["collaborators"][0]["isActive"], true);
    assert_eq!(reply.json()["yourRole"], "editor");
    assert_eq!(join(&owner, &private).await.status, 200);
    assert_eq!(join(&owner, &storage::model::new_id()).await.status, 404);
}

#[tokio::test]
async fn collaborators_are_managed_by_owner_and_admins() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let admin = register(addr, "admin_c").await;
    let bob = register(addr, "bob").await;
    let carol = register(addr, "carol").await;
    let id = create_session(addr, &owner, json!({ "maxCollaborators": 3 })).await;
    let collaborators = format!("/api/sessions/{id}/collaborators");
    let add = |by: &User, body: serde_json::Value| {
        let (token, path) = (by.access.clone(), collaborators.clone());
        async move { call(addr, "POST", &path, Some(&token), Some(&body), &[]).await }
    };
    assert_eq!(add(&owner, json!({ "username": "admin_c", "role": "admin" })).await.status, 201);
    let reply = add(&admin, json!({ "email": "BOB@example.com", "role": "editor" })).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = add(&admin, json!({ "userId": carol.id, "role": "admin" })).await;
    assert_eq!(reply.status, 403, "only the owner makes admins");
    let reply = add(&admin, json!({ "userId": bob.id })).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (409, "already_member"));
    assert_eq!(add(&owner, json!({ "username": "nobody" })).await.status, 404);
    assert_eq!(add(&owner, json!({ "username": "bob", "email": "bob@example.com" })).await.status, 400);
    assert_eq!(add(&owner, json!({ "userId": carol.id, "role": "king" })).await.status, 400);
    assert_eq!(add(&bob, json!({ "userId": carol.id })).await.status, 403, "editors do not manage");
    let reply = add(&owner, json!({ "userId": carol.id })).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["collaborators"][2]["role"], "viewer", "the default role");
    let names: Vec<_> =
        reply.json()["collaborators"].as_array().unwrap().iter().map(|c| c["username"].clone()).collect();
    assert_eq!(
        names,
        [json!("admin_c"), json!("bob"), json!("carol")],
        "each invite keeps the username, however it was found"
    );
    let dave = register(addr, "dave").await;
    let full = add(&owner, json!({ "userId": dave.id })).await;
    assert_eq!((full.status, full.error_code().as_str()), (409, "session_full"));

    let member = |user: &User| format!("{collaborators}/{}", user.id);
    let reply =
        call(addr, "PUT", &member(&carol), Some(&admin.access), Some(&json!({ "role": "editor" })), &[])
            .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply =
        call(addr, "PUT", &member(&admin), Some(&admin.access), Some(&json!({ "role": "viewer" })), &[])
            .await;
    assert_eq!(reply.status, 403, "an admin's role is the owner's call");
    let reply =
        call(addr, "PUT", &member(&dave), Some(&owner.access), Some(&json!({ "role": "viewer" })), &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        call(addr, "DELETE", &member(&admin), Some(&admin.access), None, &[]).await.status,
        204,
        "leaving"
    );
    assert_eq!(call(addr, "DELETE", &member(&carol), Some(&bob.access), None, &[]).await.status, 403);
    assert_eq!(call(addr, "DELETE", &member(&carol), Some(&owner.access), None, &[]).await.status, 204);
    assert_eq!(call(addr, "DELETE", &member(&carol), Some(&owner.access), None, &[]).await.status, 404);
    let now = get(&server, &format!("/api/sessions/{id}"), &owner).await.json();
    let left: Vec<_> = now["collaborators"].as_array().unwrap().iter().map(|c| c["userId"].clone()).collect();
    assert_eq!(left, [json!(bob.id)]);

    let lock = format!("/api/sessions/{id}/lock");
    assert_eq!(call(addr, "POST", &lock, Some(&bob.access), None, &[]).await.status, 403);
    let reply = call(addr, "POST", &lock, Some(&owner.access), None, &[]).await;
    assert_eq!((reply.status, reply.json()["isLocked"].clone()), (200, json!(true)));
    assert_eq!(reply.json()["canWrite"], true, "the owner writes a locked session");
    let as_bob = get(&server, &format!("/api/sessions/{id}"), &bob).await.json();
    assert_eq!(as_bob["canWrite"], false);
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}
