//! [`AmqpQueue`] as the server's outbox sees the broker: a confirmed publish, the snapshot
//! queue's barrier, and whether the connection is up; [`connector`] opens a new one on demand.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protocol::job::Job;

use super::{AmqpConfig, AmqpQueue};
use crate::outbox::{Broker, Connect};
use crate::queue::{JobQueue, QueueError};

#[async_trait]
impl Broker for AmqpQueue {
    async fn publish(&self, job: Job) -> Result<(), QueueError> {
        JobQueue::publish(self, job).await
    }

    async fn barrier(&self, room: &str, timeout: Duration) -> Result<(), QueueError> {
        AmqpQueue::barrier(self, room, timeout).await
    }

    fn is_connected(&self) -> bool {
        self.is_connected()
    }
}

/// Connects to `config.url` and declares the topology, each time it is called.
pub fn connector(config: AmqpConfig) -> Connect {
    let config = Arc::new(config);
    Arc::new(move || {
        let config = config.clone();
        Box::pin(async move { Ok(Arc::new(AmqpQueue::connect(&config).await?) as Arc<dyn Broker>) })
    })
}
