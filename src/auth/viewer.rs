//! The `Viewer`: who is asking. Built from the `Authorization` header (HTTP) or the
//! `connection_init` payload (WebSocket). A malformed or expired token is an error the moment an
//! operation asks who the viewer is; it never silently degrades to anonymous.

use super::tokens::{Claims, TokenKeys};
use crate::error::{AppError, AppResult};
use entity::enums::UserRole;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum Viewer {
    Anonymous,
    User {
        id: Uuid,
        role: UserRole,
        /// The session (refresh-token family) the token was issued for, when it names one.
        session: Option<Uuid>,
    },
    /// A credential was sent but did not verify; carries the reason.
    Invalid(String),
}

impl Viewer {
    /// From an `Authorization` header value (`Bearer <token>`), if any.
    pub fn from_authorization(header: Option<&str>, keys: &TokenKeys) -> Self {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Self::Anonymous;
        };
        let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
            return Self::Invalid("Authorization header must be 'Bearer <token>'".into());
        };
        match keys.verify_access(token.trim()) {
            Ok(Claims { sub, role, sid, .. }) => Self::User { id: sub, role, session: sid },
            Err(AppError::Unauthenticated(reason)) => Self::Invalid(reason),
            Err(_) => Self::Invalid("invalid access token".into()),
        }
    }

    /// The signed-in user's id, or UNAUTHENTICATED.
    pub fn require(&self) -> AppResult<Uuid> {
        match self {
            Self::User { id, .. } => Ok(*id),
            Self::Anonymous => Err(AppError::unauthenticated()),
            Self::Invalid(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }

    /// The user's id if signed in, `None` if anonymous; an invalid token is still an error.
    pub fn optional(&self) -> AppResult<Option<Uuid>> {
        match self {
            Self::User { id, .. } => Ok(Some(*id)),
            Self::Anonymous => Ok(None),
            Self::Invalid(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }

    /// Platform admins only (the role is re-checked against the database by domain code that
    /// changes sensitive state).
    pub fn require_admin(&self) -> AppResult<Uuid> {
        let id = self.require()?;
        match self {
            Self::User { role: UserRole::Admin, .. } => Ok(id),
            _ => Err(AppError::forbidden("administrators only")),
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User { id, .. } => Some(*id),
            _ => None,
        }
    }
}
