//! Each job kind goes to its own work queue; `message_save` and `execution_jobs` are shared by
//! competing consumers, `snapshot_save` has one active consumer.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use workers::amqp::{AmqpConsumer, AmqpQueue, Topology, WorkQueue};
use workers::{JobConsumer, JobQueue};

use crate::{TIMEOUT, config, delete_topology, snapshot};

/// Messages ready in `queue` (a passive declare).
async fn ready(connection: &Connection, queue: &str) -> u32 {
    let channel = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel.queue_declare(queue.into(), options, FieldTable::default()).await.unwrap();
    let _ = channel.close(200, "done".into()).await;
    declared.message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_jobs_go_to_snapshot_save_only() {
    let config = config(None, 16);
    let queue = AmqpQueue::connect(&config).await.expect("connect the publisher");
    for seq in 0..5 {
        queue.publish(snapshot("r", seq)).await.unwrap();
    }
    let topology = Topology::new(&config);
    let connection = Connection::connect(&config.url, ConnectionProperties::default()).await.unwrap();
    // Confirmed: the quorum queue has applied them, so its count is exact.
    assert_eq!(ready(&connection, &topology.queue(WorkQueue::SnapshotSave)).await, 5);
    assert_eq!(ready(&connection, &topology.queue(WorkQueue::MessageSave)).await, 0);
    assert_eq!(ready(&connection, &topology.queue(WorkQueue::ExecutionJobs)).await, 0);
    let _ = connection.close(200, "done".into()).await;
    queue.close().await.unwrap();
    delete_topology(&config).await;
}

/// Two workers on `message_save` (and `execution_jobs`) both get jobs at once: the broker deals the
/// queue to competing consumers. Each holds at most one (prefetch 1, nothing acked), so the second
/// job can only go to the second worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unordered_queues_have_competing_consumers() {
    let config = config(None, 1);
    let topology = Topology::new(&config);
    let connection = Connection::connect(&config.url, ConnectionProperties::default()).await.unwrap();
    for queue in [WorkQueue::MessageSave, WorkQueue::ExecutionJobs] {
        let mut first = AmqpConsumer::connect(&config, queue).await.expect("connect the first worker");
        let mut second = AmqpConsumer::connect(&config, queue).await.expect("connect the second worker");
        // No job kind routes here yet: publish job bytes straight to the queue.
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        for seq in 0..2 {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    topology.queue(queue).as_str().into(),
                    BasicPublishOptions::default(),
                    &snapshot("r", seq).encode(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap();
            assert!(confirm.await.unwrap().is_ack());
        }
        for worker in [&mut first, &mut second] {
            let batch = tokio::time::timeout(TIMEOUT, worker.next_batch(8))
                .await
                .unwrap_or_else(|_| panic!("both workers of {queue:?} get a job"))
                .expect("the consumer is open");
            assert_eq!(batch.len(), 1, "prefetch 1");
            batch.into_iter().next().unwrap().ack().await.unwrap();
        }
        first.disconnect().await.unwrap();
        second.disconnect().await.unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
    delete_topology(&config).await;
}
