//! `deploy/k8s`: each overlay rendered by kustomize (the one built into kubectl) and validated by
//! `kubernetes-validate` against the Kubernetes JSON schemas it bundles, strictly (an unknown field
//! fails); then the promises the manifests make, checked on the rendered objects: a pod outlives
//! its own graceful shutdown, probes hit /health and /ready, the env names are ones the binaries
//! read, autoscalers read metrics the adapter serves, every Deployment has a disruption budget,
//! requests and limits, and a locked-down pod. Both tools come from PyPI into the test venv:
//! `bash deploy/k8s/tools.sh VENV` (scripts/services.sh runs it).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// The oldest Kubernetes the manifests claim and the newest kubernetes-validate bundles: an API
/// missing from either (too new, or removed since) fails.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn venv() -> PathBuf {
    std::env::var_os("CODECRAFTER_TEST_VENV").map_or_else(|| repo().join(".test-env/venv"), PathBuf::from)
}

/// A tool of the test venv, or a failure saying how to install it.
fn tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} missing: run `bash deploy/k8s/tools.sh {}` (scripts/services.sh does)",
        path.display(),
        venv().display()
    );
    path
}

/// Runs `command` with `stdin`; whether it succeeded, and what it printed on both streams.
fn run(command: &mut Command, stdin: &str) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_owned();
    // Fed from a thread: a child that answers before reading everything must not deadlock us.
    let feeder = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

/// `deploy/k8s` copied aside, each overlay's `secrets.env` made from its `secrets.env.example` as an
/// operator would (the real ones are git-ignored, and a developer's own are never read here).
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("deploy/k8s"), dir.path());
        Self(dir)
    }

    /// `kubectl kustomize` of a kustomization under deploy/k8s, as YAML.
    fn render(&self, kustomization: &str) -> String {
        let dir = self.0.path().join(kustomization);
        let (ok, said) = run(Command::new(tool("kubectl")).arg("kustomize").arg(&dir), "");
        assert!(ok, "kustomize {kustomization}:\n{said}");
        said
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (path, name) = (entry.path(), entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &to.join(&name));
        } else if name == "secrets.env.example" {
            std::fs::copy(&path, to.join("secrets.env")).unwrap();
            std::fs::copy(&path, to.join(&name)).unwrap();
        } else if name != "secrets.env" {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// The schema check. Under `--quiet` anything printed is a failure, including the warning that a
/// kind has no schema at all (a misspelled or removed apiVersion), which alone exits 0. From a
/// file: with several versions the tool reads its input once per version, and stdin only once.
fn validate(yaml: &str) -> Result<(), String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let mut command = Command::new(tool("kubernetes-validate"));
    command.args(["--strict", "--quiet"]);
    for version in KUBERNETES_VERSIONS {
        command.args(["-k", version]);
    }
    let (ok, said) = run(command.arg(file.path()), "");
    if ok && said.trim().is_empty() { Ok(()) } else { Err(said) }
}

/// The documents of a YAML stream, as JSON (no YAML crate is linked: the venv's PyYAML reads it).
fn objects(yaml: &str) -> Vec<Value> {
    let script =
        "import json, sys, yaml\njson.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)";
    let (ok, said) = run(Command::new(tool("python")).args(["-c", script]), yaml);
    assert!(ok, "YAML to JSON:\n{said}");
    serde_json::from_str(&said).unwrap()
}

/// JSON documents are YAML: the stream the validator reads back.
fn to_yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| serde_json::to_string(o).unwrap()).collect::<Vec<_>>().join("\n---\n")
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}"))
}

