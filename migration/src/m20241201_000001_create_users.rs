//! `users`: accounts (design 3.1.1).

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
                    .table(n("users"))
                    .col(pk())
                    .col(string("email", 255).unique_key())
                    .col(string("password_hash", 255))
                    .col(string_null("phone", 20))
                    .col(status("status", &["active", "inactive", "banned"], "active"))
                    .col(boolean("email_verified", false))
                    .col(boolean("phone_verified", false))
                    .col(timestamp_null("last_login_at"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "users", &[&["phone"], &["status"], &["created_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["users"]).await
    }
}
