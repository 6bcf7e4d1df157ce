//! The browser client, embedded in the binary by `build.rs` from `server/web/dist`: the page at
//! `/` with a fresh CSP nonce in every response, and its content-hashed files at `/assets/{file}`,
//! cached forever and gzipped (once) for clients that accept it.
//!
//! `/index.html` is no route (the JSON 404): the page has one URL, revalidated on every load
//! (`no-cache`), so a new build is picked up at once; only names that change with their content
//! are cached for good, and `index.html` is never one of them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::extract::ApiPath;
use super::{AppState, security};

// `FILES`: every file of `web/dist` by its path there, sorted.
include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Where the page wants its nonce (`<meta name="csp-nonce" content="__CSP_NONCE__">`).
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";
const ASSETS_DIR: &str = "assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/", get(page)).route("/assets/{file}", get(asset))
}

static INDEX_HTML: LazyLock<&'static str> = LazyLock::new(|| {
    let (_, html) =
        FILES.iter().find(|(name, _)| *name == "index.html").expect("build.rs requires index.html");
    std::str::from_utf8(html).expect("build.rs checked that index.html is UTF-8")
});

async fn page() -> Response {
    // 128 bits from the thread's CSPRNG, new in every response: an injected `<style>` cannot
    // guess it.
    let nonce = format!("{:032x}", rand::random::<u128>());
    let html = INDEX_HTML.replace(NONCE_PLACEHOLDER, &nonce);
    let csp = HeaderValue::from_str(&security::csp_web_page(&nonce)).expect("hex nonce in an ASCII policy");
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, csp),
    ];
    (headers, html).into_response()
}

/// One file under `assets/`, with what is worked out once for it.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// Strong validators (quoted) of the identity bytes and of their gzip form: a hash of the
    /// bytes, so it changes with them even if a name did not.
    etag: String,
    etag_gzip: String,
    /// Text and SVG compress; PNG, JPEG and fonts are compressed already. Filled on the first
    /// request that wants it.
    gzip: Option<OnceLock<Bytes>>,
}

/// The files under `assets/` by name. A lookup by exact name is all the routing there is: `..`,
/// subfolders and `index.html` are simply not keys.
static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|&(path, bytes)| {
            let name = path.strip_prefix(ASSETS_DIR)?;
            let (content_type, compressible) = content_type(name);
            let digest = Sha256::digest(bytes);
            let hash = u128::from_be_bytes(digest[..16].try_into().expect("SHA-256 has 32 bytes"));
            let (etag, etag_gzip) = (format!("\"{hash:032x}\""), format!("\"{hash:032x}-gzip\""));
            let gzip = compressible.then(OnceLock::new);
            Some((name, Asset { bytes, content_type, etag, etag_gzip, gzip }))
        })
        .collect()
});

