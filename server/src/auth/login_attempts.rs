//! Failed-login budgets, kept apart from every other limit: at most `per_account` failures per
//! account and `per_ip` failures per client address in each window (fixed windows in the cache,
//! shared by every node). Over either, logins for that account (or from that address) get 429
//! until the window ends, even with the right password, so a guesser learns nothing more.
//!
//! Why these two and not one budget of "auth requests per IP" (what we had): a real user's
//! correct login must not be spent by their own typos or by their refreshes, and a classroom
//! behind one NAT must not share ten attempts. Per account stops guessing one password from
//! many addresses; per address stops spraying one guess over many accounts; successes cost
//! neither, and a success clears its account's failures (as Keycloak does).
//!
//! An attempt is counted when it begins, before the password is checked, and given back if it
//! succeeds: counting only after a failure would let a burst of parallel guesses all pass the
//! check before any of them is counted.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError};

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failed logins per account per window; 0 = unlimited.
    pub per_account: u64,
    /// Failed logins per client address per window; 0 = unlimited.
    pub per_ip: u64,
    pub window: Duration,
}

/// Too many failures: no password is checked until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins for this {scope}; try again in {retry_after:?}")]
pub struct Locked {
    pub scope: LockScope,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    Account,
    Address,
}

impl std::fmt::Display for LockScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Account => "account",
            Self::Address => "address",
        })
    }
}

pub struct LoginAttempts {
    cache: Arc<dyn Cache>,
    limits: LoginLimits,
}

/// A login attempt that was counted against its budgets. Dropping it leaves it counted (a
/// failure); [`Attempt::succeeded`] gives it back.
#[must_use = "a successful login must call `succeeded`"]
pub struct Attempt<'a> {
    attempts: &'a LoginAttempts,
    account_key: Option<String>,
    ip_key: Option<String>,
}

impl LoginAttempts {
    pub fn new(cache: Arc<dyn Cache>, limits: LoginLimits) -> Self {
        Self { cache, limits }
    }

    /// Count an attempt to sign in as `account` from `client` (an address bucket, see
    /// [`crate::http::proxy::bucket`]) before its password is checked. `account` is the account's
    /// id when it exists, else the login as typed: every spelling of one account shares its budget,
    /// and unknown names are limited the same way (a 429 says nothing about whether they exist).
    ///
    /// A cache outage lets the attempt through uncounted: the login must not go down with the cache.
    pub async fn begin(&self, account: &str, client: &str) -> Result<Attempt<'_>, Locked> {
        let mut attempt = Attempt { attempts: self, account_key: None, ip_key: None };
        if self.limits.per_ip > 0 {
            let key = format!("login-failures:ip:{client}");
            if self.count(&key, self.limits.per_ip, LockScope::Address).await? {
                attempt.ip_key = Some(key);
            }
        }
        if self.limits.per_account > 0 {
            let key = format!("login-failures:account:{}", account_digest(account));
            match self.count(&key, self.limits.per_account, LockScope::Account).await {
                Ok(true) => attempt.account_key = Some(key),
                Ok(false) => {}
                Err(locked) => {
                    // The locked account stops this guess already; it must not also drain the
                    // budget of its address, which a classroom shares.
                    attempt.give_back_ip().await;
                    return Err(locked);
                }
            }
        }
        Ok(attempt)
    }

    /// One hit on `key`: `Ok(true)` if counted and within `limit`, `Ok(false)` if the cache could
    /// not count it.
    async fn count(&self, key: &str, limit: u64, scope: LockScope) -> Result<bool, Locked> {
        match self.cache.hit(key, self.limits.window).await {
            Ok(hit) if hit.count > limit => Err(Locked { scope, retry_after: hit.reset_in }),
            Ok(_) => Ok(true),
            Err(error) => {
                warn_uncounted(&error);
                Ok(false)
            }
        }
    }
}

impl Attempt<'_> {
    /// The password was right: this attempt spends no failure budget, and the account's earlier
    /// failures are forgotten.
    pub async fn succeeded(mut self) {
        self.give_back_ip().await;
        if let Some(key) = self.account_key.take()
            && let Err(error) = self.attempts.cache.delete(&key).await
        {
            warn_uncounted(&error);
        }
    }

    async fn give_back_ip(&mut self) {
        if let Some(key) = self.ip_key.take()
            && let Err(error) = self.attempts.cache.unhit(&key).await
        {
            warn_uncounted(&error);
        }
    }
}

fn warn_uncounted(error: &CacheError) {
    tracing::warn!(%error, "failed-login counter unavailable; login allowed");
}

/// Logins are keyed by digest: the key has a fixed length whatever was typed, and the cache holds
/// no email addresses.
fn account_digest(account: &str) -> String {
    let normalised = account.trim().to_lowercase();
    Sha256::digest(normalised.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
