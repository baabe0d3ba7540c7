//! Added to the design for moderation and the review queue:
//! - `user_identities.rejection_reason`: why an admin rejected a master application, shown to the
//!   applicant and to the admin who reviews a re-application (kept until the next decision; every
//!   decision is also in `audit_logs`);
//! - `circle_members.banned_at` and `ban_reason`: a member removed with a ban cannot join again
//!   until a circle admin lifts it (the row stays, inactive, so the ban survives).

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ADDED: &[(&str, &str)] =
    &[("user_identities", "rejection_reason"), ("circle_members", "banned_at"), ("circle_members", "ban_reason")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for (table, column) in ADDED {
            let mut definition = if column.ends_with("_at") { timestamp_null(column) } else { text_null(column) };
            manager.alter_table(Table::alter().table(n(table)).add_column(&mut definition).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in ADDED.iter().rev() {
            manager.alter_table(Table::alter().table(n(table)).drop_column(n(column)).to_owned()).await?;
        }
        Ok(())
    }
}
