//! [`RedisCache`]: the cache every node shares, on one Redis (7 or newer, for `SET … KEEPTTL GET`).
//!
//! One multiplexed connection per cache, held by a `ConnectionManager` that reconnects by itself
//! after Redis restarts. Every operation is one round trip and is bounded in time, so a dead or
//! hung Redis costs a request an error within [`RedisCache::OPERATION_DEADLINE`], never a hang.
//! During an outage each operation fails; the first one after Redis is back may still fail (it
//! finds the old connection gone and starts a new one), the following ones succeed. An operation
//! that timed out may still have been applied: a caller rotating a token treats the error as
//! "rotation failed", never as "nothing happened".

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};

use super::{Cache, CacheError, CacheResult, Hit};

/// Longest wait for one TCP connect plus handshake.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for a command's reply on an open connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnect attempts after the first, about 50 ms and then 100 ms later (backoff with jitter):
/// enough to ride out a blip, few enough that a request does not wait long on a Redis that is down.
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// One fixed-window hit, atomic and in one round trip. The window starts at the first hit (INCR
/// creates the key without expiry). A counter without expiry (written by something else) gets one,
/// so it cannot count for ever. A counter taken back to zero by `unhit` keeps its window.
const HIT_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// Take back one hit: DECR keeps the expiry; a missing key is not created, zero is the floor.
const UNHIT_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) < 0 then
  redis.call('INCR', KEYS[1])
end
return 0
";

/// Create a list only where there is none: EXISTS and RPUSH in one atomic step, so a refill never
/// lands on items pushed meanwhile. ARGV: ttl in ms, then the items, oldest first.
const LIST_FILL_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

pub struct RedisCache {
    connection: ConnectionManager,
    /// Put before every key, so deployments and test runs can share one Redis.
    key_prefix: String,
    hit_script: Script,
    unhit_script: Script,
    list_fill_script: Script,
}

impl RedisCache {
    /// Bound on a whole operation, reconnect attempts included: what a request waits at worst.
    pub const OPERATION_DEADLINE: Duration = Duration::from_secs(2);

    /// Connects to the Redis at `url` (`redis://host:port/db`), failing if it does not answer.
    pub async fn connect(url: &str, key_prefix: &str) -> CacheResult<Self> {
        let client = Client::open(url).map_err(|err| backend_error("url", err))?;
        Self::connect_client(client, key_prefix).await
    }

    /// Connects with a client already configured (e.g. TLS with a private CA, see `redis_tls`).
    pub async fn connect_client(client: Client, key_prefix: &str) -> CacheResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY);
        let connection = bounded("connect", ConnectionManager::new_with_config(client, config)).await?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
            hit_script: Script::new(HIT_SCRIPT),
            unhit_script: Script::new(UNHIT_SCRIPT),
            list_fill_script: Script::new(LIST_FILL_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Runs `command` on a handle to the shared connection (a clone is a reference count).
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        command: &redis::Cmd,
    ) -> CacheResult<T> {
        let mut connection = self.connection.clone();
        bounded(op, command.query_async(&mut connection)).await
    }
}

/// Awaits `operation` for at most [`RedisCache::OPERATION_DEADLINE`].
async fn bounded<T>(op: &'static str, operation: impl Future<Output = RedisResult<T>>) -> CacheResult<T> {
    let deadline = RedisCache::OPERATION_DEADLINE;
    match tokio::time::timeout(deadline, operation).await {
        Ok(result) => result.map_err(|err| backend_error(op, err)),
        Err(_) => Err(CacheError::Backend(format!("redis {op}: no answer within {deadline:?}"))),
    }
}

/// Names the operation but never the key: keys can carry token ids, which must not reach logs.
fn backend_error(op: &'static str, err: redis::RedisError) -> CacheError {
    CacheError::Backend(format!("redis {op}: {err}"))
}

