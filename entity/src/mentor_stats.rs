//! `mentor_stats` (read-only view): per active master identity, published course count, distinct
//! students, average MENTOR rating (0 when none) and review count.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "mentor_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub identity_id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub domain: String,
    #[sea_orm(column_type = "Decimal(Some((10, 2)))")]
    pub hourly_rate: Decimal,
    pub created_at: DateTimeUtc,
    pub course_count: i64,
    pub student_count: i64,
    #[sea_orm(column_type = "Double")]
    pub average_rating: f64,
    pub review_count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
