//! `domains`, `system_configs`, `audit_logs` (design 3.6, 9.3).

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("domains"))
                    .col(pk())
                    .col(string("name", 100).unique_key())
                    .col(string("code", 50).unique_key())
                    .col(text_null("description"))
                    .col(string_null("icon", 500))
                    .col(int("sort_order", 0))
                    .col(boolean("is_active", true))
                    .col(timestamp_now("created_at"))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "domains", &[&["is_active"], &["sort_order"]]).await?;

        manager
            .create_table(
                Table::create()
                    .table(n("system_configs"))
                    .col(pk())
                    .col(string("config_key", 100).unique_key())
                    .col(text_null("config_value"))
                    .col(status("config_type", &["string", "number", "boolean", "json"], "string"))
                    .col(text_null("description"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("audit_logs"))
                    .col(pk())
                    .col(string("table_name", 100))
                    .col(string("operation", 20))
                    .col(json_null("old_data"))
                    .col(json_null("new_data"))
                    .col(uuid_null("user_id"))
                    // INET in the design; text (an IPv4/IPv6 literal) keeps SQLite and PostgreSQL alike.
                    .col(string_null("ip_address", 45))
                    .col(timestamp_now("created_at"))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "audit_logs", &[&["table_name"], &["user_id"], &["created_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["audit_logs", "system_configs", "domains"]).await
    }
}