/// Every `[env: NAME` a binary's `--help` lists.
fn env_names(binary: &Path) -> HashSet<String> {
    let output = Command::new(binary).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    help.split("[env: ")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

/// A container's environment: its ConfigMaps' data (which must exist) and its own `env`, where a
/// Secret's key (which must exist) reads as `secret:KEY`.
fn environment(objects: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let config = find(objects, "ConfigMap", str_of(&source["configMapRef"]["name"]));
        for (key, value) in config["data"].as_object().unwrap() {
            env.insert(key.clone(), str_of(value).to_owned());
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let value = match var["valueFrom"]["secretKeyRef"].as_object() {
            Some(reference) => {
                let (name, key) = (str_of(&reference["name"]), str_of(&reference["key"]));
                let secret = find(objects, "Secret", name);
                assert!(secret["data"].get(key).is_some(), "Secret {name} has no {key}");
                format!("secret:{key}")
            }
            None => str_of(&var["value"]).to_owned(),
        };
        env.insert(str_of(&var["name"]).to_owned(), value);
    }
    env
}

/// The number a container port's name or number refers to.
fn port_number(container: &Value, port: &Value) -> u64 {
    port.as_u64().unwrap_or_else(|| {
        let ports = container["ports"].as_array().unwrap();
        let named =
            ports.iter().find(|p| p["name"] == *port).unwrap_or_else(|| panic!("no container port {port}"));
        named["containerPort"].as_u64().unwrap()
    })
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"].as_object().unwrap().iter().all(|(k, v)| labels[k] == *v)
}

/// What each binary's container must be given (names from `--help`), and which must be secret.
const SERVER_ENV: &str = "REDIS_URL MONGO_URL MONGO_DB AMQP_URL JWT_SECRET CODECRAFTER_BIND CODECRAFTER_DATA_DIR \
    CODECRAFTER_LOG_FORMAT CODECRAFTER_SHUTDOWN_TIMEOUT_SECS CODECRAFTER_CORS_ORIGINS \
    CODECRAFTER_TRUSTED_PROXIES CODECRAFTER_MAX_CONNECTIONS DOCKER_HOST";
const WORKER_ENV: &str = "AMQP_URL MONGO_URL MONGO_DB REDIS_URL CODECRAFTER_DATA_DIR CODECRAFTER_WORKER_PORT \
    CODECRAFTER_LOG_FORMAT DOCKER_HOST";
const SECRET_ENV: [&str; 4] = ["JWT_SECRET", "REDIS_URL", "MONGO_URL", "AMQP_URL"];

/// What every overlay must hold, whatever its sizes and counts.
fn check_common(objects: &[Value]) {
    let deployments = of_kind(objects, "Deployment");
    assert_eq!(deployments.len(), 2, "the server and the worker");
    for deployment in &deployments {
        let name = str_of(&deployment["metadata"]["name"]);
        let pod = &deployment["spec"]["template"];
        let spec = &pod["spec"];
        let labels = &pod["metadata"]["labels"];
        assert!(selects(&deployment["spec"]["selector"], labels), "{name}: selector");
        let security = &spec["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        assert_eq!(security["runAsUser"], 10001, "{name}");
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        let [container] = spec["containers"].as_array().unwrap().as_slice() else {
            panic!("{name}: one container")
        };
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(context["capabilities"]["drop"], json!(["ALL"]), "{name}");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(container["resources"][bound][resource].is_string(), "{name}: {bound}.{resource}");
            }
        }
        for (probe, path) in
            [("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/ready")]
        {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{name}: {probe}");
            port_number(container, &container[probe]["httpGet"]["port"]);
        }
        // Scraped where the metrics are.
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{name}");
        let scraped: u64 = str_of(&annotations["prometheus.io/port"]).parse().unwrap();
        assert!(
            container["ports"].as_array().unwrap().iter().any(|p| p["containerPort"] == scraped),
            "{name}"
        );

        let env = environment(objects, container);
        let (required, binary) = match str_of(&container["name"]) {
            "server" => (SERVER_ENV, PathBuf::from(env!("CARGO_BIN_EXE_codecrafter"))),
            "worker" => (WORKER_ENV, crate::support::stack::worker_binary()),
            other => panic!("unexpected container {other}"),
        };
        let known = env_names(&binary);
        for key in env.keys() {
            assert!(known.contains(key), "{name}: {key} is no env var of {}", binary.display());
        }
        for key in required.split_whitespace() {
            assert!(env.contains_key(key), "{name}: {key} unset");
        }
        for key in SECRET_ENV.into_iter().filter(|k| env.contains_key(*k)) {
            assert_eq!(env[key], format!("secret:{key}"), "{name}: {key} must come from the Secret");
        }
        // The data dir is writable: an emptyDir under a read-only root.
        let data_dir = &env["CODECRAFTER_DATA_DIR"];
        let mount =
            container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == **data_dir);
        let volume = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount.unwrap()["name"]);
        assert!(volume.unwrap()["emptyDir"].is_object(), "{name}: {data_dir} is an emptyDir");
        // The port the binary binds is the one probed and served.
        let port = match str_of(&container["name"]) {
            "server" => env["CODECRAFTER_BIND"].rsplit_once(':').unwrap().1.parse::<u64>().unwrap(),
            _ => env["CODECRAFTER_WORKER_PORT"].parse().unwrap(),
        };
        assert_eq!(port_number(container, &container["livenessProbe"]["httpGet"]["port"]), port, "{name}");

        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        if name == "codecrafter-server" {
            // preStop's sleep and then the whole flush must end before the kubelet's SIGKILL.
            let shutdown: u64 = env["CODECRAFTER_SHUTDOWN_TIMEOUT_SECS"].parse().unwrap();
            let command = &container["lifecycle"]["preStop"]["exec"]["command"];
            assert_eq!(command[0], "/bin/sleep", "{name}: preStop");
            let pre_stop: u64 = str_of(&command[1]).parse().unwrap();
            assert!(pre_stop >= 5, "{name}: preStop gives the endpoints controller time");
            assert!(
                grace > pre_stop + shutdown,
                "{name}: grace {grace} <= preStop {pre_stop} + shutdown {shutdown}"
            );
        } else {
            assert!(grace >= 30, "{name}: in-flight jobs finish");
        }

        // A budget that lets one pod go at a time, whatever the count.
        let budgets: Vec<_> = of_kind(objects, "PodDisruptionBudget")
            .into_iter()
            .filter(|b| selects(&b["spec"]["selector"], labels))
            .collect();
        assert_eq!(budgets.len(), 1, "{name}: one PodDisruptionBudget");
        assert_eq!(budgets[0]["spec"]["maxUnavailable"], 1, "{name}");
    }

    let server = find(objects, "Deployment", "codecrafter-server");
    let server_pod = &server["spec"]["template"];
    let server_container = &server_pod["spec"]["containers"][0];
    for service in of_kind(objects, "Service") {
        let selector = json!({"matchLabels": service["spec"]["selector"]});
        assert!(
            selects(&selector, &server_pod["metadata"]["labels"]),
            "{}: selects the servers",
            service["metadata"]["name"]
        );
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert_eq!(port_number(server_container, &port["targetPort"]), 5000);
        }
    }
    check_ingresses(objects);
    for policy in of_kind(objects, "NetworkPolicy") {
        let deployment = deployments
            .iter()
            .find(|d| selects(&policy["spec"]["podSelector"], &d["spec"]["template"]["metadata"]["labels"]))
            .expect("a NetworkPolicy selects a Deployment's pods");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        for rule in policy["spec"]["ingress"].as_array().unwrap() {
            for port in rule["ports"].as_array().unwrap() {
                port_number(container, &port["port"]);
            }
        }
    }
}

