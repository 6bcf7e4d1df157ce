//! The cache backends against the conformance suite, and what only the Redis backend has: key
//! prefixes, riding out a Redis restart, and the shipped `redis.conf`.
//!
//! Needs `redis-server`. The shared one comes from `scripts/services.sh` through
//! `CODECRAFTER_TEST_REDIS_URL`; the restart and config tests start their own on a free port.
//! Every key the tests write has a TTL of at most a minute, so the shared Redis cleans up after them.
//! The `rediss://` test starts a TLS redis-server with a CA it makes with the `openssl` CLI.

use crate::support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use server::cache::{Cache, JournaledCache, MemoryCache, RedisCache, conformance::cache_suite};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

const LONG: Duration = Duration::from_secs(60);
/// Where to look when Redis is missing: the script installs and starts redis-server.
const HOW_TO_START_REDIS: &str =
    "run scripts/test.sh, or start one with `source scripts/services.sh && services_start`";

fn shared_redis_url() -> String {
    std::env::var("CODECRAFTER_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("CODECRAFTER_TEST_REDIS_URL is not set: {HOW_TO_START_REDIS}"))
}

/// A fresh key prefix per cache, so tests sharing one Redis never see each other's keys.
fn random_prefix() -> String {
    format!("test:{:016x}:", rand::random::<u64>())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// A `redis-server` child process of this test, on a port of its own, killed when dropped.
struct RedisProcess {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl RedisProcess {
    /// Starts a throwaway Redis: no persistence, loopback only.
    async fn start(port: u16) -> Self {
        Self::spawn(port, &[], &["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]).await
    }

    /// Starts Redis from `config`, overriding only what must differ in a test.
    async fn start_with_config(port: u16, config: &Path) -> Self {
        Self::spawn(port, &[path_str(config)], &[]).await
    }

    /// `leading` goes first (where redis-server wants a config file), `trailing` after the port.
    async fn spawn(port: u16, leading: &[&str], trailing: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("creating the log file");
        let child = Command::new("redis-server")
            .args(leading)
            .args(["--port", &port.to_string(), "--dir", path_str(dir.path()), "--daemonize", "no"])
            .args(trailing)
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting redis-server failed ({err}): {HOW_TO_START_REDIS}"));
        let mut redis = Self { child, port, dir };
        redis.wait_until_listening().await;
        redis
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "redis-server is not listening after 10 s:\n{}", self.log());
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cache_passes_the_suite() {
    let cache = Arc::new(MemoryCache::new());
    assert_eq!(cache.backend_name(), "memory");
    cache_suite(cache).await;
}

/// The embedded default, with every key journaled (the server journals only refresh tokens): the
/// journal must not change what any operation answers, racing swaps included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_cache_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(JournaledCache::open(&dir.path().join("all.journal"), &[""]).await.unwrap());
    assert_eq!(cache.backend_name(), "memory");
    cache_suite(cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_passes_the_suite() {
    let cache = Arc::new(RedisCache::connect(&shared_redis_url(), &random_prefix()).await.unwrap());
    assert_eq!(cache.backend_name(), "redis");
    cache_suite(cache).await;
}

#[tokio::test]
async fn redis_prefixes_keep_caches_apart() {
    let url = shared_redis_url();
    let (prefix_a, prefix_b) = (random_prefix(), random_prefix());
    let a = RedisCache::connect(&url, &prefix_a).await.unwrap();
    let b = RedisCache::connect(&url, &prefix_b).await.unwrap();

    a.set("same-name", b"a", LONG).await.unwrap();
    assert_eq!(b.get("same-name").await.unwrap(), None, "b does not see a's key");
    assert!(b.set_if_absent("same-name", b"b", LONG).await.unwrap(), "b's key is free");
    assert_eq!(a.get("same-name").await.unwrap().as_deref(), Some(&b"a"[..]), "a keeps its value");
    assert!(b.delete("same-name").await.unwrap());
    assert_eq!(a.get("same-name").await.unwrap().as_deref(), Some(&b"a"[..]), "b's delete spares a");

    a.hit("counter", LONG).await.unwrap();
    assert_eq!(b.hit("counter", LONG).await.unwrap().count, 1, "counters are per prefix");

    let mut raw = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stored: Option<Vec<u8>> =
        redis::cmd("GET").arg(format!("{prefix_a}same-name")).query_async(&mut raw).await.unwrap();
    assert_eq!(stored.as_deref(), Some(&b"a"[..]), "the key in Redis is the prefix followed by the name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_recovers_after_redis_restarts() {
    let port = free_port();
    let mut redis = RedisProcess::start(port).await;
    let cache = RedisCache::connect(&redis.url(), &random_prefix()).await.unwrap();
    cache.set("k", b"before", LONG).await.unwrap();

    redis.kill();
    let bound = RedisCache::OPERATION_DEADLINE + Duration::from_millis(500);
    for attempt in 1..=3 {
        let started = Instant::now();
        let result = cache.get("k").await;
        assert!(result.is_err(), "attempt {attempt}: an operation on a dead Redis is an error: {result:?}");
        assert!(started.elapsed() < bound, "attempt {attempt}: the error took {:?}", started.elapsed());
    }

    let _restarted = RedisProcess::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(err) = cache.set("k", b"after", LONG).await {
        assert!(Instant::now() < deadline, "still failing 5 s after Redis came back: {err}");
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    assert_eq!(cache.hit("counter", LONG).await.unwrap().count, 1, "the hit script is loaded again");
}

#[tokio::test]
async fn connecting_to_a_dead_redis_fails_fast() {
    let started = Instant::now();
    let result = RedisCache::connect(&format!("redis://127.0.0.1:{}", free_port()), "p:").await;
    assert!(result.is_err(), "nothing listens on the port");
    assert!(started.elapsed() < RedisCache::OPERATION_DEADLINE + Duration::from_millis(500));
}

#[tokio::test]
async fn shipped_redis_conf_is_valid_for_this_redis() {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../redis.conf");
    let redis = RedisProcess::start_with_config(free_port(), &config).await;
    let mut connection =
        redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let expected = [
        ("maxmemory", "268435456"),
        ("maxmemory-policy", "volatile-lru"),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("timeout", "0"),
        ("notify-keyspace-events", ""),
    ];
    for (name, value) in expected {
        let reply: (String, String) =
            redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut connection).await.unwrap();
        assert_eq!(reply, (name.to_owned(), value.to_owned()), "redis.conf sets {name}");
    }
}

/// A redis-server serving TLS only, with a server certificate for 127.0.0.1 signed by a CA made
/// for the test (`openssl` CLI), killed when dropped.
struct TlsRedis {
    port: u16,
    dir: TempDir,
    child: Child,
}

impl TlsRedis {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=codecrafter test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.pem",
            ])
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): {HOW_TO_START_REDIS}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the TLS redis-server did not listen on {port}");
            sleep(Duration::from_millis(20)).await;
        }
        Self { port, dir, child }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_work_with_a_private_ca_and_are_refused_without_it() {
    let redis = TlsRedis::start().await;
    let client = server::redis_tls::client(&redis.url(), Some(&redis.ca())).unwrap();
    let cache = RedisCache::connect_client(client, &random_prefix()).await.expect("TLS with the private CA");
    cache.set("k", b"over tls", LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"over tls"[..]));

    // The system roots do not know the test CA: the certificate is refused, not ignored.
    let client = server::redis_tls::client(&redis.url(), None).unwrap();
    assert!(RedisCache::connect_client(client, "p:").await.is_err(), "an unknown CA must fail");

    // The binary as users run it: cache and relay over rediss:// with --redis-ca-file.
    let dir = tempfile::tempdir().unwrap();
    let ca = redis.ca();
    let node = support::processes::Node::start(
        dir.path(),
        &[("JWT_SECRET", "0123456789abcdef0123456789abcdef")],
        &["--redis-url", &redis.url(), "--redis-ca-file", ca.to_str().unwrap()],
    )
    .await;
    // The relay's subscriber connects in the background: wait for it rather than ask once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = support::http_get(&format!("http://{}/ready", node.addr)).await;
        assert_eq!(status, 200, "{body}");
        let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ready["cache"]["status"], "ok", "{body}");
        if ready["status"] == "ready" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the relay never connected over TLS: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
