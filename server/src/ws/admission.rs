//! Who may open a room, decided once the WebSocket is open (so a refusal can carry a close code
//! and reason, which an HTTP error cannot for browser clients): the token from `?token=` or, if
//! the URL has none, from an auth message the client sends first; then the session and the
//! user's role in it.
//!
//! Order of refusals: no or bad token → 4401, unknown session → 4404, no role in it → 4403.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use protocol::{AuthMessage, Message, decode_frame};

use super::close::CloseReason;
use crate::auth::live::Registration;
use crate::auth::{Grant, SessionRole, TokenError};
use crate::http::AppState;
use crate::room::ConnId;

/// A connection let in, and what it may do.
pub struct Admission {
    pub grant: Arc<Grant>,
    /// Keeps the connection findable by permission changes; `None` for anonymous free rooms.
    pub registration: Option<Registration>,
    /// Messages that shared a frame with the auth token, still to be handled.
    pub rest_of_first_frame: Option<Bytes>,
    /// The signed-in user, for the connection's log events; `None` when anonymous.
    pub user: Option<String>,
}

pub async fn admit(
    ws: &mut WebSocket,
    state: &AppState,
    room: &str,
    conn: ConnId,
    url_token: Option<String>,
) -> Result<Admission, CloseReason> {
    let allow_anonymous = state.config.allow_anonymous;
    let mut rest_of_first_frame = None;
    let token = match url_token {
        Some(token) => Some(token),
        None if allow_anonymous => None,
        None => {
            let wait = Duration::from_millis(state.config.auth_timeout_ms);
            let (token, rest) = token_from_auth_message(ws, wait).await?;
            rest_of_first_frame = rest;
            Some(token)
        }
    };
    let claims = token
        .map(|token| {
            state.auth.tokens.verify(&token).map_err(|e| match e {
                TokenError::Expired => CloseReason::Unauthorized("token expired"),
                TokenError::Invalid => CloseReason::Unauthorized("invalid token"),
            })
        })
        .transpose()?;
    let seen_changes = state.sessions.live.changes();
    let Some(session) = read_session(state, room).await? else {
        // Not a session: a free room, open to anyone only where the operator allowed it.
        return if allow_anonymous {
            let grant = Arc::new(Grant::new(true));
            let user = claims.map(|claims| claims.sub);
            Ok(Admission { grant, registration: None, rest_of_first_frame, user })
        } else {
            Err(CloseReason::NotFound)
        };
    };
    let claims = claims.ok_or(CloseReason::Unauthorized("this session needs a token"))?;
    let role = SessionRole::of(&session, &claims.sub, claims.role).ok_or(CloseReason::Forbidden)?;
    let grant = Arc::new(Grant::new(role.can_write(&session)));
    let registration =
        state.sessions.live.register(&session.id, conn, &claims.sub, claims.role, grant.clone());
    if state.sessions.live.changes() != seen_changes {
        // Some session changed while we were reading ours; the change may have missed this
        // registration. Decide again from the session as it is now (the change dropped any
        // cached copy before it counted).
        let session = read_session(state, room).await?.ok_or(CloseReason::NotFound)?;
        let role = SessionRole::of(&session, &claims.sub, claims.role).ok_or(CloseReason::Forbidden)?;
        grant.set_writable(role.can_write(&session));
    }
    Ok(Admission { grant, registration: Some(registration), rest_of_first_frame, user: Some(claims.sub) })
}

async fn read_session(state: &AppState, room: &str) -> Result<Option<storage::model::Session>, CloseReason> {
    state.sessions.get(room).await.map_err(|error| {
        tracing::error!(room, %error, "could not read the session");
        CloseReason::Unavailable
    })
}

/// The first message of a connection without `?token=` must be an auth token message. Returns the
/// token and whatever followed it in the same frame.
async fn token_from_auth_message(
    ws: &mut WebSocket,
    wait: Duration,
) -> Result<(String, Option<Bytes>), CloseReason> {
    const MISSING: CloseReason = CloseReason::Unauthorized("send ?token= or an auth token message first");
    let first = tokio::time::timeout(wait, ws.recv()).await.map_err(|_| MISSING)?;
    let Some(Ok(WsMessage::Binary(frame))) = first else { return Err(MISSING) };
    match decode_frame(&frame).next() {
        Some(Ok((Message::Auth(AuthMessage::Token { token }), range))) => {
            let rest = (range.end < frame.len()).then(|| frame.slice(range.end..));
            Ok((token.to_owned(), rest))
        }
        _ => Err(MISSING),
    }
}
