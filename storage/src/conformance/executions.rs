//! The executions part of the suite: upsert by id, a session's newest first, and the order
//! following a record whose time or session changed.

use std::sync::Arc;

use super::{T0, ids};
use crate::model::{ExecutionRecord, Millis, new_id};
use crate::records::ExecutionStore;

fn queued(session_id: &str, created_at: Millis) -> ExecutionRecord {
    ExecutionRecord {
        id: new_id(),
        session_id: session_id.to_owned(),
        user_id: new_id(),
        language: "python".to_owned(),
        code: "print('hi')".to_owned(),
        status: "queued".to_owned(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        timed_out: false,
        oom_killed: false,
        error: None,
        duration_ms: None,
        created_at,
        started_at: None,
        finished_at: None,
    }
}

pub async fn execution_store_suite(store: Arc<dyn ExecutionStore>) {
    let session = new_id();
    let mut first = queued(&session, T0 + 100);
    // Same creation time: the id breaks the tie.
    let mut tied = [queued(&session, T0 + 200), queued(&session, T0 + 200)];
    tied.sort_by(|a, b| b.id.cmp(&a.id));
    for record in [&first, &tied[0], &tied[1], &queued(&new_id(), T0 + 150)] {
        store.save_execution(record).await.expect("save_execution");
    }
    let expect = |listed: &[ExecutionRecord], expected: &[&ExecutionRecord], what: &str| {
        let expected: Vec<_> = expected.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids(listed), expected, "{what}");
    };

    assert_eq!(store.execution(&first.id).await.expect("execution").as_ref(), Some(&first), "round trip");
    assert_eq!(store.execution(&new_id()).await.expect("execution"), None, "unknown execution");
    let listed = store.executions(&session, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1], &first], "newest first, then by id descending");
    expect(&store.executions(&session, 2).await.expect("executions"), &[&tied[0], &tied[1]], "limit");
    assert!(store.executions(&session, 0).await.expect("executions").is_empty(), "limit 0 is empty");

    first.status = "completed".to_owned();
    first.started_at = Some(T0 + 110);
    first.oom_killed = true;
    first.error = Some("killed".to_owned());
    first.exit_code = Some(0);
    first.stdout = "hi\n".to_owned();
    first.stderr = "warning: ünïcode\n".to_owned();
    first.truncated = true;
    first.duration_ms = Some(37);
    first.finished_at = Some(T0 + 140);
    store.save_execution(&first).await.expect("save_execution");
    assert_eq!(store.execution(&first.id).await.expect("execution").as_ref(), Some(&first), "overwritten");
    let listed = store.executions(&session, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1], &first], "an overwrite is listed once");
    assert_eq!(listed[2], first, "the listing holds the new copy");

    first.created_at = T0 + 300;
    store.save_execution(&first).await.expect("save_execution");
    let listed = store.executions(&session, 10).await.expect("executions");
    expect(&listed, &[&first, &tied[0], &tied[1]], "a new creation time moves the record, once");

    first.session_id = new_id();
    store.save_execution(&first).await.expect("save_execution");
    let listed = store.executions(&session, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1]], "a record moved to another session leaves this one");
    let moved = store.executions(&first.session_id, 10).await.expect("executions");
    expect(&moved, &[&first], "and joins its new session");
}
