//! Added to the design: `refresh_tokens`, rotating refresh tokens stored as SHA-256 hashes.

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
                    .table(n("refresh_tokens"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(uuid("family_id"))
                    .col(string("token_hash", 64).unique_key())
                    .col(timestamp("expires_at"))
                    .col(timestamp_null("revoked_at"))
                    .col(uuid_null("replaced_by"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("refresh_tokens", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "refresh_tokens", &[&["user_id"], &["family_id"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["refresh_tokens"]).await
    }
}