/// The WebSocket Ingress keeps connections open and rooms together; nothing routes the ops
/// endpoints out of the cluster.
fn check_ingresses(objects: &[Value]) {
    let mut ws = false;
    for ingress in of_kind(objects, "Ingress") {
        let annotations = &ingress["metadata"]["annotations"];
        for rule in ingress["spec"]["rules"].as_array().unwrap() {
            for path in rule["http"]["paths"].as_array().unwrap() {
                let (prefix, exact) = (str_of(&path["path"]), path["pathType"] == "Exact");
                find(objects, "Service", str_of(&path["backend"]["service"]["name"]));
                for private in ["/metrics", "/health", "/ready"] {
                    let routed = if exact {
                        prefix == private
                    } else {
                        prefix == "/" || private == prefix || private.starts_with(&format!("{prefix}/"))
                    };
                    assert!(!routed, "{private} is published by {prefix}");
                }
                if prefix == "/ws" {
                    ws = true;
                    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600");
                    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600");
                    assert_eq!(annotations["nginx.ingress.kubernetes.io/upstream-hash-by"], "$uri");
                }
            }
        }
        assert!(annotations["nginx.ingress.kubernetes.io/proxy-body-size"].is_string());
    }
    assert!(ws, "an Ingress routes /ws");
}

#[test]
fn every_kustomization_renders_and_validates() {
    let tree = Tree::new();
    for kustomization in ["base", "overlays/dev", "overlays/production", "prometheus-adapter"] {
        let yaml = tree.render(kustomization);
        assert!(!objects(&yaml).is_empty(), "{kustomization} renders nothing");
        if let Err(said) = validate(&yaml) {
            panic!("{kustomization} does not validate:\n{said}");
        }
    }
}

/// A mistake: what it is, the index of the object it breaks, how, and what the validator says.
type Breakage = (&'static str, usize, fn(&mut Value), &'static str);

