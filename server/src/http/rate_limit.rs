//! API rate limits (fixed windows counted in the cache, so every node shares them): per client IP
//! and per signed-in user, default 100 requests per 15 minutes as in the seeds, and a stricter
//! per-IP budget for register, login and refresh (password guessing). Over a limit: 429 with
//! `Retry-After`. Every answer carries `RateLimit-Limit/Remaining/Reset` (IETF draft headers).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::{CheckedToken, bearer_token};
use super::{ApiError, AppState};
use crate::cache::Hit;
use crate::socket::SocketHandle;

/// Routes where a request is worth a password guess.
const AUTH_PATHS: [&str; 3] = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"];

pub async fn limit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketHandle>>().and_then(|info| info.0.0.peer_ip());
    let ip = client_ip(state.config.trust_proxy, request.headers(), peer);
    let config = &state.config;
    let window = config.rate_limit_window();
    let mut budgets = Vec::with_capacity(3);
    if config.rate_limit_requests > 0 {
        budgets.push((format!("rl:ip:{ip}"), config.rate_limit_requests));
        // Only a valid token names a user: a forged `sub` must not spend someone else's budget.
        if let Some(checked) = bearer_token(request.headers()).map(|t| state.auth.tokens.verify(t)) {
            if let Ok(claims) = &checked {
                budgets.push((format!("rl:user:{}", claims.sub), config.rate_limit_requests));
            }
            request.extensions_mut().insert(CheckedToken(checked));
        }
    }
    if config.auth_rate_limit_requests > 0 && AUTH_PATHS.contains(&request.uri().path()) {
        budgets.push((format!("rl:auth:{ip}"), config.auth_rate_limit_requests));
    }
    // The tightest budget is the one reported in the headers.
    let mut tightest: Option<(u64, Hit)> = None;
    for (key, limit) in budgets {
        let hit = match state.cache.hit(&key, window).await {
            Ok(hit) => hit,
            Err(error) => {
                // Fail open: a cache outage must not take the API down with it.
                tracing::warn!(%error, "rate-limit counter unavailable; request allowed");
                continue;
            }
        };
        if hit.count > limit {
            crate::telemetry::Metrics::get().rate_limited.increment(1);
            let mut response = ApiError::too_many_requests(hit.reset_in).into_response();
            set_headers(response.headers_mut(), limit, &hit);
            return response;
        }
        let remaining = limit - hit.count;
        if tightest.is_none_or(|(l, h)| remaining < l - h.count) {
            tightest = Some((limit, hit));
        }
    }
    let mut response = next.run(request).await;
    if let Some((limit, hit)) = tightest {
        set_headers(response.headers_mut(), limit, &hit);
    }
    response
}

fn set_headers(headers: &mut HeaderMap, limit: u64, hit: &Hit) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(limit.saturating_sub(hit.count)));
    headers.insert("ratelimit-reset", HeaderValue::from(ceil_secs(hit.reset_in)));
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The client's IP: the TCP `peer`, or behind a trusted proxy the left-most `X-Forwarded-For`.
pub fn client_ip(trust_proxy: bool, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
    let forwarded = || {
        headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    };
    trust_proxy.then(forwarded).flatten().or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}
