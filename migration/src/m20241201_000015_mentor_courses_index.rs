//! Added to the design: `Mentor.courses` shows a mentor's newest published courses. With only the
//! design's single-column `mentor_id` index, a mentor with hundreds of courses had all of them read
//! and sorted per page; this index makes the page an index range read newest first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX idx_courses_mentor_newest ON courses (mentor_id, status, created_at, id)")
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_courses_mentor_newest").await.map(|_| ())
    }
}
