//! Added to the design: a master's reviews page (`Mentor.reviews`: MENTOR and APPOINTMENT reviews,
//! newest first) filters `review_type <> 'course'`, which no index of migration 14 covers. A master
//! whose courses have thousands of COURSE reviews (they carry the master as `reviewed_id` too) had
//! every one of them read and discarded to find a page of their own (the large bench set's top master:
//! 4,946 rows, 5-300 ms). This partial index holds only the non-course reviews, in page order; the
//! query states the predicate as the same literal so the planner can use it with bound parameters.
//! Partial indexes exist on PostgreSQL and SQLite alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_reviews_mentor_page ON reviews (reviewed_id, status, created_at, id) \
                 WHERE review_type <> 'course'",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS idx_reviews_mentor_page").await.map(|_| ())
    }
}
