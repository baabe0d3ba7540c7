//! `search_outbox` (added to the design): every change a search document depends on (a course,
//! a master's identity or profile, a review of a master, a circle) writes one row here in the same
//! transaction, naming the document; the indexer drains the rows in batches and deletes them once
//! the index has the change. A change that committed is therefore indexed even if the server dies
//! before indexing it.

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
                    .table(n("search_outbox"))
                    .col(ColumnDef::new(n("id")).big_integer().not_null().auto_increment().primary_key())
                    // `courses`, `mentors` or `circles`
                    .col(string("collection", 20))
                    .col(uuid("document_id"))
                    .col(timestamp_now("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["search_outbox"]).await
    }
}
