//! Who a request or socket speaks for, and what it may do: JWT access tokens, rotating refresh
//! tokens, password hashes, whether a token's account may still act, failed-login budgets,
//! session roles, and the registry that lets a permission change reach live sockets at once.

pub mod access;
pub mod accounts;
pub mod live;
pub mod login_attempts;
pub mod passwords;
pub mod refresh;
pub mod secret;
pub mod tokens;

pub use access::{Grant, SessionRole};
pub use accounts::{AccountError, Accounts};
pub use live::LiveGrants;
pub use login_attempts::{LoginAttempts, LoginLimits};
pub use refresh::{RefreshError, RefreshTokens};
pub use tokens::{AccessTokens, Claims, TokenError};

/// The signing keys, refresh-token store, account checks and failed-login budgets every route and
/// socket shares.
pub struct Auth {
    pub tokens: AccessTokens,
    pub refresh: RefreshTokens,
    pub accounts: std::sync::Arc<Accounts>,
    pub logins: LoginAttempts,
}
