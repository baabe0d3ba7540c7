//! `messages` and `notifications` (design 3.5).

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
                    .table(n("messages"))
                    .col(pk())
                    .col(uuid("from_user_id"))
                    .col(uuid_null("to_user_id"))
                    .col(uuid_null("circle_id"))
                    .col(text("content"))
                    .col(status("message_type", &["text", "image", "file", "system"], "text"))
                    .col(boolean("is_read", false))
                    .col(timestamp_null("read_at"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("messages", "from_user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("messages", "to_user_id", "users", ForeignKeyAction::NoAction))
                    .foreign_key(&mut fk("messages", "circle_id", "circles", ForeignKeyAction::NoAction))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "messages",
            &[&["from_user_id"], &["to_user_id"], &["circle_id"], &["is_read"], &["created_at"]],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("notifications"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(string("title", 200))
                    .col(text_null("content"))
                    .col(string("notification_type", 50))
                    .col(uuid_null("related_id"))
                    .col(boolean("is_read", false))
                    .col(timestamp_null("read_at"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("notifications", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "notifications",
            &[&["user_id"], &["is_read"], &["created_at"], &["user_id", "-created_at"]],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["notifications", "messages"]).await
    }
}
