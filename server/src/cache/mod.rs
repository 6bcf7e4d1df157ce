//! The cache: short-lived shared state with expiry — refresh tokens, the session cache, rate-limit
//! counters, which node each user's sockets are on (maps, one field per node), and each room's
//! recent chat (lists).
//!
//! Two backends behind one small trait: [`MemoryCache`] (the default: one process; wrapped in
//! [`JournaledCache`] so that refresh tokens survive a restart) and [`RedisCache`] (`REDIS_URL`:
//! shared by every node). Both pass `conformance::cache_suite` (feature `conformance`, tests only).
//! Keys are plain strings; the Redis backend prefixes them (`codecrafter:` by default) so one Redis
//! can serve several deployments or test runs.

#[cfg(feature = "conformance")]
pub mod conformance;
mod journaled;
mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use journaled::JournaledCache;
pub use memory::MemoryCache;
pub use redis::RedisCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache backend: {0}")]
    Backend(String),
}

pub type CacheResult<T> = Result<T, CacheError>;

/// One counted request in a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Requests counted in the current window, this one included.
    pub count: u64,
    /// Time until the window ends and the count starts again from zero.
    pub reset_in: Duration,
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    /// Store `value` under `key` for `ttl`, replacing any value and expiry.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Store `value` only if `key` holds nothing; true if stored.
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool>;
    /// Atomically swap the value of an existing `key` for `value`, keeping its expiry, and return
    /// the previous value. A missing key stays missing and gives `None`. Of two racing swaps
    /// exactly one sees the original value (refresh-token rotation relies on it).
    async fn swap(&self, key: &str, value: &[u8]) -> CacheResult<Option<Vec<u8>>>;
    /// Remove `key`; true if it held a value.
    async fn delete(&self, key: &str) -> CacheResult<bool>;
    /// Count one hit on the fixed-window counter `key`: the first hit starts a window of `window`.
    async fn hit(&self, key: &str, window: Duration) -> CacheResult<Hit>;
    /// Take back one hit from the live counter `key` (a login that succeeded after it was
    /// counted), keeping its window; never below zero. A missing or expired counter stays missing.
    async fn unhit(&self, key: &str) -> CacheResult<()>;
    /// Set `field` of the map at `key` to `value`, and the whole map's expiry to `ttl`.
    async fn map_set(&self, key: &str, field: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Remove `field` from the map at `key`; the map goes with its last field.
    async fn map_remove(&self, key: &str, field: &str) -> CacheResult<()>;
    /// Every field of the map at `key` (none if it is missing or expired), in no particular order.
    async fn map_entries(&self, key: &str) -> CacheResult<Vec<(String, Vec<u8>)>>;
    /// Append `value` to the list at `key`, keep only its last `keep` items (at least one), and
    /// set the whole list's expiry to `ttl`; one atomic step.
    async fn list_push_trim(&self, key: &str, value: &[u8], keep: usize, ttl: Duration) -> CacheResult<()>;
    /// Create the list at `key` with `values` (their last `keep`) and expiry `ttl`, only if there
    /// is no list there; true if created. Refills a list lost with the cache without ever
    /// overwriting items pushed meanwhile.
    async fn list_fill_if_absent(
        &self,
        key: &str,
        values: &[Vec<u8>],
        keep: usize,
        ttl: Duration,
    ) -> CacheResult<bool>;
    /// Every item of the list at `key`, oldest first (none if it is missing or expired).
    async fn list_range(&self, key: &str) -> CacheResult<Vec<Vec<u8>>>;
    /// Whether the backend answers (for `/ready`).
    async fn ping(&self) -> CacheResult<()>;
    /// `memory` or `redis`.
    fn backend_name(&self) -> &'static str;
}
