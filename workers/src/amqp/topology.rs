//! The broker objects the queue uses, described once as data ([`Topology::spec`]) and declared from
//! that description ([`Topology::declare`]), so that `deploy/rabbitmq/definitions.json` can be
//! checked against exactly what the code declares (`workers/tests/amqp_topology.rs`).
//!
//! Three work queues, the contract's names: `snapshot_save`, `message_save`, `execution_jobs`.
//! Each is a durable quorum queue with a delivery limit, dead-lettering at least once into its own
//! fanout exchange `{queue}.dlx`, bound to its durable quorum dead-letter queue `{queue}.dead`.
//! Every name is prefixed with [`AmqpConfig::prefix`], empty by default (tests use a unique one).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use super::{AmqpConfig, backend};
use crate::kind::JobKind;
use crate::queue::QueueError;

/// The work queues of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    /// Room snapshots. FIFO with one active consumer: the barrier relies on it.
    SnapshotSave,
    /// Chat messages to store (idempotent by id, so no order and competing consumers).
    MessageSave,
    /// Code executions (no order needed; competing consumers).
    ExecutionJobs,
}

impl WorkQueue {
    pub const ALL: [WorkQueue; 3] =
        [WorkQueue::SnapshotSave, WorkQueue::MessageSave, WorkQueue::ExecutionJobs];

    /// The queue each job kind goes to. The one exhaustive match: a new [`JobKind`] does not compile
    /// until it has chosen its queue.
    pub fn of(kind: JobKind) -> Self {
        match kind {
            JobKind::Snapshot => WorkQueue::SnapshotSave,
            JobKind::Chat => WorkQueue::MessageSave,
            JobKind::Execution => WorkQueue::ExecutionJobs,
        }
    }

    /// The contract's name, before the prefix.
    pub fn base_name(self) -> &'static str {
        match self {
            WorkQueue::SnapshotSave => "snapshot_save",
            WorkQueue::MessageSave => "message_save",
            WorkQueue::ExecutionJobs => "execution_jobs",
        }
    }

    /// Whether one consumer at a time takes the queue (FIFO handling across workers), or workers
    /// compete for its messages (N workers share the load, no order).
    pub fn single_active_consumer(self) -> bool {
        match self {
            WorkQueue::SnapshotSave => true,
            WorkQueue::MessageSave | WorkQueue::ExecutionJobs => false,
        }
    }
}

/// A queue argument's value, neutral between lapin's field table and a definitions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    Str(String),
    Bool(bool),
    Int(i64),
}

/// A durable queue and its `x-` arguments, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub arguments: Vec<(String, ArgValue)>,
}

/// A durable exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    /// `fanout`, `direct`...
    pub kind: String,
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingSpec {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
}

/// Everything the code declares, as data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologySpec {
    pub exchanges: Vec<ExchangeSpec>,
    pub queues: Vec<QueueSpec>,
    pub bindings: Vec<BindingSpec>,
}

/// The names and arguments of the queue's broker objects under one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    max_length: Option<u32>,
}

