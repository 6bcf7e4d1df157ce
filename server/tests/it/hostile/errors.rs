//! Every error the server writes is `{"error":{"code","message"}}` with `application/json` and one
//! code per cause: the issue's plain-text examples (bad query values, a duplicated query
//! parameter, a plain GET on a WebSocket route, path ids that are not UTF-8), bodies, tokens,
//! routing, limits, and what hyper itself answers to requests it cannot parse.

use serde_json::json;

use crate::support::TestServer;
use crate::support::http::{PASSWORD, Reply, call, raw, register};

/// Assert the status, the JSON content type and the exact code; returns the message.
#[track_caller]
fn expect(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
    assert_eq!(reply.error_code(), code, "{reply:?}");
    reply.error_message()
}

#[tokio::test]
async fn the_issue_s_plain_text_answers_are_json_with_specific_codes() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let me = register(addr, "quinn").await;
    for query in ["page=abc", "page=-1", "page=1e30", "page=0", "limit=0", "limit=101", "limit=x"] {
        let reply = call(addr, "GET", &format!("/api/sessions?{query}"), Some(&me.access), None, &[]).await;
        let message = expect(&reply, 400, "invalid_query");
        let name = query.split('=').next().unwrap();
        assert!(message.contains(name), "{query}: the message names the parameter: {message}");
    }
    let reply = call(addr, "GET", "/ws/x?token=a&token=b", None, None, &[]).await;
    let message = expect(&reply, 400, "invalid_query");
    assert!(message.contains("token"), "{message}");

    // A plain GET on the WebSocket route is told how to upgrade.
    let reply = call(addr, "GET", "/ws/some-room", None, None, &[]).await;
    expect(&reply, 426, "upgrade_required");
    assert_eq!(reply.header("upgrade"), Some("websocket"));
    assert_eq!(reply.header("sec-websocket-version"), Some("13"));
    // An upgrade over HTTP/1.0 is not one the server can serve.
    let request = "GET /ws/r HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    expect(&raw(addr, request.as_bytes()).await, 426, "upgrade_required");
    // An upgrade without its key is a broken handshake.
    let request = "GET /ws/r HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    expect(&raw(addr, request.as_bytes()).await, 400, "invalid_handshake");
    // A key that is not 16 bytes in base64 (24 characters) is one too.
    let request = "GET /ws/r HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n";
    let message = expect(&raw(addr, request.as_bytes()).await, 400, "invalid_handshake");
    assert!(message.contains("Sec-WebSocket-Key"), "{message}");
    // An upgrade to another protocol, or another WebSocket version, is told how to upgrade.
    let request = "GET /ws/r HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: h2c\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    expect(&raw(addr, request.as_bytes()).await, 426, "upgrade_required");
    let request = "GET /ws/r HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    expect(&raw(addr, request.as_bytes()).await, 426, "upgrade_required");

    // Path ids that are not UTF-8 once decoded.
    let reply = call(addr, "GET", "/api/sessions/%ff%fe", Some(&me.access), None, &[]).await;
    assert!(expect(&reply, 400, "invalid_path").contains("UTF-8"), "{}", reply.body);
    let reply =
        call(addr, "DELETE", "/api/sessions/%ff%fe/collaborators/%c3", Some(&me.access), None, &[]).await;
    expect(&reply, 400, "invalid_path");
    expect(&call(addr, "GET", "/ws/%ff%fe", None, None, &[]).await, 400, "invalid_path");
    // A room id over the limit, on a real upgrade request.
    let request = format!(
        "GET /ws/{} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "r".repeat(300)
    );
    expect(&raw(addr, request.as_bytes()).await, 400, "invalid_path");
}

