//! Room snapshots in MongoDB: any size, merged atomically per room by any number of processes.
//!
//! A snapshot is stored as chunks (`snapshot_chunks`: room, generation, index, data) of at most
//! `snapshot_chunk_bytes` each, because one document holds at most 16 MiB. A head document per
//! room (`snapshots`: `_id` the room) names the generation that is current, with its chunk count
//! and length.
//!
//! A merge never overwrites: read the head and its chunks, merge, write the result's chunks under a
//! fresh generation (invisible until a head names it), then swap the head with a conditional
//! update that matches only if the head still names the generation that was read (for a new room,
//! an insert that fails if a head appeared meanwhile). A writer that loses the race deletes its
//! own chunks, re-reads, re-merges and tries again, so no writer's merge is lost. The winner then
//! deletes the chunks of the generation it replaced.
//!
//! A reader reads the head, then that generation's chunks. If a writer swapped the head and
//! deleted those chunks in between, the reader finds fewer than the head names and reads again.
//!
//! Invariant: a head only ever names a generation whose chunks are all written, and a generation's
//! chunks are deleted only once no head names it. A process dying mid-merge therefore leaves at
//! worst unreferenced chunks behind, never a broken snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::Collection;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, DateTime, doc};
use serde::{Deserialize, Serialize};

use super::{MongoStore, SNAPSHOT_CHUNKS, SNAPSHOTS, backend, is_duplicate_key};
use crate::snapshot::{MergeFn, SnapshotStore, SnapshotWrite};
use crate::{Error, Result};

/// How often a reader retries when writers keep replacing the snapshot under it.
const READ_ATTEMPTS: u32 = 20;
/// How often a merge retries after losing the head swap to another writer.
const MERGE_ATTEMPTS: u32 = 100;
/// Rooms of one batch merged at the same time (their I/O overlaps; merging itself is serial).
const ROOMS_IN_FLIGHT: usize = 8;

/// Which generation of chunks is a room's snapshot.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(rename = "_id")]
    room: String,
    generation: ObjectId,
    chunks: i64,
    bytes: i64,
    updated_at: DateTime,
}

#[derive(Serialize, Deserialize)]
struct Chunk {
    room: String,
    generation: ObjectId,
    index: i64,
    data: Binary,
}

/// A room's snapshot as read, with the generation a swap must find to replace it.
struct Current {
    generation: ObjectId,
    bytes: Vec<u8>,
}

impl MongoStore {
    fn heads(&self) -> Collection<Head> {
        self.db.collection(SNAPSHOTS)
    }

    fn chunks(&self) -> Collection<Chunk> {
        self.db.collection(SNAPSHOT_CHUNKS)
    }

    async fn read_current(&self, room: &str) -> Result<Option<Current>> {
        for _ in 0..READ_ATTEMPTS {
            let Some(head) = self.heads().find_one(doc! { "_id": room }).await.map_err(backend)? else {
                return Ok(None);
            };
            if let Some(bytes) = self.read_chunks(&head).await? {
                return Ok(Some(Current { generation: head.generation, bytes }));
            }
        }
        Err(Error::Backend(format!("the snapshot of room {room:?} kept changing while being read")))
    }

    /// The head's snapshot, or `None` if its chunks are (being) deleted by a writer that replaced it.
    async fn read_chunks(&self, head: &Head) -> Result<Option<Vec<u8>>> {
        let filter = doc! { "room": &head.room, "generation": head.generation };
        let mut cursor = self.chunks().find(filter).sort(doc! { "index": 1 }).await.map_err(backend)?;
        let mut bytes = Vec::with_capacity(usize::try_from(head.bytes).unwrap_or(0));
        let mut next_index = 0;
        while let Some(chunk) = cursor.try_next().await.map_err(backend)? {
            if chunk.index != next_index {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk.data.bytes);
            next_index += 1;
        }
        let complete = next_index == head.chunks && i64::try_from(bytes.len()) == Ok(head.bytes);
        Ok(complete.then_some(bytes))
    }

    async fn write_chunks(&self, room: &str, generation: ObjectId, bytes: &[u8]) -> Result<i64> {
        let chunks: Vec<_> = bytes
            .chunks(self.snapshot_chunk_bytes)
            .zip(0..)
            .map(|(data, index)| Chunk {
                room: room.to_owned(),
                generation,
                index,
                data: Binary { subtype: BinarySubtype::Generic, bytes: data.to_vec() },
            })
            .collect();
        let count = chunks.len() as i64;
        // An empty snapshot has no chunks (and MongoDB refuses an empty insert).
        if !chunks.is_empty() {
            self.chunks().insert_many(chunks).await.map_err(backend)?;
        }
        Ok(count)
    }

    async fn delete_chunks(&self, room: &str, generation: ObjectId) -> Result<()> {
        let filter = doc! { "room": room, "generation": generation };
        self.chunks().delete_many(filter).await.map(drop).map_err(backend)
    }

