//! `/api/auth` over real HTTP against a real server: every route, every error status, token
//! rotation and reuse detection, bcrypt upgrade, rate limits, headers, CORS, OpenAPI.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::TestServer;
use support::http::{PASSWORD, call, raw, register, user_of};

#[tokio::test]
async fn register_login_profile() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let body = json!({ "username": "ada_l", "email": " Ada@Example.COM ", "password": PASSWORD, "firstName": "Ada" });
    let reply = call(addr, "POST", "/api/auth/register", None, Some(&body), &[]).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["user"]["email"], "ada@example.com", "email normalised");
    assert_eq!(json["user"]["preferences"]["editorSettings"]["fontSize"], 14, "seed defaults");
    assert_eq!(json["user"]["preferences"]["theme"], "light");
    assert_eq!(json["tokenType"], "Bearer");
    assert_eq!(json["expiresIn"], 900);
    assert!(!reply.body.contains("password"), "no password or hash in the answer: {}", reply.body);

    for login in [
        json!({"login": "ADA@example.com"}),
        json!({"login": "ada_l"}),
        json!({"email": "ada@example.com"}),
        json!({"username": "ada_l"}),
    ] {
        let mut body = login.clone();
        body["password"] = json!(PASSWORD);
        let reply = call(addr, "POST", "/api/auth/login", None, Some(&body), &[]).await;
        assert_eq!(reply.status, 200, "{login}: {}", reply.body);
        let user = user_of(&reply.json());
        let profile = call(addr, "GET", "/api/auth/profile", Some(&user.access), None, &[]).await;
        assert_eq!(profile.status, 200);
        assert_eq!(profile.json()["username"], "ada_l");
        assert!(profile.json()["lastLoginAt"].is_string());
    }

    let wrong = json!({ "login": "ada_l", "password": "not the password" });
    let reply = call(addr, "POST", "/api/auth/login", None, Some(&wrong), &[]).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (401, "unauthorized"));
    let nobody = json!({ "login": "nobody", "password": PASSWORD });
    assert_eq!(call(addr, "POST", "/api/auth/login", None, Some(&nobody), &[]).await.status, 401);
    let blank = json!({ "login": "  ", "password": PASSWORD });
    let reply = call(addr, "POST", "/api/auth/login", None, Some(&blank), &[]).await;
    assert_eq!(reply.status, 400);
    assert!(reply.error_message().starts_with("login"), "{}", reply.body);
}

#[tokio::test]
async fn register_refuses_bad_fields_naming_them() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    register(addr, "taken").await;
    let cases = [
        (json!({"username": "ab", "email": "a@b.io", "password": PASSWORD}), 400, "username"),
        (json!({"username": "a".repeat(31), "email": "a@b.io", "password": PASSWORD}), 400, "username"),
        (json!({"username": "bad-name", "email": "a@b.io", "password": PASSWORD}), 400, "username"),
        (json!({"username": "okname", "email": "not-an-email", "password": PASSWORD}), 400, "email"),
        (json!({"username": "okname", "email": "a@b.io", "password": "1234567"}), 400, "password"),
        (json!({"username": "okname", "email": "a@b.io"}), 400, "password"),
        (json!({"username": "okname", "email": "a@b.io", "password": PASSWORD, "admin": true}), 400, "admin"),
        (json!({"username": "taken", "email": "other@b.io", "password": PASSWORD}), 409, "username"),
        (json!({"username": "other", "email": "TAKEN@example.com", "password": PASSWORD}), 409, "email"),
    ];
    for (body, status, field) in cases {
        let reply = call(addr, "POST", "/api/auth/register", None, Some(&body), &[]).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.error_message().contains(field), "{body}: message should name {field}: {}", reply.body);
    }
    // The edges that are allowed.
    let edge = json!({"username": "a".repeat(30), "email": "x@y.io", "password": "12345678"});
    assert_eq!(call(addr, "POST", "/api/auth/register", None, Some(&edge), &[]).await.status, 201);
    let short = json!({"username": "abc", "email": "x2@y.io", "password": "12345678"});
    assert_eq!(call(addr, "POST", "/api/auth/register", None, Some(&short), &[]).await.status, 201);
}

