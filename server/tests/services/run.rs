//! Runs in real containers (the Docker daemon and runner images `scripts/services.sh` provides),
//! through the server as users reach it: the embedded mode (this process's sandbox), and the
//! scaled-out stack (a `codecrafter-worker` consuming RabbitMQ's `execution_jobs`, two server
//! nodes on Redis) where a run started on one node streams to the clients of another.
//!
//! Also end to end: hostile programs running side by side while another room stays responsive,
//! and one user submitting 20 runs at once.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::chat::{member, of_type};
use support::held::HeldNode;
use support::http::{User, call, create_session, invite, register};
use support::run::{exit_of, messages_of, output_of, start};
use support::{YClient, client::new_doc};
use yrs::{Text, Transact};

const RUN_WAIT: Duration = Duration::from_secs(60);

/// An embedded node running programs in the test daemon, with `tweak` on top.
async fn node_with(tweak: impl FnOnce(&mut server::Config)) -> HeldNode {
    let node = HeldNode::start_with(&server::LocalHub::new(), |config| {
        config.exec.docker_host = support::docker_host();
        config.exec.owner = Some(format!("server-test-{}-{}", std::process::id(), rand::random::<u32>()));
        config.exec.timeout_ms = 5_000;
        tweak(config);
    })
    .await;
    wait_for_language(node.addr, "python").await;
    node
}

