//! The socket enforces accounts and roles, with real clients over real sockets: tokens (URL or
//! auth message), 4401/4403/4404, viewers and locked sessions read-only (permission denied, never
//! applied), live revocation within 1 s, anonymous free rooms only behind the flag.

use crate::support;

use std::time::{Duration, Instant};

use protocol::{AuthMessage, Message};
use serde_json::json;
use support::http::{call, create_session, invite, register};
use support::{TestServer, YClient};
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(5);

fn url(server: &TestServer, session: &str, token: &str) -> String {
    format!("{}?token={token}", server.ws_url(session))
}

async fn edit(client: &YClient, text: &str) {
    let t = client.doc.get_or_insert_text("t");
    let mut txn = client.doc.transact_mut();
    let end = t.len(&txn);
    t.insert(&mut txn, end, text);
}

async fn closed_with(client: &YClient) -> u16 {
    client.wait_closed(WAIT).await.0
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let server = TestServer::start_secure(|_| {}).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;

    let none = YClient::connect(&server.ws_url(&session)).await;
    let (code, reason) = none.wait_closed(WAIT).await;
    assert_eq!(code, 4401, "{reason}");

    let bad = YClient::connect(&url(&server, &session, "garbage")).await;
    assert_eq!(bad.wait_closed(WAIT).await, (4401, "invalid token".into()));

    let signer = server.token_signer();
    let mut claims = signer.verify(&owner.access).unwrap();
    claims.exp = claims.iat - 100;
    claims.iat -= 1000;
    let expired = YClient::connect(&url(&server, &session, &signer.sign(&claims))).await;
    assert_eq!(expired.wait_closed(WAIT).await, (4401, "token expired".into()));

    let fresh = signer.verify(&owner.access).unwrap();
    let forged = server::auth::AccessTokens::new(&[1; 32], Duration::from_secs(60)).sign(&fresh);
    let forged = YClient::connect(&url(&server, &session, &forged)).await;
    assert_eq!(closed_with(&forged).await, 4401);

    let missing = YClient::connect(&url(&server, &storage::model::new_id(), &owner.access)).await;
    assert_eq!(missing.wait_closed(WAIT).await, (4404, "session not found".into()));
    let free_room = YClient::connect(&url(&server, "just-a-room", &owner.access)).await;
    assert_eq!(closed_with(&free_room).await, 4404, "no free rooms without --allow-anonymous");

    let stranger = register(server.addr, "stranger").await;
    let refused = YClient::connect(&url(&server, &session, &stranger.access)).await;
    assert_eq!(refused.wait_closed(WAIT).await, (4403, "no access to this session".into()));

    let ok = YClient::connect(&url(&server, &session, &owner.access)).await;
    edit(&ok, "hello").await;
    ok.wait_for("synced", WAIT, |c| c.shared().synced).await;
    assert!(ok.shared().closed.is_none());
}

#[tokio::test]
async fn token_in_an_auth_message_works_and_what_follows_it_is_handled() {
    let server = TestServer::start_secure(|_| {}).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    let writer = YClient::connect(&url(&server, &session, &owner.access)).await;
    edit(&writer, "from the url client").await;

    // The client's own step 1 goes out first, so prepend the token in a frame of its own... and
    // also test the token sharing a frame with a sync step 1.
    let late = YClient::connect_with_first_frame(&server.ws_url(&session), |step1| {
        let mut frame = Message::Auth(AuthMessage::Token { token: &owner.access }).encode_to_vec();
        frame.extend_from_slice(step1);
        frame
    })
    .await;
    late.wait_for("document via auth-message client", WAIT, |c| c.text("t") == "from the url client").await;
    edit(&late, "!").await;
    writer.wait_for("edit from auth-message client", WAIT, |c| c.text("t") == "from the url client!").await;
}

