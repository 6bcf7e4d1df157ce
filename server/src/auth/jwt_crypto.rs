//! The one crypto backend of our JWTs: HMAC (RustCrypto `hmac` + `sha2`), installed as
//! jsonwebtoken's process-wide `CryptoProvider`.
//!
//! jsonwebtoken's own `rust_crypto` feature would also compile RSA, ECDSA and EdDSA, and with
//! them the `rsa` crate and its open advisory (RUSTSEC-2023-0071, a timing side channel). We
//! accept HS256 only (`tokens.rs` pins it), so no public-key algorithm needs to exist in the
//! binary: this provider signs and verifies the HMAC family and refuses everything else.

use std::sync::Once;

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    // JWKs (public-key material) are never used here; these would panic if they were.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Install the provider once per process (before the first token is signed or verified).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Only fails if another provider was installed first, which nothing in this process does.
        let _ = PROVIDER.install_default();
    });
}

/// One HMAC key with the algorithm it was made for.
#[derive(Clone)]
enum Key {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

struct HmacKey {
    algorithm: Algorithm,
    key: Key,
}

impl HmacKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> Result<Self> {
        let invalid = |_| ErrorKind::InvalidKeyFormat;
        let key = match algorithm {
            Algorithm::HS256 => Key::Hs256(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS384 => Key::Hs384(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS512 => Key::Hs512(Hmac::new_from_slice(secret).map_err(invalid)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        Ok(Self { algorithm, key })
    }

    fn tag(&self, message: &[u8]) -> Vec<u8> {
        match self.key.clone() {
            Key::Hs256(mut mac) => {
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Key::Hs384(mut mac) => {
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Key::Hs512(mut mac) => {
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(HmacKey::new(*algorithm, key.as_bytes())?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(HmacKey::new(*algorithm, key.try_get_as_bytes()?)?))
}

impl Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.tag(message))
    }
}

impl Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        // `verify_slice` compares in constant time.
        let ok = match self.key.clone() {
            Key::Hs256(mut mac) => {
                mac.update(message);
                mac.verify_slice(tag).is_ok()
            }
            Key::Hs384(mut mac) => {
                mac.update(message);
                mac.verify_slice(tag).is_ok()
            }
            Key::Hs512(mut mac) => {
                mac.update(message);
                mac.verify_slice(tag).is_ok()
            }
        };
        if ok { Ok(()) } else { Err(signature::Error::new()) }
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_matches_a_known_token_and_public_key_algorithms_are_refused() {
        install();
        // RFC 7515 appendix A.1 is HS256 over a JWK key; this is the jwt.io example instead:
        // header {"alg":"HS256","typ":"JWT"}, secret "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
            SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let (message, tag) = token.rsplit_once('.').unwrap();
        let key = EncodingKey::from_secret(b"your-256-bit-secret");
        assert_eq!(jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap(), tag);
        let key = DecodingKey::from_secret(b"your-256-bit-secret");
        assert!(jsonwebtoken::crypto::verify(tag, message.as_bytes(), &key, Algorithm::HS256).unwrap());
        assert!(!jsonwebtoken::crypto::verify(tag, b"tampered", &key, Algorithm::HS256).unwrap());
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
            assert!(jsonwebtoken::crypto::verify(tag, message.as_bytes(), &key, algorithm).is_err());
        }
    }
}
