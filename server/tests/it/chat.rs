//! Chat over real sockets: `chat` reaches every app client of the room (on every node) and no
//! stock client, `chat_saved` follows once the store has it, `chat_history` greets a joining app
//! client, the HTTP history pages backwards, a retried nonce is one message, and every refusal is
//! a typed error echoing the nonce.

use crate::support;

use std::time::Duration;

use protocol::Message;
use serde_json::{Value, json};
use support::chat::{answer, chat, member, of_type};
use support::held::{HeldNode, assert_no_app_message_reached};
use support::http::{call, create_session, invite, register};
use support::{TestServer, YClient};

const WAIT: Duration = Duration::from_secs(10);

fn raw(json: &str) -> Vec<u8> {
    Message::App(json).encode_to_vec()
}

async fn saved_id(client: &YClient, nonce: &str) -> String {
    let answer = answer(client, nonce).await;
    assert_eq!(answer["type"], "chat_saved", "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

async fn refused(client: &YClient, nonce: &str) -> String {
    let answer = answer(client, nonce).await;
    assert_eq!(answer["type"], "error", "{answer}");
    answer["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_the_rooms_app_clients_and_is_stored_before_chat_saved() {
    let node = HeldNode::start(&server::LocalHub::new()).await;
    let owner = register(node.addr, "owner").await;
    let editor = register(node.addr, "editor").await;
    let session = create_session(node.addr, &owner, json!({})).await;
    invite(node.addr, &owner, &session, &editor, "editor").await;
    let sender = member(node.addr, &session, Some(&owner)).await;
    let other = member(node.addr, &session, Some(&editor)).await;
    let stock = YClient::connect(&format!("{}?token={}", node.ws_url(&session), owner.access)).await;
    stock.wait_for("sync", WAIT, |c| c.shared().synced).await;
    stock.record_frames();

    sender.send_raw(chat("hello, 世界", "n-1"));
    let id = saved_id(&sender, "n-1").await;
    // Durable means in the store, now.
    let stored = node.state().store.messages(&session, None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id.as_str(), stored[0].text.as_str()), (id.as_str(), "hello, 世界"));
    assert_eq!((stored[0].user_id.as_str(), stored[0].username.as_str()), (owner.id.as_str(), "owner"));

    let sent = sender.app_messages();
    let chat_at = sent.iter().position(|m| m["type"] == "chat").expect("the sender gets its chat");
    let saved_at = sent.iter().position(|m| m["type"] == "chat_saved").unwrap();
    assert!(chat_at < saved_at, "chat before chat_saved: {sent:?}");
    let broadcast = &sent[chat_at];
    assert_eq!(broadcast["id"], id.as_str());
    assert_eq!(broadcast["room"], session.as_str());
    assert_eq!(broadcast["user"], json!({ "id": owner.id, "username": "owner" }));
    assert_eq!((broadcast["text"].as_str(), broadcast["nonce"].as_str()), (Some("hello, 世界"), Some("n-1")));
    assert_eq!(broadcast["ts"].as_i64(), Some(stored[0].created_at));

    other.wait_for("the chat", WAIT, |c| !of_type(c, "chat").is_empty()).await;
    assert_eq!(&of_type(&other, "chat")[0], broadcast);
    assert!(of_type(&other, "chat_saved").is_empty(), "chat_saved goes to the sender only");
    assert_no_app_message_reached(&stock).await;

    // Counted in the session's metadata with the write (the API shows it once its cached copy
    // of the session expires, as for every activity counter).
    let counted = node.state().store.session(&session).await.unwrap().unwrap();
    assert_eq!(counted.metadata.total_messages, 1);
    let (_, metrics) = support::http_get(&format!("http://{}/metrics", node.addr)).await;
    for family in ["codecrafter_chat_messages_total", "codecrafter_chat_writes_total"] {
        assert!(metrics.contains(&format!("\n{family} ")), "{family} in /metrics");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_join_and_over_http_in_order() {
    let node = HeldNode::start_with(&server::LocalHub::new(), |c| c.chat_messages_per_min = 0).await;
    let owner = register(node.addr, "owner").await;
    let outsider = register(node.addr, "outsider").await;
    let session = create_session(node.addr, &owner, json!({})).await;
    let sender = member(node.addr, &session, Some(&owner)).await;
    for n in 0..105 {
        sender.send_raw(chat(&format!("m{n}"), &format!("n{n}")));
    }
    let mut ids = Vec::new();
    for n in 0..105 {
        ids.push(saved_id(&sender, &format!("n{n}")).await);
    }
    let texts = |messages: &Value| -> Vec<String> {
        messages.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
    };
    let expected =
        |range: std::ops::Range<usize>| -> Vec<String> { range.map(|n| format!("m{n}")).collect() };

    let late = member(node.addr, &session, Some(&owner)).await;
    late.wait_for("the history", WAIT, |c| !of_type(c, "chat_history").is_empty()).await;
    let history = &of_type(&late, "chat_history")[0]["messages"];
    assert_eq!(texts(history), expected(5..105), "the last 100, oldest first");
    assert_eq!(history[99]["id"], ids[104].as_str());

    // The cache lost the list (a restart): the history comes from the store, and refills it.
    let key = format!("room:{session}:messages");
    node.state().cache.delete(&key).await.unwrap();
    let after_restart = member(node.addr, &session, Some(&owner)).await;
    after_restart.wait_for("the history", WAIT, |c| !of_type(c, "chat_history").is_empty()).await;
    let history = &of_type(&after_restart, "chat_history")[0]["messages"];
    assert_eq!(texts(history), expected(5..105), "from the store, the same");
    assert_eq!(node.state().cache.list_range(&key).await.unwrap().len(), 100, "the list is refilled");

    let get = |query: String, token: Option<String>| {
        let path = format!("/api/sessions/{session}/messages{query}");
        async move { call(node.addr, "GET", &path, token.as_deref(), None, &[]).await }
    };
    let token = Some(owner.access.clone());
    let first = get("?limit=50".into(), token.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(texts(&first.json()["messages"]), expected(55..105));
    assert_eq!(first.json()["next"], ids[55].as_str());
    let second = get(format!("?limit=50&before={}", ids[55]), token.clone()).await.json();
    assert_eq!(texts(&second["messages"]), expected(5..55));
    assert_eq!(second["next"], ids[5].as_str());
    let middle = get(format!("?limit=10&before={}", ids[60]), token.clone()).await.json();
    assert_eq!(texts(&middle["messages"]), expected(50..60), "a page from the middle of the recent list");
    assert_eq!(middle["next"], ids[50].as_str());
    let last = get(format!("?before={}", ids[5]), token.clone()).await.json();
    assert_eq!(texts(&last["messages"]), expected(0..5), "the default limit covers the rest");
    assert_eq!(last["next"], Value::Null, "no older page");
    assert_eq!(last["messages"][0]["user"]["username"], "owner");

    for (query, status, code) in [
        ("?limit=0", 400, "invalid_query"),
        ("?limit=101", 400, "invalid_query"),
        ("?before=nope", 400, "invalid_query"),
        ("?before=000000000000000000000000", 400, "invalid_query"),
    ] {
        let reply = get(query.into(), token.clone()).await;
        assert_eq!((reply.status, reply.error_code().as_str()), (status, code), "{query}: {}", reply.body);
    }
    assert_eq!(get(String::new(), Some(outsider.access.clone())).await.status, 403, "members only");
    assert_eq!(get(String::new(), None).await.status, 401);
    let missing = format!("/api/sessions/{}/messages", storage::model::new_id());
    assert_eq!(call(node.addr, "GET", &missing, Some(&owner.access), None, &[]).await.status, 404);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_nonce_twice_is_one_message_answered_twice_with_its_id() {
    let node = HeldNode::start(&server::LocalHub::new()).await;
    let owner = register(node.addr, "owner").await;
    let session = create_session(node.addr, &owner, json!({})).await;
    let sender = member(node.addr, &session, Some(&owner)).await;
    let other = member(node.addr, &session, Some(&owner)).await;

    sender.send_raw(chat("once", "retry-me"));
    let first = saved_id(&sender, "retry-me").await;
    // The client reconnects and sends it again.
    let again = member(node.addr, &session, Some(&owner)).await;
    again.send_raw(chat("once", "retry-me"));
    assert_eq!(saved_id(&again, "retry-me").await, first, "the original id");
    // A sentinel after the retry: once it arrives, a second broadcast would have too.
    again.send_raw(chat("sentinel", "s"));
    other
        .wait_for("the sentinel", WAIT, |c| of_type(c, "chat").iter().any(|m| m["text"] == "sentinel"))
        .await;
    let texts: Vec<Value> = of_type(&other, "chat").into_iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("once"), json!("sentinel")], "the retry is not broadcast again");
    saved_id(&again, "s").await;
    assert_eq!(node.state().store.messages(&session, None, 10).await.unwrap().len(), 2, "one stored copy");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_at_their_edges_and_refusals_echo_the_nonce() {
    let server = TestServer::start(|c| {
        c.chat_max_chars = 5;
        c.chat_messages_per_min = 3;
    })
    .await;
    let user = register(server.addr, "ann").await;
    let session = create_session(server.addr, &user, json!({})).await;
    let client = member(server.addr, &session, Some(&user)).await;

    client.send_raw(chat("héllo", "at-limit"));
    saved_id(&client, "at-limit").await;
    client.send_raw(chat("héllo!", "past-limit"));
    assert_eq!(refused(&client, "past-limit").await, "chat_too_long");
    client.send_raw(chat(" \n\t", "blank"));
    assert_eq!(refused(&client, "blank").await, "chat_empty");
    // Refused texts do not count against the rate: two more fit in the minute, the fourth does not.
    for nonce in ["2", "3"] {
        client.send_raw(chat("x", nonce));
        saved_id(&client, nonce).await;
    }
    client.send_raw(chat("x", "4"));
    assert_eq!(refused(&client, "4").await, "chat_rate_limited");
    // Per user, not per room or connection.
    let elsewhere = create_session(server.addr, &user, json!({})).await;
    let second = member(server.addr, &elsewhere, Some(&user)).await;
    second.send_raw(chat("x", "5"));
    assert_eq!(refused(&second, "5").await, "chat_rate_limited");
    assert!(!client.shared().ended, "a refusal keeps the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_may_chat_and_a_locked_session_keeps_its_chat_open() {
    let server = TestServer::start(|_| {}).await;
    let owner = register(server.addr, "owner").await;
    let viewer = register(server.addr, "viewer").await;
    let session = create_session(server.addr, &owner, json!({})).await;
    invite(server.addr, &owner, &session, &viewer, "viewer").await;
    let lock =
        call(server.addr, "POST", &format!("/api/sessions/{session}/lock"), Some(&owner.access), None, &[])
            .await;
    assert_eq!(lock.status, 200, "{}", lock.body);
    let client = member(server.addr, &session, Some(&viewer)).await;
    client.send_raw(chat("read-only, but talking", "v"));
    saved_id(&client, "v").await;
    assert_eq!(of_type(&client, "chat")[0]["user"]["username"], "viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_anonymous_chat_is_refused_with_a_typed_error() {
    let server = TestServer::start(|_| {}).await;
    let user = register(server.addr, "ann").await;
    let client = member(server.addr, "free-room", Some(&user)).await;
    for (json, nonce, code) in [
        (r#"{"type":"chat","nonce":"a"}"#, Some("a"), "malformed_chat"),
        (r#"{"type":"chat","text":5,"nonce":"b"}"#, Some("b"), "malformed_chat"),
        (r#"{"type":"chat","text":null,"nonce":"c"}"#, Some("c"), "malformed_chat"),
        (r#"{"type":"chat","text":"hi","nonce":7}"#, None, "malformed_app_message"),
    ] {
        client.send_raw(raw(json));
        let expected = nonce.map(|n| n.to_owned());
        client
            .wait_for(json, WAIT, |c| {
                c.app_messages()
                    .iter()
                    .any(|m| m["code"] == code && m["nonce"].as_str().map(str::to_owned) == expected)
            })
            .await;
    }
    let long = "n".repeat(65);
    client.send_raw(chat("hi", &long));
    client
        .wait_for("the long nonce refused", WAIT, |c| {
            c.app_messages().iter().any(|m| {
                m["code"] == "malformed_app_message" && m["message"].as_str().unwrap().contains("nonce")
            })
        })
        .await;
    assert!(of_type(&client, "chat").is_empty(), "nothing malformed was broadcast");

    // A signed-in user may chat in a free room; an anonymous client has no name to chat under.
    client.send_raw(chat("free", "ok"));
    saved_id(&client, "ok").await;
    let anonymous = member(server.addr, "free-room", None).await;
    anonymous.send_raw(chat("who am I", "anon"));
    assert_eq!(refused(&anonymous, "anon").await, "chat_sign_in_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_on_one_node_reaches_app_clients_on_another() {
    let hub = server::LocalHub::new();
    let here = TestServer::start_node(&hub).await;
    let there = TestServer::start_node(&hub).await;
    // Nodes of one hub here have their own stores: the sender is a user of its node, in a free
    // room; the listener on the other node is anonymous (anyone may read a free room's chat).
    let user = register(here.addr, "ann").await;
    let listener = member(there.addr, "shared-room", None).await;
    let sender = member(here.addr, "shared-room", Some(&user)).await;
    sender.send_raw(chat("across nodes", "x"));
    let id = saved_id(&sender, "x").await;
    listener.wait_for("the chat", WAIT, |c| !of_type(c, "chat").is_empty()).await;
    let received = &of_type(&listener, "chat")[0];
    assert_eq!(
        (received["id"].as_str(), received["text"].as_str()),
        (Some(id.as_str()), Some("across nodes"))
    );
}