#[tokio::test]
async fn viewer_reads_but_cannot_write_and_its_cursor_is_relayed() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let viewer = register(addr, "viewer").await;
    let session = create_session(addr, &owner, json!({})).await;
    invite(addr, &owner, &session, &viewer, "viewer").await;

    let owner_client = YClient::connect(&url(&server, &session, &owner.access)).await;
    edit(&owner_client, "owner text").await;
    let viewer_client = YClient::connect(&url(&server, &session, &viewer.access)).await;
    viewer_client.wait_for("viewer sees the document", WAIT, |c| c.text("t") == "owner text").await;

    edit(&viewer_client, " + viewer text").await;
    viewer_client.wait_for("permission denied", WAIT, |c| !c.shared().denied.is_empty()).await;
    assert!(viewer_client.shared().denied[0].contains("read-only"));
    assert!(viewer_client.shared().closed.is_none(), "a viewer is told, not disconnected");

    viewer_client.set_awareness(1, r#"{"user":"viewer","cursor":3}"#);
    let viewer_id = viewer_client.client_id();
    owner_client.wait_for("viewer cursor", WAIT, |c| c.shared().awareness.contains_key(&viewer_id)).await;
    // The owner's next edit arrives; the viewer's never did.
    edit(&owner_client, "!").await;
    let third = YClient::connect(&url(&server, &session, &owner.access)).await;
    third.wait_for("doc", WAIT, |c| c.text("t") == "owner text!").await;
    assert_eq!(owner_client.text("t"), "owner text!");
}

#[tokio::test]
async fn locked_session_is_read_only_except_for_its_owner_live() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let editor = register(addr, "editor").await;
    let session = create_session(addr, &owner, json!({})).await;
    invite(addr, &owner, &session, &editor, "editor").await;
    let owner_client = YClient::connect(&url(&server, &session, &owner.access)).await;
    let editor_client = YClient::connect(&url(&server, &session, &editor.access)).await;
    edit(&editor_client, "a").await;
    owner_client.wait_for("editor writes", WAIT, |c| c.text("t") == "a").await;

    let reply =
        call(addr, "POST", &format!("/api/sessions/{session}/lock"), Some(&owner.access), None, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["isLocked"], true);
    edit(&editor_client, "b").await;
    editor_client.wait_for("refused while locked", WAIT, |c| !c.shared().denied.is_empty()).await;
    edit(&owner_client, "c").await;
    let check = YClient::connect(&url(&server, &session, &owner.access)).await;
    check.wait_for("owner still writes", WAIT, |c| c.text("t").ends_with('c')).await;
    assert_eq!(check.text("t"), "ac", "the editor's locked-time edit was never applied");

    // A new editor connection to the locked session is read-only from the start.
    let late = YClient::connect(&url(&server, &session, &editor.access)).await;
    late.wait_for("synced", WAIT, |c| c.text("t") == "ac").await;
    edit(&late, "x").await;
    late.wait_for("refused", WAIT, |c| !c.shared().denied.is_empty()).await;

    let reply =
        call(addr, "POST", &format!("/api/sessions/{session}/unlock"), Some(&owner.access), None, &[]).await;
    assert_eq!(reply.status, 200);
    let unlocked = YClient::connect(&url(&server, &session, &editor.access)).await;
    unlocked.wait_for("synced", WAIT, |c| c.text("t") == "ac").await;
    edit(&unlocked, "d").await;
    owner_client.wait_for("editor writes again", WAIT, |c| c.text("t").ends_with('d')).await;
}