/// The same validator invocation fails on each kind of mistake, so a pass above means something.
#[test]
fn the_validator_rejects_broken_manifests() {
    let good = objects(&Tree::new().render("overlays/production"));
    validate(&to_yaml(&good)).expect("the untouched objects pass");
    let index = |kind: &str, name: &str| {
        good.iter().position(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap()
    };
    let server = index("Deployment", "codecrafter-server");
    let hpa = index("HorizontalPodAutoscaler", "codecrafter-worker");
    let broken: [Breakage; 4] = [
        (
            "a wrong type",
            server,
            |o| o["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!("60"),
            "is not of type",
        ),
        (
            "an unknown field",
            server,
            |o| o["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = json!({}),
            "'livenessProbes' was unexpected",
        ),
        (
            "a missing required field",
            server,
            |o| {
                o["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("name");
            },
            "'name' is a required property",
        ),
        ("a removed API", hpa, |o| o["apiVersion"] = json!("autoscaling/v2beta2"), "Couldn't find schema"),
    ];
    for (mistake, at, break_it, expected) in broken {
        let mut objects = good.clone();
        break_it(&mut objects[at]);
        let said = validate(&to_yaml(&objects)).expect_err(mistake);
        assert!(said.contains(expected), "{mistake}: expected {expected:?} in:\n{said}");
    }
}

#[test]
fn production_keeps_its_promises() {
    let tree = Tree::new();
    let objects = objects(&tree.render("overlays/production"));
    check_common(&objects);
    for object in &objects {
        assert_eq!(
            object["metadata"]["labels"]["codecrafter/environment"], "production",
            "{}",
            object["metadata"]
        );
    }
    let server = find(&objects, "HorizontalPodAutoscaler", "codecrafter-server");
    let worker = find(&objects, "HorizontalPodAutoscaler", "codecrafter-worker");
    for (hpa, min, max) in [(server, 2, 20), (worker, 1, 10)] {
        let spec = &hpa["spec"];
        assert_eq!((spec["minReplicas"].as_u64(), spec["maxReplicas"].as_u64()), (Some(min), Some(max)));
        find(&objects, str_of(&spec["scaleTargetRef"]["kind"]), str_of(&spec["scaleTargetRef"]["name"]));
        let window = spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"].as_u64().unwrap();
        assert!(window >= 300, "scale-down waits: {window}");
    }
    let metrics = |hpa: &Value, kind: &str| -> Vec<Value> {
        let key = kind.to_lowercase();
        hpa["spec"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == kind)
            .map(|m| m[&key].clone())
            .collect()
    };
    assert_eq!(metrics(server, "Resource")[0]["name"], "cpu");
    let connections = &metrics(server, "Pods")[0];
    assert_eq!(connections["metric"]["name"], "codecrafter_connections");
    assert_eq!(connections["target"]["averageValue"], "2000");
    // Every work queue the broker declares drives the workers' count, except those with a single
    // active consumer: more workers do not drain them faster, so scaling on them would only add
    // idle standbys (their backlog is an alert instead).
    let definitions: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/rabbitmq/definitions.json")).unwrap(),
    )
    .unwrap();
    let mut queues: HashSet<String> = definitions["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["arguments"]["x-single-active-consumer"] != json!(true))
        .map(|q| str_of(&q["name"]).to_owned())
        .filter(|name| !name.ends_with(".dead"))
        .collect();
    assert!(queues.contains("message_save"), "the scan finds the work queues: {queues:?}");
    for external in metrics(worker, "External") {
        assert_eq!(external["metric"]["name"], "codecrafter_queue_messages_ready");
        let selector = &external["metric"]["selector"];
        if let Some(queue) = selector["matchLabels"]["queue"].as_str() {
            queues.remove(queue);
        }
        for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
            assert_eq!((&expression["key"], &expression["operator"]), (&json!("queue"), &json!("In")));
            for queue in expression["values"].as_array().unwrap() {
                queues.remove(str_of(queue));
            }
        }
    }
    assert!(queues.is_empty(), "work queues no autoscaler watches: {queues:?}");

    // The adapter serves both metrics under the names the autoscalers ask for.
    let adapter = self::objects(&tree.render("prometheus-adapter"));
    let [rules] = adapter.as_slice() else { panic!("one ConfigMap") };
    assert_eq!(rules["metadata"]["namespace"], "monitoring");
    let config = &self::objects(str_of(&rules["data"]["config.yaml"]))[0];
    let served = |section: &str| -> Vec<Value> {
        config[section].as_array().unwrap().iter().map(|rule| rule["name"]["as"].clone()).collect()
    };
    assert!(served("rules").contains(&json!("codecrafter_connections")), "{config}");
    assert!(served("externalRules").contains(&json!("codecrafter_queue_messages_ready")), "{config}");
}

#[test]
fn dev_runs_one_of_each_without_autoscalers() {
    let objects = objects(&Tree::new().render("overlays/dev"));
    check_common(&objects);
    assert!(of_kind(&objects, "HorizontalPodAutoscaler").is_empty());
    for deployment in of_kind(&objects, "Deployment") {
        assert_eq!(deployment["spec"]["replicas"], 1);
    }
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"].as_str().unwrap_or("codecrafter-dev"), "codecrafter-dev");
        assert_eq!(object["metadata"]["labels"]["codecrafter/environment"], "dev", "{}", object["metadata"]);
    }
}

#[test]
fn real_secrets_stay_out_of_git() {
    let ignore = std::fs::read_to_string(repo().join("deploy/k8s/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "secrets.env"), "deploy/k8s/.gitignore must list secrets.env");
}
