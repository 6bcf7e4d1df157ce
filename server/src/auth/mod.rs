//! Who a request or socket speaks for: JWT access tokens, rotating refresh tokens, password
//! hashes, whether a token's account may still act, failed-login budgets. What they may do in a
//! session is [`crate::access`].

pub mod accounts;
pub mod jwt_crypto;
pub mod login_attempts;
pub mod passwords;
pub mod refresh;
pub mod secret;
pub mod tokens;

pub use accounts::{AccountError, Accounts};
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