    /// Makes `head` current if the room's head still names `read` (or, if `read` is `None`, if the
    /// room still has no head). False if another writer got there first.
    async fn swap_head(&self, read: Option<ObjectId>, head: &Head) -> Result<bool> {
        let Some(read) = read else {
            return match self.heads().insert_one(head).await {
                Ok(_) => Ok(true),
                Err(error) if is_duplicate_key(&error) => Ok(false),
                Err(error) => Err(backend(error)),
            };
        };
        let filter = doc! { "_id": &head.room, "generation": read };
        let update = doc! { "$set": {
            "generation": head.generation,
            "chunks": head.chunks,
            "bytes": head.bytes,
            "updatedAt": head.updated_at,
        } };
        let result = self.heads().update_one(filter, update).await.map_err(backend)?;
        Ok(result.matched_count == 1)
    }

    /// Merges `updates`, in order, into the room's snapshot: read, merge, write, swap; again from
    /// the read if another writer swapped first.
    async fn merge_room(&self, room: String, updates: Vec<Vec<u8>>, merge: MergeFn) -> Result<()> {
        let updates = Arc::new(updates);
        for attempt in 0..MERGE_ATTEMPTS {
            let current = self.read_current(&room).await?;
            let read = current.as_ref().map(|c| c.generation);
            let stored = current.map(|c| c.bytes);
            let to_merge = updates.clone();
            let merged = self.merger.run(move |()| Ok(merge_all(stored, &to_merge, merge))).await?;

            let generation = ObjectId::new();
            let chunks = match self.write_chunks(&room, generation, &merged).await {
                Ok(chunks) => chunks,
                Err(error) => {
                    // No head names this generation yet, so its chunks can go.
                    let _ = self.delete_chunks(&room, generation).await;
                    return Err(error);
                }
            };
            let head = Head {
                room: room.clone(),
                generation,
                chunks,
                bytes: merged.len() as i64,
                updated_at: DateTime::now(),
            };
            // On an error the swap may or may not have happened, so the new chunks must stay.
            if self.swap_head(read, &head).await? {
                if let Some(replaced) = read
                    && let Err(error) = self.delete_chunks(&room, replaced).await
                {
                    // The merge is durable; only garbage is left behind.
                    tracing::warn!(%error, room, "could not delete a replaced snapshot's chunks");
                }
                return Ok(());
            }
            self.delete_chunks(&room, generation).await?;
            // Another writer won: let the racers spread out before reading again.
            let jitter_ms = rand::random_range(0..=5 * u64::from(attempt.min(20) + 1));
            tokio::time::sleep(Duration::from_millis(jitter_ms)).await;
        }
        Err(Error::Backend(format!(
            "gave up merging into room {room:?}: {MERGE_ATTEMPTS} concurrent writers won"
        )))
    }
}

/// `stored` with every update merged in, in order; the first update as it is if nothing is stored.
fn merge_all(stored: Option<Vec<u8>>, updates: &[Vec<u8>], merge: MergeFn) -> Vec<u8> {
    let mut updates = updates.iter();
    let mut merged = match stored {
        Some(stored) => stored,
        None => updates.next().cloned().unwrap_or_default(),
    };
    for update in updates {
        merged = merge(&merged, update);
    }
    merged
}

/// The batch's updates per room, rooms in order of first appearance, each room's in batch order.
fn group_by_room(batch: Vec<SnapshotWrite>) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut groups: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for SnapshotWrite { room, update } in batch {
        match position.get(&room) {
            Some(&at) => groups[at].1.push(update),
            None => {
                position.insert(room.clone(), groups.len());
                groups.push((room, vec![update]));
            }
        }
    }
    groups
}

#[async_trait]
impl SnapshotStore for MongoStore {
    async fn load_snapshot(&self, room: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read_current(room).await?.map(|current| current.bytes))
    }

    async fn merge_snapshots(&self, batch: Vec<SnapshotWrite>, merge: MergeFn) -> Result<()> {
        stream::iter(group_by_room(batch))
            .map(|(room, updates)| self.merge_room(room, updates, merge))
            .buffer_unordered(ROOMS_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn delete_snapshot(&self, room: &str) -> Result<bool> {
        let Some(head) = self.heads().find_one_and_delete(doc! { "_id": room }).await.map_err(backend)?
        else {
            return Ok(false);
        };
        // Only the deleted head's generation: a writer recreating the room meanwhile has its own.
        self.delete_chunks(room, head.generation).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_group_by_room_in_order() {
        let write = |room: &str, byte: u8| SnapshotWrite { room: room.to_owned(), update: vec![byte] };
        let groups = group_by_room(vec![write("b", 1), write("a", 2), write("b", 3)]);
        assert_eq!(groups, vec![("b".to_owned(), vec![vec![1], vec![3]]), ("a".to_owned(), vec![vec![2]])]);
    }

    #[test]
    fn merging_starts_from_the_first_update_when_nothing_is_stored() {
        let concat: MergeFn = |a, b| [a, b].concat();
        assert_eq!(merge_all(None, &[vec![1], vec![2]], concat), vec![1, 2]);
        assert_eq!(merge_all(Some(vec![0]), &[vec![1]], concat), vec![0, 1]);
    }
}