impl Topology {
    pub fn new(config: &AmqpConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            delivery_limit: config.delivery_limit,
            max_length: config.max_length,
        }
    }

    /// The work queue's name: `{prefix}snapshot_save`...
    pub fn queue(&self, queue: WorkQueue) -> String {
        format!("{}{}", self.prefix, queue.base_name())
    }

    /// Its dead-letter exchange (fanout): `{queue}.dlx`.
    pub fn dead_exchange(&self, queue: WorkQueue) -> String {
        format!("{}.dlx", self.queue(queue))
    }

    /// Its dead-letter queue, bound to the exchange: `{queue}.dead`.
    pub fn dead_queue(&self, queue: WorkQueue) -> String {
        format!("{}.dead", self.queue(queue))
    }

    /// Every exchange, queue and binding, in declaration order.
    pub fn spec(&self) -> TopologySpec {
        let mut spec = TopologySpec::default();
        for queue in WorkQueue::ALL {
            let (exchange, dead) = (self.dead_exchange(queue), self.dead_queue(queue));
            spec.exchanges.push(ExchangeSpec { name: exchange.clone(), kind: "fanout".into() });
            spec.queues.push(QueueSpec {
                name: dead.clone(),
                arguments: vec![("x-queue-type".into(), ArgValue::Str("quorum".into()))],
            });
            spec.bindings.push(BindingSpec { exchange, queue: dead, routing_key: String::new() });
            spec.queues.push(QueueSpec { name: self.queue(queue), arguments: self.work_arguments(queue) });
        }
        spec
    }

    fn work_arguments(&self, queue: WorkQueue) -> Vec<(String, ArgValue)> {
        let str = |s: &str| ArgValue::Str(s.into());
        let mut args = vec![
            ("x-queue-type".to_owned(), str("quorum")),
            ("x-delivery-limit".into(), ArgValue::Int(self.delivery_limit.into())),
            ("x-dead-letter-exchange".into(), ArgValue::Str(self.dead_exchange(queue))),
            // At-least-once dead-lettering (3.10+) needs reject-publish overflow; without it a
            // message the broker dead-letters could be lost if the dead-letter queue is unavailable.
            ("x-dead-letter-strategy".into(), str("at-least-once")),
            ("x-overflow".into(), str("reject-publish")),
        ];
        if queue.single_active_consumer() {
            args.push(("x-single-active-consumer".into(), ArgValue::Bool(true)));
        }
        if let Some(max) = self.max_length {
            args.push(("x-max-length".into(), ArgValue::Int(max.into())));
        }
        args.sort_by(|a, b| a.0.cmp(&b.0));
        args
    }

    /// Declare every exchange, queue and binding, durable (a no-op when they exist as declared;
    /// `PRECONDITION_FAILED` when one exists with other arguments).
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let spec = self.spec();
        for exchange in &spec.exchanges {
            let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
            let kind = match exchange.kind.as_str() {
                "fanout" => ExchangeKind::Fanout,
                other => ExchangeKind::Custom(other.into()),
            };
            channel
                .exchange_declare(exchange.name.as_str().into(), kind, options, FieldTable::default())
                .await
                .map_err(backend("declare an exchange"))?;
        }
        for queue in &spec.queues {
            let mut arguments = FieldTable::default();
            for (name, value) in &queue.arguments {
                arguments.insert(name.as_str().into(), amqp_value(value));
            }
            channel
                .queue_declare(queue.name.as_str().into(), QueueDeclareOptions::durable(), arguments)
                .await
                .map_err(backend("declare a queue"))?;
        }
        for binding in &spec.bindings {
            channel
                .queue_bind(
                    binding.queue.as_str().into(),
                    binding.exchange.as_str().into(),
                    ShortString::from(binding.routing_key.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(backend("bind a dead-letter queue"))?;
        }
        Ok(())
    }
}

fn amqp_value(value: &ArgValue) -> AMQPValue {
    match value {
        ArgValue::Str(s) => AMQPValue::LongString(s.as_str().into()),
        ArgValue::Bool(b) => AMQPValue::Boolean(*b),
        ArgValue::Int(n) => AMQPValue::LongLongInt(*n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_and_ordering() {
        let topology = Topology::new(&AmqpConfig::new("amqp://unused"));
        assert_eq!(topology.queue(WorkQueue::SnapshotSave), "snapshot_save");
        assert_eq!(topology.dead_exchange(WorkQueue::MessageSave), "message_save.dlx");
        assert_eq!(topology.dead_queue(WorkQueue::ExecutionJobs), "execution_jobs.dead");
        assert_eq!(WorkQueue::of(JobKind::Snapshot), WorkQueue::SnapshotSave);
        let spec = topology.spec();
        let sac = |name: &str| {
            spec.queues
                .iter()
                .find(|q| q.name == name)
                .unwrap()
                .arguments
                .iter()
                .any(|(k, _)| k == "x-single-active-consumer")
        };
        assert!(sac("snapshot_save"));
        assert!(!sac("message_save") && !sac("execution_jobs"));
        assert_eq!((spec.exchanges.len(), spec.queues.len(), spec.bindings.len()), (3, 6, 3));
    }
}
