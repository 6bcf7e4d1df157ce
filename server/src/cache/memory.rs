//! [`MemoryCache`]: the default cache backend, one process's map of key → (value, expiry), one of
//! key → (map of fields, expiry) for the map operations, and one of key → (list, expiry) for the
//! list operations.
//!
//! Every operation takes only its key's shard lock in the [`DashMap`], so each is atomic per key
//! and no operation waits for a lock over the whole map. An expired entry is invisible at once;
//! its memory comes back when an operation meets it or when the next sweep runs. Sweeps run on the
//! write path, not in a task, so the cache needs no runtime and no shutdown: after as many writes
//! as the map held after the last sweep (at least [`MIN_WRITES_BETWEEN_SWEEPS`]). That keeps the
//! sweep's cost O(1) per write on average and the map below about twice its live entries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Cache, CacheError, CacheResult, Hit};

/// Fewest writes between two sweeps, so a small map is not swept on nearly every write.
const MIN_WRITES_BETWEEN_SWEEPS: usize = 1024;

/// Stands in for a TTL too long to add to an `Instant`: nothing in a cache lives a century.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When something stored at `now` for `ttl` expires.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or(now + NEVER)
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl Entry {
    fn new(value: Vec<u8>, now: Instant, ttl: Duration) -> Self {
        Self { value, expires_at: expiry(now, ttl) }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// A map value: its fields share one expiry.
struct Fields {
    fields: HashMap<String, Vec<u8>>,
    expires_at: Instant,
}

/// A list value: its items share one expiry.
struct List {
    items: VecDeque<Vec<u8>>,
    expires_at: Instant,
}

pub struct MemoryCache {
    entries: DashMap<String, Entry>,
    maps: DashMap<String, Fields>,
    lists: DashMap<String, List>,
    writes_since_sweep: AtomicUsize,
    /// Writes after which the next sweep runs; set by each sweep from what it left in the map.
    sweep_after: AtomicUsize,
    min_writes_between_sweeps: usize,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::with_min_writes_between_sweeps(MIN_WRITES_BETWEEN_SWEEPS)
    }

    fn with_min_writes_between_sweeps(min_writes: usize) -> Self {
        Self {
            entries: DashMap::new(),
            maps: DashMap::new(),
            lists: DashMap::new(),
            writes_since_sweep: AtomicUsize::new(0),
            sweep_after: AtomicUsize::new(min_writes),
            min_writes_between_sweeps: min_writes,
        }
    }

    /// Counts a write that may have added an entry, and sweeps when enough have accumulated. The
    /// compare-exchange elects exactly one sweeper among writers that cross the threshold together.
    fn after_write(&self) {
        let writes = self.writes_since_sweep.fetch_add(1, Ordering::Relaxed) + 1;
        if writes >= self.sweep_after.load(Ordering::Relaxed)
            && self
                .writes_since_sweep
                .compare_exchange(writes, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let live = self.sweep();
            self.sweep_after.store(live.max(self.min_writes_between_sweeps), Ordering::Relaxed);
        }
    }

    /// Removes every expired entry and returns how many entries remain. Locks one shard at a time.
    fn sweep(&self) -> usize {
        let now = Instant::now();
        self.entries.retain(|_, entry| entry.is_live(now));
        self.maps.retain(|_, map| map.expires_at > now);
        self.lists.retain(|_, list| list.expires_at > now);
        self.entries.len() + self.maps.len() + self.lists.len()
    }

    /// Removes `key` if it has expired. Called after a read found it expired, once the read's
    /// shard guard is gone (removing under it would deadlock).
    fn remove_if_expired(&self, key: &str, now: Instant) {
        self.entries.remove_if(key, |_, entry| !entry.is_live(now));
    }
}

/// A counter's value as Redis keeps it, decimal text, so both backends store the same bytes.
fn parse_counter(value: &[u8]) -> CacheResult<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| CacheError::Backend("memory hit: the key holds a value that is not a counter".into()))
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        let now = Instant::now();
        match self.entries.get(key) {
            None => Ok(None),
            Some(entry) if entry.is_live(now) => Ok(Some(entry.value.clone())),
            Some(expired) => {
                drop(expired);
                self.remove_if_expired(key, now);
                Ok(None)
            }
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        self.entries.insert(key.to_owned(), Entry::new(value.to_vec(), Instant::now(), ttl));
        self.after_write();
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool> {
        let now = Instant::now();
        let stored = match self.entries.entry(key.to_owned()) {
            MapEntry::Occupied(occupied) if occupied.get().is_live(now) => false,
            MapEntry::Occupied(mut expired) => {
                expired.insert(Entry::new(value.to_vec(), now, ttl));
                true
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(Entry::new(value.to_vec(), now, ttl));
                true
            }
        };
        if stored {
            self.after_write();
        }
        Ok(stored)
    }

    async fn swap(&self, key: &str, value: &[u8]) -> CacheResult<Option<Vec<u8>>> {
        let now = Instant::now();
        match self.entries.get_mut(key) {
            None => Ok(None),
            Some(mut entry) if entry.is_live(now) => {
                Ok(Some(std::mem::replace(&mut entry.value, value.to_vec())))
            }
            Some(expired) => {
                drop(expired);
                self.remove_if_expired(key, now);
                Ok(None)
            }
        }
    }

    async fn delete(&self, key: &str) -> CacheResult<bool> {
        let removed = self.entries.remove(key);
        Ok(removed.is_some_and(|(_, entry)| entry.is_live(Instant::now())))
    }

    async fn hit(&self, key: &str, window: Duration) -> CacheResult<Hit> {
        let now = Instant::now();
        let hit = match self.entries.entry(key.to_owned()) {
            MapEntry::Occupied(mut occupied) if occupied.get().is_live(now) => {
                let entry = occupied.get_mut();
                let count = parse_counter(&entry.value)? + 1;
                entry.value = count.to_string().into_bytes();
                Hit { count, reset_in: entry.expires_at - now }
            }
            MapEntry::Occupied(mut expired) => {
                expired.insert(Entry::new(b"1".to_vec(), now, window));
                Hit { count: 1, reset_in: window }
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(Entry::new(b"1".to_vec(), now, window));
                Hit { count: 1, reset_in: window }
            }
        };
        self.after_write();
        Ok(hit)
    }

    async fn unhit(&self, key: &str) -> CacheResult<()> {
        if let Some(mut entry) = self.entries.get_mut(key)
            && entry.is_live(Instant::now())
        {
            let count = parse_counter(&entry.value)?;
            entry.value = count.saturating_sub(1).to_string().into_bytes();
        }
        Ok(())
    }

    async fn map_set(&self, key: &str, field: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let now = Instant::now();
        let expires_at = expiry(now, ttl);
        let mut map =
            self.maps.entry(key.to_owned()).or_insert_with(|| Fields { fields: HashMap::new(), expires_at });
        if map.expires_at <= now {
            map.fields.clear();
        }
        map.fields.insert(field.to_owned(), value.to_vec());
        map.expires_at = expires_at;
        drop(map);
        self.after_write();
        Ok(())
    }

    async fn map_remove(&self, key: &str, field: &str) -> CacheResult<()> {
        if let Some(mut map) = self.maps.get_mut(key) {
            map.fields.remove(field);
        }
        self.maps.remove_if(key, |_, map| map.fields.is_empty() || map.expires_at <= Instant::now());
        Ok(())
    }

    async fn map_entries(&self, key: &str) -> CacheResult<Vec<(String, Vec<u8>)>> {
        let now = Instant::now();
        Ok(match self.maps.get(key) {
            Some(map) if map.expires_at > now => {
                map.fields.iter().map(|(field, value)| (field.clone(), value.clone())).collect()
            }
            _ => Vec::new(),
        })
    }

    async fn list_push_trim(&self, key: &str, value: &[u8], keep: usize, ttl: Duration) -> CacheResult<()> {
        let now = Instant::now();
        let expires_at = expiry(now, ttl);
        let mut list =
            self.lists.entry(key.to_owned()).or_insert_with(|| List { items: VecDeque::new(), expires_at });
        if list.expires_at <= now {
            list.items.clear();
        }
        list.items.push_back(value.to_vec());
        let excess = list.items.len().saturating_sub(keep.max(1));
        list.items.drain(..excess);
        list.expires_at = expires_at;
        drop(list);
        self.after_write();
        Ok(())
    }

    async fn list_fill_if_absent(
        &self,
        key: &str,
        values: &[Vec<u8>],
        keep: usize,
        ttl: Duration,
    ) -> CacheResult<bool> {
        let now = Instant::now();
        let expires_at = expiry(now, ttl);
        let last = &values[values.len().saturating_sub(keep.max(1))..];
        if last.is_empty() {
            // As in Redis, an empty list is no list.
            return Ok(false);
        }
        let list = List { items: last.iter().cloned().collect(), expires_at };
        let filled = match self.lists.entry(key.to_owned()) {
            MapEntry::Occupied(occupied)
                if occupied.get().expires_at > now && !occupied.get().items.is_empty() =>
            {
                false
            }
            MapEntry::Occupied(mut expired) => {
                expired.insert(list);
                true
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(list);
                true
            }
        };
        if filled {
            self.after_write();
        }
        Ok(filled)
    }

    async fn list_range(&self, key: &str) -> CacheResult<Vec<Vec<u8>>> {
        let now = Instant::now();
        Ok(match self.lists.get(key) {
            Some(list) if list.expires_at > now => list.items.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn sweep_reclaims_expired_entries_after_enough_writes() {
        let cache = MemoryCache::with_min_writes_between_sweeps(10);
        cache.set("lives", b"v", Duration::from_secs(60)).await.unwrap();
        for i in 0..8 {
            cache.set(&format!("short-{i}"), b"v", SHORT).await.unwrap();
        }
        tokio::time::sleep(SHORT * 2).await;
        assert_eq!(cache.entries.len(), 9, "no sweep before the tenth write: expired entries still held");

        cache.set("tenth-write", b"v", Duration::from_secs(60)).await.unwrap();
        assert_eq!(cache.entries.len(), 2, "the tenth write swept the eight expired entries");
        assert_eq!(cache.sweep_after.load(Ordering::Relaxed), 10, "small maps sweep after the minimum");
        assert_eq!(cache.get("lives").await.unwrap().as_deref(), Some(&b"v"[..]), "live entries stay");
    }

    #[tokio::test]
    async fn sweeps_space_out_as_the_map_grows() {
        let cache = MemoryCache::with_min_writes_between_sweeps(4);
        // Sweeps after writes 4 (4 live), 8 (8 live) and 16 (16 live); hits count as writes too.
        for i in 0..16 {
            if i % 2 == 0 {
                cache.set(&format!("k{i}"), b"v", Duration::from_secs(60)).await.unwrap();
            } else {
                cache.hit(&format!("k{i}"), Duration::from_secs(60)).await.unwrap();
            }
        }
        assert_eq!(
            cache.sweep_after.load(Ordering::Relaxed),
            16,
            "a sweep that leaves 16 live entries waits 16 writes: O(1) per write on average"
        );
    }

    #[tokio::test]
    async fn reading_an_expired_entry_reclaims_it() {
        let cache = MemoryCache::new();
        cache.set("k", b"v", SHORT).await.unwrap();
        tokio::time::sleep(SHORT * 2).await;
        assert_eq!(cache.get("k").await.unwrap(), None);
        assert!(cache.entries.is_empty(), "the read removed the expired entry");
    }

    #[tokio::test]
    async fn hit_on_a_value_that_is_not_a_counter_is_an_error() {
        let cache = MemoryCache::new();
        cache.set("k", b"not a number", Duration::from_secs(60)).await.unwrap();
        let err = cache.hit("k", Duration::from_secs(60)).await.unwrap_err();
        assert!(err.to_string().contains("not a counter"), "{err}");
    }
}
