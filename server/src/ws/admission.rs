//! Who may open a room, decided once the WebSocket is open (so a refusal can carry a close code
//! and reason, which an HTTP error cannot for browser clients): the token from `?token=` or, if
//! the URL has none, from an auth message the client sends first; then the session and the
//! user's role in it.
//!
//! Order of refusals: no or bad token → 4401, its account gone → 4401, disabled → 4403 (read
//! from the store: a socket may edit for hours), unknown session → 4404, no role in it → 4403.

use std::sync::Arc;

use protocol::{AuthMessage, Message, decode_frame};

use super::Gateway;
use super::close::CloseReason;
use crate::access::Registration;
use crate::access::{Grant, SessionRole};
use crate::auth::{AccountError, TokenError};
use crate::room::ConnId;
use crate::socket::Socket;
use crate::socket::frames::Received;
use crate::socket::inbound::{Decoder, Inbound};

/// The close reason of a token whose account does not exist (any more).
pub const ACCOUNT_GONE: &str = "this account does not exist";

/// A connection let in, and what it may do.
pub struct Admission {
    pub grant: Arc<Grant>,
    /// Keeps the connection findable by permission changes; `None` for anonymous free rooms.
    pub registration: Option<Registration>,
    /// The signed-in user, for the connection's log events; `None` when anonymous.
    pub user: Option<String>,
    /// Their username as the store has it now (not as the token had it), for chat.
    pub username: Option<String>,
    /// Who is signed in, as a number (0: nobody): a user's new connection may take over the
    /// awareness ids its earlier one held.
    pub principal: u64,
}

/// A stable number for a user id within this process (0 is kept for nobody).
fn principal(user_id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(user_id).max(1)
}

/// What the client has sent that admission has not consumed.
pub struct Early<'a> {
    pub socket: &'a Socket,
    pub decoder: &'a mut Decoder,
    /// Messages read and not yet handled: whatever came with the upgrade request, and, without
    /// `?token=`, what followed the auth token. The connection handles them once admitted.
    pub received: &'a mut Received,
}

pub async fn admit(
    early: Early<'_>,
    gateway: &Gateway,
    room: &str,
    conn: ConnId,
    url_token: Option<String>,
) -> Result<Admission, CloseReason> {
    let allow_anonymous = gateway.settings.allow_anonymous;
    let token = match url_token {
        Some(token) => Some(token),
        None if allow_anonymous => None,
        None => Some(token_from_auth_message(early, &gateway.settings).await?),
    };
    let claims = token
        .map(|token| {
            gateway.auth.tokens.verify(&token).map_err(|e| match e {
                TokenError::Expired => CloseReason::Unauthorized("token expired"),
                TokenError::NotYetValid => CloseReason::Unauthorized("token not valid yet"),
                TokenError::Invalid => CloseReason::Unauthorized("invalid token"),
            })
        })
        .transpose()?;
    // A token speaks for its account only while the account may act; its site role is the
    // account's now, not the token's.
    let claims = match claims {
        Some(mut claims) => {
            claims.role = match gateway.auth.accounts.current(&claims.sub).await {
                Ok(user) => {
                    claims.username = user.username;
                    user.role
                }
                Err(AccountError::Unknown) => return Err(CloseReason::Unauthorized(ACCOUNT_GONE)),
                Err(AccountError::Disabled) => return Err(CloseReason::AccountDisabled),
                Err(AccountError::Store(error)) => {
                    tracing::error!(%error, "could not read the account");
                    return Err(CloseReason::Unavailable);
                }
            };
            Some(claims)
        }
        None => None,
    };
    let principal = claims.as_ref().map_or(0, |claims| principal(&claims.sub));
    let seen_changes = gateway.sessions.live.changes();
    let Some(session) = read_session(gateway, room).await? else {
        // Not a session: a free room, open to anyone only where the operator allowed it.
        return if allow_anonymous {
            let grant = Arc::new(Grant::new(true));
            let (user, username) = claims.map(|claims| (claims.sub, claims.username)).unzip();
            Ok(Admission { grant, registration: None, principal, user, username })
        } else {
            Err(CloseReason::NotFound)
        };
    };
    let claims = claims.ok_or(CloseReason::Unauthorized("this session needs a token"))?;
    let role = SessionRole::of(&session, &claims.sub, claims.role).ok_or(CloseReason::Forbidden)?;
    let grant = Arc::new(Grant::new(role.can_write(&session)));
    let registration =
        gateway.sessions.live.register(&session.id, conn, &claims.sub, claims.role, grant.clone());
    if gateway.sessions.live.changes() != seen_changes {
        // Some session changed while we were reading ours; the change may have missed this
        // registration. Decide again from the session as it is now (the change dropped any
        // cached copy before it counted).
        let session = read_session(gateway, room).await?.ok_or(CloseReason::NotFound)?;
        let role = SessionRole::of(&session, &claims.sub, claims.role).ok_or(CloseReason::Forbidden)?;
        grant.set_writable(role.can_write(&session));
    }
    Ok(Admission {
        grant,
        registration: Some(registration),
        principal,
        user: Some(claims.sub),
        username: Some(claims.username),
    })
}

async fn read_session(gateway: &Gateway, room: &str) -> Result<Option<storage::model::Session>, CloseReason> {
    gateway.sessions.get(room).await.map_err(|error| {
        tracing::error!(room, %error, "could not read the session");
        CloseReason::Unavailable
    })
}

/// The first message of a connection without `?token=` must be an auth token message. Returns the
/// token; what followed it in the same frame goes back to the front of `early.received`.
async fn token_from_auth_message(
    early: Early<'_>,
    settings: &super::ConnectionSettings,
) -> Result<String, CloseReason> {
    const MISSING: CloseReason = CloseReason::Unauthorized("send ?token= or an auth token message first");
    let Early { socket, decoder, received } = early;
    if received.messages.is_empty() && received.end.is_none() {
        let read = async {
            // The client sends its token once it has the 101, which is held until now.
            socket.flush().await.map_err(|_| MISSING)?;
            Ok(socket.read_frames(decoder, settings.max_message_bytes).await)
        };
        *received = tokio::time::timeout(settings.auth_timeout, read).await.map_err(|_| MISSING)??;
    }
    if received.messages.is_empty() {
        return Err(MISSING);
    }
    let Inbound::Binary(frame) = received.messages.remove(0) else { return Err(MISSING) };
    match decode_frame(&frame).next() {
        Some(Ok((Message::Auth(AuthMessage::Token { token }), range))) => {
            if range.end < frame.len() {
                received.messages.insert(0, Inbound::Binary(frame.slice(range.end..)));
            }
            Ok(token.to_owned())
        }
        _ => Err(MISSING),
    }
}
