//! `idempotency_keys` (added to the design): a mutation sent with an `Idempotency-Key` header is
//! recorded per scope (the viewer) and key, with its request's fingerprint, before it runs; its
//! response is stored when it finishes, so a repeat within 24 h (after a restart too) gets the
//! first response and changes nothing. The primary key on (scope, key) decides between concurrent
//! duplicates.

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
                    .table(n("idempotency_keys"))
                    // `user:<uuid>` or `ip:<address>` for anonymous callers.
                    .col(string("scope", 80))
                    .col(string("idempotency_key", 255))
                    // SHA-256 of the operation name, query text and variables.
                    .col(string("fingerprint", 64))
                    .col(status("status", &["pending", "done"], "pending"))
                    .col(text_null("response"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp("expires_at"))
                    .primary_key(Index::create().col(n("scope")).col(n("idempotency_key")))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "idempotency_keys", &[&["expires_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["idempotency_keys"]).await
    }
}
