//! Writes to `audit_logs`: who changed which sensitive row, with old and new data as JSON.

use super::write;
use chrono::Utc;
use entity::audit_logs;
use sea_orm::TransactionTrait;
use sea_orm::{ConnectionTrait, DbErr, Set};
use uuid::Uuid;

pub struct AuditEntry<'a> {
    pub table: &'a str,
    pub operation: &'a str,
    pub old: Option<serde_json::Value>,
    pub new: Option<serde_json::Value>,
    pub user_id: Option<Uuid>,
    pub ip: Option<std::net::IpAddr>,
}

/// Records an entry inside the caller's transaction, so it commits or rolls back with the change.
pub async fn record(db: &(impl ConnectionTrait + TransactionTrait), entry: AuditEntry<'_>) -> Result<(), DbErr> {
    let record_id = [&entry.new, &entry.old]
        .into_iter()
        .flatten()
        .find_map(|data| data.get("id").and_then(|id| id.as_str()).and_then(|id| Uuid::parse_str(id).ok()));
    write::insert(
        db,
        audit_logs::ActiveModel {
            id: Set(Uuid::new_v4()),
            table_name: Set(entry.table.to_string()),
            operation: Set(entry.operation.to_string()),
            old_data: Set(entry.old),
            new_data: Set(entry.new),
            user_id: Set(entry.user_id),
            ip_address: Set(entry.ip.map(|ip| ip.to_string())),
            created_at: Set(Utc::now()),
            record_id: Set(record_id),
        },
    )
    .await
    .map(|_| ())
}

/// Who made a change, for its audit row.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: Uuid,
    pub ip: Option<std::net::IpAddr>,
}

/// Records an UPDATE of `table` by `actor` (old and new data each carry the row's `id`).
pub async fn updated(
    db: &(impl ConnectionTrait + TransactionTrait),
    actor: Actor,
    table: &str,
    old: serde_json::Value,
    new: serde_json::Value,
) -> Result<(), DbErr> {
    let entry = AuditEntry {
        table,
        operation: "UPDATE",
        old: Some(old),
        new: Some(new),
        user_id: Some(actor.user_id),
        ip: actor.ip,
    };
    record(db, entry).await
}
