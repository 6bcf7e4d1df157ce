//! API rate limits: fixed windows counted in the cache, so every node shares them. Over a limit:
//! 429 with `Retry-After`; every answer carries `RateLimit-Limit/Remaining/Reset` (IETF draft
//! headers) for its tightest budget.
//!
//! A request with a valid access token counts against its *user* (`--rate-limit-requests`), from
//! whatever address: a class behind one NAT is many users, not one. A request without one counts
//! against its client IP (`--ip-rate-limit-requests`), as GitHub does for unauthenticated calls.
//! Registration and refresh have per-IP budgets of their own, and refresh is kept out of the
//! anonymous budget, so refreshing never locks anyone out of signing in. Failed logins are
//! limited per account and per IP by [`crate::auth::LoginAttempts`], in the login route (only it
//! knows whether an attempt failed).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::{CheckedToken, bearer_token};
use super::proxy::bucket;
use super::{ApiError, AppState};
use crate::cache::Hit;
use crate::socket::SocketHandle;

const REGISTER: &str = "/api/auth/register";
const REFRESH: &str = "/api/auth/refresh";

/// The client's IP as [`super::proxy::client_ip`] resolved it, for the routes that limit by it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub async fn limit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketHandle>>().map(|info| info.0.peer);
    let ip = super::proxy::client_ip(&state.config, request.headers(), peer);
    request.extensions_mut().insert(ClientIp(ip));
    let config = &state.config;
    let window = config.rate_limit_window();
    let (register, refresh) = (request.uri().path() == REGISTER, request.uri().path() == REFRESH);
    let mut budgets = Vec::with_capacity(2);
    // Only a valid token names a user: a forged `sub` must not spend someone else's budget.
    let checked = bearer_token(request.headers()).map(|token| state.auth.tokens.verify(token));
    match &checked {
        Some(Ok(claims)) => budgets.push((format!("rl:user:{}", claims.sub), config.rate_limit_requests)),
        _ if refresh => {}
        _ => budgets.push((format!("rl:ip:{}", bucket(ip)), config.ip_rate_limit_requests)),
    }
    if register {
        budgets.push((format!("rl:register:{}", bucket(ip)), config.register_rate_limit_requests));
    }
    if refresh {
        budgets.push((format!("rl:refresh:{}", bucket(ip)), config.refresh_rate_limit_requests));
    }
    if let Some(checked) = checked {
        request.extensions_mut().insert(CheckedToken(checked));
    }
    // 0 turns a budget off.
    budgets.retain(|(_, limit)| *limit > 0);
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
