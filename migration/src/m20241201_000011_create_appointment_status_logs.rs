//! Added to the design: `appointment_status_logs`, one row per appointment state transition.

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATUSES: &[&str] = &["pending", "confirmed", "completed", "cancelled", "no_show"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("appointment_status_logs"))
                    .col(pk())
                    .col(uuid("appointment_id"))
                    .col(status_null("from_status", STATUSES))
                    .col(status("to_status", STATUSES, "pending"))
                    .col(text_null("reason"))
                    .col(uuid_null("changed_by"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk(
                        "appointment_status_logs",
                        "appointment_id",
                        "appointments",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk("appointment_status_logs", "changed_by", "users", ForeignKeyAction::SetNull))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "appointment_status_logs", &[&["appointment_id", "created_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["appointment_status_logs"]).await
    }
}
