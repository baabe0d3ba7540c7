//! `courses`: a master's course with its price, capacity and denormalized rating counters.

use crate::enums::{CourseStatus, Difficulty, StringList};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "courses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub mentor_id: Uuid,
    pub title: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    pub cover_image: Option<String>,
    #[sea_orm(column_type = "Decimal(Some((10, 2)))")]
    pub price: Decimal,
    pub duration_hours: i32,
    pub difficulty: Option<Difficulty>,
    pub status: CourseStatus,
    pub max_students: Option<i32>,
    pub current_students: i32,
    #[sea_orm(column_type = "Decimal(Some((3, 2)))")]
    pub rating: Decimal,
    pub review_count: i32,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub tags: Option<StringList>,
    #[sea_orm(column_type = "Text", nullable)]
    pub prerequisites: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub learning_objectives: Option<StringList>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user_identities::Entity",
        from = "Column::MentorId",
        to = "super::user_identities::Column::Id",
        on_delete = "Cascade"
    )]
    Mentor,
    #[sea_orm(has_many = "super::course_contents::Entity")]
    CourseContents,
    #[sea_orm(has_many = "super::learning_records::Entity")]
    LearningRecords,
}

impl Related<super::user_identities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Mentor.def()
    }
}

impl Related<super::course_contents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CourseContents.def()
    }
}

impl Related<super::learning_records::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LearningRecords.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
