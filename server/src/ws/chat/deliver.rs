//! A chat message's way once checked, on its room's lane: rate limit, nonce dedupe, id and
//! timestamp, the recent list, the broadcast; then, off the lane, the durable write and the
//! sender's answer.

use std::sync::Arc;

use protocol::app::AppMessage;
use protocol::chat::{ChatPost, ChatUser};
use protocol::job::{ChatJob, Job};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{ChatParts, NONCE_TTL, Outgoing, refuse};
use crate::clock::unix_ms;
use crate::room::ConnId;
use crate::telemetry::{ChatRefusal, Metrics};

/// The rate limit's fixed window.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// One lane: its rooms' messages, one after the other. Once `stop` is cancelled it handles what
/// it holds and ends.
pub(super) async fn lane(
    parts: Arc<ChatParts>,
    mut messages: mpsc::Receiver<Outgoing>,
    persisting: Arc<Semaphore>,
    stop: CancellationToken,
) {
    // Strictly increasing per lane, so a room's messages sort in their order even within one ms.
    let mut last_ts = 0i64;
    loop {
        let outgoing = tokio::select! {
            outgoing = messages.recv() => outgoing,
            () = stop.cancelled() => {
                messages.close();
                messages.recv().await
            }
        };
        let Some(outgoing) = outgoing else { return };
        // Never closed, so this waits only while too many messages wait to be durable.
        let Ok(permit) = persisting.clone().acquire_owned().await else { return };
        let ts = (unix_ms() as i64).max(last_ts + 1);
        if parts.accept(outgoing, ts, permit).await {
            last_ts = ts;
        }
    }
}

impl ChatParts {
    /// Handles one message on its lane; true if it used `ts` (a new message).
    async fn accept(self: &Arc<Self>, outgoing: Outgoing, ts: i64, permit: OwnedSemaphorePermit) -> bool {
        // Not broadcast at all rather than broadcast and then not saved.
        if !self.queue.status().accepting {
            let why = refuse(
                ChatRefusal::Unavailable,
                "chat_unavailable",
                "chat is unavailable: the message queue is unreachable and this server's outbox is full; try again later",
            );
            let answer = AppMessage::error_for(why.code, why.message, outgoing.nonce.clone());
            self.answer(&outgoing.room, outgoing.conn, &answer);
            return false;
        }
        if !self.within_rate(&outgoing.user.id).await {
            let why = refuse(
                ChatRefusal::RateLimited,
                "chat_rate_limited",
                format!("at most {} chat messages per minute", self.settings.messages_per_min),
            );
            let answer = AppMessage::error_for(why.code, why.message, outgoing.nonce.clone());
            self.answer(&outgoing.room, outgoing.conn, &answer);
            return false;
        }
        let (job, first) = self.claim_nonce(&outgoing, ts).await;
        if first {
            let post = ChatPost {
                id: job.id.clone(),
                room: job.room.clone(),
                user: ChatUser { id: job.user_id.clone(), username: job.username.clone() },
                text: job.text.clone(),
                ts: job.created_at,
                nonce: outgoing.nonce.clone(),
            };
            self.history.remember(&post).await;
            if let Err(error) = self.output.send(&post.room, &AppMessage::Chat(post.clone())).await {
                tracing::warn!(%error, room = post.room, "could not broadcast a chat message");
            }
            Metrics::get().chat_messages.increment(1);
        }
        // Off the lane: a durable write takes a broker confirm or a store commit, and the room's
        // next message need not wait for it.
        let persisting = self.clone().persist(job, outgoing.conn, outgoing.nonce);
        self.tasks.spawn(async move {
            persisting.await;
            drop(permit);
        });
        first
    }

    /// Makes `job` durable and tells the sender.
    async fn persist(self: Arc<Self>, job: ChatJob, conn: ConnId, nonce: Option<String>) {
        let (id, room) = (job.id.clone(), job.room.clone());
        let answer = match self.queue.persist(Job::Chat(job)).await {
            Ok(()) => AppMessage::ChatSaved { id, nonce },
            Err(error) => {
                tracing::error!(%error, room, id, "chat message could not be made durable");
                Metrics::get().chat_refused(ChatRefusal::NotSaved);
                let message = format!("message {id} was sent but could not be saved");
                AppMessage::error_for("chat_not_saved", message, nonce)
            }
        };
        self.answer(&room, conn, &answer);
    }

    /// Counts the message against its user's budget; true if within it (or the cache failed).
    async fn within_rate(&self, user: &str) -> bool {
        let limit = self.settings.messages_per_min;
        if limit == 0 {
            return true;
        }
        match self.cache.hit(&format!("chat-rate:{user}"), RATE_WINDOW).await {
            Ok(hit) => hit.count <= limit,
            Err(error) => {
                tracing::warn!(%error, "chat rate limit unavailable; letting the message through");
                true
            }
        }
    }

    /// The job for `outgoing`, and whether it is new: a nonce seen before (same user, same room)
    /// gives back the first message's job instead.
    async fn claim_nonce(&self, outgoing: &Outgoing, ts: i64) -> (ChatJob, bool) {
        let job = ChatJob {
            id: storage::model::new_id(),
            room: outgoing.room.clone(),
            user_id: outgoing.user.id.clone(),
            username: outgoing.user.username.clone(),
            text: outgoing.text.clone(),
            created_at: ts,
        };
        let Some(nonce) = &outgoing.nonce else { return (job, true) };
        let key = format!("room:{}:chat-nonce:{}:{nonce}", outgoing.room, outgoing.user.id);
        let encoded = Job::Chat(job.clone()).encode();
        let claimed = match self.cache.set_if_absent(&key, &encoded, NONCE_TTL).await {
            Ok(true) => return (job, true),
            Ok(false) => self.cache.get(&key).await,
            Err(error) => Err(error),
        };
        match claimed.map(|bytes| bytes.map(|bytes| Job::decode(&bytes))) {
            Ok(Some(Ok(Job::Chat(first)))) => (first, false),
            // Expired between the two calls, or not a job: this one is new.
            Ok(_) => (job, true),
            Err(error) => {
                tracing::warn!(%error, "chat dedupe unavailable; a retried message may be stored twice");
                (job, true)
            }
        }
    }

    /// Sends `message` to connection `conn` of `room`, if it is still here.
    fn answer(&self, room: &str, conn: ConnId, message: &AppMessage) {
        if let Some(open) = self.rooms.get(room) {
            open.send_app_to(conn, &message.to_json());
        }
    }

    /// Sends the room's recent messages to a client that joined (an empty list when there are
    /// none: a client can tell "no history" from "not arrived yet").
    pub(super) async fn send_history(self: Arc<Self>, conn: ConnId, room: String) {
        let messages = match self.history.recent(&room).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, room, "could not read the chat history for a joining client");
                return;
            }
        };
        self.answer(&room, conn, &AppMessage::ChatHistory { messages });
    }
}
