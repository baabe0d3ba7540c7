//! `audit_logs`: who changed what sensitive row, with the old and new data as JSON.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub table_name: String,
    pub operation: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub old_data: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub new_data: Option<Json>,
    pub user_id: Option<Uuid>,
    /// Text on both backends (the design's INET is PostgreSQL-only); validated as an IP on write.
    pub ip_address: Option<String>,
    pub created_at: DateTimeUtc,
    /// Added to the design: the id of the row the entry is about (`id` in its data).
    pub record_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
