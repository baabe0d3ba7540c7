//! Added to the design: one live review per reviewer and target (partial unique indexes, which
//! SQLite and PostgreSQL both support; a deleted review frees the slot), and the index the
//! conversation list reads private messages through.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE UNIQUE INDEX uq_reviews_course ON reviews (reviewer_id, course_id) WHERE review_type = 'course' AND status <> 'deleted'",
    "CREATE UNIQUE INDEX uq_reviews_mentor ON reviews (reviewer_id, reviewed_id) WHERE review_type = 'mentor' AND status <> 'deleted'",
    "CREATE UNIQUE INDEX uq_reviews_appointment ON reviews (reviewer_id, appointment_id) WHERE review_type = 'appointment' AND status <> 'deleted'",
    "CREATE INDEX idx_messages_pair ON messages (from_user_id, to_user_id, created_at)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in UP {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in ["uq_reviews_course", "uq_reviews_mentor", "uq_reviews_appointment", "idx_messages_pair"] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}")).await?;
        }
        Ok(())
    }
}
