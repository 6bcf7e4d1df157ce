//! Refresh tokens: opaque random strings, 7 days, kept in the cache (under their SHA-256, so a
//! cache dump holds no usable token) and rotated on every use.
//!
//! Every token belongs to a *family*, started at login. Refreshing marks the token used and issues
//! its successor in the same family. Presenting a token that was already used means two parties
//! hold it — the user and a thief — so the whole family is revoked and both must sign in again
//! (OAuth 2.0 Security BCP, refresh token rotation). Logout revokes the family too.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError};

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, or its family was revoked.
    #[error("refresh token is invalid or expired")]
    Invalid,
    /// Already rotated: the family has now been revoked.
    #[error("refresh token was already used; every session of this sign-in was revoked")]
    Reused,
    #[error(transparent)]
    Cache(#[from] CacheError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    user: String,
    family: String,
    used: bool,
}

pub struct RefreshTokens {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

/// A rotated token and whose it is.
#[derive(Debug)]
pub struct Rotated {
    pub user_id: String,
    pub token: String,
}

impl RefreshTokens {
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Start a family for a fresh sign-in and return its first token.
    pub async fn issue(&self, user_id: &str) -> Result<String, RefreshError> {
        let family = random_hex();
        self.cache.set(&family_key(&family), user_id.as_bytes(), self.ttl).await?;
        self.issue_in(user_id, &family).await
    }

    /// Trade `token` for its successor.
    pub async fn rotate(&self, token: &str) -> Result<Rotated, RefreshError> {
        let key = token_key(token);
        let Some(mut record) = self.read(&key).await? else {
            return Err(RefreshError::Invalid);
        };
        if record.used {
            return self.reject_reuse(&record).await;
        }
        record.used = true;
        let marked = serde_json::to_vec(&record).expect("record serialises");
        // The swap is atomic: of two racing refreshes exactly one sees the unused token.
        let previous = self.cache.swap(&key, &marked).await?;
        let Some(previous) = previous.and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok()) else {
            return Err(RefreshError::Invalid);
        };
        if previous.used {
            return self.reject_reuse(&previous).await;
        }
        // A revoked family's tokens may outlive it in the cache: the family key is the authority.
        if self.cache.get(&family_key(&record.family)).await?.is_none() {
            return Err(RefreshError::Invalid);
        }
        self.cache.set(&family_key(&record.family), record.user.as_bytes(), self.ttl).await?;
        let token = self.issue_in(&record.user, &record.family).await?;
        Ok(Rotated { user_id: record.user, token })
    }

    /// Revoke the family `token` belongs to (logout). Unknown tokens are ignored: logging out
    /// twice is not an error.
    pub async fn revoke(&self, token: &str) -> Result<(), RefreshError> {
        let key = token_key(token);
        if let Some(record) = self.read(&key).await? {
            self.cache.delete(&family_key(&record.family)).await?;
        }
        self.cache.delete(&key).await?;
        Ok(())
    }

    async fn issue_in(&self, user_id: &str, family: &str) -> Result<String, RefreshError> {
        let token = random_hex();
        let record = Record { user: user_id.to_owned(), family: family.to_owned(), used: false };
        let bytes = serde_json::to_vec(&record).expect("record serialises");
        self.cache.set(&token_key(&token), &bytes, self.ttl).await?;
        Ok(token)
    }

    async fn read(&self, key: &str) -> Result<Option<Record>, RefreshError> {
        Ok(self.cache.get(key).await?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    async fn reject_reuse<T>(&self, record: &Record) -> Result<T, RefreshError> {
        tracing::warn!(user = record.user, "refresh token reused; revoking its family");
        self.cache.delete(&family_key(&record.family)).await?;
        Err(RefreshError::Reused)
    }
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The keys this module writes: the embedded cache journals them to disk ([`JournaledCache`]), so
/// a restarted server still honours the sign-ins it issued.
///
/// [`JournaledCache`]: crate::cache::JournaledCache
pub const DURABLE_PREFIXES: &[&str] = &["refresh:", "refresh-family:"];

fn token_key(token: &str) -> String {
    format!("refresh:{}", hex(&Sha256::digest(token.as_bytes())))
}

fn family_key(family: &str) -> String {
    format!("refresh-family:{family}")
}
