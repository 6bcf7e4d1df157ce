//! The embedded default's cache: [`MemoryCache`], with the keys under a few prefixes also written
//! to an append-only journal file, so that they survive a restart. The server journals its refresh
//! tokens this way: a restarted laptop server does not sign every tab out. Everything else (rate
//! limits, the session cache, recent chat) stays memory-only, as the cache's contract allows.
//!
//! The journal is one JSON record per line, appended and `fsync`ed before the operation returns,
//! so what a client was answered survives `kill -9`. Opening replays it (a torn last line from a
//! crash is skipped), drops what has expired, and rewrites it compacted; it is compacted again
//! whenever it has grown to several times what is live. Journaled operations are serialised by one
//! lock: refreshes are rare, and their order in the file must be their order in memory.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Cache, CacheError, CacheResult, Hit, MemoryCache};
use crate::clock::unix_ms;

/// Past this many lines, and four times the live keys, the journal is rewritten.
const COMPACT_AFTER_LINES: usize = 1024;

pub struct JournaledCache {
    inner: MemoryCache,
    prefixes: &'static [&'static str],
    journal: Arc<tokio::sync::Mutex<Journal>>,
}

/// One line: `v` (hex) and `x` (expiry, unix ms) for a value, neither for a deletion.
#[derive(Serialize, Deserialize)]
struct Record {
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    #[serde(default)]
    x: u64,
}

struct Journal {
    path: PathBuf,
    file: File,
    /// The journaled keys' values and expiries (unix ms): what a compaction writes.
    live: HashMap<String, (Vec<u8>, u64)>,
    lines: usize,
}

impl JournaledCache {
    /// Opens (or creates) the journal at `path` and loads its live keys. Keys starting with one of
    /// `prefixes` are journaled from now on.
    pub async fn open(path: &Path, prefixes: &'static [&'static str]) -> std::io::Result<Self> {
        let live = replay(path)?;
        let inner = MemoryCache::new();
        let now = unix_ms();
        for (key, (value, expiry)) in &live {
            let ttl = Duration::from_millis(expiry.saturating_sub(now));
            inner.set(key, value, ttl).await.map_err(std::io::Error::other)?;
        }
        let journal = Journal::rewrite(path.to_owned(), live)?;
        Ok(Self { inner, prefixes, journal: Arc::new(tokio::sync::Mutex::new(journal)) })
    }

    fn durable(&self, key: &str) -> bool {
        self.prefixes.iter().any(|prefix| key.starts_with(prefix))
    }

    /// Journals `key`'s new value and expiry, or its deletion (`None`). An fsync can take
    /// milliseconds: on a multi-threaded runtime the worker first hands its other tasks to the
    /// rest; on a current-thread one (tests) it runs inline.
    fn append(journal: &mut Journal, key: &str, entry: Option<(&[u8], u64)>) -> CacheResult<()> {
        let mut write = || journal.append(key, entry);
        let written = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
            _ => write(),
        };
        written.map_err(|e| CacheError::Backend(format!("writing the cache journal: {e}")))
    }
}

