//! Added to the design: `appointments.ends_at` (start + duration), so "no two bookings overlap" is
//! the same indexed comparison on SQLite and PostgreSQL: `start < other_end AND end > other_start`.

use crate::columns::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(n("appointments")).add_column(timestamp_null("ends_at")).to_owned())
            .await?;
        create_indexes(
            manager,
            "appointments",
            &[&["mentor_id", "appointment_time"], &["student_id", "appointment_time"]],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_appointments_mentor_id_appointment_time").await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_appointments_student_id_appointment_time").await?;
        manager.alter_table(Table::alter().table(n("appointments")).drop_column(n("ends_at")).to_owned()).await
    }
}
