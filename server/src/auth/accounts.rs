//! Whether the subject of a valid access token may still act: its account must exist and be
//! active. A signature proves only that we issued the token, up to 15 minutes ago; the account may
//! have been deleted or disabled since, and a token naming no account at all (a random id, an empty
//! string) must never own sessions.
//!
//! How fresh the answer is depends on what it guards:
//! - writes (every mutating HTTP route) and WebSocket admission read the store: a disabled account
//!   cannot change anything or open a socket from the moment the store says so;
//! - reads accept a cached "active" mark up to `--account-check-secs` old (one cache read per
//!   request instead of a store read for a tab that polls);
//! - live sockets are re-checked every `--account-check-secs` ([`recheck_live`]): one store read per
//!   distinct signed-in user on this node, and a socket whose account is gone closes with 4401,
//!   disabled with 4403.
//!
//! Only "active" is cached, never "missing" or "disabled", so re-enabling an account works at once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use storage::model::{User, UserRole};
use tokio_util::sync::CancellationToken;

use crate::access::{LiveGrants, Revoked};
use crate::cache::Cache;

/// Store reads in flight at once while re-checking live sockets' accounts.
const RECHECK_CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No account has this id (deleted, or never existed).
    #[error("the account does not exist")]
    Unknown,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] storage::Error),
}

pub struct Accounts {
    store: Arc<dyn storage::Store>,
    cache: Arc<dyn Cache>,
    /// How old a cached "active" mark may be, and how often live sockets are re-checked.
    fresh_for: Duration,
}

impl Accounts {
    pub fn new(store: Arc<dyn storage::Store>, cache: Arc<dyn Cache>, fresh_for: Duration) -> Self {
        Self { store, cache, fresh_for }
    }

    pub fn fresh_for(&self) -> Duration {
        self.fresh_for
    }

    /// The account `user_id` as the store has it now, if it exists and is active. Refreshes the
    /// cached mark either way.
    pub async fn current(&self, user_id: &str) -> Result<User, AccountError> {
        // Not an id: no store or cache read, and no backend ever sees a malformed key.
        if !storage::model::is_id(user_id) {
            return Err(AccountError::Unknown);
        }
        let checked = match self.store.user_by_id(user_id).await? {
            None => Err(AccountError::Unknown),
            Some(user) if !user.is_active => Err(AccountError::Disabled),
            Some(user) => Ok(user),
        };
        let key = cache_key(user_id);
        let cached = match &checked {
            Ok(user) => {
                let role = serde_json::to_vec(&user.role).expect("roles serialise");
                self.cache.set(&key, &role, self.fresh_for).await
            }
            Err(_) => self.cache.delete(&key).await.map(|_| ()),
        };
        if let Err(error) = cached {
            tracing::warn!(%error, "could not cache an account's state");
        }
        checked
    }

    /// The site role of `user_id` if it was active at most `--account-check-secs` ago (from the
    /// cache), else as [`Accounts::current`] finds it. For reads only.
    pub async fn recently_active(&self, user_id: &str) -> Result<UserRole, AccountError> {
        if !storage::model::is_id(user_id) {
            return Err(AccountError::Unknown);
        }
        match self.cache.get(&cache_key(user_id)).await {
            Ok(Some(bytes)) => {
                if let Ok(role) = serde_json::from_slice(&bytes) {
                    return Ok(role);
                }
            }
            Ok(None) => {}
            // The cache only saves time: without it, read the store.
            Err(error) => tracing::warn!(%error, "account cache unavailable; reading the store"),
        }
        self.current(user_id).await.map(|user| user.role)
    }

    /// Check the account of every signed-in socket on this node once, and revoke the grants of
    /// those whose account is gone or disabled. A store error leaves that user's sockets alone
    /// until the next pass.
    pub async fn recheck(&self, live: &LiveGrants) {
        let users = live.users();
        let mut checks = futures_util::stream::iter(users)
            .map(|user| async move {
                let checked = self.current(&user).await;
                (user, checked)
            })
            .buffer_unordered(RECHECK_CONCURRENCY);
        while let Some((user, checked)) = checks.next().await {
            let why = match checked {
                Ok(_) => continue,
                Err(AccountError::Unknown) => Revoked::AccountGone,
                Err(AccountError::Disabled) => Revoked::AccountDisabled,
                Err(AccountError::Store(error)) => {
                    tracing::warn!(user = &*user, %error, "could not re-check an account; its sockets stay open");
                    continue;
                }
            };
            tracing::info!(
                user = &*user,
                ?why,
                "closing the live sockets of an account that can no longer act"
            );
            live.revoke_user(&user, why);
        }
    }
}

/// Re-check the accounts of live sockets every `--account-check-secs` until `stop`.
pub async fn recheck_live(accounts: Arc<Accounts>, live: Arc<LiveGrants>, stop: CancellationToken) {
    let mut every = tokio::time::interval(accounts.fresh_for().max(Duration::from_secs(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => accounts.recheck(&live).await,
        }
    }
}

fn cache_key(user_id: &str) -> String {
    format!("account-active:{user_id}")
}
