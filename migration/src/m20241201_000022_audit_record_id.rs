//! Added to the design: `audit_logs.record_id`, the id of the row an entry is about (the `id` in
//! its new or old data), indexed with the table name, so an admin finds a resource's history
//! without scanning JSON. Entries written before this migration carry none.

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(n("audit_logs")).add_column(uuid_null("record_id")).to_owned())
            .await?;
        create_indexes(manager, "audit_logs", &[&["table_name", "record_id"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_audit_logs_table_name_record_id").table(n("audit_logs")).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(n("audit_logs")).drop_column(n("record_id")).to_owned()).await
    }
}
