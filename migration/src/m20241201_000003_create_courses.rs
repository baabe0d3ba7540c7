//! `courses`, `course_contents`, `learning_records`, `content_progress` (design 3.2).

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
                    .table(n("courses"))
                    .col(pk())
                    .col(uuid("mentor_id"))
                    .col(string("title", 200))
                    .col(text_null("description"))
                    .col(string_null("cover_image", 500))
                    .col(decimal("price", 10, 2, None).check(Expr::col(n("price")).gte(0)))
                    .col(
                        ColumnDef::new(n("duration_hours"))
                            .integer()
                            .not_null()
                            .check(Expr::col(n("duration_hours")).gt(0)),
                    )
                    .col(status_null("difficulty", &["beginner", "intermediate", "advanced"]))
                    .col(status("status", &["draft", "published", "archived"], "draft"))
                    .col(int_null("max_students").check(Expr::col(n("max_students")).gt(0)))
                    .col(int("current_students", 0).check(Expr::col(n("current_students")).gte(0)))
                    .col(decimal("rating", 3, 2, Some(0)))
                    .col(int("review_count", 0))
                    .col(json_null("tags"))
                    .col(text_null("prerequisites"))
                    .col(json_null("learning_objectives"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("courses", "mentor_id", "user_identities", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "courses",
            &[&["mentor_id"], &["status"], &["difficulty"], &["price"], &["rating"], &["created_at"]],
        )
        .await?;
        create_gin_indexes(manager, "courses", &["tags"]).await?;

        manager
            .create_table(
                Table::create()
                    .table(n("course_contents"))
                    .col(pk())
                    .col(uuid("course_id"))
                    .col(string("title", 200))
                    .col(status("content_type", &["video", "text", "quiz", "assignment"], "text"))
                    .col(string_null("content_url", 500))
                    .col(text_null("content_text"))
                    .col(ColumnDef::new(n("order_index")).integer().not_null())
                    .col(int_null("duration_minutes"))
                    .col(boolean("is_free", false))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("course_contents", "course_id", "courses", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "course_contents", &[&["course_id", "order_index"]]).await?;

        manager
            .create_table(
                Table::create()
                    .table(n("learning_records"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(uuid("course_id"))
                    .col(decimal("progress_percentage", 5, 2, Some(0)))
                    .col(status("status", &["enrolled", "learning", "completed", "dropped"], "enrolled"))
                    .col(timestamp_now("enrolled_at"))
                    .col(timestamp_null("completed_at"))
                    .col(timestamp_now("last_accessed_at"))
                    .col(int("total_study_time", 0))
                    .foreign_key(&mut fk("learning_records", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("learning_records", "course_id", "courses", ForeignKeyAction::Cascade))
                    .index(&mut unique("learning_records", &["user_id", "course_id"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "learning_records", &[&["user_id"], &["course_id"], &["status"], &["enrolled_at"]])
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("content_progress"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(uuid("content_id"))
                    .col(decimal("progress_percentage", 5, 2, Some(0)))
                    .col(boolean("is_completed", false))
                    .col(timestamp_null("completed_at"))
                    .col(timestamp_now("last_accessed_at"))
                    .col(int("study_time", 0))
                    .foreign_key(&mut fk("content_progress", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk(
                        "content_progress",
                        "content_id",
                        "course_contents",
                        ForeignKeyAction::Cascade,
                    ))
                    .index(&mut unique("content_progress", &["user_id", "content_id"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "content_progress", &[&["user_id"], &["content_id"], &["is_completed"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["content_progress", "learning_records", "course_contents", "courses"]).await
    }
}