#[tokio::test]
async fn removed_collaborator_is_cut_off_within_a_second_and_lowered_one_made_read_only() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "owner").await;
    let gone = register(addr, "gone").await;
    let lowered = register(addr, "lowered").await;
    let session = create_session(addr, &owner, json!({})).await;
    invite(addr, &owner, &session, &gone, "editor").await;
    invite(addr, &owner, &session, &lowered, "editor").await;
    let owner_client = YClient::connect(&url(&server, &session, &owner.access)).await;
    let gone_client = YClient::connect(&url(&server, &session, &gone.access)).await;
    let lowered_client = YClient::connect(&url(&server, &session, &lowered.access)).await;
    for client in [&gone_client, &lowered_client] {
        client.wait_for("connected", WAIT, |c| c.shared().synced || !c.shared().frames.is_empty()).await;
    }

    let started = Instant::now();
    let path = format!("/api/sessions/{session}/collaborators/{}", gone.id);
    assert_eq!(call(addr, "DELETE", &path, Some(&owner.access), None, &[]).await.status, 204);
    let (code, reason) = gone_client.wait_closed(Duration::from_secs(1)).await;
    assert_eq!((code, reason.as_str()), (4403, "access to this session was revoked"));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let again = YClient::connect(&url(&server, &session, &gone.access)).await;
    assert_eq!(closed_with(&again).await, 4403, "and cannot come back");

    let path = format!("/api/sessions/{session}/collaborators/{}", lowered.id);
    let reply = call(addr, "PUT", &path, Some(&owner.access), Some(&json!({ "role": "viewer" })), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    edit(&lowered_client, "sneaky").await;
    lowered_client
        .wait_for("denied after downgrade", Duration::from_secs(1), |c| !c.shared().denied.is_empty())
        .await;
    assert_eq!(owner_client.text("t"), "");
    assert!(lowered_client.shared().closed.is_none());
}

#[tokio::test]
async fn deleting_a_session_closes_its_sockets_and_drops_its_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    config.allow_anonymous = false;
    config.persist_debounce_ms = 10;
    let server = TestServer::start_with(config).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    let client = YClient::connect(&url(&server, &session, &owner.access)).await;
    edit(&client, "doomed").await;
    client.wait_for("synced", WAIT, |c| c.shared().synced).await;
    let reply =
        call(server.addr, "DELETE", &format!("/api/sessions/{session}"), Some(&owner.access), None, &[])
            .await;
    assert_eq!(reply.status, 204);
    assert_eq!(client.wait_closed(WAIT).await, (4404, "session deleted".into()));
    let after = YClient::connect(&url(&server, &session, &owner.access)).await;
    assert_eq!(closed_with(&after).await, 4404);
    drop((client, after));
    server.stop().await.unwrap();
    use storage::SnapshotStore;
    let store = storage::EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.load_snapshot(&session).await.unwrap(), None, "its document is gone from the store");
}

#[tokio::test]
async fn edits_are_counted_in_the_session_metadata() {
    let server = TestServer::start_secure(|config| config.persist_debounce_ms = 20).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    let path = format!("/api/sessions/{session}");
    let before = call(server.addr, "GET", &path, Some(&owner.access), None, &[]).await.json();
    let client = YClient::connect(&url(&server, &session, &owner.access)).await;
    for word in ["one ", "two ", "three"] {
        edit(&client, word).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let now = call(server.addr, "GET", &path, Some(&owner.access), None, &[]).await.json();
        if now["metadata"]["totalEdits"] == 3 {
            assert!(now["metadata"]["lastActivity"].as_str() >= before["metadata"]["lastActivity"].as_str());
            break;
        }
        assert!(Instant::now() < deadline, "edits never counted: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn anonymous_free_rooms_only_behind_the_flag() {
    let server = TestServer::start(|config| config.allow_anonymous = true).await;
    let owner = register(server.addr, "owner").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    let a = server.client("free-room").await;
    let b = server.client("free-room").await;
    edit(&a, "anon").await;
    b.wait_for("anonymous edit", WAIT, |c| c.text("t") == "anon").await;
    let anon_on_session = server.client(&session).await;
    assert_eq!(closed_with(&anon_on_session).await, 4401, "sessions always need a token");
    let bad = YClient::connect(&url(&server, "free-room", "garbage")).await;
    assert_eq!(closed_with(&bad).await, 4401, "a token given is always checked");
}

#[tokio::test]
async fn connection_attempts_are_throttled_per_ip() {
    let server = TestServer::start(|config| config.ws_connects_per_min = 3).await;
    for _ in 0..3 {
        let (_ws, _) = tokio_tungstenite::connect_async(server.ws_url("room")).await.expect("within budget");
    }
    let error = tokio_tungstenite::connect_async(server.ws_url("room")).await.expect_err("throttled");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected HTTP 429, got {other}"),
    }
}