async fn asset(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(file.as_str()) else {
        // The same answer as any unknown route (never the page: a missing script is an error).
        return security::not_found().await.into_response();
    };
    let gzip = asset.gzip.is_some() && accepts_gzip(&headers);
    let etag = if gzip { &asset.etag_gzip } else { &asset.etag };
    let mut response = if if_none_match(&headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = if gzip { Body::from(compressed(asset).await) } else { Body::from(asset.bytes) };
        let mut response = ([(header::CONTENT_TYPE, asset.content_type)], body).into_response();
        if gzip {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    out.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex in quotes"));
    if asset.gzip.is_some() {
        // Caches keep the gzip and the identity body apart (CORS may add its own `Vary` too).
        out.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The gzip form of a compressible asset, made on first use and kept. A bundle of a megabyte takes
/// tens of milliseconds to compress, so that first time runs off the async workers.
async fn compressed(asset: &'static Asset) -> Bytes {
    let cell = asset.gzip.as_ref().expect("only compressible assets are gzipped");
    if let Some(bytes) = cell.get() {
        return bytes.clone();
    }
    let make = move || cell.get_or_init(|| gzip(asset.bytes)).clone();
    tokio::task::spawn_blocking(make).await.expect("gzip of an in-memory buffer does not panic")
}

fn gzip(bytes: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to a Vec");
    Bytes::from(encoder.finish().expect("writing to a Vec"))
}

/// Whether `Accept-Encoding` names gzip with a non-zero quality (`gzip;q=0` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let codings = headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
    codings.flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .next()
            .unwrap_or(1.0);
        (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && quality > 0.0
    })
}

/// `If-None-Match` against `etag`, compared weakly as RFC 9110 says for this header (`W/"x"`
/// matches `"x"`); `*` matches any current representation.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let tags = headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok());
    tags.flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The content type by extension, and whether gzip makes it smaller.
fn content_type(name: &str) -> (&'static str, bool) {
    match name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
        Some("js" | "mjs") => ("text/javascript; charset=utf-8", true),
        Some("css") => ("text/css; charset=utf-8", true),
        Some("txt") => ("text/plain; charset=utf-8", true),
        Some("json" | "map") => ("application/json", true),
        Some("svg") => ("image/svg+xml", true),
        Some("wasm") => ("application/wasm", true),
        Some("png") => ("image/png", false),
        Some("jpg" | "jpeg") => ("image/jpeg", false),
        Some("webp") => ("image/webp", false),
        Some("ico") => ("image/x-icon", true),
        Some("woff2") => ("font/woff2", false),
        Some("woff") => ("font/woff", false),
        _ => ("application/octet-stream", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-` then esbuild's 8-character base32 hash then `.`, as in `app-5CO6R4HC.js`.
    fn has_content_hash(name: &str) -> bool {
        name.as_bytes().windows(10).any(|w| {
            w[0] == b'-'
                && w[9] == b'.'
                && w[1..9].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
    }

    #[test]
    fn every_embedded_asset_name_carries_a_content_hash() {
        let assets: Vec<_> = FILES.iter().filter_map(|(path, _)| path.strip_prefix(ASSETS_DIR)).collect();
        assert!(!assets.is_empty(), "dist/ has no assets/");
        for name in assets {
            assert!(
                has_content_hash(name),
                "{name} is cached as immutable but has no content hash in its name"
            );
        }
        assert!(has_content_hash("app-5CO6R4HC.js.LEGAL.txt"));
        assert!(!has_content_hash("app.js") && !has_content_hash("app-5co6r4hc.js"));
    }

    #[test]
    fn the_page_asks_for_a_nonce_and_is_not_an_asset() {
        assert!(INDEX_HTML.contains(NONCE_PLACEHOLDER), "CodeMirror's <style> would be refused");
        assert!(!ASSETS.contains_key("index.html"));
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        let check = |accept: &str, expected: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
            assert_eq!(accepts_gzip(&headers), expected, "{accept}");
        };
        check("gzip", true);
        check("gzip, deflate, br, zstd", true);
        check("br;q=1.0, GZIP;q=0.5", true);
        check("gzip;q=0", false);
        check("gzip; q=0.000", false);
        check("identity", false);
        check("br", false);
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let check = |value: &str, expected: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            assert_eq!(if_none_match(&headers, "\"abc\""), expected, "{value}");
        };
        check("\"abc\"", true);
        check("W/\"abc\"", true);
        check("\"x\", \"abc\"", true);
        check("*", true);
        check("\"abc-gzip\"", false);
        check("\"ab\"", false);
    }

    #[test]
    fn content_types_by_extension() {
        let check = |name: &str, expected: &str, compress: bool| {
            assert_eq!(content_type(name), (expected, compress), "{name}");
        };
        check("app-5CO6R4HC.js", "text/javascript; charset=utf-8", true);
        check("app-G26ZA3QG.css", "text/css; charset=utf-8", true);
        check("app-5CO6R4HC.js.LEGAL.txt", "text/plain; charset=utf-8", true);
        check("app-5CO6R4HC.js.map", "application/json", true);
        check("logo-AAAAAAAA.svg", "image/svg+xml", true);
        check("logo-AAAAAAAA.png", "image/png", false);
        check("font-AAAAAAAA.woff2", "font/woff2", false);
        check("blob-AAAAAAAA", "application/octet-stream", false);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let text = b"const a = 1; const a = 1; const a = 1;";
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(text)[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, text);
    }
}
