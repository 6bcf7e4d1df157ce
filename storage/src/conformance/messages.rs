//! The chat part of the suite: history pages by time, and saving idempotent by id.

use std::sync::Arc;

use super::{T0, ids};
use crate::model::{ChatMessage, Millis, new_id};
use crate::records::MessageStore;

fn message(session_id: &str, created_at: Millis, text: &str) -> ChatMessage {
    ChatMessage {
        id: new_id(),
        session_id: session_id.to_owned(),
        user_id: new_id(),
        username: "ada".to_owned(),
        text: text.to_owned(),
        created_at,
    }
}

pub async fn message_store_suite(store: Arc<dyn MessageStore>) {
    let session = new_id();
    // A session id that extends another must not share its history.
    let longer = format!("{session}0");
    let sent: Vec<_> = (1..=5).map(|i| message(&session, T0 + 10 * i, &format!("message {i}"))).collect();
    for m in &sent {
        store.save_message(m).await.expect("save_message");
    }
    store.save_message(&message(&longer, T0 + 15, "elsewhere")).await.expect("save_message");

    let newest_first: Vec<_> = sent.iter().rev().cloned().collect();
    let all = store.messages(&session, None, 100).await.expect("messages");
    assert_eq!(ids(&all), ids(&newest_first), "a session's messages, newest first, no other session's");
    assert_eq!(all, newest_first, "messages round trip");

    let cases = [
        (None, 2, &newest_first[..2]),
        (Some(T0 + 30), 10, &newest_first[3..]),
        (Some(T0 + 31), 1, &newest_first[2..3]),
    ];
    for (before, limit, expected) in cases {
        let page = store.messages(&session, before, limit).await.expect("messages");
        assert_eq!(ids(&page), ids(expected), "before {before:?} (exclusive), limit {limit}");
    }
    assert!(
        store.messages(&session, Some(T0 + 10), 10).await.expect("messages").is_empty(),
        "nothing before the first"
    );
    assert!(
        store.messages(&session, None, 0).await.expect("messages").is_empty(),
        "limit 0 is an empty page"
    );
    assert!(store.messages(&new_id(), None, 10).await.expect("messages").is_empty(), "an unknown session");

    let mut redelivered = sent[0].clone();
    store.save_message(&redelivered).await.expect("saving the same message again is no error");
    redelivered.text = "edited in transit".to_owned();
    store.save_message(&redelivered).await.expect("save_message");
    let again = store.messages(&session, None, 100).await.expect("messages");
    assert_eq!(again, newest_first, "saving an id again stores nothing new and changes nothing");
}