#[tokio::test]
async fn malformed_bodies_get_json_errors() {
    let server = TestServer::start_secure(|config| config.max_body_bytes = 1024).await;
    let addr = server.addr;
    let request = |content_type: &str, body: &str| {
        format!(
            "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = raw(addr, request("application/json", "{not json").as_bytes()).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "malformed_json"));
    let reply = raw(addr, request("text/plain", "{}").as_bytes()).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (415, "unsupported_media_type"));
    let big = format!("{{\"login\":\"{}\",\"password\":\"x\"}}", "a".repeat(1100));
    let reply = raw(addr, request("application/json", &big).as_bytes()).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (413, "payload_too_large"));
    // Exactly at the limit is still read (and then refused for its content, not its size).
    let pad = 1024 - r#"{"login":"","password":"x"}"#.len();
    let at_limit = format!("{{\"login\":\"{}\",\"password\":\"x\"}}", "a".repeat(pad));
    assert_eq!(at_limit.len(), 1024);
    let reply = raw(addr, request("application/json", &at_limit).as_bytes()).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    let reply = call(addr, "GET", "/api/nothing-here", None, None, &[]).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (404, "not_found"));
    let reply = call(addr, "DELETE", "/api/auth/login", None, None, &[]).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn tokens_expired_forged_or_missing_are_refused() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let user = register(addr, "tess").await;
    let signer = server.token_signer();
    let mut claims = signer.verify(&user.access).unwrap();
    let now = claims.iat;
    claims.iat = now - 2000;
    claims.exp = now - 1000;
    let expired = signer.sign(&claims);
    let fresh = signer.verify(&user.access).unwrap();
    let forged = server::auth::AccessTokens::new(&[9; 32], Duration::from_secs(900)).sign(&fresh);
    for (token, expect) in [
        (Some(expired.as_str()), "expired"),
        (Some(forged.as_str()), "invalid"),
        (Some("garbage"), "invalid"),
        (None, "sign in"),
    ] {
        let reply = call(addr, "GET", "/api/auth/profile", token, None, &[]).await;
        assert_eq!(reply.status, 401, "{token:?}");
        assert!(reply.error_message().contains(expect), "{token:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let user = register(addr, "rita").await;
    let refresh = |token: &str| {
        let body = json!({ "refreshToken": token });
        async move { call(addr, "POST", "/api/auth/refresh", None, Some(&body), &[]).await }
    };
    let first = refresh(&user.refresh).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second_token = first.json()["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second_token, user.refresh, "rotated");
    let access = first.json()["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(call(addr, "GET", "/api/auth/profile", Some(&access), None, &[]).await.status, 200);

    // The old token again: refused, and its whole family with it.
    let reused = refresh(&user.refresh).await;
    assert_eq!(reused.status, 401);
    assert!(reused.error_message().contains("already used"), "{}", reused.body);
    assert_eq!(refresh(&second_token).await.status, 401, "the successor was revoked too");

    // Another sign-in is its own family and unaffected.
    let login = json!({ "login": "rita", "password": PASSWORD });
    let other = user_of(&call(addr, "POST", "/api/auth/login", None, Some(&login), &[]).await.json());
    let rotated = refresh(&other.refresh).await;
    assert_eq!(rotated.status, 200);

    // Logout revokes; logging out again is fine.
    let current = rotated.json()["refreshToken"].as_str().unwrap().to_owned();
    let body = json!({ "refreshToken": current });
    assert_eq!(call(addr, "POST", "/api/auth/logout", None, Some(&body), &[]).await.status, 204);
    assert_eq!(call(addr, "POST", "/api/auth/logout", None, Some(&body), &[]).await.status, 204);
    assert_eq!(refresh(&current).await.status, 401);
    assert_eq!(refresh("made-up").await.status, 401);
    let reply = call(addr, "POST", "/api/auth/refresh", None, Some(&json!({})), &[]).await;
    assert_eq!(reply.status, 400);
    assert!(reply.error_message().contains("refreshToken"), "{}", reply.body);
}

#[tokio::test]
async fn profile_update_merges_and_guards_the_password() {
    let server = TestServer::start_secure(|_| {}).await;
    let addr = server.addr;
    let user = register(addr, "pat").await;
    register(addr, "other").await;
    let put = |body: serde_json::Value| {
        let token = user.access.clone();
        async move { call(addr, "PUT", "/api/auth/profile", Some(&token), Some(&body), &[]).await }
    };
    let reply = put(
        json!({ "preferences": { "theme": "dark", "editorSettings": { "tabSize": 4 } }, "lastName": "L" }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let prefs = &reply.json()["preferences"];
    assert_eq!(prefs["theme"], "dark");
    assert_eq!(prefs["editorSettings"]["tabSize"], 4);
    assert_eq!(prefs["editorSettings"]["fontSize"], 14, "untouched settings are kept");
    assert_eq!(reply.json()["lastName"], "L");

    for (body, status, field) in [
        (json!({ "preferences": { "theme": "neon" } }), 400, "preferences"),
        (json!({ "preferences": { "editorSettings": { "fontSize": 200 } } }), 400, "fontSize"),
        (json!({ "preferences": { "colour": 1 } }), 400, "preferences.colour"),
        (json!({ "username": "other" }), 409, "username"),
        (json!({ "email": "OTHER@example.com" }), 409, "email"),
        (json!({ "newPassword": "brand new password" }), 400, "currentPassword"),
        (json!({ "newPassword": "short", "currentPassword": PASSWORD }), 400, "newPassword"),
        (
            json!({ "newPassword": "brand new password", "currentPassword": "wrong one!" }),
            403,
            "currentPassword",
        ),
    ] {
        let reply = put(body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.error_message().contains(field), "{body}: {}", reply.body);
    }
    let reply = put(json!({ "newPassword": "brand new password", "currentPassword": PASSWORD })).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let old = json!({ "login": "pat", "password": PASSWORD });
    assert_eq!(call(addr, "POST", "/api/auth/login", None, Some(&old), &[]).await.status, 401);
    let new = json!({ "login": "pat", "password": "brand new password" });
    assert_eq!(call(addr, "POST", "/api/auth/login", None, Some(&new), &[]).await.status, 200);
    assert_eq!(call(addr, "PUT", "/api/auth/profile", None, Some(&json!({})), &[]).await.status, 401);
}

#[tokio::test]
async fn bcrypt_hashes_log_in_and_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config::for_tests(dir.path());
    config.allow_anonymous = false;
    let server = TestServer::start_with(config.clone()).await;
    let user = register(server.addr, "legacy").await;
    server.stop().await.unwrap();
    {
        use storage::UserStore;
        let store = storage::EmbeddedStore::open(dir.path()).unwrap();
        let mut stored = store.user_by_id(&user.id).await.unwrap().unwrap();
        stored.password_hash = bcrypt::hash("old bcrypt pass", 4).unwrap();
        assert!(store.replace_user(&stored).await.unwrap());
    }
    let server = TestServer::start_with(config).await;
    let login = json!({ "login": "legacy", "password": "old bcrypt pass" });
    assert_eq!(call(server.addr, "POST", "/api/auth/login", None, Some(&login), &[]).await.status, 200);
    server.stop().await.unwrap();
    use storage::UserStore;
    let store = storage::EmbeddedStore::open(dir.path()).unwrap();
    let stored = store.user_by_id(&user.id).await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"), "upgraded: {}", stored.password_hash);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    // The budgets in detail, each at its edge, are in the hostile suite (`rate_limits`).
    let server = TestServer::start_secure(|config| {
        config.rate_limit_requests = 6;
        config.ip_rate_limit_requests = 5;
        config.login_failures_per_ip = 2;
        config.rate_limit_window_secs = 60;
        config.trust_proxy = true;
    })
    .await;
    let addr = server.addr;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let body = json!({ "username": "rl_user", "email": "rl@example.com", "password": PASSWORD });
    let reply = call(addr, "POST", "/api/auth/register", None, Some(&body), &from("10.0.0.1")).await;
    assert_eq!(reply.status, 201);
    let user = user_of(&reply.json());
    assert_eq!(reply.header("ratelimit-limit"), Some("5"), "without a token: the IP's budget");
    let login = json!({ "login": "rl_user", "password": "wrong password" });
    for _ in 0..2 {
        let reply = call(addr, "POST", "/api/auth/login", None, Some(&login), &from("10.0.0.1")).await;
        assert_eq!(reply.status, 401);
    }
    let reply = call(addr, "POST", "/api/auth/login", None, Some(&login), &from("10.0.0.1")).await;
    assert_eq!((reply.status, reply.error_code().as_str()), (429, "too_many_failed_logins"));
    let retry: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Fifth request without a token from this IP: still in its budget; the sixth is not.
    assert_eq!(
        call(addr, "POST", "/api/auth/logout", None, Some(&json!({"refreshToken": "x"})), &from("10.0.0.1"))
            .await
            .status,
        204
    );
    let reply =
        call(addr, "POST", "/api/auth/logout", None, Some(&json!({"refreshToken": "x"})), &from("10.0.0.1"))
            .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (429, "rate_limited"));
    // Another IP still may try; the same IP with a token counts against the user instead.
    assert_eq!(
        call(addr, "POST", "/api/auth/login", None, Some(&login), &from("10.0.0.2")).await.status,
        401
    );
    let profile = call(addr, "GET", "/api/auth/profile", Some(&user.access), None, &from("10.0.0.1")).await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.header("ratelimit-limit"), Some("6"), "with a token: the user's budget");

    // Per user: the same token from fresh IPs still runs out (6 per window; 1 used above).
    let ips = ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5", "10.0.1.6"];
    let mut statuses = Vec::new();
    for ip in ips {
        statuses
            .push(call(addr, "GET", "/api/auth/profile", Some(&user.access), None, &from(ip)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429], "user budget of 6 shared across IPs");
    // Ops endpoints are not rate limited.
    for _ in 0..8 {
        assert_eq!(call(addr, "GET", "/health", None, None, &from("10.0.0.1")).await.status, 200);
    }
}

#[tokio::test]
async fn security_headers_and_cors() {
    let server = TestServer::start_secure(|config| {
        config.cors_origins = vec!["https://app.example".into()];
        config.trust_proxy = true;
    })
    .await;
    let addr = server.addr;
    let reply = call(addr, "GET", "/api/auth/profile", None, None, &[]).await;
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert!(reply.header("content-security-policy").is_some_and(|v| v.contains("default-src 'none'")));
    assert_eq!(reply.header("strict-transport-security"), None, "no HSTS over plain HTTP");
    let tls = call(addr, "GET", "/health", None, None, &[("X-Forwarded-Proto", "https")]).await;
    assert!(tls.header("strict-transport-security").is_some_and(|v| v.contains("max-age=")));

    let preflight = |origin: &'static str| async move {
        let headers = [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization,content-type"),
        ];
        call(addr, "OPTIONS", "/api/sessions", None, None, &headers).await
    };
    let allowed = preflight("https://app.example").await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(allowed.header("access-control-allow-headers").is_some_and(|h| h.contains("authorization")));
    let denied = preflight("https://evil.example").await;
    assert_eq!(denied.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let server = TestServer::start_secure(|_| {}).await;
    let reply = call(server.addr, "GET", "/api-docs", None, None, &[]).await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/profile", "get"),
        ("/api/auth/profile", "put"),
        ("/api/sessions", "get"),
        ("/api/sessions", "post"),
        ("/api/sessions/{id}", "get"),
        ("/api/sessions/{id}", "put"),
        ("/api/sessions/{id}", "delete"),
        ("/api/sessions/{id}/join", "post"),
        ("/api/sessions/{id}/lock", "post"),
        ("/api/sessions/{id}/unlock", "post"),
        ("/api/sessions/{id}/collaborators", "post"),
        ("/api/sessions/{id}/collaborators/{userId}", "put"),
        ("/api/sessions/{id}/collaborators/{userId}", "delete"),
        ("/api/sessions/{id}/messages", "get"),
        ("/api/sessions/{id}/document", "get"),
        ("/api/execute", "post"),
        ("/api/execute/status/{jobId}", "get"),
        ("/api/execute/history/{sessionId}", "get"),
        ("/api/execute/languages", "get"),
        ("/ws/{room}", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, methods) in paths {
        documented += methods.as_object().unwrap().len();
        for (method, operation) in methods.as_object().unwrap() {
            assert!(
                expected.contains(&(path.as_str(), method.as_str())),
                "undocumented in the test: {method} {path}"
            );
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    if !schema.is_null() {
                        assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
                    }
                }
            }
        }
    }
    assert_eq!(documented, expected.len(), "every route is documented");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let page = call(server.addr, "GET", "/api-docs/ui", None, None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/api-docs/openapi.json"));
    assert!(page.header("content-security-policy").is_some_and(|c| c.contains("cdn.jsdelivr.net")));
}

/// The embedded server journals its refresh tokens: after a restart on the same data dir a
/// sign-in still refreshes, and a token used before the restart is still known as used (reusing it
/// revokes the sign-in, as it would have before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_outlive_a_restart_of_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = server::Config::for_tests(dir.path());
        config.allow_anonymous = false;
        config
    };
    let refresh = |addr, token: String| async move {
        call(addr, "POST", "/api/auth/refresh", None, Some(&json!({ "refreshToken": token })), &[]).await
    };
    let server = TestServer::start_with(config()).await;
    let user = register(server.addr, "restarted").await;
    let reply = refresh(server.addr, user.refresh.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rotated = reply.json()["refreshToken"].as_str().unwrap().to_owned();
    server.stop().await.unwrap();

    let server = TestServer::start_with(config()).await;
    let reply = refresh(server.addr, rotated.clone()).await;
    assert_eq!(reply.status, 200, "the rotated token still refreshes after the restart: {}", reply.body);
    let next = reply.json()["refreshToken"].as_str().unwrap().to_owned();
    let reused = refresh(server.addr, user.refresh.clone()).await;
    assert_eq!(reused.status, 401, "the token used before the restart is still spent: {}", reused.body);
    let revoked = refresh(server.addr, next).await;
    assert_eq!(revoked.status, 401, "reusing a spent token revoked the whole sign-in: {}", revoked.body);
}
