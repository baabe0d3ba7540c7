//! `content_progress`: one student's progress on one content item.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "content_progress")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub content_id: Uuid,
    #[sea_orm(column_type = "Decimal(Some((5, 2)))")]
    pub progress_percentage: Decimal,
    pub is_completed: bool,
    pub completed_at: Option<DateTimeUtc>,
    pub last_accessed_at: DateTimeUtc,
    pub study_time: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    Users,
    #[sea_orm(
        belongs_to = "super::course_contents::Entity",
        from = "Column::ContentId",
        to = "super::course_contents::Column::Id",
        on_delete = "Cascade"
    )]
    CourseContents,
}

impl Related<super::course_contents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CourseContents.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
