//! `course_stats` (read-only view): per published course, enrolled students, average progress,
//! average COURSE rating (0 when none) and review count.

use crate::enums::Difficulty;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "course_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    pub mentor_id: Uuid,
    pub mentor_name: Option<String>,
    #[sea_orm(column_type = "Decimal(Some((10, 2)))")]
    pub price: Decimal,
    pub duration_hours: i32,
    pub difficulty: Option<Difficulty>,
    pub enrolled_students: i64,
    #[sea_orm(column_type = "Double")]
    pub avg_progress: f64,
    #[sea_orm(column_type = "Double")]
    pub average_rating: f64,
    pub review_count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
