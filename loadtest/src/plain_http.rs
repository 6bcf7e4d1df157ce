//! A minimal plain-HTTP/1.1 client: GET for the servers' ops endpoints (`/ready`, `/metrics`) and
//! POST of a JSON body for `--sign-up` (register, create sessions). The harness needs no HTTP
//! client crate for a handful of small requests on loopback.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::duration::human;

/// One request, connect to last byte; a stalled answer must not stall a monitor or a window edge.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` of the server's HTTP side, which is the WebSocket URL's authority (CodeCrafter serves
/// `/ws/{room}`, `/ready` and `/metrics` on one listener). Only plain `ws://` (or `http://`, for a
/// worker's metrics endpoint): the harness speaks no TLS here.
pub fn http_authority(base_url: &str) -> anyhow::Result<String> {
    let Some(rest) = base_url.strip_prefix("ws://").or_else(|| base_url.strip_prefix("http://")) else {
        bail!("the harness reads ops endpoints over plain HTTP, so it needs a ws:// URL, not {base_url}")
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    anyhow::ensure!(!authority.is_empty(), "no host in {base_url}");
    // No port: HTTP's default, as the WebSocket client would use.
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
    Ok(if has_port { authority.to_owned() } else { format!("{authority}:80") })
}

/// The body of `GET http://{authority}{path}`, whatever the status (a 503 `/ready` still carries
/// its counts), read up to `max_bytes`.
pub async fn get(authority: &str, path: &str, max_bytes: u64) -> anyhow::Result<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let (_, body) = exchange(authority, "GET", path, &request, max_bytes).await?;
    Ok(body)
}

/// A response: its status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `POST http://{authority}{path}` with a JSON body and, if given, `Authorization: Bearer`.
pub async fn post_json(
    authority: &str,
    path: &str,
    bearer: Option<&str>,
    json: &str,
    max_bytes: u64,
) -> anyhow::Result<Response> {
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    let (status, body) = exchange(authority, "POST", path, &request, max_bytes).await?;
    Ok(Response { status, body })
}

/// Sends one request on a fresh connection and reads the answer to its end (`Connection: close`).
async fn exchange(
    authority: &str,
    method: &str,
    path: &str,
    request: &str,
    max_bytes: u64,
) -> anyhow::Result<(u16, String)> {
    let what = || format!("{method} http://{authority}{path}");
    let raw = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut tcp = TcpStream::connect(authority).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.take(max_bytes).read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    })
    .await
    .with_context(|| format!("{}: no answer within {}", what(), human(REQUEST_TIMEOUT)))?
    .with_context(what)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) =
        raw.split_once("\r\n\r\n").with_context(|| format!("{}: malformed HTTP response", what()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{}: no status in {head:?}", what()))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body).context("malformed chunked body")? } else { body.to_owned() };
    Ok((status, body))
}

/// The payload of a `Transfer-Encoding: chunked` body (a worker's exporter may stream its metrics).
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    loop {
        let (size_line, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_from_urls() {
        let ok = |url: &str| http_authority(url).expect(url);
        assert_eq!(ok("ws://127.0.0.1:5000/ws"), "127.0.0.1:5000");
        assert_eq!(ok("ws://localhost/ws"), "localhost:80");
        assert_eq!(ok("ws://[::1]:9/ws"), "[::1]:9");
        assert_eq!(ok("ws://[::1]/ws"), "[::1]:80");
        assert_eq!(ok("ws://user@127.0.0.1/ws"), "127.0.0.1:80");
        assert_eq!(ok("http://127.0.0.1:9100/metrics"), "127.0.0.1:9100");
        assert!(http_authority("wss://127.0.0.1:1/ws").is_err());
        assert!(http_authority("ws:///ws").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("5\r\nhello\r\n7;x=1\r\n world\n\r\n0\r\n\r\n").as_deref(), Some("hello world\n"));
        assert_eq!(dechunk("5\r\nhel"), None);
        assert_eq!(dechunk("zz\r\n"), None);
    }
}
