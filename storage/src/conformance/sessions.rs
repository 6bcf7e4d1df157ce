//! The sessions part of the suite: a user's sessions (owned and collaborated on) in order, by
//! page, following every replace and delete; optimistic concurrency; activity counters.

use std::sync::Arc;

use super::{T0, ids};
use crate::Error;
use crate::model::{
    Collaborator, CollaboratorRole, Language, Millis, Page, Session, SessionMetadata, SessionStatus, new_id,
};
use crate::records::SessionStore;

/// A session with every field away from its default, so a round trip checks them all.
pub fn sample_session(owner: &str, created_at: Millis) -> Session {
    Session {
        id: new_id(),
        title: "Pairing".to_owned(),
        description: "binary search".to_owned(),
        language: Language::Rust,
        owner: owner.to_owned(),
        collaborators: Vec::new(),
        is_public: true,
        is_locked: false,
        max_collaborators: 10,
        status: SessionStatus::Paused,
        metadata: SessionMetadata {
            total_executions: 2,
            total_edits: 40,
            total_messages: 3,
            average_execution_time: 12.5,
            last_activity: created_at + 10,
        },
        created_at,
        updated_at: created_at + 1,
        revision: 0,
    }
}

pub fn collaborator(user_id: &str, role: CollaboratorRole) -> Collaborator {
    Collaborator {
        user_id: user_id.to_owned(),
        username: format!("name_of_{user_id}"),
        role,
        joined_at: T0 + 7,
        is_active: true,
    }
}

pub async fn session_store_suite(store: Arc<dyn SessionStore>) {
    let [alice, bob, carol, dave] = [(); 4].map(|()| new_id());
    let a1 = sample_session(&alice, T0 + 1);
    // Same creation time: the id breaks the tie.
    let a2 = sample_session(&alice, T0 + 2);
    let a3 = sample_session(&alice, T0 + 2);
    let mut b1 = sample_session(&bob, T0 + 3);
    b1.collaborators =
        vec![collaborator(&alice, CollaboratorRole::Editor), collaborator(&carol, CollaboratorRole::Viewer)];
    let c1 = sample_session(&carol, T0 + 4);
    for session in [&a1, &a2, &a3, &b1, &c1] {
        store.create_session(session).await.expect("create_session");
    }

    let stored = store.session(&b1.id).await.expect("session");
    assert_eq!(stored.as_ref(), Some(&b1), "a session round trips with every field");
    assert_eq!(store.session(&new_id()).await.expect("session"), None, "unknown session");

    let mut alices = vec![b1.clone(), a1.clone(), a2.clone(), a3.clone()];
    expect_sessions(&*store, &alice, &mut alices).await;
    pages(&*store, &alice, &alices).await;
    expect_sessions(&*store, &carol, &mut vec![c1.clone(), b1.clone()]).await;

    let (b1, _a3) = replace(&*store, [&alice, &bob, &carol, &dave], b1, a3).await;
    concurrent_replaces(store.clone(), &c1).await;
    activity(store.clone(), &a2).await;

    assert!(store.delete_session(&b1.id).await.expect("delete"), "delete reports an existing session");
    assert!(!store.delete_session(&b1.id).await.expect("delete"), "delete reports a missing session");
    assert_eq!(store.session(&b1.id).await.expect("session"), None, "a deleted session is gone");
    for member in [&bob, &carol, &dave] {
        let (listed, _) = store.sessions_of_user(member, all()).await.expect("sessions_of_user");
        assert!(listed.iter().all(|s| s.id != b1.id), "a deleted session leaves its members' lists");
    }
    let (_, total) = store.sessions_of_user(&alice, all()).await.expect("sessions_of_user");
    assert_eq!(total, 3, "alice keeps a1, a2 and a3 (now dave's, alice collaborating)");
}

fn all() -> Page {
    Page { skip: 0, limit: 100 }
}

/// Asserts `user`'s sessions are `expected` (sorted here: newest first, then id descending).
async fn expect_sessions(store: &dyn SessionStore, user: &str, expected: &mut Vec<Session>) {
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let (listed, total) = store.sessions_of_user(user, all()).await.expect("sessions_of_user");
    assert_eq!(ids(&listed), ids(expected), "sessions of a user, newest first then by id");
    assert_eq!(listed, *expected, "listed sessions are whole");
    assert_eq!(total, expected.len() as u64, "total counts every session of the user");
}

async fn pages(store: &dyn SessionStore, user: &str, sorted: &[Session]) {
    for (skip, limit) in [(0, 2), (2, 2), (1, 2), (3, 10), (4, 2), (10, 2), (0, 0)] {
        let (page, total) = store.sessions_of_user(user, Page { skip, limit }).await.expect("page");
        let expected: Vec<_> = sorted.iter().skip(skip as usize).take(limit as usize).cloned().collect();
        assert_eq!(ids(&page), ids(&expected), "page skip {skip} limit {limit}");
        assert_eq!(total, sorted.len() as u64, "the total ignores paging (skip {skip} limit {limit})");
    }
}

