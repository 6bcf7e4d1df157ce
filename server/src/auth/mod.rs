//! Who a request or socket speaks for, and what it may do: JWT access tokens, rotating refresh
//! tokens, password hashes, session roles, and the registry that lets a permission change reach
//! live sockets at once.

pub mod access;
pub mod jwt_crypto;
pub mod live;
pub mod passwords;
pub mod refresh;
pub mod secret;
pub mod tokens;

pub use access::{Grant, SessionRole};
pub use live::LiveGrants;
pub use refresh::{RefreshError, RefreshTokens};
pub use tokens::{AccessTokens, Claims, TokenError};

/// The signing keys and refresh-token store every route and socket shares.
pub struct Auth {
    pub tokens: AccessTokens,
    pub refresh: RefreshTokens,
}
