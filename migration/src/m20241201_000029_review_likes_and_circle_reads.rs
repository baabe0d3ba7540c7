//! Added to the design for two pages of the apps:
//! - `review_likes`: one "helpful" per person and review (the design keeps `reviews.like_count` but
//!   nowhere to remember who liked, so the count could not be kept exact); the unique key decides
//!   between concurrent likes and the count moves in the same transaction as the row it counts;
//! - `circle_members.last_read_at`: how far a member has read the circle's chat, so circle
//!   conversations have unread counts (a circle message has one `is_read` for every member, which
//!   means nothing; the read position is per member).

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
                    .table(n("review_likes"))
                    .col(pk())
                    .col(uuid("review_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("review_likes", "review_id", "reviews", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("review_likes", "user_id", "users", ForeignKeyAction::Cascade))
                    .index(&mut unique("review_likes", &["review_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "review_likes", &[&["user_id"]]).await?;
        manager
            .alter_table(
                Table::alter().table(n("circle_members")).add_column(timestamp_null("last_read_at")).to_owned(),
            )
            .await?;
        // The circle chat is read by circle and time.
        create_indexes(manager, "messages", &[&["circle_id", "created_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_messages_circle_id_created_at").table(n("messages")).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(n("circle_members")).drop_column(n("last_read_at")).to_owned())
            .await?;
        drop_tables(manager, &["review_likes"]).await
    }
}
