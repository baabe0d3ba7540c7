//! Business rules and transactions, one module per area. Functions here take the `Viewer` and
//! decide permissions themselves; no GraphQL types in this layer.

pub mod accounts;
pub mod admin;
pub mod appointments;
pub mod audit;
pub mod availability;
pub mod circles;
pub mod courses;
pub mod domains;
pub mod identities;
pub mod learning;
pub mod mentors;
pub mod messages;
pub mod notify;
pub mod pagination;
pub mod polls;
pub mod posts;
pub mod reconcile;
pub mod reviews;
pub mod seed;
pub mod uploads;
pub mod values;
pub mod views;
pub mod write;

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use entity::enums::{UserRole, UserStatus};
use entity::users;
use sea_orm::TransactionTrait;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Iterable, ModelTrait, PrimaryKeyToColumn, QueryFilter,
};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows of `E` by primary key, in one statement.
pub async fn rows_by_id<E: EntityTrait>(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, E::Model>, DbErr> {
    let Some(pk) = E::PrimaryKey::iter().next().map(|pk| pk.into_column()) else { return Ok(HashMap::new()) };
    let rows = E::find().filter(pk.is_in(ids.iter().copied())).all(db).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.get(pk) {
            sea_orm::Value::Uuid(Some(id)) => Some((*id, row)),
            _ => None,
        })
        .collect())
}

/// The signed-in user, loaded fresh: a token issued before a ban does not let a banned user act.
pub async fn active_user(db: &(impl ConnectionTrait + TransactionTrait), viewer: &Viewer) -> AppResult<users::Model> {
    let id = viewer.require()?;
    let user = accounts::find_user(db, id).await?.ok_or_else(AppError::unauthenticated)?;
    match user.status {
        UserStatus::Active => Ok(user),
        UserStatus::Banned => Err(AppError::forbidden("this account is banned")),
        UserStatus::Inactive => Err(AppError::forbidden("this account is inactive")),
    }
}

/// An active platform admin, checked against the database (not only the token's claim).
pub async fn admin(db: &(impl ConnectionTrait + TransactionTrait), viewer: &Viewer) -> AppResult<users::Model> {
    viewer.require()?;
    let user = active_user(db, viewer).await?;
    if user.role != UserRole::Admin {
        return Err(AppError::forbidden("administrators only"));
    }
    Ok(user)
}

/// Whether the viewer is a platform admin according to the token (for read-side visibility only).
pub fn is_admin(viewer: &Viewer) -> bool {
    matches!(viewer, Viewer::User { role: UserRole::Admin, .. })
}
