//! Which node and room each signed-in user's sockets are on, across nodes (the seeds' "map users
//! to WebSocket connections"). A permission change that concerns one user reads it to tell exactly
//! the nodes holding that user's sockets.
//!
//! Each node counts its own sockets per user and room, and mirrors the count into the cache map
//! `user-sockets:{user}`: one field per node (its id), holding the rooms and the time the field is
//! good until. Writes stay off the socket's path: a connect or disconnect only marks the user, and
//! one task writes the marked users' fields (a burst of reconnects costs one write) and renews
//! every field before it lapses. A node that dies stops renewing: readers skip its fields once
//! their time has passed, and the map expires when no node renews it.
//!
//! A revocation made elsewhere between a socket's admission and its record being written would
//! find no record and miss the socket. So once a user's field first lists a room, the room is
//! handed to `recorded`, and the node re-reads that session from the store and re-applies it:
//! the revoking node writes the store before it reads the record, so either it sees the record,
//! or the re-read sees its change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use relay::NodeId;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, CacheResult};
use crate::clock::unix_ms;
use crate::telemetry::Metrics;

/// How long a node's field holds without renewal (a dead node's sockets are forgotten after it).
pub const RECORD_TTL: Duration = Duration::from_secs(60);
/// How often every field is rewritten: well within [`RECORD_TTL`], so one lost write does no harm.
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// One node's field: the rooms a user has sockets in there, and how many in each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSockets {
    pub rooms: BTreeMap<String, u32>,
    /// Unix ms after which readers ignore this field.
    pub until: u64,
}

/// A user's sockets on one node, as [`UserSockets::locate`] found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub node: NodeId,
    pub rooms: BTreeMap<String, u32>,
}

pub struct UserSockets {
    node: NodeId,
    cache: Arc<dyn Cache>,
    /// user -> room -> sockets on this node.
    users: Mutex<HashMap<Arc<str>, BTreeMap<String, u32>>>,
    /// Users whose field must be written.
    marked: Mutex<HashSet<Arc<str>>>,
    wake: Notify,
    /// The rooms each user's field listed when last written (only the writer task touches it).
    written: Mutex<HashMap<Arc<str>, BTreeMap<String, u32>>>,
    /// Rooms that just appeared in a written field: their sessions must be checked again.
    recorded: mpsc::UnboundedSender<String>,
}

impl UserSockets {
    /// Also returns where the rooms newly recorded arrive (see the module docs).
    pub fn new(node: NodeId, cache: Arc<dyn Cache>) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (recorded, newly_recorded) = mpsc::unbounded_channel();
        let presence = Arc::new(Self {
            node,
            cache,
            users: Mutex::default(),
            marked: Mutex::default(),
            wake: Notify::new(),
            written: Mutex::default(),
            recorded,
        });
        (presence, newly_recorded)
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Count a socket of `user` in `room` on this node.
    pub fn enter(&self, user: &str, room: &str) {
        let user = {
            let mut users = self.users.lock();
            let user: Arc<str> =
                users.get_key_value(user).map_or_else(|| user.into(), |(key, _)| key.clone());
            *users.entry(user.clone()).or_default().entry(room.to_owned()).or_default() += 1;
            user
        };
        self.mark(user);
    }

    /// Stop counting a socket [`UserSockets::enter`] counted.
    pub fn leave(&self, user: &str, room: &str) {
        let user = {
            let mut users = self.users.lock();
            let Some((user, _)) = users.get_key_value(user) else { return };
            let user = user.clone();
            let rooms = users.get_mut(&user).expect("just found");
            if let Some(count) = rooms.get_mut(room) {
                *count -= 1;
                if *count == 0 {
                    rooms.remove(room);
                }
            }
            if rooms.is_empty() {
                users.remove(&user);
            }
            user
        };
        self.mark(user);
    }

    fn mark(&self, user: Arc<str>) {
        if self.marked.lock().insert(user) {
            self.wake.notify_one();
        }
    }

    /// Every node holding sockets of `user` (this one included), from the shared record.
    pub async fn locate(&self, user: &str) -> CacheResult<Vec<Located>> {
        let now = unix_ms();
        let fields = self.cache.map_entries(&record_key(user)).await?;
        let mut found: Vec<Located> = fields
            .into_iter()
            .filter_map(|(node, value)| {
                let node = node.parse().ok()?;
                let sockets: NodeSockets = serde_json::from_slice(&value).ok()?;
                (sockets.until > now && !sockets.rooms.is_empty())
                    .then_some(Located { node, rooms: sockets.rooms })
            })
            .collect();
        found.sort_by_key(|located| located.node);
        Ok(found)
    }

