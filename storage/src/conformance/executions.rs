//! The executions part of the suite: upsert by id, a session's history newest first in pages by
//! `(time, id)` cursor, the order following a record whose time or session changed, and a finished
//! run counted once in its session.

use std::sync::Arc;

use super::sessions::sample_session;
use super::{T0, ids};
use crate::model::{ExecutionCursor, ExecutionRecord, Millis, new_id};
use crate::records::{ExecutionStore, Store};

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
    let listed = store.executions(&session, None, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1], &first], "newest first, then by id descending");
    expect(&store.executions(&session, None, 2).await.expect("executions"), &[&tied[0], &tied[1]], "limit");
    assert!(store.executions(&session, None, 0).await.expect("executions").is_empty(), "limit 0 is empty");

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
    let listed = store.executions(&session, None, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1], &first], "an overwrite is listed once");
    assert_eq!(listed[2], first, "the listing holds the new copy");

    first.created_at = T0 + 300;
    store.save_execution(&first).await.expect("save_execution");
    let listed = store.executions(&session, None, 10).await.expect("executions");
    expect(&listed, &[&first, &tied[0], &tied[1]], "a new creation time moves the record, once");

    first.session_id = new_id();
    store.save_execution(&first).await.expect("save_execution");
    let listed = store.executions(&session, None, 10).await.expect("executions");
    expect(&listed, &[&tied[0], &tied[1]], "a record moved to another session leaves this one");
    let moved = store.executions(&first.session_id, None, 10).await.expect("executions");
    expect(&moved, &[&first], "and joins its new session");
}

/// A session's executions page by `(created_at, id)`: with many of the same millisecond none is
/// skipped or repeated, and a cursor at a time excludes that time's records with larger ids only.
pub async fn executions_page_by_cursor(store: Arc<dyn ExecutionStore>) {
    let session = new_id();
    let mut records: Vec<_> =
        (0..7).map(|i| queued(&session, T0 + if i < 5 { 100 } else { 50 + i })).collect();
    for record in &records {
        store.save_execution(record).await.expect("save_execution");
    }
    store.save_execution(&queued(&format!("{session}0"), T0 + 100)).await.expect("another session");
    records.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut paged = Vec::new();
    let mut cursor: Option<ExecutionCursor> = None;
    loop {
        let page = store.executions(&session, cursor.as_ref(), 2).await.expect("executions");
        assert!(page.len() <= 2, "a page holds at most its limit");
        let Some(last) = page.last() else { break };
        cursor = Some(ExecutionCursor::from(last));
        paged.extend(page);
    }
    assert_eq!(ids(&paged), ids(&records), "pages by (time, id), newest first, without gaps or repeats");
    let at = |created_at: Millis| ExecutionCursor { created_at, id: String::new() };
    let older = store.executions(&session, Some(&at(T0 + 100)), 10).await.expect("executions");
    assert_eq!(ids(&older), ids(&records[5..]), "before a time: strictly older");
    assert!(store.executions(&new_id(), None, 10).await.expect("executions").is_empty(), "unknown session");
}

fn finished(session_id: &str, duration_ms: Option<u64>, finished_at: Millis) -> ExecutionRecord {
    ExecutionRecord {
        status: "completed".to_owned(),
        exit_code: Some(0),
        duration_ms,
        started_at: Some(finished_at - 1),
        finished_at: Some(finished_at),
        ..queued(session_id, T0)
    }
}

/// `finish_execution` counts a run in its session the first time its id is saved finished, and
/// never again; the mean is over the runs counted.
pub async fn finished_executions_count_once_in_their_session(store: Arc<dyn Store>) {
    let session = sample_session(&new_id(), T0);
    store.create_session(&session).await.expect("create_session");
    let (before, mean) = (session.metadata.total_executions, session.metadata.average_execution_time);
    let later = session.metadata.last_activity + 1000;

    let mut first = finished(&session.id, Some(10), later);
    let running = ExecutionRecord { status: "running".to_owned(), ..first.clone() };
    store.save_execution(&running).await.expect("save running");
    store.finish_execution(&first).await.expect("finish");
    store.finish_execution(&first).await.expect("finish again (a retried write)");
    first.stdout = "rewritten".to_owned();
    store.finish_execution(&first).await.expect("finish a third time (a redelivery)");
    assert_eq!(store.execution(&first.id).await.expect("execution"), Some(first.clone()), "the last copy");
    for (duration, status) in [(20, "failed"), (60, "timed_out")] {
        let record = ExecutionRecord {
            status: status.to_owned(),
            ..finished(&session.id, Some(duration), later - 500)
        };
        store.finish_execution(&record).await.expect("finish");
    }
    let not_run =
        ExecutionRecord { status: "cancelled".to_owned(), ..finished(&session.id, None, later + 9) };
    store.finish_execution(&not_run).await.expect("a run without a duration");
    let unfinished =
        ExecutionRecord { status: "running".to_owned(), ..finished(&session.id, Some(999), later) };
    store.finish_execution(&unfinished).await.expect("an unfinished record is only saved");

    let stored = store.session(&session.id).await.expect("session").expect("the session");
    assert_eq!(stored.metadata.total_executions, before + 3, "three runs, each counted once");
    let expected = (mean * before as f64 + 10.0 + 20.0 + 60.0) / (before + 3) as f64;
    let got = stored.metadata.average_execution_time;
    assert!((got - expected).abs() < 1e-9, "the mean over every run counted: {got} != {expected}");
    assert_eq!(stored.metadata.last_activity, later, "last activity moves to the latest finish counted");
    assert_eq!(stored.revision, session.revision, "counting is not an edit of the session's settings");

    let orphan = finished(&new_id(), Some(5), later);
    store.finish_execution(&orphan).await.expect("a run of no session is stored, counted nowhere");
    assert_eq!(store.execution(&orphan.id).await.expect("execution"), Some(orphan));
}
