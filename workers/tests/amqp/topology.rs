//! The topology in three places agrees: what the code declares (`Topology::spec`, prefix empty),
//! what `deploy/rabbitmq/definitions.json` declares, and what the test broker (started by
//! `scripts/services.sh` from the project's `rabbitmq.conf`, which loads those definitions) reports
//! through rabbitmqctl, before and after the code's own declaration.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use workers::QueueError;
use workers::amqp::{AmqpConfig, AmqpConsumer, AmqpQueue, ArgValue, Topology, TopologySpec, WorkQueue};

use crate::broker_url;

/// A topology as comparable data: name → JSON description.
#[derive(Debug, PartialEq, Eq)]
struct Described {
    exchanges: BTreeMap<String, Value>,
    queues: BTreeMap<String, Value>,
    bindings: Vec<(String, String, String)>,
}

fn arg_json(value: &ArgValue) -> Value {
    match value {
        ArgValue::Str(s) => json!(s),
        ArgValue::Bool(b) => json!(b),
        ArgValue::Int(n) => json!(n),
    }
}

fn from_code(spec: &TopologySpec) -> Described {
    let exchanges = spec
        .exchanges
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                json!({"type": e.kind, "durable": true, "auto_delete": false, "internal": false}),
            )
        })
        .collect();
    let queues = spec
        .queues
        .iter()
        .map(|q| {
            let arguments: serde_json::Map<String, Value> =
                q.arguments.iter().map(|(k, v)| (k.clone(), arg_json(v))).collect();
            (q.name.clone(), json!({"durable": true, "auto_delete": false, "arguments": arguments}))
        })
        .collect();
    let mut bindings: Vec<_> =
        spec.bindings.iter().map(|b| (b.exchange.clone(), b.queue.clone(), b.routing_key.clone())).collect();
    bindings.sort();
    Described { exchanges, queues, bindings }
}

fn from_definitions(definitions: &Value) -> Described {
    let list = |key: &str| definitions[key].as_array().cloned().unwrap_or_default();
    let on_root_vhost = |v: &Value| v["vhost"] == "/";
    let exchanges = list("exchanges")
        .iter()
        .filter(|e| on_root_vhost(e))
        .map(|e| {
            assert_eq!(e["arguments"], json!({}), "exchange arguments: {e}");
            let name = e["name"].as_str().unwrap().to_owned();
            (name, json!({"type": e["type"], "durable": e["durable"], "auto_delete": e["auto_delete"], "internal": e["internal"]}))
        })
        .collect();
    let queues = list("queues")
        .iter()
        .filter(|q| on_root_vhost(q))
        .map(|q| {
            let name = q["name"].as_str().unwrap().to_owned();
            (name, json!({"durable": q["durable"], "auto_delete": q["auto_delete"], "arguments": q["arguments"]}))
        })
        .collect();
    let mut bindings: Vec<_> = list("bindings")
        .iter()
        .filter(|b| on_root_vhost(b))
        .map(|b| {
            assert_eq!(b["destination_type"], "queue", "binding: {b}");
            let text = |key: &str| b[key].as_str().unwrap().to_owned();
            (text("source"), text("destination"), text("routing_key"))
        })
        .collect();
    bindings.sort();
    Described { exchanges, queues, bindings }
}

