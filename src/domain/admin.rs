//! What an admin console reads: users, identities (the review queue) and the audit log, each a
//! filtered keyset page. Every function checks the admin in the database first.

use super::pagination::{keyset, Direction, Page, PageRequest, SortKey};
use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::enums::{IdentityStatus, IdentityType, UserRole, UserStatus, VerificationStatus};
use entity::{audit_logs, user_identities, users};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Part of the email or phone (case-insensitive).
    pub query: Option<String>,
    pub status: Option<UserStatus>,
    pub role: Option<UserRole>,
}

/// Users, newest first.
pub async fn users(
    db: &DatabaseConnection,
    viewer: &Viewer,
    filter: UserFilter,
    page: &PageRequest,
) -> AppResult<(Page<users::Model>, Select<users::Entity>)> {
    super::admin(db, viewer).await?;
    let mut select = users::Entity::find();
    if let Some(query) = filter.query.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty()) {
        if query.chars().count() > 100 {
            return Err(AppError::bad_input("filter.query", "at most 100 characters"));
        }
        select = select.filter(
            Condition::any().add(users::Column::Email.contains(&query)).add(users::Column::Phone.contains(&query)),
        );
    }
    if let Some(status) = filter.status {
        select = select.filter(users::Column::Status.eq(status.as_str()));
    }
    if let Some(role) = filter.role {
        select = select.filter(users::Column::Role.eq(role.as_str()));
    }
    let counted = select.clone();
    let rows = keyset(db, select, &[(users::Column::CreatedAt, Direction::Desc)], users::Column::Id, page, |u| {
        (vec![SortKey::Time(u.created_at)], u.id)
    })
    .await?;
    Ok((rows, counted))
}

/// One user, for admins.
pub async fn user(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<Option<users::Model>> {
    super::admin(db, viewer).await?;
    Ok(users::Entity::find_by_id(id).one(db).await?)
}

#[derive(Clone, Debug, Default)]
pub struct IdentityFilter {
    pub status: Option<IdentityStatus>,
    pub verification_status: Option<VerificationStatus>,
    pub identity_type: Option<IdentityType>,
    pub domain: Option<String>,
}

/// Identities, oldest first (the review queue is first come, first served).
pub async fn identities(
    db: &DatabaseConnection,
    viewer: &Viewer,
    filter: IdentityFilter,
    page: &PageRequest,
) -> AppResult<(Page<user_identities::Model>, Select<user_identities::Entity>)> {
    super::admin(db, viewer).await?;
    let mut select = user_identities::Entity::find();
    if let Some(status) = filter.status {
        select = select.filter(user_identities::Column::Status.eq(status.as_str()));
    }
    if let Some(verification) = filter.verification_status {
        select = select.filter(user_identities::Column::VerificationStatus.eq(verification.as_str()));
    }
    if let Some(kind) = filter.identity_type {
        select = select.filter(user_identities::Column::IdentityType.eq(kind.as_str()));
    }
    if let Some(domain) = filter.domain.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()) {
        select = select.filter(user_identities::Column::Domain.eq(domain));
    }
    let counted = select.clone();
    let rows = keyset(
        db,
        select,
        &[(user_identities::Column::CreatedAt, Direction::Asc)],
        user_identities::Column::Id,
        page,
        |i| (vec![SortKey::Time(i.created_at)], i.id),
    )
    .await?;
    Ok((rows, counted))
}

/// One identity, for admins.
pub async fn identity(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<Option<user_identities::Model>> {
    super::admin(db, viewer).await?;
    Ok(user_identities::Entity::find_by_id(id).one(db).await?)
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Who made the change.
    pub actor: Option<Uuid>,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub action: Option<String>,
    /// The table (`users`, `user_identities`, `posts`, …).
    pub resource_type: Option<String>,
    /// The row's id.
    pub resource: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The audit log, newest first. Read only: the API never updates or deletes an entry.
pub async fn audit_logs(
    db: &DatabaseConnection,
    viewer: &Viewer,
    filter: AuditFilter,
    page: &PageRequest,
) -> AppResult<(Page<audit_logs::Model>, Select<audit_logs::Entity>)> {
    super::admin(db, viewer).await?;
    let mut select = audit_logs::Entity::find();
    if let Some(actor) = filter.actor {
        select = select.filter(audit_logs::Column::UserId.eq(actor));
    }
    if let Some(action) = filter.action.map(|a| a.trim().to_uppercase()) {
        if !["INSERT", "UPDATE", "DELETE"].contains(&action.as_str()) {
            return Err(AppError::bad_input("filter.action", "is INSERT, UPDATE or DELETE"));
        }
        select = select.filter(audit_logs::Column::Operation.eq(action));
    }
    if let Some(table) = filter.resource_type.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        select = select.filter(audit_logs::Column::TableName.eq(table));
    }
    if let Some(resource) = filter.resource {
        select = select.filter(audit_logs::Column::RecordId.eq(resource));
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since > until {
            return Err(AppError::bad_input("filter.until", "is before filter.since"));
        }
    }
    if let Some(since) = filter.since {
        select = select.filter(audit_logs::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        select = select.filter(audit_logs::Column::CreatedAt.lte(until));
    }
    let counted = select.clone();
    let rows =
        keyset(db, select, &[(audit_logs::Column::CreatedAt, Direction::Desc)], audit_logs::Column::Id, page, |a| {
            (vec![SortKey::Time(a.created_at)], a.id)
        })
        .await?;
    Ok((rows, counted))
}
