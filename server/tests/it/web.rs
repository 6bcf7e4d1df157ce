//! The embedded browser client: the page at `/` with its per-response CSP nonce, the files it
//! references at `/assets/` (types, immutable caching, ETags, gzip), and what is not served.

use crate::support;

use std::io::Read as _;
use std::net::SocketAddr;

use support::TestServer;
use support::http::{Reply, call};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    call(addr, "GET", path, None, None, headers).await
}

/// The nonce of a page response, from its CSP; asserts the policy is exactly the page's.
fn nonce_of(page: &Reply) -> String {
    let csp = page.header("content-security-policy").expect("the page has a CSP");
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).expect("a nonce source");
    assert_eq!(
        csp,
        format!(
            "default-src 'none'; script-src 'self'; style-src-elem 'self' 'nonce-{nonce}'; \
             style-src-attr 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; \
             manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    );
    nonce.to_owned()
}

/// The `/assets/` URLs in the page's `src` and `href` attributes.
fn referenced_assets(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let value = html[at + attribute.len()..].split('"').next().unwrap();
            if value.starts_with("/assets/") {
                urls.push(value.to_owned());
            }
        }
    }
    urls
}

fn expected_type(url: &str) -> &'static str {
    match url.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => panic!("the page references {url}, neither a script nor a stylesheet: add its type here"),
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip body");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_carries_a_fresh_nonce_in_its_html_and_its_csp() {
    let server = TestServer::start(|_| {}).await;
    let first = get(server.addr, "/", &[]).await;
    let second = get(server.addr, "/", &[]).await;
    let mut nonces = Vec::new();
    for page in [&first, &second] {
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert!(!page.body.contains("__CSP_NONCE__"), "{}", page.body);
        let nonce = nonce_of(page);
        assert!(nonce.len() >= 32, "a nonce of at least 128 bits: {nonce}");
        assert!(page.body.contains(&format!("content=\"{nonce}\"")), "the page's meta lacks {nonce}");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "every response has its own nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_page_references_is_served_immutable_with_an_etag() {
    let server = TestServer::start(|_| {}).await;
    let page = get(server.addr, "/", &[]).await;
    let urls = referenced_assets(&page.body);
    assert!(urls.iter().any(|u| u.ends_with(".js")), "no script in {}", page.body);
    assert!(urls.iter().any(|u| u.ends_with(".css")), "no stylesheet in {}", page.body);
    for url in &urls {
        let reply = get(server.addr, url, &[]).await;
        assert_eq!(reply.status, 200, "{url}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some(expected_type(url)), "{url}");
        assert_eq!(reply.header("cache-control"), Some(IMMUTABLE), "{url}");
        assert_eq!(reply.header("content-encoding"), None, "{url}: not asked for gzip");
        assert!(!reply.bytes.is_empty(), "{url} is empty");
        let etag = reply.header("etag").unwrap_or_else(|| panic!("{url} has no ETag"));
        assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong ETag: {etag}");

        let again = get(server.addr, url, &[("If-None-Match", etag)]).await;
        assert_eq!(again.status, 304, "{url}");
        assert!(again.bytes.is_empty(), "{url}: a 304 has no body");
        assert_eq!((again.header("etag"), again.header("cache-control")), (Some(etag), Some(IMMUTABLE)));
        let stale = get(server.addr, url, &[("If-None-Match", "\"stale\"")]).await;
        assert_eq!((stale.status, stale.bytes), (200, reply.bytes), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_gzipped_for_clients_that_accept_it_and_only_for_them() {
    let server = TestServer::start(|_| {}).await;
    let page = get(server.addr, "/", &[]).await;
    for url in referenced_assets(&page.body) {
        let identity = get(server.addr, &url, &[]).await;
        let gzipped = get(server.addr, &url, &[("Accept-Encoding", "br, gzip;q=0.8")]).await;
        assert_eq!(gzipped.status, 200, "{url}");
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{url}");
        assert_eq!(gzipped.header("content-type"), Some(expected_type(&url)));
        for reply in [&identity, &gzipped] {
            let vary = reply.header_all("vary").join(",").to_ascii_lowercase();
            assert!(vary.contains("accept-encoding"), "{url}: Vary is {vary:?}");
        }
        assert_eq!(gunzip(&gzipped.bytes), identity.bytes, "{url}: the same bytes once decompressed");
        let etag = gzipped.header("etag").unwrap();
        assert_ne!(Some(etag), identity.header("etag"), "{url}: each encoding has its own strong ETag");
        let again = get(server.addr, &url, &[("Accept-Encoding", "gzip"), ("If-None-Match", etag)]).await;
        assert_eq!((again.status, again.header("etag")), (304, Some(etag)), "{url}");

        let refused = get(server.addr, &url, &[("Accept-Encoding", "gzip;q=0")]).await;
        assert_eq!((refused.header("content-encoding"), &refused.bytes), (None, &identity.bytes), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_assets_traversal_and_the_page_by_another_name_are_json_404s() {
    let server = TestServer::start(|_| {}).await;
    for path in [
        "/assets/nope-AAAAAAAA.js",
        "/assets/index.html",
        "/assets/..%2Findex.html",
        "/assets/%2E%2E%2Findex.html",
        "/assets/../index.html",
        "/assets/..%2F..%2FCargo.toml",
        "/assets/",
        "/index.html",
    ] {
        let reply = get(server.addr, path, &[]).await;
        assert_eq!((reply.status, reply.error_code().as_str()), (404, "not_found"), "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"), "{path}");
        assert!(reply.header("cache-control").is_none(), "{path}: a 404 must not be cached for good");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_the_headers_of_get_without_a_body() {
    let server = TestServer::start(|_| {}).await;
    let page = call(server.addr, "HEAD", "/", None, None, &[]).await;
    assert_eq!((page.status, page.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert!(page.bytes.is_empty(), "{}", page.body);
    nonce_of(&page);

    let html = get(server.addr, "/", &[]).await.body;
    let url = referenced_assets(&html).into_iter().next().expect("the page references an asset");
    let full = get(server.addr, &url, &[]).await;
    let head = call(server.addr, "HEAD", &url, None, None, &[]).await;
    assert_eq!(head.status, 200, "{url}");
    assert!(head.bytes.is_empty(), "{url}");
    for name in ["content-type", "content-length", "etag", "cache-control"] {
        assert_eq!(head.header(name), full.header(name), "{url}: {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_own_csp() {
    let server = TestServer::start(|_| {}).await;
    let health = get(server.addr, "/health", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
}
