//! `appointments`: a paid one-to-one session between a student and a master identity.

use crate::enums::{AppointmentStatus, MeetingType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "appointments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub student_id: Uuid,
    pub mentor_id: Uuid,
    pub appointment_time: DateTimeUtc,
    /// appointment_time + duration (added column; see migration 000012).
    pub ends_at: DateTimeUtc,
    pub duration_minutes: i32,
    pub meeting_type: MeetingType,
    pub status: AppointmentStatus,
    #[sea_orm(column_type = "Decimal(Some((10, 2)))")]
    pub price: Decimal,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    pub meeting_url: Option<String>,
    pub meeting_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::StudentId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    Student,
    #[sea_orm(
        belongs_to = "super::user_identities::Entity",
        from = "Column::MentorId",
        to = "super::user_identities::Column::Id",
        on_delete = "Cascade"
    )]
    Mentor,
    #[sea_orm(has_many = "super::appointment_status_logs::Entity")]
    StatusLogs,
}

impl Related<super::appointment_status_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StatusLogs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