/// Redis counts TTLs in whole milliseconds and refuses 0; round down, to at least 1 ms.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.query("get", redis::cmd("GET").arg(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let mut command = redis::cmd("SET");
        command.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.query("set", &command).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool> {
        let mut command = redis::cmd("SET");
        command.arg(self.key(key)).arg(value).arg("NX").arg("PX").arg(millis(ttl));
        // `OK` when stored, nil when the key already held a value.
        let reply: Option<String> = self.query("set_if_absent", &command).await?;
        Ok(reply.is_some())
    }

    async fn swap(&self, key: &str, value: &[u8]) -> CacheResult<Option<Vec<u8>>> {
        // XX: a missing key stays missing; KEEPTTL: the original expiry stays; GET: the old value.
        let mut command = redis::cmd("SET");
        command.arg(self.key(key)).arg(value).arg("XX").arg("KEEPTTL").arg("GET");
        self.query("swap", &command).await
    }

    async fn delete(&self, key: &str) -> CacheResult<bool> {
        let removed: u64 = self.query("delete", redis::cmd("DEL").arg(self.key(key))).await?;
        Ok(removed > 0)
    }

    async fn hit(&self, key: &str, window: Duration) -> CacheResult<Hit> {
        let mut connection = self.connection.clone();
        let mut invocation = self.hit_script.key(self.key(key));
        invocation.arg(millis(window));
        // EVALSHA, falling back to EVAL when Redis lost its script cache (after a restart).
        let (count, ttl_ms): (u64, u64) = bounded("hit", invocation.invoke_async(&mut connection)).await?;
        // Never more than `window`: the rounding to whole milliseconds must not stretch it.
        Ok(Hit { count, reset_in: Duration::from_millis(ttl_ms).min(window) })
    }

    async fn unhit(&self, key: &str) -> CacheResult<()> {
        let mut connection = self.connection.clone();
        let invocation = self.unhit_script.key(self.key(key));
        let _: i64 = bounded("unhit", invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }

    async fn map_set(&self, key: &str, field: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let key = self.key(key);
        // One atomic round trip: the field never exists without the expiry.
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("HSET").arg(&key).arg(field).arg(value).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(millis(ttl)).ignore();
        let mut connection = self.connection.clone();
        bounded("map_set", pipe.query_async::<()>(&mut connection)).await
    }

    async fn map_remove(&self, key: &str, field: &str) -> CacheResult<()> {
        // Redis deletes a hash with its last field.
        let _removed: u64 =
            self.query("map_remove", redis::cmd("HDEL").arg(self.key(key)).arg(field)).await?;
        Ok(())
    }

    async fn map_entries(&self, key: &str) -> CacheResult<Vec<(String, Vec<u8>)>> {
        self.query("map_entries", redis::cmd("HGETALL").arg(self.key(key))).await
    }

    async fn list_push_trim(&self, key: &str, value: &[u8], keep: usize, ttl: Duration) -> CacheResult<()> {
        let key = self.key(key);
        // LTRIM -keep -1 keeps the last `keep` items (one at least: `-0 -1` would keep them all).
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("RPUSH").arg(&key).arg(value).ignore();
        pipe.cmd("LTRIM").arg(&key).arg(-keep).arg(-1).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(millis(ttl)).ignore();
        let mut connection = self.connection.clone();
        bounded("list_push_trim", pipe.query_async::<()>(&mut connection)).await
    }

    async fn list_fill_if_absent(
        &self,
        key: &str,
        values: &[Vec<u8>],
        keep: usize,
        ttl: Duration,
    ) -> CacheResult<bool> {
        let last = &values[values.len().saturating_sub(keep.max(1))..];
        if last.is_empty() {
            // RPUSH needs an item; an empty list is no list in Redis.
            return Ok(false);
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.list_fill_script.key(self.key(key));
        invocation.arg(millis(ttl));
        for value in last {
            invocation.arg(value.as_slice());
        }
        let filled: i64 = bounded("list_fill_if_absent", invocation.invoke_async(&mut connection)).await?;
        Ok(filled == 1)
    }

    async fn list_range(&self, key: &str) -> CacheResult<Vec<Vec<u8>>> {
        self.query("list_range", redis::cmd("LRANGE").arg(self.key(key)).arg(0).arg(-1)).await
    }

    async fn ping(&self) -> CacheResult<()> {
        let _pong: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}
