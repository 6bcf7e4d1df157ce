//! Redis's own counters, read with `INFO` at both edges of the measured window: how many PUBLISH
//! commands the relay sent, how many commands Redis processed in all, and the CPU it used.

use std::time::Duration;

use anyhow::Context as _;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tokio::time::Instant;

use crate::report::ratio;

/// Connecting and each `INFO` answer; Redis on loopback answers in microseconds, so a slow one
/// means it is not there (better said at startup than as a hung run).
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection kept for reading `INFO`.
pub struct RedisInfo {
    url: String,
    connection: MultiplexedConnection,
}

/// One reading of Redis's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisSample {
    pub at: Instant,
    /// `cmdstat_publish:calls` (0 before the first PUBLISH: Redis lists only commands it has run).
    pub publishes: u64,
    /// `total_commands_processed` (the harness's own `INFO` commands included: three per sample).
    pub commands: u64,
    /// `used_cpu_sys + used_cpu_user`, seconds.
    pub cpu_secs: f64,
}

impl RedisInfo {
    /// Connects to `url`; fails, saying how, if Redis does not answer.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("not a Redis URL: {url}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        // Display, not the error chain: the redis error's message already includes its source.
        let connection = client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| {
            anyhow::anyhow!("connecting to Redis at {url} (is redis-server running there?): {e}")
        })?;
        let info = Self { url: url.to_owned(), connection };
        info.sample().await?;
        Ok(info)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn sample(&self) -> anyhow::Result<RedisSample> {
        let at = Instant::now();
        let commandstats = self.info("commandstats").await?;
        let stats = self.info("stats").await?;
        let cpu_info = self.info("cpu").await?;
        let missing = |name: &str| anyhow::anyhow!("no number {name} in Redis's INFO from {}", self.url);
        let cpu = |name| number::<f64>(&cpu_info, name).ok_or_else(|| missing(name));
        Ok(RedisSample {
            at,
            publishes: publish_calls(&commandstats),
            commands: number(&stats, "total_commands_processed")
                .ok_or_else(|| missing("total_commands_processed"))?,
            cpu_secs: cpu("used_cpu_sys")? + cpu("used_cpu_user")?,
        })
    }

    /// One `INFO` section. One section per call: `INFO` with several sections needs Redis 7.
    async fn info(&self, section: &str) -> anyhow::Result<String> {
        // A clone of a multiplexed connection is a handle to the same socket.
        let mut connection = self.connection.clone();
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut connection)
            .await
            .with_context(|| format!("INFO {section} from Redis at {}", self.url))
    }
}

/// Redis over the measured window, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RedisUsage {
    pub url: String,
    pub wall_secs: f64,
    pub publishes: u64,
    pub publishes_per_sec: f64,
    pub commands: u64,
    pub commands_per_sec: f64,
    pub cpu_secs: f64,
    /// Redis CPU seconds per wall second, in percent of one core.
    pub cpu_pct: f64,
}

impl RedisUsage {
    pub fn between(url: &str, from: &RedisSample, to: &RedisSample) -> Self {
        let wall_secs = to.at.saturating_duration_since(from.at).as_secs_f64();
        let publishes = to.publishes.saturating_sub(from.publishes);
        let commands = to.commands.saturating_sub(from.commands);
        let cpu_secs = (to.cpu_secs - from.cpu_secs).max(0.0);
        Self {
            url: url.to_owned(),
            wall_secs,
            publishes,
            publishes_per_sec: ratio(publishes as f64, wall_secs),
            commands,
            commands_per_sec: ratio(commands as f64, wall_secs),
            cpu_secs,
            cpu_pct: ratio(cpu_secs * 100.0, wall_secs),
        }
    }
}

/// The value of `name:value` in an `INFO` answer.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

/// The number `name:value` in an `INFO` answer.
fn number<T: std::str::FromStr>(info: &str, name: &str) -> Option<T> {
    info_field(info, name)?.parse().ok()
}

/// `calls=` of the `cmdstat_publish` line; 0 if Redis has not run a PUBLISH yet.
fn publish_calls(commandstats: &str) -> u64 {
    info_field(commandstats, "cmdstat_publish")
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from redis-server 7.0's answers.
    const COMMANDSTATS: &str = "# Commandstats\r\n\
        cmdstat_ping:calls=4,usec=3,usec_per_call=0.75,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_publish:calls=12345,usec=40000,usec_per_call=3.24,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_publisher:calls=9,usec=1,usec_per_call=0.1,rejected_calls=0,failed_calls=0\r\n";
    const STATS: &str = "# Stats\r\ntotal_connections_received:7\r\ntotal_commands_processed:20001\r\n";
    const CPU: &str =
        "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.0\r\n";

    #[test]
    fn parses_info_sections() {
        assert_eq!(publish_calls(COMMANDSTATS), 12345);
        assert_eq!(publish_calls("# Commandstats\r\ncmdstat_ping:calls=4,usec=3\r\n"), 0);
        assert_eq!(info_field(STATS, "total_commands_processed"), Some("20001"));
        assert_eq!(number::<f64>(CPU, "used_cpu_sys"), Some(1.25));
        assert_eq!(number::<u64>(STATS, "total_commands_processed"), Some(20001));
        assert_eq!(info_field(CPU, "used_cpu"), None, "a name is matched whole");
    }

    #[test]
    fn usage_over_a_window() {
        let at = Instant::now();
        let from = RedisSample { at, publishes: 100, commands: 1000, cpu_secs: 1.0 };
        let to =
            RedisSample { at: at + Duration::from_secs(2), publishes: 300, commands: 1400, cpu_secs: 1.5 };
        let u = RedisUsage::between("redis://x", &from, &to);
        assert_eq!((u.publishes, u.publishes_per_sec, u.commands_per_sec), (200, 100.0, 200.0));
        assert_eq!((u.cpu_secs, u.cpu_pct), (0.5, 25.0));
    }
}
