//! The activity log part of the suite: newest first, every filter field, free-form metadata.
//! Entries are stamped just before now, well inside the retention, so no backend may drop them.

use std::sync::Arc;

use super::ids;
use crate::model::{LogEntry, LogLevel, Millis, new_id};
use crate::records::{LogFilter, LogStore};

fn entry(timestamp: Millis, level: LogLevel, user_id: Option<&str>, session_id: Option<&str>) -> LogEntry {
    LogEntry {
        id: new_id(),
        level,
        message: format!("{level:?} at {timestamp}"),
        action: "user_login".to_owned(),
        user_id: user_id.map(str::to_owned),
        session_id: session_id.map(str::to_owned),
        timestamp,
        metadata: serde_json::json!({ "ip": "203.0.113.7", "attempt": 2, "ratio": 0.5, "tags": ["a", "b"], "nested": { "ok": true } }),
    }
}

pub async fn log_store_suite(store: Arc<dyn LogStore>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .expect("a clock after 1970");
    let (ada, bob, session) = (new_id(), new_id(), new_id());
    let mut bare = entry(now - 6_000, LogLevel::Debug, None, None);
    bare.metadata = serde_json::Value::Null;
    // Oldest first; each call below expects a newest-first slice of these.
    let appended = [
        bare,
        entry(now - 5_000, LogLevel::Info, Some(&ada), None),
        entry(now - 4_000, LogLevel::Error, Some(&ada), Some(&session)),
        entry(now - 3_000, LogLevel::Error, Some(&bob), None),
        entry(now - 2_000, LogLevel::Security, Some(&bob), Some(&session)),
        entry(now - 1_000, LogLevel::Error, Some(&ada), None),
    ];
    for e in &appended {
        store.append_log(e).await.expect("append_log");
    }
    let newest_first: Vec<_> = appended.iter().rev().cloned().collect();
    let pick = |positions: &[usize]| positions.iter().map(|&i| newest_first[i].clone()).collect::<Vec<_>>();

    let everything = store.logs(&LogFilter::default(), 100).await.expect("logs");
    assert_eq!(everything, newest_first, "every entry, newest first, with its metadata");

    let level = |level| LogFilter { level: Some(level), ..LogFilter::default() };
    let user = |user: &str| LogFilter { user_id: Some(user.to_owned()), ..LogFilter::default() };
    let cases = [
        (level(LogLevel::Error), 100, pick(&[0, 2, 3])),
        (level(LogLevel::Error), 2, pick(&[0, 2])),
        (user(&ada), 100, pick(&[0, 3, 4])),
        (LogFilter { session_id: Some(session.clone()), ..LogFilter::default() }, 100, pick(&[1, 3])),
        (
            LogFilter { level: Some(LogLevel::Error), user_id: Some(ada.clone()), session_id: None },
            100,
            pick(&[0, 3]),
        ),
        (
            LogFilter { level: Some(LogLevel::Security), user_id: Some(ada.clone()), session_id: None },
            100,
            vec![],
        ),
        (LogFilter::default(), 3, pick(&[0, 1, 2])),
        (LogFilter::default(), 0, vec![]),
        (user(&new_id()), 100, vec![]),
    ];
    for (filter, limit, expected) in cases {
        let found = store.logs(&filter, limit).await.expect("logs");
        assert_eq!(ids(&found), ids(&expected), "logs matching {filter:?}, limit {limit}");
    }
}
