//! Access tokens: short-lived JWTs (HS256 only: the algorithm is pinned, never read from the
//! token) carrying the user id, name and site role. A token is good only inside its time range:
//! `exp` in the past, `nbf` in the future or `iat` in the future (each beyond a few seconds of
//! clock skew) is refused. Whether its subject is still an active account is checked by
//! [`super::Accounts`], not here: a signature cannot say that.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use storage::model::{User, UserRole};

use crate::clock::unix_secs;

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`: nodes behind one load balancer
/// agree to well within this, and a token is never more than this early or late.
pub const LEEWAY_SECS: u64 = 5;
const ACCESS: &str = "access";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub username: String,
    pub role: UserRole,
    /// Issued at. Required (a token without it does not deserialise): every token we issue has
    /// one, so requiring it refuses nothing of ours, and without it "issued in the future" could
    /// not be checked, nor could a later "every token issued before T is void" be added.
    pub iat: u64,
    pub exp: u64,
    /// Not before. We issue none; a token that has one is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Always `access`: a token minted for another purpose with the same key is refused.
    pub typ: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future: a clock is wrong, or the token was minted to be used later.
    #[error("token not valid yet")]
    NotYetValid,
    #[error("invalid token")]
    Invalid,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl AccessTokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        super::jwt_crypto::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // `iat` is not a spec claim jsonwebtoken can require: [`Claims`] requires it instead.
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user`, valid from now for the configured lifetime.
    pub fn issue(&self, user: &User) -> String {
        let now = unix_secs();
        self.sign(&Claims {
            sub: user.id.clone(),
            username: user.username.clone(),
            role: user.role,
            iat: now,
            exp: now + self.ttl.as_secs(),
            nbf: None,
            typ: ACCESS.into(),
        })
    }

    /// Sign arbitrary claims (tests mint expired tokens with it).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HMAC signing of serialisable claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.typ != ACCESS => Err(TokenError::Invalid),
            // jsonwebtoken has no `iat` check; a token from the future is as suspect as an early one.
            Ok(data) if data.claims.iat > unix_secs() + LEEWAY_SECS => Err(TokenError::NotYetValid),
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: storage::model::new_id(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            password_hash: String::new(),
            first_name: None,
            last_name: None,
            role: UserRole::User,
            preferences: Default::default(),
            is_active: true,
            email_verified: false,
            last_login_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let tokens = AccessTokens::new(&[7; 32], Duration::from_secs(900));
        let user = user();
        let claims = tokens.verify(&tokens.issue(&user)).unwrap();
        assert_eq!(claims.sub, user.id);
        assert_eq!(claims.exp - claims.iat, 900);

        let other = AccessTokens::new(&[8; 32], Duration::from_secs(900));
        assert_eq!(other.verify(&tokens.issue(&user)), Err(TokenError::Invalid), "another key");

        let now = unix_secs();
        let expired = Claims { iat: now - 1000, exp: now - 100, ..claims.clone() };
        assert_eq!(tokens.verify(&tokens.sign(&expired)), Err(TokenError::Expired));

        let refresh_typed = Claims { typ: "refresh".into(), ..claims.clone() };
        assert_eq!(tokens.verify(&tokens.sign(&refresh_typed)), Err(TokenError::Invalid));
    }

    #[test]
    fn nbf_and_iat_in_the_future_are_refused_beyond_the_leeway() {
        let tokens = AccessTokens::new(&[7; 32], Duration::from_secs(900));
        let claims = tokens.verify(&tokens.issue(&user())).unwrap();
        let now = unix_secs();
        let within = LEEWAY_SECS - 2;
        let cases = [
            (Claims { nbf: Some(now + 60), ..claims.clone() }, Err(TokenError::NotYetValid)),
            (Claims { iat: now + 3600, exp: now + 4500, ..claims.clone() }, Err(TokenError::NotYetValid)),
            (Claims { nbf: Some(now + within), ..claims.clone() }, Ok(())),
            (Claims { iat: now + within, ..claims.clone() }, Ok(())),
            (Claims { nbf: Some(now - 60), ..claims.clone() }, Ok(())),
        ];
        for (claims, expected) in cases {
            let verified = tokens.verify(&tokens.sign(&claims)).map(|_| ());
            assert_eq!(verified, expected, "nbf {:?}, iat {} (now {now})", claims.nbf, claims.iat);
        }
        // A token without `iat` is not one of ours.
        let mut raw = serde_json::to_value(&claims).unwrap();
        raw.as_object_mut().unwrap().remove("iat");
        let no_iat =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &raw, &EncodingKey::from_secret(&[7; 32]))
                .unwrap();
        assert_eq!(tokens.verify(&no_iat), Err(TokenError::Invalid));
    }

    #[test]
    fn algorithm_is_pinned() {
        let tokens = AccessTokens::new(&[7; 32], Duration::from_secs(900));
        let claims = tokens.verify(&tokens.issue(&user())).unwrap();
        // Same key, another HMAC: still refused, the algorithm is not taken from the header.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(tokens.verify(&hs512), Err(TokenError::Invalid));
        // "alg": "none" with no signature.
        let mut parts = tokens.issue(&user()).split('.').map(str::to_owned).collect::<Vec<_>>();
        parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0".into();
        parts[2].clear();
        assert_eq!(tokens.verify(&parts.join(".")), Err(TokenError::Invalid));
    }
}
