//! `appointments` and `reviews` (design 3.4).

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
                    .table(n("appointments"))
                    .col(pk())
                    .col(uuid("student_id"))
                    .col(uuid("mentor_id"))
                    .col(timestamp("appointment_time"))
                    .col(
                        ColumnDef::new(n("duration_minutes"))
                            .integer()
                            .not_null()
                            .check(Expr::col(n("duration_minutes")).gt(0)),
                    )
                    .col(status("meeting_type", &["video", "voice", "text"], "video"))
                    .col(status("status", &["pending", "confirmed", "completed", "cancelled", "no_show"], "pending"))
                    .col(decimal("price", 10, 2, None).check(Expr::col(n("price")).gte(0)))
                    .col(text_null("notes"))
                    .col(string_null("meeting_url", 500))
                    .col(string_null("meeting_id", 100))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("appointments", "student_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("appointments", "mentor_id", "user_identities", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "appointments",
            &[&["student_id"], &["mentor_id"], &["appointment_time"], &["status"], &["meeting_type"]],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("reviews"))
                    .col(pk())
                    .col(uuid("reviewer_id"))
                    .col(uuid("reviewed_id"))
                    .col(uuid_null("course_id"))
                    .col(uuid_null("appointment_id"))
                    .col(ColumnDef::new(n("rating")).integer().not_null().check(Expr::col(n("rating")).between(1, 5)))
                    .col(text_null("content"))
                    .col(status("review_type", &["course", "mentor", "appointment"], "course"))
                    .col(status("status", &["active", "hidden", "deleted"], "active"))
                    .col(int("like_count", 0))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("reviews", "reviewer_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("reviews", "reviewed_id", "user_identities", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("reviews", "course_id", "courses", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("reviews", "appointment_id", "appointments", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "reviews",
            &[
                &["reviewer_id"],
                &["reviewed_id"],
                &["course_id"],
                &["appointment_id"],
                &["rating"],
                &["review_type"],
                &["created_at"],
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["reviews", "appointments"]).await
    }
}
