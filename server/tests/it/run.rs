//! `run` without a sandbox: every refusal over the socket (with the nonce) and over HTTP (status
//! and code), each size limit at its edge, execution reported unavailable (`/ready`, languages),
//! the session document route, and a joiner mid-run being sent the run so far. The runs
//! themselves, in real containers, are in `tests/services/run.rs`.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::chat::{member, of_type};
use support::held::HeldNode;
use support::http::{call, create_session, invite, register};
use support::run::{answer, run};
use support::{YClient, client::new_doc};
use yrs::{Text, Transact};

const WAIT: Duration = Duration::from_secs(10);

async fn refused(client: &YClient, fields: Value, nonce: &str) -> String {
    let mut fields = fields;
    fields["nonce"] = json!(nonce);
    client.send_raw(run(fields));
    let answer = answer(client, nonce).await;
    assert_eq!(answer["type"], "error", "{answer}");
    answer["code"].as_str().unwrap().to_owned()
}

/// A node with 1 KiB code and stdin caps and no Docker.
async fn node() -> HeldNode {
    HeldNode::start_with(&server::LocalHub::new(), |config| {
        config.exec.code_max_kb = 1;
        config.exec.stdin_max_kb = 1;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_on_the_socket_is_typed_and_echoes_the_nonce() {
    let node = node().await;
    let owner = register(node.addr, "owner").await;
    let viewer = register(node.addr, "viewer").await;
    let session = create_session(node.addr, &owner, json!({ "language": "python" })).await;
    invite(node.addr, &owner, &session, &viewer, "viewer").await;
    let editor = member(node.addr, &session, Some(&owner)).await;
    let watcher = member(node.addr, &session, Some(&viewer)).await;

    assert_eq!(refused(&watcher, json!({ "code": "print(1)" }), "v").await, "read_only");
    assert_eq!(refused(&editor, json!({ "code": 5 }), "m").await, "malformed_run");
    assert_eq!(refused(&editor, json!({ "code": "x", "cmd": "sh" }), "m2").await, "malformed_run");
    assert_eq!(refused(&editor, json!({ "language": "cobol" }), "l").await, "unknown_language");
    // Sizes at their edges: exactly the cap passes the size check (and meets the missing sandbox).
    let at_cap = "#".repeat(1024);
    let over = "#".repeat(1025);
    assert_eq!(refused(&editor, json!({ "code": at_cap }), "c0").await, "execution_unavailable");
    assert_eq!(refused(&editor, json!({ "code": over }), "c1").await, "code_too_long");
    assert_eq!(
        refused(&editor, json!({ "code": "1", "stdin": at_cap }), "s0").await,
        "execution_unavailable"
    );
    assert_eq!(refused(&editor, json!({ "code": "1", "stdin": over }), "s1").await, "stdin_too_long");
    // The session's language is the default; the message says why.
    editor.send_raw(run(json!({ "nonce": "u" })));
    let unavailable = answer(&editor, "u").await;
    assert_eq!(unavailable["code"], "execution_unavailable");
    assert!(unavailable["message"].as_str().unwrap().contains("--docker-host none"), "{unavailable}");
    // Nothing was queued or recorded.
    let history = node.state().store.executions(&session, None, 10).await.unwrap();
    assert!(history.is_empty(), "{history:?}");
    assert!(of_type(&watcher, "run_queued").is_empty() && of_type(&editor, "run_queued").is_empty());

    // An anonymous client of a free room has no account to count runs against.
    let anonymous = member(node.addr, "free-room", None).await;
    assert_eq!(refused(&anonymous, json!({ "language": "python" }), "a").await, "run_sign_in_required");
    let (_, metrics) = support::http_get(&format!("http://{}/metrics", node.addr)).await;
    assert!(
        metrics.contains(r#"codecrafter_executions_refused_total{code="code_too_long"} 1"#),
        "refusals are counted by code"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_refuses_with_the_same_codes_and_reports_execution_unavailable() {
    let node = node().await;
    let owner = register(node.addr, "owner").await;
    let viewer = register(node.addr, "viewer").await;
    let stranger = register(node.addr, "stranger").await;
    let session = create_session(node.addr, &owner, json!({ "language": "python" })).await;
    invite(node.addr, &owner, &session, &viewer, "viewer").await;
    let submit = |user: &support::http::User, body: Value| {
        let token = user.access.clone();
        async move { call(node.addr, "POST", "/api/execute", Some(&token), Some(&body), &[]).await }
    };
    let cases = [
        (&viewer, json!({ "sessionId": session, "code": "1" }), 403, "read_only"),
        (&stranger, json!({ "sessionId": session, "code": "1" }), 403, "forbidden"),
        (&owner, json!({ "sessionId": "0".repeat(24), "code": "1" }), 404, "not_found"),
        (&owner, json!({ "sessionId": session, "language": "cobol" }), 400, "unknown_language"),
        (&owner, json!({ "sessionId": session, "code": "#".repeat(1025) }), 413, "code_too_long"),
        (
            &owner,
            json!({ "sessionId": session, "code": "1", "stdin": "#".repeat(1025) }),
            413,
            "stdin_too_long",
        ),
        (&owner, json!({ "sessionId": session, "code": "#".repeat(1024) }), 503, "execution_unavailable"),
        (&owner, json!({ "sessionId": session, "code": "1", "extra": true }), 400, "unknown_field"),
    ];
    for (user, body, status, code) in cases {
        let reply = submit(user, body.clone()).await;
        assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (status, Some(code)), "{body}");
    }
    let no_token =
        call(node.addr, "POST", "/api/execute", None, Some(&json!({ "sessionId": session })), &[]).await;
    assert_eq!(no_token.status, 401);

    let languages = call(node.addr, "GET", "/api/execute/languages", None, None, &[]).await;
    assert_eq!(languages.status, 200);
    let languages = languages.json();
    let python =
        languages.as_array().unwrap().iter().find(|l| l["id"] == "python").expect("python is listed");
    assert_eq!((python["name"].as_str(), python["available"].as_bool()), (Some("Python"), Some(false)));
    let (status, ready) = support::http_get(&format!("http://{}/ready", node.addr)).await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        (status, ready["status"].as_str()),
        (200, Some("ready")),
        "execution does not degrade the node"
    );
    assert_eq!(ready["execution"]["status"], "unavailable", "{ready}");
    assert_eq!(ready["execution"]["backend"], "in_process");

    let unknown = format!("/api/execute/status/{}", "a".repeat(24));
    assert_eq!(call(node.addr, "GET", &unknown, Some(&owner.access), None, &[]).await.status, 404);
    let bad = call(node.addr, "GET", "/api/execute/status/..%2Fx", Some(&owner.access), None, &[]).await;
    assert_eq!(bad.status, 400);
    // A run its worker never finished (killed mid-run) reads as cancelled once past its timeout.
    let now = storage::clock::now_millis();
    let job = protocol::job::ExecutionJob {
        id: storage::model::new_id(),
        room: session.clone(),
        user_id: owner.id.clone(),
        username: "owner".to_owned(),
        language: "python".to_owned(),
        code: "1".to_owned(),
        stdin: String::new(),
        created_at: now - 600_000,
    };
    let abandoned = storage::model::ExecutionRecord {
        status: "running".to_owned(),
        started_at: Some(now - 600_000),
        ..workers::exec::queued_record(&job)
    };
    let fresh = storage::model::ExecutionRecord {
        id: storage::model::new_id(),
        created_at: now,
        started_at: Some(now),
        ..abandoned.clone()
    };
    for record in [&abandoned, &fresh] {
        node.state().store.save_execution(record).await.unwrap();
    }
    let read = |id: String| {
        let token = viewer.access.clone();
        async move {
            call(node.addr, "GET", &format!("/api/execute/status/{id}"), Some(&token), None, &[]).await.json()
        }
    };
    let stale = read(abandoned.id.clone()).await;
    assert_eq!(
        (stale["status"].as_str(), stale["error"].as_str()),
        (Some("cancelled"), Some("the worker running it stopped"))
    );
    assert_eq!(read(fresh.id.clone()).await["status"], "running");

    let history = format!("/api/execute/history/{session}");
    let page = call(node.addr, "GET", &format!("{history}?limit=1"), Some(&viewer.access), None, &[]).await;
    assert_eq!(page.status, 200);
    let page = page.json();
    assert_eq!(page["executions"][0]["jobId"], fresh.id.as_str(), "newest first");
    let older = format!("{history}?limit=1&before={}", page["next"].as_str().unwrap());
    let older = call(node.addr, "GET", &older, Some(&viewer.access), None, &[]).await.json();
    assert_eq!(older["executions"][0]["jobId"], abandoned.id.as_str());
    assert_eq!(
        (older["executions"][0]["status"].as_str(), older["next"].as_str()),
        (Some("cancelled"), None)
    );
    assert_eq!(call(node.addr, "GET", &history, Some(&stranger.access), None, &[]).await.status, 403);
    let over = format!("{history}?limit=101");
    assert_eq!(call(node.addr, "GET", &over, Some(&owner.access), None, &[]).await.status, 400);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_route_returns_the_code_a_yjs_client_typed() {
    let node = node().await;
    let owner = register(node.addr, "owner").await;
    let stranger = register(node.addr, "stranger").await;
    let session = create_session(node.addr, &owner, json!({ "language": "python" })).await;
    let path = format!("/api/sessions/{session}/document");
    let empty = call(node.addr, "GET", &path, Some(&owner.access), None, &[]).await;
    assert_eq!(empty.json(), json!({ "sessionId": session, "language": "python", "code": "" }));

    let doc = new_doc();
    doc.get_or_insert_text("code").insert(&mut doc.transact_mut(), 0, "print('héllo')\n");
    let url = format!("{}?token={}", node.ws_url(&session), owner.access);
    let _writer = YClient::connect_with_doc(&url, doc).await;
    support::eventually(WAIT, "the typed code is served", || {
        node.state().rooms.get(&session).and_then(|room| room.text("code")).is_some()
    })
    .await;
    let typed = call(node.addr, "GET", &path, Some(&owner.access), None, &[]).await;
    assert_eq!(typed.json()["code"], "print('héllo')\n");
    assert_eq!(call(node.addr, "GET", &path, Some(&stranger.access), None, &[]).await.status, 403);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_mid_run_is_sent_the_run_so_far_then_the_rest() {
    let node = node().await;
    let room = "live-run";
    let present = member(node.addr, room, None).await;
    let output = node.output();
    let started = json!({ "type": "run_started", "job": "j1", "language": "python",
        "user": { "id": "u", "username": "ann" } });
    let chunk = |seq: u64, data: &str| json!({ "type": "run_output", "job": "j1", "seq": seq, "stream": "stdout", "data": data });
    for message in [started.clone(), chunk(0, "one\n"), chunk(1, "two\n")] {
        output.send(room, &serde_json::from_value(message).unwrap()).await.unwrap();
    }
    present.wait_for("two chunks", WAIT, |c| of_type(c, "run_output").len() == 2).await;

    let late = member(node.addr, room, None).await;
    output.send(room, &serde_json::from_value(chunk(2, "three\n")).unwrap()).await.unwrap();
    late.wait_for("the third chunk", WAIT, |c| of_type(c, "run_output").len() == 3).await;
    let seen: Vec<Value> =
        late.app_messages().into_iter().filter(|m| m["type"].as_str().unwrap().starts_with("run_")).collect();
    assert_eq!(
        seen,
        [started, chunk(0, "one\n"), chunk(1, "two\n"), chunk(2, "three\n")],
        "in order, once each"
    );

    let exit = json!({ "type": "run_exit", "job": "j1", "exit_code": 0, "duration_ms": 5, "timed_out": false,
        "oom_killed": false, "output_truncated": false });
    output.send(room, &serde_json::from_value(exit).unwrap()).await.unwrap();
    late.wait_for("the exit", WAIT, |c| !of_type(c, "run_exit").is_empty()).await;
    let after = member(node.addr, room, None).await;
    after.send_raw(run(json!({ "nonce": "probe" })));
    answer(&after, "probe").await;
    assert!(
        after.app_messages().iter().all(|m| !m["type"].as_str().unwrap().starts_with("run_")),
        "a finished run is not replayed: {:?}",
        after.app_messages()
    );
    node.stop().await;
}
