//! Added to the design for POLL posts (the design has `post_type = 'poll'` but nowhere to keep the
//! choices): `poll_options` holds a poll's choices in order with their vote counts, `poll_votes` one
//! vote per person and poll (the unique key decides between concurrent votes; the count moves in
//! the same transaction as the row it counts).

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
                    .table(n("poll_options"))
                    .col(pk())
                    .col(uuid("post_id"))
                    .col(int("position", 0))
                    .col(string("label", 100))
                    .col(int("vote_count", 0))
                    .foreign_key(&mut fk("poll_options", "post_id", "posts", ForeignKeyAction::Cascade))
                    .index(&mut unique("poll_options", &["post_id", "position"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(n("poll_votes"))
                    .col(pk())
                    .col(uuid("post_id"))
                    .col(uuid("option_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("poll_votes", "post_id", "posts", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("poll_votes", "option_id", "poll_options", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("poll_votes", "user_id", "users", ForeignKeyAction::Cascade))
                    .index(&mut unique("poll_votes", &["post_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "poll_votes", &[&["option_id"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["poll_votes", "poll_options"]).await
    }
}
