//! The worker's flags, each also an environment variable; the doc comment is the `--help` text.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use workers::DispatchConfig;
use workers::amqp::{AmqpConfig, WorkQueue};
use workers::exec::ExecArgs;

use workers::process::LogFormat;

#[derive(Debug, clap::Parser)]
#[command(
    name = "codecrafter-worker",
    version,
    about = "CodeCrafter job worker: consumes the RabbitMQ work queues"
)]
pub struct Config {
    /// RabbitMQ URL: amqp://user:pass@host:5672/vhost (amqps:// over TLS).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: String,

    /// Prefix of every queue and exchange name; empty = the contract's names (snapshot_save, ...), as
    /// deploy/rabbitmq/definitions.json declares them. Every server and worker must agree.
    #[arg(long, env = "CODECRAFTER_AMQP_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Deliveries a worker holds unacked per queue (basic.qos), except `execution_jobs`, whose
    /// prefetch is --exec-concurrency (a worker must not sit on runs another worker could start).
    #[arg(long, env = "CODECRAFTER_WORKER_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,

    /// Jobs handed to a handler at once (the snapshot handler writes them in one store call).
    #[arg(long, env = "CODECRAFTER_WORKER_BATCH", default_value_t = 64)]
    pub batch: usize,

    /// Deliveries of one job before the broker dead-letters it (x-delivery-limit; must match the
    /// queues' declaration, definitions.json: 20).
    #[arg(long, env = "CODECRAFTER_AMQP_DELIVERY_LIMIT", default_value_t = 20)]
    pub delivery_limit: u32,

    /// Jobs ready in a work queue before publishers wait (x-max-length; must match the queues'
    /// declaration); unset = no limit but the broker's alarms.
    #[arg(long, env = "CODECRAFTER_AMQP_MAX_LENGTH")]
    pub max_length: Option<u32>,

    /// Seconds between two polls of the queues' lengths (the lag metric).
    #[arg(long, env = "CODECRAFTER_WORKER_LAG_POLL_SECS", default_value_t = 5)]
    pub lag_poll_secs: u64,

    /// Longest wait between two attempts to reach the broker after losing it.
    #[arg(long, env = "CODECRAFTER_WORKER_MAX_RECONNECT_SECS", default_value_t = 30)]
    pub max_reconnect_secs: u64,

    /// MongoDB connection string; unset = the embedded store under --data-dir (development only:
    /// one process at a time can open it).
    #[arg(long, env = "MONGO_URL", hide_env_values = true)]
    pub mongo_url: Option<String>,

    /// MongoDB database name.
    #[arg(long, env = "MONGO_DB", default_value = "codecrafter")]
    pub mongo_db: String,

    /// Directory of the embedded store (without MONGO_URL).
    #[arg(long, env = "CODECRAFTER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Redis URL: handlers reach rooms' clients on every server node through the relay; unset =
    /// handlers' room messages reach no one.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of the relay's Redis channels (the servers' CODECRAFTER_REDIS_PREFIX).
    #[arg(long, env = "CODECRAFTER_REDIS_PREFIX", default_value = "codecrafter:")]
    pub redis_prefix: String,

    /// Address of the ops endpoints (/health, /ready, /metrics).
    #[arg(long, env = "CODECRAFTER_WORKER_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port of the ops endpoints; 0 = any free port (logged).
    #[arg(long, env = "CODECRAFTER_WORKER_PORT", default_value_t = 9464)]
    pub port: u16,

    /// Log format.
    #[arg(long, env = "CODECRAFTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub exec: ExecArgs,
}

impl Config {
    pub fn amqp(&self) -> AmqpConfig {
        AmqpConfig {
            prefix: self.queue_prefix.clone(),
            prefetch: self.prefetch,
            delivery_limit: self.delivery_limit,
            max_length: self.max_length,
            ..AmqpConfig::new(&self.amqp_url)
        }
    }

    /// The consumer settings of `queue`: `execution_jobs` prefetches what its slots can start, so
    /// while they are full at most that many more runs wait here, not the whole queue.
    pub fn amqp_for(&self, queue: WorkQueue) -> AmqpConfig {
        let prefetch = match queue {
            WorkQueue::ExecutionJobs => u16::try_from(self.exec.concurrency.max(1)).unwrap_or(u16::MAX),
            WorkQueue::SnapshotSave | WorkQueue::MessageSave => self.prefetch,
        };
        AmqpConfig { prefetch, ..self.amqp() }
    }

    pub fn dispatch(&self) -> DispatchConfig {
        DispatchConfig { batch: self.batch.max(1), ..DispatchConfig::default() }
    }

    pub fn lag_poll(&self) -> Duration {
        Duration::from_secs(self.lag_poll_secs.max(1))
    }

    pub fn max_reconnect(&self) -> Duration {
        Duration::from_secs(self.max_reconnect_secs.max(1))
    }

    pub async fn open_store(&self) -> anyhow::Result<Arc<dyn storage::Store>> {
        Ok(match &self.mongo_url {
            Some(url) => Arc::new(
                storage::MongoStore::connect(storage::MongoConfig::new(url, &self.mongo_db))
                    .await
                    .context("connecting to MongoDB")?,
            ),
            None => {
                Arc::new(storage::EmbeddedStore::open(&self.data_dir).context("opening the embedded store")?)
            }
        })
    }
}