/// Run the test node's own rabbitmqctl (`CODECRAFTER_TEST_RABBITMQCTL`) with `args`; its stdout.
pub fn run_rabbitmqctl(args: &[&str]) -> Vec<u8> {
    let ctl = std::env::var("CODECRAFTER_TEST_RABBITMQCTL").unwrap_or_else(|_| {
        panic!("CODECRAFTER_TEST_RABBITMQCTL is not set: start the test broker with `source scripts/services.sh && services_start`")
    });
    let output = std::process::Command::new(&ctl)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {ctl}: {error}"));
    assert!(output.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// rabbitmqctl's JSON for `args`.
pub fn rabbitmqctl(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--formatter", "json", "--quiet"]);
    let stdout = run_rabbitmqctl(&args);
    serde_json::from_slice(&stdout).unwrap_or_else(|error| {
        panic!("rabbitmqctl {args:?} JSON: {error}: {}", String::from_utf8_lossy(&stdout))
    })
}

/// Other tests' objects (a unique `test-` prefix), the broker's own (`amq.`) and the default
/// exchange are not ours to compare.
fn ours(name: &str) -> bool {
    !name.is_empty() && !name.starts_with("test-") && !name.starts_with("amq.")
}

fn from_broker() -> Described {
    let exchanges =
        rabbitmqctl(&["list_exchanges", "name", "type", "durable", "auto_delete", "internal", "arguments"]);
    let exchanges = exchanges
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ours(e["name"].as_str().unwrap()))
        .map(|e| {
            assert_eq!(e["arguments"], json!([]), "exchange arguments: {e}");
            let name = e["name"].as_str().unwrap().to_owned();
            (name, json!({"type": e["type"], "durable": e["durable"], "auto_delete": e["auto_delete"], "internal": e["internal"]}))
        })
        .collect();
    let queues = rabbitmqctl(&["list_queues", "name", "durable", "auto_delete", "arguments"]);
    let queues = queues
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| ours(q["name"].as_str().unwrap()))
        .map(|q| {
            // [[name, type, value], ...]: integer types differ (long, signedint) and do not matter.
            let arguments: serde_json::Map<String, Value> = q["arguments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|triple| (triple[0].as_str().unwrap().to_owned(), triple[2].clone()))
                .collect();
            let name = q["name"].as_str().unwrap().to_owned();
            (name, json!({"durable": q["durable"], "auto_delete": q["auto_delete"], "arguments": arguments}))
        })
        .collect();
    let bindings =
        rabbitmqctl(&["list_bindings", "source_name", "destination_name", "destination_kind", "routing_key"]);
    let mut bindings: Vec<_> = bindings
        .as_array()
        .unwrap()
        .iter()
        // Every queue's implicit binding to the default exchange is not declared by anyone.
        .filter(|b| ours(b["source_name"].as_str().unwrap()))
        .map(|b| {
            assert_eq!(b["destination_kind"], "queue", "binding: {b}");
            let text = |key: &str| b[key].as_str().unwrap().to_owned();
            (text("source_name"), text("destination_name"), text("routing_key"))
        })
        .collect();
    bindings.sort();
    Described { exchanges, queues, bindings }
}

fn definitions() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq/definitions.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The code's defaults describe the contract's names, and definitions.json declares exactly that.
#[test]
fn definitions_json_declares_what_the_code_declares() {
    let code = from_code(&Topology::new(&AmqpConfig::new("amqp://unused")).spec());
    assert_eq!(
        code.queues.keys().filter(|name| !name.ends_with(".dead")).collect::<Vec<_>>(),
        ["execution_jobs", "message_save", "snapshot_save"]
    );
    assert_eq!(from_definitions(&definitions()), code);
}

/// The broker loaded definitions.json at boot (through rabbitmq.conf), and the code's declaration
/// against it succeeds (the broker refuses, PRECONDITION_FAILED, a declaration whose arguments
/// differ from an existing queue's) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_holds_what_the_code_declares() {
    let code = from_code(&Topology::new(&AmqpConfig::new("amqp://unused")).spec());
    assert_eq!(from_broker(), code, "loaded from definitions.json");

    let config = AmqpConfig::new(broker_url());
    let queue = AmqpQueue::connect(&config).await.expect("the publisher declares over the definitions");
    for work in WorkQueue::ALL {
        let consumer =
            AmqpConsumer::connect(&config, work).await.expect("a worker declares over the definitions");
        consumer.disconnect().await.unwrap();
    }
    queue.close().await.unwrap();
    assert_eq!(from_broker(), code, "after the code's declaration");

    // The check has teeth: other arguments are refused.
    let other = AmqpConfig { delivery_limit: config.delivery_limit + 1, ..config };
    match AmqpQueue::connect(&other).await {
        Err(QueueError::Backend(error)) => assert!(error.contains("PRECONDITION_FAILED"), "{error}"),
        Err(error) => panic!("unexpected error: {error}"),
        Ok(_) => panic!("a different delivery limit was accepted"),
    }
}
