//! Slow and idle HTTP clients, and the caps on plain HTTP connections: a connection that sends
//! nothing, half a request head, a trickled head or body, or never reads its answer is cut by a
//! timeout; past the per-IP or total cap a connection gets a 503 JSON answer at once; a WebSocket
//! leaves the count once upgraded; a normal keep-alive client is not disturbed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;
use crate::support::http::{Reply, call, parse};

/// How long any step may take before the test fails (the timeouts under test are far shorter).
const DEADLINE: Duration = Duration::from_secs(10);

/// Read until the server closes the connection; fails the test if it does not within `DEADLINE`.
async fn read_until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the server kept the connection open for {DEADLINE:?}");
    received
}

/// Read exactly one response (head and `content-length` body) from a kept-alive connection.
async fn read_response(tcp: &mut TcpStream) -> Reply {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if received.len() >= end + 4 + length {
                    return;
                }
            }
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response in time");
    parse(&received)
}

/// The value of one metric series (0 when absent).
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let reply = call(addr, "GET", "/metrics", None, None, &[]).await;
    reply
        .body
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Wait until the metric `series` reaches `at_least`.
async fn metric_reaches(addr: SocketAddr, series: &str, at_least: f64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = metric(addr, series).await;
        if value >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}, expected at least {at_least}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const HEADER_TIMEOUTS: &str = r#"codecrafter_http_timeouts_total{kind="header"}"#;

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::start(|c| c.http_header_timeout_ms = 300).await;
    let before = metric(server.addr, HEADER_TIMEOUTS).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.is_empty(), "closed without an answer: {}", String::from_utf8_lossy(&answer));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    metric_reaches(server.addr, HEADER_TIMEOUTS, before + 1.0).await;
}

#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let server = TestServer::start(|c| c.http_header_timeout_ms = 300).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ").await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.is_empty(), "closed without an answer: {}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_cut_although_bytes_keep_coming() {
    let server = TestServer::start(|c| c.http_header_timeout_ms = 500).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    // Slowloris: a header byte every 50 ms, so the connection is never silent.
    let trickle = tokio::spawn(async move {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, read.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "the trickled connection was not cut: {closed:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut only after {:?}", started.elapsed());
    trickle.abort();
}

#[tokio::test]
async fn a_keep_alive_client_is_served_across_requests_then_closed_when_idle() {
    let server = TestServer::start(|c| c.http_header_timeout_ms = 1000).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    for i in 0..3 {
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let reply = read_response(&mut tcp).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"status":"ok"}"#), "request {i}");
        // A pause shorter than the timeout between requests, as a client polling would make.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Idle past the timeout: the server closes it without a word.
    let rest = read_until_closed(&mut tcp).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn a_body_trickled_past_the_request_timeout_gets_408_and_is_closed() {
    let server = TestServer::start(|c| c.http_request_timeout_ms = 500).await;
    let before = metric(server.addr, r#"codecrafter_http_timeouts_total{kind="request"}"#).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Announces a megabyte, sends one byte of it.
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 1000000\r\n\r\n{";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let reply = parse(&read_until_closed(&mut tcp).await);
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.error_code(), "request_timeout");
    assert!(started.elapsed() >= Duration::from_millis(400), "answered before the timeout");
    metric_reaches(server.addr, r#"codecrafter_http_timeouts_total{kind="request"}"#, before + 1.0).await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_dropped_after_the_write_timeout() {
    let server = TestServer::start(|c| c.http_write_timeout_ms = 300).await;
    let series = r#"codecrafter_http_timeouts_total{kind="write"}"#;
    let before = metric(server.addr, series).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    // Many pipelined requests for the largest document served, and never a read: far more
    // answer than the kernel buffers of both ends hold.
    let request = b"GET /api-docs HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    tcp.write_all(&request).await.unwrap();
    metric_reaches(server.addr, series, before + 1.0).await;
    // And the connection is gone: what the small buffer held, then the end.
    read_until_closed(&mut tcp).await;
}

const PER_IP_REFUSED: &str = r#"codecrafter_http_connections_refused_total{reason="per_ip"}"#;

#[tokio::test]
async fn the_per_ip_cap_admits_n_refuses_the_next_and_websockets_do_not_count() {
    let server = TestServer::start(|c| c.max_http_connections_per_ip = 3).await;
    // Five WebSockets, opened one after another: each leaves the count once upgraded.
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let client = server.client("cap-room").await;
        client.wait_for("sync", DEADLINE, |c| c.shared().synced).await;
        sockets.push(client);
    }
    // Three idle connections from 127.0.0.1: exactly the cap.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let refused = request_on_new_connection(server.addr).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.error_code(), "too_many_connections");
    assert!(refused.error_message().contains("your address"), "{}", refused.body);
    // One leaves: the next is served.
    drop(idle.pop());
    wait_until_served(server.addr).await;
    drop(idle);
    metric_reaches(server.addr, PER_IP_REFUSED, 1.0).await;
    // The WebSockets were never disturbed.
    for client in &sockets {
        assert!(!client.shared().ended, "a WebSocket was closed");
    }
}

#[tokio::test]
async fn the_total_cap_admits_n_and_refuses_the_next() {
    let server = TestServer::start(|c| {
        c.max_http_connections = 2;
        c.max_http_connections_per_ip = 0;
    })
    .await;
    let idle: Vec<_> =
        [TcpStream::connect(server.addr).await.unwrap(), TcpStream::connect(server.addr).await.unwrap()]
            .into();
    let refused = request_on_new_connection(server.addr).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.error_code(), "too_many_connections");
    assert!(refused.error_message().contains("server has too many"), "{}", refused.body);
    drop(idle);
    wait_until_served(server.addr).await;
    metric_reaches(server.addr, r#"codecrafter_http_connections_refused_total{reason="total"}"#, 1.0).await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_silent_or_half_sent_connections() {
    let server = TestServer::start(|_| {}).await;
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Both are accepted (a request on a third connection is answered after them).
    assert_eq!(call(server.addr, "GET", "/health", None, None, &[]).await.status, 200);
    let started = Instant::now();
    server.stop().await.unwrap();
    // The default header and request timeouts are 30 s; shutdown must not wait for them.
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
}

/// Connect, send a request, read what comes back until the server closes.
async fn request_on_new_connection(addr: SocketAddr) -> Reply {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    parse(&read_until_closed(&mut tcp).await)
}

/// Once a place is given back, a new connection is served (the release is asynchronous).
async fn wait_until_served(addr: SocketAddr) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = request_on_new_connection(addr).await;
        if reply.status == 200 {
            return;
        }
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(Instant::now() < deadline, "still refused after a connection closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