    /// Write marked users' fields as they change, and renew every field, until `cancel`; then
    /// remove this node's fields (a clean shutdown leaves nothing for readers to skip).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                _ = renew.tick() => {
                    let all: Vec<Arc<str>> = self.users.lock().keys().cloned().collect();
                    self.marked.lock().extend(all);
                }
            }
            self.write_marked().await;
        }
        let all: Vec<Arc<str>> = self.users.lock().drain().map(|(user, _)| user).collect();
        self.marked.lock().extend(all);
        self.write_marked().await;
    }

    /// Write (or remove) the field of every marked user. If the cache fails, that user and every
    /// one not yet written stay marked for the next round (the next change or renewal), so the
    /// record catches up once the cache is back, without spinning on a cache that is down.
    async fn write_marked(&self) {
        let mut marked: Vec<Arc<str>> = self.marked.lock().drain().collect();
        let until = unix_ms() + RECORD_TTL.as_millis() as u64;
        while let Some(user) = marked.pop() {
            if let Err(error) = self.write(&user, until).await {
                tracing::warn!(%error, "could not record where a user's sockets are; retrying");
                Metrics::get().user_socket_write_errors.increment(1);
                self.marked.lock().extend(marked.into_iter().chain([user]));
                return;
            }
        }
    }

    /// Write `user`'s field as this node's sockets now are, and hand on the rooms it lists for
    /// the first time.
    async fn write(&self, user: &Arc<str>, until: u64) -> CacheResult<()> {
        let (key, field) = (record_key(user), self.node.to_string());
        let rooms = self.users.lock().get(user).cloned();
        let Some(rooms) = rooms else {
            self.cache.map_remove(&key, &field).await?;
            self.written.lock().remove(user);
            return Ok(());
        };
        let value = serde_json::to_vec(&NodeSockets { rooms: rooms.clone(), until }).expect("serialises");
        self.cache.map_set(&key, &field, &value, RECORD_TTL).await?;
        let previous = self.written.lock().insert(user.clone(), rooms.clone()).unwrap_or_default();
        for room in rooms.keys().filter(|room| !previous.contains_key(*room)) {
            let _ = self.recorded.send(room.clone());
        }
        Ok(())
    }
}

fn record_key(user: &str) -> String {
    format!("user-sockets:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    /// Returns once every task has run out of work: with the clock paused, tokio moves time on
    /// (here 50 ms, far from the 20 s renewal) only when no task can run. Sound because nothing
    /// here waits on real I/O: the cache is in memory.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_record_follows_sockets_on_every_node() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new());
        let ((a, mut a_recorded), (b, _)) =
            (UserSockets::new(11, cache.clone()), UserSockets::new(22, cache.clone()));
        let cancel = CancellationToken::new();
        tokio::spawn(a.clone().run(cancel.clone()));
        tokio::spawn(b.clone().run(cancel.clone()));

        a.enter("ann", "room-1");
        a.enter("ann", "room-1");
        b.enter("ann", "room-2");
        b.enter("bob", "room-2");
        settle().await;
        let ann = a.locate("ann").await.unwrap();
        assert_eq!(ann.len(), 2);
        assert_eq!(
            a_recorded.try_recv().ok().as_deref(),
            Some("room-1"),
            "a newly recorded room is handed on"
        );
        assert!(a_recorded.try_recv().is_err(), "once");
        assert_eq!((ann[0].node, ann[0].rooms.get("room-1")), (11, Some(&2)));
        assert_eq!((ann[1].node, ann[1].rooms.get("room-2")), (22, Some(&1)));

        a.leave("ann", "room-1");
        settle().await;
        assert_eq!(a.locate("ann").await.unwrap()[0].rooms.get("room-1"), Some(&1), "one socket left");
        a.leave("ann", "room-1");
        settle().await;
        let ann = a.locate("ann").await.unwrap();
        assert_eq!(ann.iter().map(|l| l.node).collect::<Vec<_>>(), vec![22], "node 11 has none left");

        cancel.cancel();
        settle().await;
        assert!(a.locate("bob").await.unwrap().is_empty(), "a node that stops removes its fields");
    }

    #[tokio::test]
    async fn fields_past_their_time_are_ignored() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new());
        let stale = NodeSockets { rooms: BTreeMap::from([("r".to_owned(), 1)]), until: unix_ms() - 1 };
        let live = NodeSockets { rooms: BTreeMap::from([("r".to_owned(), 1)]), until: unix_ms() + 60_000 };
        let key = record_key("ann");
        cache.map_set(&key, "5", &serde_json::to_vec(&stale).unwrap(), RECORD_TTL).await.unwrap();
        cache.map_set(&key, "6", &serde_json::to_vec(&live).unwrap(), RECORD_TTL).await.unwrap();
        cache.map_set(&key, "not-a-node", b"{}", RECORD_TTL).await.unwrap();
        let found = UserSockets::new(1, cache).0.locate("ann").await.unwrap();
        assert_eq!(
            found.iter().map(|l| l.node).collect::<Vec<_>>(),
            vec![6],
            "a dead node's field is skipped"
        );
    }
}
