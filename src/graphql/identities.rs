//! GraphQL view of `user_identities` (the mutations and the profile arrive with the mentors area).

use async_graphql::{Object, ID};
use chrono::{DateTime, Utc};
use entity::enums::{IdentityStatus, IdentityType, VerificationStatus};
use entity::user_identities;

/// A user's identity in one professional domain: a master (teaches) or an apprentice (learns).
pub struct Identity(pub user_identities::Model);

#[Object]
impl Identity {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// MASTER or APPRENTICE.
    async fn identity_type(&self) -> IdentityType {
        self.0.identity_type
    }
    /// The domain code (see `domains`).
    async fn domain(&self) -> &str {
        &self.0.domain
    }
    async fn status(&self) -> IdentityStatus {
        self.0.status
    }
    /// Verification of a master's documents by an administrator.
    async fn verification_status(&self) -> VerificationStatus {
        self.0.verification_status
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
