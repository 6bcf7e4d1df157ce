//! Password hashes: argon2id for everything new; bcrypt hashes (as seeded by mongo-init.js or
//! imported from the Node.js design) are accepted and upgraded to argon2id at the next login.
//!
//! Hashing is deliberately slow (tens of ms), so callers run it on the blocking pool.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but the hash is an old scheme: store a fresh [`hash`] of this password.
    YesUpgrade,
}

pub fn hash(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

pub fn verify(password: &str, stored: &str) -> Verified {
    if is_bcrypt(stored) {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verified::YesUpgrade,
            _ => Verified::No,
        };
    }
    match Argon2::default().verify_password(password.as_bytes(), stored) {
        Ok(()) => Verified::Yes,
        Err(_) => Verified::No,
    }
}

/// Spend about as long as a real check, so a login for an unknown account takes as long as one
/// with a wrong password (no user enumeration by timing).
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a real password"));
    let _ = verify(password, dummy);
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert_eq!(verify("correct horse", &stored), Verified::Yes);
        assert_eq!(verify("wrong horse", &stored), Verified::No);
    }

    #[test]
    fn bcrypt_accepted_and_flagged_for_upgrade() {
        let stored = bcrypt::hash("password", 4).unwrap();
        assert_eq!(verify("password", &stored), Verified::YesUpgrade);
        assert_eq!(verify("passw0rd", &stored), Verified::No);
    }

    #[test]
    fn garbage_hash_never_verifies() {
        assert_eq!(verify("anything", ""), Verified::No);
        assert_eq!(verify("anything", "$2b$10$short"), Verified::No);
    }
}
