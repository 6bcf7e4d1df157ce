//! Runs from a test client: the `run` frame, waiting for the answer, and reading a job's messages.

use std::time::Duration;

use protocol::Message;
use serde_json::{Value, json};

use super::YClient;

const WAIT: Duration = Duration::from_secs(10);

/// A `run` app message frame with `fields` added.
pub fn run(fields: Value) -> Vec<u8> {
    let mut message = json!({ "type": "run" });
    message.as_object_mut().unwrap().extend(fields.as_object().cloned().unwrap_or_default());
    Message::App(&message.to_string()).encode_to_vec()
}

/// The answer (`run_queued` or `error`) to the run message that carried `nonce`.
pub async fn answer(client: &YClient, nonce: &str) -> Value {
    let find = |c: &YClient| {
        c.app_messages()
            .into_iter()
            .find(|m| m["nonce"] == nonce && (m["type"] == "run_queued" || m["type"] == "error"))
    };
    client.wait_for(&format!("the answer to {nonce}"), WAIT, |c| find(c).is_some()).await;
    find(client).unwrap()
}

/// Sends a run and returns its job id; panics on a refusal.
pub async fn start(client: &YClient, fields: Value, nonce: &str) -> String {
    let mut fields = fields;
    fields["nonce"] = json!(nonce);
    client.send_raw(run(fields));
    let answer = answer(client, nonce).await;
    assert_eq!(answer["type"], "run_queued", "{answer}");
    answer["job"].as_str().unwrap().to_owned()
}

/// The room's messages of `job` that `client` received (`run_started`, `run_output`, `run_exit`;
/// not the sender's own `run_queued`), in order.
pub fn messages_of(client: &YClient, job: &str) -> Vec<Value> {
    client
        .app_messages()
        .into_iter()
        .filter(|m| {
            m["job"] == job
                && ["run_started", "run_output", "run_exit"].contains(&m["type"].as_str().unwrap_or(""))
        })
        .collect()
}

/// Waits until `client` has `job`'s `run_exit` and returns it.
pub async fn exit_of(client: &YClient, job: &str, timeout: Duration) -> Value {
    let find = |c: &YClient| messages_of(c, job).into_iter().find(|m| m["type"] == "run_exit");
    client.wait_for(&format!("run_exit of {job}"), timeout, |c| find(c).is_some()).await;
    find(client).unwrap()
}

/// `job`'s output on `stream` as `client` received it, checking seq runs 0, 1, 2… without gaps.
pub fn output_of(client: &YClient, job: &str, stream: &str) -> String {
    let chunks: Vec<Value> =
        messages_of(client, job).into_iter().filter(|m| m["type"] == "run_output").collect();
    for (expected, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["seq"].as_u64(), Some(expected as u64), "seq without gaps: {chunks:?}");
    }
    chunks.iter().filter(|c| c["stream"] == stream).map(|c| c["data"].as_str().unwrap()).collect()
}
