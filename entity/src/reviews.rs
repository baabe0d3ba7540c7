//! `reviews`: ratings of courses, mentors and appointments.

use crate::enums::{ContentStatus, ReviewType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub reviewer_id: Uuid,
    pub reviewed_id: Uuid,
    pub course_id: Option<Uuid>,
    pub appointment_id: Option<Uuid>,
    pub rating: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub content: Option<String>,
    pub review_type: ReviewType,
    pub status: ContentStatus,
    pub like_count: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::ReviewerId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    Reviewer,
    #[sea_orm(
        belongs_to = "super::user_identities::Entity",
        from = "Column::ReviewedId",
        to = "super::user_identities::Column::Id",
        on_delete = "Cascade"
    )]
    Reviewed,
    #[sea_orm(
        belongs_to = "super::courses::Entity",
        from = "Column::CourseId",
        to = "super::courses::Column::Id",
        on_delete = "Cascade"
    )]
    Courses,
    #[sea_orm(
        belongs_to = "super::appointments::Entity",
        from = "Column::AppointmentId",
        to = "super::appointments::Column::Id",
        on_delete = "Cascade"
    )]
    Appointments,
}

impl ActiveModelBehavior for ActiveModel {}
