//! A room's chat history: the recent list in the cache (`room:{id}:messages`, the last
//! [`RECENT`] messages, oldest first, as in the seeds) in front of the store, which has every
//! durable message. The list may be missing (expired, or lost with a cache restart): readers then
//! fall back to the store and refill it.

use std::sync::Arc;
use std::time::Duration;

use protocol::chat::{ChatPost, ChatUser};
use storage::MessageStore;
use storage::model::{ChatMessage, MessageCursor};

use crate::cache::Cache;

/// Messages the recent list keeps, and a joining client is sent.
pub const RECENT: usize = 100;
/// The recent list lives this long after its last message; an idle room's history then comes from
/// the store (and refills the list).
const RECENT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The cache key of a room's recent list.
pub fn recent_key(room: &str) -> String {
    format!("room:{room}:messages")
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] storage::Error),
    /// The `before` cursor names no message of this room.
    #[error("no such message in this session")]
    UnknownCursor,
}

/// One page of history, oldest first; `next` is the id to page on from (older), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<ChatPost>,
    pub next: Option<String>,
}

/// The page of at most `limit` messages before `before` (the newest if `None`) out of a room's
/// recent list (oldest first), if the list holds all of it and at least one message older (so
/// that `next` is known to lead somewhere); `None` when the store must answer.
fn page_of_recent(recent: &[ChatPost], before: Option<&str>, limit: usize) -> Option<HistoryPage> {
    let end = match before {
        None => recent.len(),
        Some(id) => recent.iter().position(|post| post.id == id)?,
    };
    if end <= limit {
        return None;
    }
    let messages = recent[end - limit..end].to_vec();
    let next = messages.first().map(|post| post.id.clone());
    Some(HistoryPage { messages, next })
}

/// Reads and extends rooms' chat history. Cheap to build: two `Arc`s.
#[derive(Clone)]
pub struct ChatHistory {
    cache: Arc<dyn Cache>,
    store: Arc<dyn MessageStore>,
}

/// A stored message as clients see it (a stored message has no nonce).
fn post_of(message: ChatMessage) -> ChatPost {
    ChatPost {
        id: message.id,
        room: message.session_id,
        user: ChatUser { id: message.user_id, username: message.username },
        text: message.text,
        ts: message.created_at,
        nonce: None,
    }
}

impl ChatHistory {
    pub fn new(cache: Arc<dyn Cache>, store: Arc<dyn MessageStore>) -> Self {
        Self { cache, store }
    }

    /// Adds `post` to its room's recent list. A cache failure loses it from the list only (the
    /// store gets it through the queue), so it is logged, not returned.
    pub async fn remember(&self, post: &ChatPost) {
        let json = serde_json::to_vec(post).unwrap_or_default();
        if let Err(error) =
            self.cache.list_push_trim(&recent_key(&post.room), &json, RECENT, RECENT_TTL).await
        {
            tracing::warn!(%error, room = post.room, "could not add a chat message to the recent list");
        }
    }

    /// The recent list as cached, oldest first; empty when missing or unreadable. An item that is
    /// not a message (written by something else) is skipped.
    async fn cached(&self, room: &str) -> Vec<ChatPost> {
        match self.cache.list_range(&recent_key(room)).await {
            Ok(items) => items.iter().filter_map(|item| serde_json::from_slice(item).ok()).collect(),
            Err(error) => {
                tracing::warn!(%error, room, "could not read the recent chat list; reading the store");
                Vec::new()
            }
        }
    }

    /// The room's last [`RECENT`] messages, oldest first: the cached list, or the store's (then
    /// cached again) when the list is missing.
    pub async fn recent(&self, room: &str) -> Result<Vec<ChatPost>, HistoryError> {
        let cached = self.cached(room).await;
        if !cached.is_empty() {
            return Ok(cached);
        }
        let mut stored = self.store.messages(room, None, RECENT as u64).await?;
        stored.reverse();
        let posts: Vec<ChatPost> = stored.into_iter().map(post_of).collect();
        if !posts.is_empty() {
            let items: Vec<Vec<u8>> =
                posts.iter().map(|post| serde_json::to_vec(post).unwrap_or_default()).collect();
            // Only where no list is: messages pushed meanwhile are never overwritten.
            if let Err(error) =
                self.cache.list_fill_if_absent(&recent_key(room), &items, RECENT, RECENT_TTL).await
            {
                tracing::warn!(%error, room, "could not refill the recent chat list");
            }
        }
        Ok(posts)
    }

    /// A page of at most `limit` messages older than the message `before` (the newest if `None`),
    /// oldest first. Served from the recent list when it holds the whole page and one older
    /// message; otherwise from the store, paged by `(time, id)`.
    pub async fn page(
        &self,
        room: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, HistoryError> {
        let cached = self.cached(room).await;
        if let Some(page) = page_of_recent(&cached, before, limit) {
            return Ok(page);
        }
        let cursor = match before {
            None => None,
            Some(id) => Some(match cached.iter().find(|post| post.id == id) {
                Some(post) => MessageCursor { created_at: post.ts, id: post.id.clone() },
                None => {
                    let found = self.store.message(id).await?.filter(|message| message.session_id == room);
                    MessageCursor::from(&found.ok_or(HistoryError::UnknownCursor)?)
                }
            }),
        };
        let mut found = self.store.messages(room, cursor.as_ref(), limit as u64 + 1).await?;
        let more = found.len() > limit;
        found.truncate(limit);
        found.reverse();
        let messages: Vec<ChatPost> = found.into_iter().map(post_of).collect();
        let next = if more { messages.first().map(|post| post.id.clone()) } else { None };
        Ok(HistoryPage { messages, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(n: usize) -> Vec<ChatPost> {
        (0..n)
            .map(|i| ChatPost {
                id: format!("m{i}"),
                room: "r".into(),
                user: ChatUser { id: "u".into(), username: "ann".into() },
                text: String::new(),
                ts: i as i64,
                nonce: None,
            })
            .collect()
    }

    fn check(n: usize, before: Option<&str>, limit: usize, expected: Option<(&[&str], &str)>) {
        let page = page_of_recent(&recent(n), before, limit);
        let got = page.as_ref().map(|page| {
            let ids: Vec<&str> = page.messages.iter().map(|post| post.id.as_str()).collect();
            (ids, page.next.clone().unwrap())
        });
        let expected = expected.map(|(ids, next)| (ids.to_vec(), next.to_owned()));
        assert_eq!(got, expected, "{n} cached, before {before:?}, limit {limit}");
    }

    #[test]
    fn a_page_comes_from_the_recent_list_only_when_the_list_holds_it_and_one_more() {
        check(5, None, 2, Some((&["m3", "m4"], "m3")));
        check(5, Some("m3"), 2, Some((&["m1", "m2"], "m1")));
        // Not one older message in the list: whether there is one is the store's to say.
        check(5, Some("m2"), 2, None);
        check(2, None, 2, None);
        check(0, None, 1, None);
        // A cursor the list does not hold.
        check(5, Some("elsewhere"), 1, None);
    }
}
