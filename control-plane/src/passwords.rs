//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane),
//! the password rules, and a constant-work verify for unknown accounts.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use keygate_contracts::FieldError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shortest and longest accepted password, in characters.
pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 256;

static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

/// How many argon2 verifications this process has run (tests use it to prove that an unknown
/// email costs a verification too).
pub fn verification_count() -> u64 {
    VERIFICATIONS.load(Ordering::SeqCst)
}

/// Checks the password rules.
pub fn validate(field: &str, p: &str) -> Result<(), FieldError> {
    let n = p.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(FieldError::new(
            field,
            format!("must be {MIN_LEN}-{MAX_LEN} characters"),
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Verifies `password` against a stored PHC string. A malformed hash verifies as false.
pub fn verify(password: &str, phc: &str) -> bool {
    VERIFICATIONS.fetch_add(1, Ordering::SeqCst);
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the email is unknown so that the
/// answer takes as long as for a known email.
pub fn dummy_hash() -> String {
    hash(keygate_contracts::token::NewToken::generate("dummy").expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a hash"));
        assert!(validate("password", "short").is_err());
        assert!(validate("password", "long enough pass").is_ok());
    }
}