#[tokio::test]
async fn each_body_error_has_its_own_code() {
    let server = TestServer::start_secure(|c| c.max_body_bytes = 1024).await;
    let addr = server.addr;
    let register_with = |content_type: &'static str, body: String| async move {
        let request = format!(
            "POST /api/auth/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw(addr, request.as_bytes()).await
    };
    let json = |value: serde_json::Value| value.to_string();
    expect(&register_with("application/json", "{not json".into()).await, 400, "malformed_json");
    let missing = json(json!({ "username": "okname", "email": "a@b.io" }));
    assert!(
        expect(&register_with("application/json", missing).await, 400, "missing_field").contains("password")
    );
    let unknown =
        json(json!({ "username": "okname", "email": "a@b.io", "password": PASSWORD, "admin": true }));
    assert!(
        expect(&register_with("application/json", unknown).await, 400, "unknown_field").contains("admin")
    );
    let wrong_type = json(json!({ "username": 5, "email": "a@b.io", "password": PASSWORD }));
    expect(&register_with("application/json", wrong_type).await, 400, "invalid_field");
    let too_short = json(json!({ "username": "ab", "email": "a@b.io", "password": PASSWORD }));
    assert!(
        expect(&register_with("application/json", too_short).await, 400, "invalid_field")
            .starts_with("username")
    );
    expect(&register_with("text/plain", "{}".into()).await, 415, "unsupported_media_type");
    let big = json(json!({ "username": "a".repeat(2000) }));
    expect(&register_with("application/json", big).await, 413, "payload_too_large");

    let blank = json!({ "login": "  ", "password": PASSWORD });
    let reply = call(addr, "POST", "/api/auth/login", None, Some(&blank), &[]).await;
    assert!(expect(&reply, 400, "missing_field").starts_with("login"));
}

#[tokio::test]
async fn token_and_permission_errors_have_their_own_codes() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let owner = register(addr, "olga").await;
    let other = register(addr, "otto").await;
    let signer = server.token_signer();
    let mut claims = signer.verify(&owner.access).unwrap();
    claims.iat -= 2000;
    claims.exp = claims.iat + 1000;
    let expired = signer.sign(&claims);
    let profile = |token: Option<String>| async move {
        call(addr, "GET", "/api/auth/profile", token.as_deref(), None, &[]).await
    };
    expect(&profile(None).await, 401, "unauthorized");
    expect(&profile(Some("garbage".into())).await, 401, "invalid_token");
    expect(&profile(Some(expired)).await, 401, "token_expired");
    let wrong = json!({ "login": "olga", "password": "not the password" });
    expect(&call(addr, "POST", "/api/auth/login", None, Some(&wrong), &[]).await, 401, "unauthorized");
    let refresh = json!({ "refreshToken": "not-a-refresh-token" });
    expect(&call(addr, "POST", "/api/auth/refresh", None, Some(&refresh), &[]).await, 401, "invalid_token");

    let session = crate::support::http::create_session(addr, &owner, json!({})).await;
    let path = format!("/api/sessions/{session}");
    expect(&call(addr, "GET", &path, Some(&other.access), None, &[]).await, 403, "forbidden");
    expect(
        &call(addr, "GET", "/api/sessions/0123456789abcdef01234567", Some(&owner.access), None, &[]).await,
        404,
        "not_found",
    );
    let taken = json!({ "username": "olga", "email": "new@example.com", "password": PASSWORD });
    expect(&call(addr, "POST", "/api/auth/register", None, Some(&taken), &[]).await, 409, "conflict");
}

#[tokio::test]
async fn routing_limits_and_capacity_errors_have_their_own_codes() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    expect(&call(addr, "GET", "/api/nothing-here", None, None, &[]).await, 404, "not_found");
    let reply = call(addr, "DELETE", "/api/auth/login", None, None, &[]).await;
    expect(&reply, 405, "method_not_allowed");
    // Two anonymous API requests per window from this IP: the third is refused before anything else.
    let server = TestServer::start_secure(|c| {
        // Requests without a token count against the per-IP budget.
        c.ip_rate_limit_requests = 2;
        c.max_connections = 0;
    })
    .await;
    let addr = server.addr;
    for _ in 0..2 {
        expect(&call(addr, "GET", "/api/sessions", None, None, &[]).await, 401, "unauthorized");
    }
    let reply = call(addr, "GET", "/api/sessions", None, None, &[]).await;
    expect(&reply, 429, "rate_limited");
    assert!(reply.header("retry-after").is_some());

    // No WebSocket may be opened (--max-connections 0).
    let error = tokio_tungstenite::connect_async(server.ws_url("room")).await.expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("not an HTTP refusal: {error}")
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
}

#[tokio::test]
async fn requests_hyper_cannot_parse_are_answered_in_json_too() {
    let server = TestServer::start(|_| {}).await;
    let addr = server.addr;
    expect(&raw(addr, b"GARBAGE\r\n\r\n").await, 400, "bad_request");
    expect(&raw(addr, b"GET /health HTTP/1.1\r\nHost x\r\n\r\n").await, 400, "bad_request");
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    expect(&raw(addr, request.as_bytes()).await, 431, "headers_too_large");
    let request = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    expect(&raw(addr, request.as_bytes()).await, 414, "uri_too_long");
}
