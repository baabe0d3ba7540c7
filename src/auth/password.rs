//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane).
//!
//! Hashing is CPU-bound, so it runs on the blocking pool and never stalls the async workers.

use crate::error::{AppError, AppResult};
use anyhow::anyhow;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// A password that met the policy (8..128 characters).
pub struct Password(String);

impl Password {
    pub fn parse(raw: String, field: &str) -> AppResult<Self> {
        let chars = raw.chars().count();
        if chars < MIN_LEN {
            return Err(AppError::bad_input(field, format!("password must be at least {MIN_LEN} characters")));
        }
        if chars > MAX_LEN {
            return Err(AppError::bad_input(field, format!("password must be at most {MAX_LEN} characters")));
        }
        if raw.trim().is_empty() {
            return Err(AppError::bad_input(field, "password must not be blank"));
        }
        Ok(Self(raw))
    }
}

pub async fn hash(password: Password) -> AppResult<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password.0))
        .await
        .map_err(|error| AppError::Internal(anyhow!(error)))?
}

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::Internal(anyhow!("argon2 hash: {error}")))
}

/// Checks `password` against `stored`; with no stored hash (unknown user) it checks a dummy hash so
/// both failures take the same time and the response does not reveal which emails exist.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored,
            None => dummy_hash()?.to_string(),
        };
        let parsed = PasswordHash::new(&stored).map_err(|error| AppError::Internal(anyhow!("stored hash: {error}")))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(|error| AppError::Internal(anyhow!(error)))?
}

fn dummy_hash() -> AppResult<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_blocking("not-a-real-password-only-for-timing")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds() {
        assert!(Password::parse("short".into(), "p").is_err());
        assert!(Password::parse("x".repeat(129), "p").is_err());
        assert!(Password::parse("        ".into(), "p").is_err());
        assert!(Password::parse("long enough".into(), "p").is_ok());
    }

    #[tokio::test]
    async fn hash_and_verify() -> AppResult<()> {
        let hashed = hash(Password::parse("correct horse".into(), "p")?).await?;
        assert!(hashed.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(hashed.clone())).await?);
        assert!(!verify("wrong horse".into(), Some(hashed)).await?);
        assert!(!verify("correct horse".into(), None).await?);
        Ok(())
    }
}
