//! A minimal HTTP/1.1 client over a raw socket (keeps test dependencies small) and helpers for the
//! JSON API: sign up, sign in, create sessions.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as received (`body` is its lossy UTF-8 text): gzip, images.
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header that may repeat (`Vary`), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The `error.code` of an error body; panics unless the body has the error shape.
    pub fn error_code(&self) -> String {
        let json = self.json();
        let error = json.get("error").unwrap_or_else(|| panic!("no error object: {}", self.body));
        assert!(error["message"].is_string(), "error without message: {}", self.body);
        error["code"].as_str().expect("error.code").to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// Send raw bytes (a whole request) and read the response until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    parse(&response)
}

/// Status, headers and body of a raw HTTP/1.1 response.
pub fn parse(response: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let bytes = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(&[][..], |at| &response[at + 4..]);
    Reply { status, headers, body: body.to_owned(), bytes: bytes.to_vec() }
}

/// One request. `body` is sent as JSON; `extra` adds headers.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body.as_bytes());
    raw(addr, &request).await
}

/// A signed-up user of a test server.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub access: String,
    pub refresh: String,
}

pub const PASSWORD: &str = "correct horse battery";

pub async fn register(addr: SocketAddr, username: &str) -> User {
    let body =
        json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD });
    let reply = call(addr, "POST", "/api/auth/register", None, Some(&body), &[]).await;
    assert_eq!(reply.status, 201, "register {username}: {}", reply.body);
    user_of(&reply.json())
}

pub fn user_of(json: &Value) -> User {
    User {
        id: json["user"]["id"].as_str().unwrap().to_owned(),
        username: json["user"]["username"].as_str().unwrap().to_owned(),
        access: json["accessToken"].as_str().unwrap().to_owned(),
        refresh: json["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// Create a session owned by `owner` with `fields` (title defaults to "s"); returns its id.
pub async fn create_session(addr: SocketAddr, owner: &User, fields: Value) -> String {
    let mut body = json!({ "title": "s" });
    body.as_object_mut().unwrap().extend(fields.as_object().cloned().unwrap_or_default());
    let reply = call(addr, "POST", "/api/sessions", Some(&owner.access), Some(&body), &[]).await;
    assert_eq!(reply.status, 201, "create session: {}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Add `who` to the session with `role`, as `by`.
pub async fn invite(addr: SocketAddr, by: &User, session: &str, who: &User, role: &str) {
    let body = json!({ "userId": who.id, "role": role });
    let path = format!("/api/sessions/{session}/collaborators");
    let reply = call(addr, "POST", &path, Some(&by.access), Some(&body), &[]).await;
    assert_eq!(reply.status, 201, "invite: {}", reply.body);
}
