//! Access tokens (short-lived HS256 JWTs) and refresh tokens (random, opaque, stored as SHA-256).

use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, Utc};
use entity::enums::UserRole;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

const ISSUER: &str = "master-guide";

/// What an access token says about its bearer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: UserRole,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The session (refresh-token family) the token was issued for; a logout ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Signs and checks access tokens; built once from the configured secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &SecretString, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue_access(
        &self,
        user_id: Uuid,
        role: UserRole,
        session: Option<Uuid>,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(self.access_ttl).map_err(|e| AppError::Internal(e.into()))?;
        let claims = Claims {
            sub: user_id,
            role,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.into(),
            sid: session,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| AppError::Internal(error.into()))?;
        Ok((token, expires_at))
    }

    /// Validates signature, issuer and expiry.
    pub fn verify_access(&self, token: &str) -> AppResult<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|error| {
            match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AppError::Unauthenticated("access token expired".into())
                }
                _ => AppError::Unauthenticated("invalid access token".into()),
            }
        })
    }
}

/// A URL-safe random token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// The stored form of a refresh token: hex SHA-256 (the token itself has 256 bits of entropy, so
/// a fast hash is enough and lookups stay indexable).
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str, ttl: u64) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_string()), Duration::from_secs(ttl), Duration::from_secs(60))
    }

    #[test]
    fn round_trip_and_tamper() -> AppResult<()> {
        let keys = keys("0123456789abcdef0123456789abcdef", 60);
        let id = Uuid::new_v4();
        let (token, _) = keys.issue_access(id, UserRole::Admin, None)?;
        let claims = keys.verify_access(&token)?;
        assert_eq!(claims.sub, id);
        assert_eq!(claims.role, UserRole::Admin);

        let other = self::keys("another-secret-another-secret-xx", 60);
        assert!(other.verify_access(&token).is_err());
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(keys.verify_access(&tampered).is_err());
        Ok(())
    }

    #[test]
    fn refresh_hash_is_stable_hex() {
        let token = random_token(32);
        assert_eq!(hash_refresh_token(&token), hash_refresh_token(&token));
        assert_eq!(hash_refresh_token(&token).len(), 64);
        assert_ne!(random_token(32), token);
    }
}