/// Waits until `language` can run on the server at `addr` (its runners probed their images).
async fn wait_for_language(addr: std::net::SocketAddr, language: &str) {
    let deadline = Instant::now() + RUN_WAIT;
    loop {
        let languages: Value = call(addr, "GET", "/api/execute/languages", None, None, &[]).await.json();
        let listed = languages.as_array().unwrap().iter().find(|l| l["id"] == language).cloned().unwrap();
        if listed["available"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "{language} never became available: {languages}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the job's status until it is final (the result is stored just after `run_exit` is sent).
async fn finished(addr: std::net::SocketAddr, token: &str, job: &str) -> Value {
    let path = format!("/api/execute/status/{job}");
    let deadline = Instant::now() + RUN_WAIT;
    loop {
        let status = call(addr, "GET", &path, Some(token), None, &[]).await.json();
        if !["queued", "running"].contains(&status["status"].as_str().unwrap()) {
            return status;
        }
        assert!(Instant::now() < deadline, "{job} never finished: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session_with_two_members(node: &HeldNode, language: &str) -> (String, User, YClient, YClient) {
    let owner = register(node.addr, "owner").await;
    let editor = register(node.addr, "editor").await;
    let session = create_session(node.addr, &owner, json!({ "language": language })).await;
    invite(node.addr, &owner, &session, &editor, "editor").await;
    let a = member(node.addr, &session, Some(&owner)).await;
    let b = member(node.addr, &session, Some(&editor)).await;
    (session, owner, a, b)
}

const SLOW_LINES: &str =
    "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.6)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_to_everyone_in_the_room_as_it_is_produced_and_is_stored() {
    let node = node_with(|_| {}).await;
    let (session, owner, a, b) = session_with_two_members(&node, "python").await;
    let job = start(&a, json!({ "code": SLOW_LINES }), "r1").await;

    // The first line reaches the other member while the program still runs (it sleeps 1.2 s more).
    b.wait_for("the first line", RUN_WAIT, |c| !output_of(c, &job, "stdout").is_empty()).await;
    assert!(
        messages_of(&b, &job).iter().all(|m| m["type"] != "run_exit"),
        "output arrives before the exit, not after it"
    );
    let exit = exit_of(&b, &job, RUN_WAIT).await;
    assert_eq!((exit["exit_code"].as_i64(), exit["timed_out"].as_bool()), (Some(0), Some(false)), "{exit}");
    for client in [&a, &b] {
        let seen = messages_of(client, &job);
        assert_eq!(seen[0]["type"], "run_started", "{seen:?}");
        assert_eq!(seen[0]["user"], json!({ "id": owner.id, "username": "owner" }));
        assert_eq!(seen[0]["language"], "python");
        assert_eq!(seen.last().unwrap()["type"], "run_exit");
        assert_eq!(output_of(client, &job, "stdout"), "line 0\nline 1\nline 2\n");
    }

    let status = finished(node.addr, &owner.access, &job).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(
        (status["exitCode"].as_i64(), status["stdout"].as_str()),
        (Some(0), Some("line 0\nline 1\nline 2\n"))
    );
    assert!(status["durationMs"].as_u64().unwrap() >= 1_200, "{status}");
    assert!(status["startedAt"].is_string() && status["finishedAt"].is_string());
    let history =
        call(node.addr, "GET", &format!("/api/execute/history/{session}"), Some(&owner.access), None, &[])
            .await;
    assert_eq!(history.json()["executions"][0]["jobId"], job.as_str());
    let stored = node.state().store.session(&session).await.unwrap().unwrap();
    assert_eq!(stored.metadata.total_executions, 1);
    assert!(stored.metadata.average_execution_time >= 1_200.0, "{:?}", stored.metadata);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_mid_run_sees_the_output_so_far() {
    let node = node_with(|_| {}).await;
    let (session, owner, a, _b) = session_with_two_members(&node, "python").await;
    let job = start(&a, json!({ "code": SLOW_LINES }), "r").await;
    a.wait_for("two lines", RUN_WAIT, |c| output_of(c, &job, "stdout").matches('\n').count() >= 2).await;
    let late = member(node.addr, &session, Some(&owner)).await;
    exit_of(&late, &job, RUN_WAIT).await;
    assert_eq!(messages_of(&late, &job)[0]["type"], "run_started");
    assert_eq!(output_of(&late, &job, "stdout"), "line 0\nline 1\nline 2\n", "the start, then the rest");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_code_stdin_and_every_core_language_run_over_http() {
    let node = node_with(|_| {}).await;
    let owner = register(node.addr, "owner").await;
    let session = create_session(node.addr, &owner, json!({ "language": "python" })).await;
    // No `code`: what the room's document holds runs.
    let doc = new_doc();
    doc.get_or_insert_text("code").insert(&mut doc.transact_mut(), 0, "print(input()[::-1])\n");
    let _writer =
        YClient::connect_with_doc(&format!("{}?token={}", node.ws_url(&session), owner.access), doc).await;
    support::eventually(RUN_WAIT, "the code in the room", || {
        node.state().rooms.get(&session).and_then(|room| room.text("code")).is_some()
    })
    .await;
    let programs = [
        (None, None, "olleh\n"),
        (
            Some("javascript"),
            Some("console.log(require('fs').readFileSync(0, 'utf8').trim().toUpperCase())"),
            "HELLO\n",
        ),
        (
            Some("c"),
            Some("#include <stdio.h>\nint main(){char s[16];scanf(\"%15s\",s);printf(\"c:%s\\n\",s);}"),
            "c:hello\n",
        ),
        (
            Some("cpp"),
            Some(
                "#include <iostream>\nint main(){std::string s;std::cin>>s;std::cout<<\"cpp:\"<<s<<std::endl;}",
            ),
            "cpp:hello\n",
        ),
    ];
    for (language, code, expected) in programs {
        let body = json!({ "sessionId": session, "language": language, "code": code, "stdin": "hello\n" });
        let submitted = call(node.addr, "POST", "/api/execute", Some(&owner.access), Some(&body), &[]).await;
        assert_eq!(submitted.status, 202, "{}", submitted.body);
        assert_eq!(submitted.json()["status"], "queued");
        let job = submitted.json()["jobId"].as_str().unwrap().to_owned();
        let finished = finished(node.addr, &owner.access, &job).await;
        assert_eq!(finished["status"], "completed", "{language:?}: {finished}");
        assert_eq!(finished["stdout"], expected, "{language:?}: {finished}");
    }
    let languages = call(node.addr, "GET", "/api/execute/languages", None, None, &[]).await.json();
    for id in ["python", "javascript", "c", "cpp"] {
        let listed = languages.as_array().unwrap().iter().find(|l| l["id"] == id).unwrap();
        assert_eq!(listed["available"], true, "{listed}");
        assert!(listed["version"].as_str().is_some_and(|v| !v.is_empty()), "{listed}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_are_contained_while_another_room_stays_responsive() {
    let node = node_with(|config| {
        config.exec.timeout_ms = 3_000;
        config.exec.output_max_kb = 64;
        config.exec.concurrency = 4;
        config.exec.runs_per_min = 0;
    })
    .await;
    let (_session, _owner, a, _b) = session_with_two_members(&node, "python").await;
    let hostile = [
        ("fork bomb", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass\n"),
        ("memory hog", "x = []\nwhile True: x.append(bytearray(16 << 20))\n"),
        ("output flood", "while True: print('x' * 1000)\n"),
        ("closed stdout", "import os, time\nos.close(1)\ntime.sleep(60)\n"),
    ];
    let jobs: Vec<(&str, String)> = {
        let mut jobs = Vec::new();
        for (i, (name, code)) in hostile.iter().enumerate() {
            jobs.push((*name, start(&a, json!({ "code": code }), &format!("h{i}")).await));
        }
        jobs
    };
    // Meanwhile, edits in another room round-trip promptly.
    let other_a = YClient::connect(&node.ws_url("calm-room")).await;
    let other_b = YClient::connect(&node.ws_url("calm-room")).await;
    for client in [&other_a, &other_b] {
        client.wait_for("sync", Duration::from_secs(10), |c| c.shared().synced).await;
    }
    for i in 0..5 {
        let sent = Instant::now();
        let text = other_a.doc.get_or_insert_text("text");
        let end = text.len(&other_a.doc.transact());
        text.insert(&mut other_a.doc.transact_mut(), end, &format!("edit {i};"));
        other_b
            .wait_for("the edit", Duration::from_secs(10), |c| c.text("text").contains(&format!("edit {i};")))
            .await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "an edit took {:?} during hostile runs",
            sent.elapsed()
        );
    }
    let mut exits = Vec::new();
    for (name, job) in &jobs {
        exits.push((*name, exit_of(&a, job, RUN_WAIT).await));
    }
    let exit = |name: &str| exits.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(exit("memory hog")["oom_killed"], true, "{}", exit("memory hog"));
    assert_eq!(exit("output flood")["output_truncated"], true, "{}", exit("output flood"));
    assert!(output_of(&a, &jobs[2].1, "stdout").len() <= 64 * 1024, "nothing past the cap is sent");
    assert_eq!(exit("closed stdout")["timed_out"], true, "{}", exit("closed stdout"));
    let fork = exit("fork bomb");
    assert!(fork["timed_out"] == true || fork["exit_code"].as_i64() != Some(0), "{fork}");
    // The server is still whole: a normal run afterwards works.
    let job = start(&a, json!({ "code": "print('still here')" }), "after").await;
    exit_of(&a, &job, RUN_WAIT).await;
    assert_eq!(output_of(&a, &job, "stdout"), "still here\n");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_runs_at_once_from_one_user_meet_the_rate_the_queue_and_the_concurrency_cap() {
    let node = node_with(|config| {
        config.exec.runs_per_min = 10;
        config.exec.concurrency = 2;
        config.exec.queue_max = 64;
    })
    .await;
    let (_session, _owner, a, _b) = session_with_two_members(&node, "python").await;
    for i in 0..20 {
        a.send_raw(support::run::run(json!({ "code": format!("print({i})"), "nonce": format!("n{i}") })));
    }
    let mut queued = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        let answer = support::run::answer(&a, &format!("n{i}")).await;
        match answer["type"].as_str() {
            Some("run_queued") => queued.push((i, answer["job"].as_str().unwrap().to_owned())),
            _ => {
                assert_eq!(answer["code"], "too_many_runs", "{answer}");
                refused += 1;
            }
        }
    }
    assert_eq!((queued.len(), refused), (10, 10), "exactly the user's 10 runs per minute are taken");
    for (i, job) in &queued {
        exit_of(&a, job, RUN_WAIT).await;
        assert_eq!(output_of(&a, job, "stdout"), format!("{i}\n"), "each run its own output");
    }
    // Never more than 2 at once: replaying the room's run_started/run_exit order.
    let mut running = 0_i32;
    let mut most = 0;
    for message in a.app_messages() {
        match message["type"].as_str() {
            Some("run_started") => running += 1,
            Some("run_exit") => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert!((1..=2).contains(&most), "at most the concurrency cap ran at once: {most}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_length_answers_429_when_full() {
    let node = node_with(|config| {
        config.exec.concurrency = 1;
        config.exec.queue_max = 2;
        config.exec.runs_per_min = 0;
    })
    .await;
    let owner = register(node.addr, "owner").await;
    let session = create_session(node.addr, &owner, json!({ "language": "python" })).await;
    let body = json!({ "sessionId": session, "code": "import time; time.sleep(2)" });
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = call(node.addr, "POST", "/api/execute", Some(&owner.access), Some(&body), &[]).await;
        statuses.push(reply.status);
        if reply.status == 429 {
            assert_eq!(reply.json()["error"]["code"], "too_many_runs");
            assert!(reply.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("retry-after")));
        }
    }
    // One running (taken off the queue), two waiting: the fourth and fifth are refused.
    assert_eq!(statuses[..3], [202, 202, 202], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    node.stop().await;
}

/// The scaled-out path: RabbitMQ, a worker with Docker, Redis, two server nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_on_one_node_streams_to_the_clients_of_another_through_a_worker() {
    use support::processes::{Node, OwnRedis};
    use support::stack::{OwnMongo, OwnRabbit, Worker};
    let (rabbit, mongo) = tokio::join!(OwnRabbit::start(), OwnMongo::start());
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = "run-test-secret-of-at-least-32-bytes-long";
    let owner_id = format!("worker-test-{}-{}", std::process::id(), rand::random::<u32>());
    let env = [
        ("AMQP_URL", rabbit.url()),
        ("MONGO_URL", mongo.url()),
        ("MONGO_DB", format!("run_{}", std::process::id())),
        ("REDIS_URL", redis.url()),
        ("JWT_SECRET", secret.to_owned()),
    ];
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut worker_env = borrowed.clone();
    let docker = support::docker_host();
    worker_env.push(("DOCKER_HOST", &docker));
    worker_env.push(("CODECRAFTER_EXEC_OWNER", &owner_id));
    let _worker = Worker::start(&worker_env).await;
    let args = ["--rate-limit-requests", "0"];
    let one = Node::start(&dir.path().join("one"), &borrowed, &args).await;
    let two = Node::start(&dir.path().join("two"), &borrowed, &args).await;
    let (one_addr, two_addr) = (one.addr.parse().unwrap(), two.addr.parse().unwrap());
    let owner = register(one_addr, "owner").await;
    let watcher = register(one_addr, "watcher").await;
    let session = create_session(one_addr, &owner, json!({ "language": "python" })).await;
    invite(one_addr, &owner, &session, &watcher, "viewer").await;

    // The languages come from the worker's heartbeat in Redis.
    wait_for_language(two_addr, "python").await;
    let runner = member(one_addr, &session, Some(&owner)).await;
    let viewer = member(two_addr, &session, Some(&watcher)).await;
    let job = start(&runner, json!({ "code": SLOW_LINES }), "far").await;
    viewer
        .wait_for("the first line on the other node", RUN_WAIT, |c| !output_of(c, &job, "stdout").is_empty())
        .await;
    assert!(
        messages_of(&viewer, &job).iter().all(|m| m["type"] != "run_exit"),
        "streamed, not after the fact"
    );
    let exit = exit_of(&viewer, &job, RUN_WAIT).await;
    assert_eq!(exit["exit_code"], 0, "{exit}");
    assert_eq!(output_of(&viewer, &job, "stdout"), "line 0\nline 1\nline 2\n");
    assert!(of_type(&viewer, "run_queued").is_empty(), "run_queued goes to the sender only");
    // The worker stored the result where both nodes read it.
    let status = finished(two_addr, &watcher.access, &job).await;
    assert_eq!(
        (status["status"].as_str(), status["stdout"].as_str()),
        (Some("completed"), Some("line 0\nline 1\nline 2\n"))
    );
}
