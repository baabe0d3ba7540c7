//! Added to the design for uploads (the design keeps files in object storage and only their URLs in
//! rows): `uploads` records each file a user sends, its check (PENDING -> READY | REJECTED) and
//! whether a row uses it (`attached_at`), so stale or unused files can be swept.

use crate::columns::*;
use sea_orm_migration::prelude::*;

/// `UploadPurpose`'s stored words.
const PURPOSES: &[&str] =
    &["avatar", "circle_avatar", "course_cover", "course_media", "post_image", "identity_document", "message_file"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("uploads"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(status("purpose", PURPOSES, "avatar"))
                    .col(status("status", &["pending", "ready", "rejected"], "pending"))
                    .col(string("content_type", 100))
                    .col(ColumnDef::new(n("byte_size")).big_integer().not_null())
                    .col(string("file_name", 255))
                    .col(string("object_key", 300).unique_key())
                    .col(int_null("width"))
                    .col(int_null("height"))
                    .col(json_null("variants"))
                    .col(string_null("reject_reason", 300))
                    .col(timestamp_null("attached_at"))
                    .col(timestamp_null("completed_at"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("uploads", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        // The day's quota (per user, by time) and the sweeper (by status and time).
        create_indexes(manager, "uploads", &[&["user_id", "created_at"], &["status", "created_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["uploads"]).await
    }
}
