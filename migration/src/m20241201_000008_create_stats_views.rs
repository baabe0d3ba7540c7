//! The design's read models `mentor_stats` and `course_stats` (design 4.1, 4.2).
//!
//! Written with correlated sub-queries instead of the design's single multi-way LEFT JOIN: joining
//! courses, learning records and reviews at once multiplies rows, so the design's `COUNT(r.id)` and
//! `AVG(r.rating)` came out inflated/weighted by enrollments. Dropped enrollments and hidden or
//! deleted reviews do not count. Averages are cast to DOUBLE PRECISION (REAL affinity on SQLite) and
//! coalesced to 0 so both backends return the same type and keyset ordering never meets NULL;
//! `review_count = 0` tells "no rating yet" apart. `hourly_rate` is CAST so that on SQLite the view
//! column keeps NUMERIC affinity (decimals are bound as text there). Only published courses count for a mentor.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const MENTOR_STATS: &str = "
CREATE VIEW mentor_stats AS
SELECT
    ui.id AS identity_id,
    ui.user_id,
    up.name,
    up.avatar,
    ui.domain,
    CAST(COALESCE(up.hourly_rate, 0) AS NUMERIC(10, 2)) AS hourly_rate,
    ui.created_at,
    (SELECT COUNT(*) FROM courses c WHERE c.mentor_id = ui.id AND c.status = 'published') AS course_count,
    (SELECT COUNT(DISTINCT lr.user_id) FROM learning_records lr JOIN courses c ON c.id = lr.course_id
       WHERE c.mentor_id = ui.id AND lr.status <> 'dropped') AS student_count,
    CAST(COALESCE((SELECT AVG(r.rating) FROM reviews r
       WHERE r.reviewed_id = ui.id AND r.review_type = 'mentor' AND r.status = 'active'), 0) AS DOUBLE PRECISION)
        AS average_rating,
    (SELECT COUNT(*) FROM reviews r
       WHERE r.reviewed_id = ui.id AND r.review_type = 'mentor' AND r.status = 'active') AS review_count
FROM user_identities ui
LEFT JOIN user_profiles up ON up.identity_id = ui.id
WHERE ui.identity_type = 'master' AND ui.status = 'active'";

const COURSE_STATS: &str = "
CREATE VIEW course_stats AS
SELECT
    c.id,
    c.title,
    c.mentor_id,
    up.name AS mentor_name,
    c.price,
    c.duration_hours,
    c.difficulty,
    (SELECT COUNT(*) FROM learning_records lr WHERE lr.course_id = c.id AND lr.status <> 'dropped')
        AS enrolled_students,
    CAST(COALESCE((SELECT AVG(lr.progress_percentage) FROM learning_records lr
       WHERE lr.course_id = c.id AND lr.status <> 'dropped'), 0) AS DOUBLE PRECISION) AS avg_progress,
    CAST(COALESCE((SELECT AVG(r.rating) FROM reviews r
       WHERE r.course_id = c.id AND r.review_type = 'course' AND r.status = 'active'), 0) AS DOUBLE PRECISION)
        AS average_rating,
    (SELECT COUNT(*) FROM reviews r
       WHERE r.course_id = c.id AND r.review_type = 'course' AND r.status = 'active') AS review_count
FROM courses c
LEFT JOIN user_profiles up ON up.identity_id = c.mentor_id
WHERE c.status = 'published'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(MENTOR_STATS).await?;
        db.execute_unprepared(COURSE_STATS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW IF EXISTS course_stats").await?;
        db.execute_unprepared("DROP VIEW IF EXISTS mentor_stats").await?;
        Ok(())
    }
}
