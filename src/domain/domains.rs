//! Professional domains: the admin-managed list an identity's domain must come from.

use super::values::{optional_text, optional_url, text};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use chrono::Utc;
use entity::domains;
use sea_orm::TransactionTrait;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

pub struct DomainInput {
    pub name: Option<String>,
    pub code: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub sort_order: Option<i32>,
    pub is_active: Option<bool>,
}

/// Active domains in display order.
pub async fn list_active(db: &(impl ConnectionTrait + TransactionTrait)) -> AppResult<Vec<domains::Model>> {
    Ok(domains::Entity::find()
        .filter(domains::Column::IsActive.eq(true))
        .order_by_asc(domains::Column::SortOrder)
        .order_by_asc(domains::Column::Name)
        .all(db)
        .await?)
}

/// Whether `code` names an active domain.
pub async fn is_active_code(db: &(impl ConnectionTrait + TransactionTrait), code: &str) -> AppResult<bool> {
    Ok(domains::Entity::find()
        .filter(domains::Column::Code.eq(code))
        .filter(domains::Column::IsActive.eq(true))
        .one(db)
        .await?
        .is_some())
}

fn parse_code(raw: &str) -> AppResult<String> {
    let code = text("input.code", raw, 1, 50)?.to_lowercase();
    if !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(AppError::bad_input("input.code", "use lowercase letters, digits, - and _"));
    }
    Ok(code)
}

#[tracing::instrument(name = "domains.create", skip_all)]
pub async fn create(db: &DatabaseConnection, viewer: &Viewer, input: DomainInput) -> AppResult<domains::Model> {
    let name = text("input.name", input.name.as_deref().unwrap_or_default(), 1, 100)?;
    let code = parse_code(input.code.as_deref().unwrap_or_default())?;
    let description = optional_text("input.description", input.description, 5000)?;
    let icon = optional_url("input.icon", input.icon, 500)?;
    super::admin(db, viewer).await?;
    write::insert(
        db,
        domains::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name),
            code: Set(code),
            description: Set(description),
            icon: Set(icon),
            sort_order: Set(input.sort_order.unwrap_or(0)),
            is_active: Set(input.is_active.unwrap_or(true)),
            created_at: Set(Utc::now()),
        },
    )
    .await
    .map_err(AppError::on_unique("input", "a domain with this name or code already exists"))
}

#[tracing::instrument(name = "domains.update", skip_all)]
pub async fn update(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    input: DomainInput,
) -> AppResult<domains::Model> {
    let name = input.name.as_deref().map(|n| text("input.name", n, 1, 100)).transpose()?;
    let code = input.code.as_deref().map(parse_code).transpose()?;
    let description = optional_text("input.description", input.description, 5000)?;
    let icon = optional_url("input.icon", input.icon, 500)?;
    super::admin(db, viewer).await?;
    let existing = domains::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("domain"))?;
    let mut active: domains::ActiveModel = existing.into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(code) = code {
        active.code = Set(code);
    }
    if description.is_some() {
        active.description = Set(description);
    }
    if icon.is_some() {
        active.icon = Set(icon);
    }
    if let Some(order) = input.sort_order {
        active.sort_order = Set(order);
    }
    if let Some(is_active) = input.is_active {
        active.is_active = Set(is_active);
    }
    write::update(db, active)
        .await
        .map_err(AppError::on_unique("input", "a domain with this name or code already exists"))
}
