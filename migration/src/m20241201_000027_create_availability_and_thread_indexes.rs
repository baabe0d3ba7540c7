//! Added to the design for booking (the design has appointments but no way to say when a master
//! can be booked): `mentor_availability` holds one master identity's schedule, a document read and
//! written whole: the IANA time zone its times are in, the weekly windows, the exceptions by local
//! date (days off, extra hours), the buffer kept between appointments and the minimum notice.
//! Availability is a property of the identity, so its id is the key and the row goes with it.
//!
//! Also indexes for a course's students newest first (`Course.students`) and a comment's replies
//! oldest first (`Comment.replies`).

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns)
const INDEXES: &[(&str, &str, &str)] = &[
    ("idx_learning_records_course_students", "learning_records", "course_id, enrolled_at DESC, id DESC"),
    ("idx_comments_replies", "comments", "parent_id, created_at, id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("mentor_availability"))
                    .col(ColumnDef::new(n("identity_id")).uuid().not_null().primary_key())
                    .col(string("time_zone", 64))
                    // [{"weekday": 1..7 (ISO, Monday 1), "start": minutes, "end": minutes}]
                    .col(ColumnDef::new(n("weekly")).json_binary().not_null())
                    // [{"date": "YYYY-MM-DD", "start": minutes?, "end": minutes?, "available": bool}]
                    .col(ColumnDef::new(n("exceptions")).json_binary().not_null())
                    .col(int("buffer_minutes", 0))
                    .col(int("min_notice_hours", 0))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk(
                        "mentor_availability",
                        "identity_id",
                        "user_identities",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        crate::indexes::create(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::drop(manager, INDEXES).await?;
        drop_tables(manager, &["mentor_availability"]).await
    }
}
