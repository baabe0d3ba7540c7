//! Corners of integrity:
//!
//! - `appointments.ends_at` is filled for every row (those booked before migration 12 had none, and
//!   never blocked a booking) and required from now on: NOT NULL on PostgreSQL; on SQLite, which
//!   cannot add NOT NULL to a column, triggers that refuse a NULL on insert and update.
//! - `mentor_stats` counts and averages the reviews `Mentor.reviews` lists: MENTOR and APPOINTMENT
//!   reviews (it counted MENTOR reviews only, so a mentor's stats said 1 next to a list of 2).

use crate::m20241201_000008_create_stats_views::MENTOR_STATS as MENTOR_STATS_V1;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const MENTOR_STATS: &str = "
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
       WHERE r.reviewed_id = ui.id AND r.review_type <> 'course' AND r.status = 'active'), 0) AS DOUBLE PRECISION)
        AS average_rating,
    (SELECT COUNT(*) FROM reviews r
       WHERE r.reviewed_id = ui.id AND r.review_type <> 'course' AND r.status = 'active') AS review_count
FROM user_identities ui
LEFT JOIN user_profiles up ON up.identity_id = ui.id
WHERE ui.identity_type = 'master' AND ui.status = 'active'";

const SQLITE_BACKFILL: &str = "UPDATE appointments
SET ends_at = strftime('%Y-%m-%dT%H:%M:%f', appointment_time, '+' || duration_minutes || ' minutes') || '+00:00'
WHERE ends_at IS NULL";

const POSTGRES_BACKFILL: &str =
    "UPDATE appointments SET ends_at = appointment_time + duration_minutes * INTERVAL '1 minute' WHERE ends_at IS NULL";

const SQLITE_TRIGGERS: [&str; 2] = [
    "CREATE TRIGGER appointments_ends_at_insert BEFORE INSERT ON appointments
     WHEN NEW.ends_at IS NULL BEGIN SELECT RAISE(ABORT, 'NOT NULL constraint failed: appointments.ends_at'); END",
    "CREATE TRIGGER appointments_ends_at_update BEFORE UPDATE OF ends_at ON appointments
     WHEN NEW.ends_at IS NULL BEGIN SELECT RAISE(ABORT, 'NOT NULL constraint failed: appointments.ends_at'); END",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(SQLITE_BACKFILL).await?;
                for trigger in SQLITE_TRIGGERS {
                    db.execute_unprepared(trigger).await?;
                }
            }
            _ => {
                db.execute_unprepared(POSTGRES_BACKFILL).await?;
                db.execute_unprepared("ALTER TABLE appointments ALTER COLUMN ends_at SET NOT NULL").await?;
            }
        }
        db.execute_unprepared("DROP VIEW IF EXISTS mentor_stats").await?;
        db.execute_unprepared(MENTOR_STATS).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP VIEW IF EXISTS mentor_stats").await?;
        db.execute_unprepared(MENTOR_STATS_V1).await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS appointments_ends_at_insert").await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS appointments_ends_at_update").await?;
            }
            _ => {
                db.execute_unprepared("ALTER TABLE appointments ALTER COLUMN ends_at DROP NOT NULL").await?;
            }
        }
        Ok(())
    }
}
