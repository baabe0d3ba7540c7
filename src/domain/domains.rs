//! Professional domains: the admin-managed list an identity's domain must come from.

use super::audit::{self, AuditEntry};
use super::values::{optional_text, optional_url, text};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::{circles, domains, user_identities};
use sea_orm::TransactionTrait;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use std::net::IpAddr;
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

/// Every domain, inactive ones too (admins: to find and reactivate them).
pub async fn list_all(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<Vec<domains::Model>> {
    super::admin(db, viewer).await?;
    Ok(domains::Entity::find()
        .order_by_desc(domains::Column::IsActive)
        .order_by_asc(domains::Column::SortOrder)
        .order_by_asc(domains::Column::Name)
        .all(db)
        .await?)
}

fn snapshot(domain: &domains::Model) -> serde_json::Value {
    json!({
        "id": domain.id, "name": domain.name, "code": domain.code, "description": domain.description,
        "icon": domain.icon, "sort_order": domain.sort_order, "is_active": domain.is_active,
    })
}

/// Identities and circles filed under `code` (courses and mentors follow their identity's).
async fn uses_of(db: &(impl ConnectionTrait + TransactionTrait), code: &str) -> AppResult<u64> {
    let identities = user_identities::Entity::find().filter(user_identities::Column::Domain.eq(code)).count(db).await?;
    let circles = circles::Entity::find().filter(circles::Column::Domain.eq(code)).count(db).await?;
    Ok(identities + circles)
}

/// Inside a transaction that files something under `code` (an identity, a circle), as its first
/// statement: a write on the domain's row, so a rename of the code waits for that transaction
/// (and then counts what it filed), and BAD_USER_INPUT on `field` unless `code` is active.
pub async fn hold_active(txn: &sea_orm::DatabaseTransaction, code: &str, field: &str) -> AppResult<()> {
    let held = write::update_many(
        txn,
        domains::Entity::update_many()
            .col_expr(domains::Column::SortOrder, sea_orm::sea_query::Expr::col(domains::Column::SortOrder).into())
            .filter(domains::Column::Code.eq(code))
            .filter(domains::Column::IsActive.eq(true)),
    )
    .await?;
    if held != 1 {
        return Err(AppError::bad_input(field, "not an active domain code (see `domains`)"));
    }
    Ok(())
}

fn parse_code(raw: &str) -> AppResult<String> {
    let code = text("input.code", raw, 1, 50)?.to_lowercase();
    if !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(AppError::bad_input("input.code", "use lowercase letters, digits, - and _"));
    }
    Ok(code)
}

#[tracing::instrument(name = "domains.create", skip_all)]
pub async fn create(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: DomainInput,
    ip: Option<IpAddr>,
) -> AppResult<domains::Model> {
    let mut c = Checks::default();
    let name = c.on(text("input.name", input.name.as_deref().unwrap_or_default(), 1, 100));
    let code = c.on(parse_code(input.code.as_deref().unwrap_or_default()));
    let description = c.on(optional_text("input.description", input.description, 5000));
    let icon = c.on(optional_url("input.icon", input.icon, 500));
    c.finish()?;
    let admin = super::admin(db, viewer).await?;
    let txn = db.begin().await?;
    let created = write::insert(
        &txn,
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
    .map_err(AppError::on_unique("input", "a domain with this name or code already exists"))?;
    let entry = AuditEntry {
        table: "domains",
        operation: "INSERT",
        old: None,
        new: Some(snapshot(&created)),
        user_id: Some(admin.id),
        ip,
    };
    audit::record(&txn, entry).await?;
    txn.commit().await?;
    Ok(created)
}

#[tracing::instrument(name = "domains.update", skip_all)]
pub async fn update(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    input: DomainInput,
    ip: Option<IpAddr>,
) -> AppResult<domains::Model> {
    let mut c = Checks::default();
    let name = c.on(input.name.as_deref().map(|n| text("input.name", n, 1, 100)).transpose());
    let code = c.on(input.code.as_deref().map(parse_code).transpose());
    let description = c.on(optional_text("input.description", input.description, 5000));
    let icon = c.on(optional_url("input.icon", input.icon, 500));
    c.finish()?;
    let admin = super::admin(db, viewer).await?;
    let txn = db.begin().await?;
    // A write first: it locks the row on PostgreSQL, and SQLite keeps the transaction's snapshot.
    write::update_many(
        &txn,
        domains::Entity::update_many()
            .col_expr(domains::Column::SortOrder, sea_orm::sea_query::Expr::col(domains::Column::SortOrder).into())
            .filter(domains::Column::Id.eq(id)),
    )
    .await?;
    let existing = domains::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("domain"))?;
    let before = snapshot(&existing);
    // A code in use is not renamed: identities, circles, courses' filters, search documents and
    // the apps' links all carry it. Add a new domain and retire this one instead.
    if let Some(code) = code.as_ref().filter(|code| **code != existing.code) {
        let uses = uses_of(&txn, &existing.code).await?;
        if uses > 0 {
            return Err(AppError::Conflict {
                field: Some("input.code".into()),
                message: format!(
                    "{uses} identities and circles use the code {:?}; it cannot become {code:?} (create a new \
                     domain and deactivate this one)",
                    existing.code
                ),
            });
        }
    }
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
    let updated = write::update(&txn, active)
        .await
        .map_err(AppError::on_unique("input", "a domain with this name or code already exists"))?;
    let after = snapshot(&updated);
    if after != before {
        let entry = AuditEntry {
            table: "domains",
            operation: "UPDATE",
            old: Some(before),
            new: Some(after),
            user_id: Some(admin.id),
            ip,
        };
        audit::record(&txn, entry).await?;
    }
    txn.commit().await?;
    Ok(updated)
}