/// Revisions, stale and missing replaces, and the membership index following a replace. Returns
/// the replaced `b1` and `a3`.
async fn replace(
    store: &dyn SessionStore,
    [alice, bob, carol, dave]: [&String; 4],
    mut b1: Session,
    mut a3: Session,
) -> (Session, Session) {
    let stale = b1.clone();
    // Alice leaves, Dave joins.
    b1.collaborators =
        vec![collaborator(carol, CollaboratorRole::Admin), collaborator(dave, CollaboratorRole::Viewer)];
    b1.title = "Pairing, take two".to_owned();
    assert_eq!(
        store.replace_session(&b1).await.expect("replace"),
        Some(1),
        "the first replace makes revision 1"
    );
    b1.revision = 1;
    assert_eq!(store.session(&b1.id).await.expect("session").as_ref(), Some(&b1), "replaced in full");
    let result = store.replace_session(&stale).await;
    assert!(matches!(result, Err(Error::Stale)), "a replace with an old revision is stale: {result:?}");
    assert_eq!(store.replace_session(&b1).await.expect("replace"), Some(2), "revisions keep counting");
    b1.revision = 2;
    let ghost = sample_session(alice, T0);
    assert_eq!(store.replace_session(&ghost).await.expect("replace"), None, "a missing session");
    assert_eq!(store.session(&ghost.id).await.expect("session"), None, "replace does not create");

    let (alices, _) = store.sessions_of_user(alice, all()).await.expect("sessions_of_user");
    assert!(alices.iter().all(|s| s.id != b1.id), "a dropped collaborator loses the session");
    expect_sessions(store, dave, &mut vec![b1.clone()]).await;
    expect_sessions(store, bob, &mut vec![b1.clone()]).await;

    // A new creation time moves the session in its members' order; a new owner takes it over.
    a3.created_at = T0 + 50;
    a3.owner = dave.clone();
    a3.collaborators = vec![collaborator(alice, CollaboratorRole::Editor)];
    assert_eq!(store.replace_session(&a3).await.expect("replace"), Some(1));
    a3.revision = 1;
    expect_sessions(store, dave, &mut vec![b1.clone(), a3.clone()]).await;
    let (alices, _) = store.sessions_of_user(alice, all()).await.expect("sessions_of_user");
    assert_eq!(
        alices.first().map(|s| s.id.as_str()),
        Some(a3.id.as_str()),
        "moved to the front by its new time"
    );
    assert_eq!(alices.len(), 3, "listed once, not under its old time too");
    (b1, a3)
}

async fn concurrent_replaces(store: Arc<dyn SessionStore>, session: &Session) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, mut mine) = (store.clone(), session.clone());
            mine.title = format!("writer {i}");
            tokio::spawn(async move { (store.replace_session(&mine).await, mine.title) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("replace task") {
            (Ok(Some(revision)), title) => winners.push((revision, title)),
            (Err(Error::Stale), _) => {}
            (other, _) => panic!("a racing replace either wins or is stale, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of eight replaces of the same revision wins: {winners:?}");
    let stored = store.session(&session.id).await.expect("session").expect("still there");
    assert_eq!((stored.revision, stored.title), winners.remove(0), "the winner's write is the stored one");
}

async fn activity(store: Arc<dyn SessionStore>, session: &Session) {
    let before = store.session(&session.id).await.expect("session").expect("exists");
    let last = before.metadata.last_activity;
    store.record_activity(&session.id, 3, last + 100).await.expect("record_activity");
    store.record_activity(&session.id, 4, last + 50).await.expect("record_activity");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, id) = (store.clone(), session.id.clone());
            tokio::spawn(async move { store.record_activity(&id, 1, last + 60).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("activity task").expect("record_activity");
    }
    let after = store.session(&session.id).await.expect("session").expect("exists");
    assert_eq!(
        after.metadata.total_edits,
        before.metadata.total_edits + 17,
        "edits add up, concurrent ones too"
    );
    assert_eq!(after.metadata.last_activity, last + 100, "last activity only moves forward");
    assert_eq!(after.revision, before.revision, "activity leaves the revision alone");
    let mut edit = before.clone();
    edit.title = "renamed during activity".to_owned();
    let result = store.replace_session(&edit).await.expect("replace");
    assert_eq!(result, Some(before.revision + 1), "activity does not make a settings edit stale");
    store.record_activity(&new_id(), 1, last).await.expect("activity on a missing session is no error");
}