impl Journal {
    /// Writes `live` as a fresh journal (beside it, then renamed over it) and opens it to append.
    fn rewrite(path: PathBuf, live: HashMap<String, (Vec<u8>, u64)>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let fresh = path.with_extension("journal.new");
        {
            let mut out = std::io::BufWriter::new(File::create(&fresh)?);
            for (key, (value, expiry)) in &live {
                writeln!(out, "{}", line(key, Some(value), *expiry))?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&fresh, &path)?;
        if let Some(dir) = path.parent() {
            // The rename itself must be durable before anything is appended after it.
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self { path, lines: live.len(), file, live })
    }

    fn append(&mut self, key: &str, entry: Option<(&[u8], u64)>) -> std::io::Result<()> {
        let text = match entry {
            Some((value, expiry)) => {
                self.live.insert(key.to_owned(), (value.to_vec(), expiry));
                line(key, Some(value), expiry)
            }
            None => {
                self.live.remove(key);
                line(key, None, 0)
            }
        };
        self.file.write_all(format!("{text}\n").as_bytes())?;
        self.file.sync_data()?;
        self.lines += 1;
        if self.lines > COMPACT_AFTER_LINES && self.lines > 4 * self.live.len() {
            let now = unix_ms();
            let live = std::mem::take(&mut self.live).into_iter().filter(|(_, (_, x))| *x > now).collect();
            *self = Self::rewrite(self.path.clone(), live)?;
        }
        Ok(())
    }
}

/// When a value stored now for `ttl` expires, in unix ms.
fn expiry_after(ttl: Duration) -> u64 {
    unix_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn line(key: &str, value: Option<&[u8]>, expiry: u64) -> String {
    let record = Record { k: key.to_owned(), v: value.map(hex), x: expiry };
    serde_json::to_string(&record).expect("a record serialises")
}

/// The live keys a journal leaves: later lines win, expired keys are dropped. A line that does
/// not parse is skipped (the last one may be torn by a crash mid-write).
fn replay(path: &Path) -> std::io::Result<HashMap<String, (Vec<u8>, u64)>> {
    let mut live = HashMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(live),
        Err(e) => return Err(e),
    };
    let mut skipped = 0;
    for text in BufReader::new(file).lines() {
        let text = text?;
        let Ok(record) = serde_json::from_str::<Record>(&text) else {
            skipped += 1;
            continue;
        };
        match record.v.as_deref().map(unhex) {
            Some(Some(value)) => {
                live.insert(record.k, (value, record.x));
            }
            Some(None) => skipped += 1,
            None => {
                live.remove(&record.k);
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "cache journal: skipped lines that do not parse");
    }
    let now = unix_ms();
    live.retain(|_, (_, expiry)| *expiry > now);
    Ok(live)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[async_trait]
impl Cache for JournaledCache {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        if !self.durable(key) {
            return self.inner.set(key, value, ttl).await;
        }
        let mut journal = self.journal.lock().await;
        self.inner.set(key, value, ttl).await?;
        Self::append(&mut journal, key, Some((value, expiry_after(ttl))))
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool> {
        if !self.durable(key) {
            return self.inner.set_if_absent(key, value, ttl).await;
        }
        let mut journal = self.journal.lock().await;
        if !self.inner.set_if_absent(key, value, ttl).await? {
            return Ok(false);
        }
        Self::append(&mut journal, key, Some((value, expiry_after(ttl))))?;
        Ok(true)
    }

    async fn swap(&self, key: &str, value: &[u8]) -> CacheResult<Option<Vec<u8>>> {
        if !self.durable(key) {
            return self.inner.swap(key, value).await;
        }
        let mut journal = self.journal.lock().await;
        let previous = self.inner.swap(key, value).await?;
        // A swap keeps the expiry: the journal knows it from the key's last record.
        if let (Some(_), Some(&(_, expiry))) = (&previous, journal.live.get(key)) {
            Self::append(&mut journal, key, Some((value, expiry)))?;
        }
        Ok(previous)
    }

    async fn delete(&self, key: &str) -> CacheResult<bool> {
        if !self.durable(key) {
            return self.inner.delete(key).await;
        }
        let mut journal = self.journal.lock().await;
        let removed = self.inner.delete(key).await?;
        if journal.live.contains_key(key) {
            Self::append(&mut journal, key, None)?;
        }
        Ok(removed)
    }

    async fn hit(&self, key: &str, window: Duration) -> CacheResult<Hit> {
        self.inner.hit(key, window).await
    }

    async fn unhit(&self, key: &str) -> CacheResult<()> {
        self.inner.unhit(key).await
    }

    async fn map_set(&self, key: &str, field: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        self.inner.map_set(key, field, value, ttl).await
    }

    async fn map_remove(&self, key: &str, field: &str) -> CacheResult<()> {
        self.inner.map_remove(key, field).await
    }

    async fn map_entries(&self, key: &str) -> CacheResult<Vec<(String, Vec<u8>)>> {
        self.inner.map_entries(key).await
    }

    async fn list_push_trim(&self, key: &str, value: &[u8], keep: usize, ttl: Duration) -> CacheResult<()> {
        self.inner.list_push_trim(key, value, keep, ttl).await
    }

    async fn list_fill_if_absent(
        &self,
        key: &str,
        values: &[Vec<u8>],
        keep: usize,
        ttl: Duration,
    ) -> CacheResult<bool> {
        self.inner.list_fill_if_absent(key, values, keep, ttl).await
    }

    async fn list_range(&self, key: &str) -> CacheResult<Vec<Vec<u8>>> {
        self.inner.list_range(key).await
    }

    async fn ping(&self) -> CacheResult<()> {
        self.inner.ping().await
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURABLE: &[&str] = &["keep:"];
    const HOUR: Duration = Duration::from_secs(3600);

    async fn open(dir: &tempfile::TempDir) -> JournaledCache {
        JournaledCache::open(&dir.path().join("c.journal"), DURABLE).await.unwrap()
    }

    #[tokio::test]
    async fn journaled_keys_survive_reopening_with_their_last_value_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(&dir).await;
        cache.set("keep:a", b"1", HOUR).await.unwrap();
        cache.set("keep:b", b"gone", HOUR).await.unwrap();
        cache.set("other", b"memory only", HOUR).await.unwrap();
        assert_eq!(cache.swap("keep:a", b"2").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(cache.delete("keep:b").await.unwrap());
        assert!(cache.set_if_absent("keep:c", b"3", HOUR).await.unwrap());
        assert!(!cache.set_if_absent("keep:c", b"not stored", HOUR).await.unwrap());
        drop(cache);

        let cache = open(&dir).await;
        assert_eq!(cache.get("keep:a").await.unwrap().as_deref(), Some(&b"2"[..]), "the swap's value");
        assert_eq!(cache.get("keep:b").await.unwrap(), None, "deleted stays deleted");
        assert_eq!(cache.get("keep:c").await.unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(cache.get("other").await.unwrap(), None, "only the durable prefixes are journaled");
        // And the swap kept the first set's expiry, not a new one: still about an hour.
        drop(cache);
        let live = replay(&dir.path().join("c.journal")).unwrap();
        let expiry = live["keep:a"].1;
        assert!(expiry > unix_ms() + 3_500_000 && expiry <= unix_ms() + 3_600_000, "{expiry}");
    }

    #[tokio::test]
    async fn expired_keys_are_dropped_at_reopening_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.journal");
        let cache = open(&dir).await;
        // Expires the moment it is written: replay keeps only what expires after now.
        cache.set("keep:short", b"x", Duration::ZERO).await.unwrap();
        cache.set("keep:long", b"y", HOUR).await.unwrap();
        drop(cache);
        // A crash mid-append leaves half a line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"k":"keep:long","v":"7"#).unwrap();
        drop(file);

        let cache = open(&dir).await;
        assert_eq!(cache.get("keep:short").await.unwrap(), None);
        assert_eq!(cache.get("keep:long").await.unwrap().as_deref(), Some(&b"y"[..]));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 1, "reopening rewrites the journal with what is live");
    }

    #[tokio::test]
    async fn the_journal_is_compacted_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.journal");
        let cache = open(&dir).await;
        for i in 0..3 * COMPACT_AFTER_LINES {
            cache.set("keep:same", i.to_string().as_bytes(), HOUR).await.unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= COMPACT_AFTER_LINES + 1, "{lines} lines for one live key");
        drop(cache);
        let cache = open(&dir).await;
        let last = (3 * COMPACT_AFTER_LINES - 1).to_string();
        assert_eq!(cache.get("keep:same").await.unwrap().as_deref(), Some(last.as_bytes()));
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
