//! The chat part of the suite: history pages by `(time, id)` cursor, lookup by id, saving
//! idempotent by id, and each new message counted once in its session.

use std::sync::Arc;

use super::sessions::sample_session;
use super::{T0, ids};
use crate::model::{ChatMessage, MessageCursor, Millis, new_id};
use crate::records::{MessageStore, Store};

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

    let at = |created_at: Millis| MessageCursor { created_at, id: String::new() };
    let cases = [
        (None, 2, &newest_first[..2]),
        (Some(at(T0 + 30)), 10, &newest_first[3..]),
        (Some(at(T0 + 31)), 1, &newest_first[2..3]),
        (Some(MessageCursor::from(&sent[2])), 10, &newest_first[3..]),
    ];
    for (before, limit, expected) in cases {
        let page = store.messages(&session, before.as_ref(), limit).await.expect("messages");
        assert_eq!(ids(&page), ids(expected), "before {before:?} (exclusive), limit {limit}");
    }
    assert!(
        store.messages(&session, Some(&at(T0 + 10)), 10).await.expect("messages").is_empty(),
        "nothing before the first"
    );

    // Messages of the same millisecond page by id: none is skipped or repeated.
    let tied_session = new_id();
    let mut tied: Vec<_> = (0..4).map(|i| message(&tied_session, T0, &format!("tied {i}"))).collect();
    tied.sort_by(|a, b| a.id.cmp(&b.id));
    for m in &tied {
        store.save_message(m).await.expect("save_message");
    }
    let mut paged = Vec::new();
    let mut cursor: Option<MessageCursor> = None;
    loop {
        let page = store.messages(&tied_session, cursor.as_ref(), 3).await.expect("messages");
        let Some(last) = page.last() else { break };
        cursor = Some(MessageCursor::from(last));
        paged.extend(page);
    }
    paged.reverse();
    assert_eq!(ids(&paged), ids(&tied), "pages of tied messages, by (time, id), without gaps or repeats");

    assert_eq!(store.message(&sent[1].id).await.expect("message"), Some(sent[1].clone()), "by id");
    assert_eq!(store.message(&new_id()).await.expect("message"), None, "an unknown id");
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

/// A new message counts once in its session's `total_messages` and moves `last_activity` forward;
/// saving it again counts nothing.
pub async fn messages_count_in_their_session(store: Arc<dyn Store>) {
    let session = sample_session(&new_id(), T0);
    store.create_session(&session).await.expect("create_session");
    let later = session.metadata.last_activity + 1000;
    let first = message(&session.id, later, "one");
    store.save_message(&first).await.expect("save_message");
    store.save_message(&first).await.expect("save_message again");
    store.save_message(&message(&session.id, later - 5000, "older")).await.expect("save_message");
    let stored = store.session(&session.id).await.expect("session").expect("the session");
    assert_eq!(
        stored.metadata.total_messages,
        session.metadata.total_messages + 2,
        "each new id counted once, a redelivery not at all"
    );
    assert_eq!(stored.metadata.last_activity, later, "last activity moves forward, never back");
    assert_eq!(stored.revision, session.revision, "counting is not an edit of the session's settings");
}

/// A batch is saved like the messages one by one: in order, each new id counted once, an id seen
/// before (in the store or earlier in the batch) stored and counted once.
pub async fn a_batch_of_messages_saves_like_one_by_one(store: Arc<dyn Store>) {
    let session = sample_session(&new_id(), T0);
    store.create_session(&session).await.expect("create_session");
    let at = session.metadata.last_activity + 1000;
    let stored_before = message(&session.id, at, "already stored");
    store.save_message(&stored_before).await.expect("save_message");
    let fresh = [message(&session.id, at + 1, "a"), message(&session.id, at + 2, "b")];
    let batch = [stored_before.clone(), fresh[0].clone(), fresh[1].clone(), fresh[0].clone()];
    store.save_messages(&batch).await.expect("save_messages");
    store.save_messages(&[]).await.expect("an empty batch");
    let newest_first = store.messages(&session.id, None, 10).await.expect("messages");
    assert_eq!(ids(&newest_first), ids(&[fresh[1].clone(), fresh[0].clone(), stored_before]), "each once");
    let counted = store.session(&session.id).await.expect("session").expect("the session");
    assert_eq!(
        counted.metadata.total_messages,
        session.metadata.total_messages + 3,
        "each new id counted once"
    );
}
