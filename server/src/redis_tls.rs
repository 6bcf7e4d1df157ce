//! The Redis client both the cache and the relay use: `redis://` in the clear, `rediss://` over
//! TLS (rustls on ring, as every other TLS connection of the server).
//!
//! A `rediss://` URL is verified against the system's trusted roots, as managed Redis services
//! (ElastiCache, Upstash, Redis Cloud...) need. A Redis behind a private CA is trusted through
//! `--redis-ca-file` instead: a PEM file of that CA, which then replaces the system roots. There is
//! no switch to skip verification (`#insecure` is refused): a private CA costs one file.

use std::path::Path;

use anyhow::Context;

pub fn client(url: &str, ca_file: Option<&Path>) -> anyhow::Result<redis::Client> {
    let Some(ca_file) = ca_file else {
        return redis::Client::open(url).context("REDIS_URL is not a valid Redis URL");
    };
    let root_cert =
        std::fs::read(ca_file).with_context(|| format!("reading --redis-ca-file {}", ca_file.display()))?;
    anyhow::ensure!(
        url.starts_with("rediss://"),
        "--redis-ca-file is set but REDIS_URL is not a rediss:// (TLS) URL"
    );
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) },
    )
    .with_context(|| format!("--redis-ca-file {} is not a PEM CA certificate", ca_file.display()))
}
