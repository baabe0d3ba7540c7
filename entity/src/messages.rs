//! `messages`: private messages (to_user_id) and circle messages (circle_id).

use crate::enums::MessageType;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Option<Uuid>,
    pub circle_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub message_type: MessageType,
    pub is_read: bool,
    pub read_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::FromUserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    FromUser,
    #[sea_orm(belongs_to = "super::users::Entity", from = "Column::ToUserId", to = "super::users::Column::Id")]
    ToUser,
    #[sea_orm(belongs_to = "super::circles::Entity", from = "Column::CircleId", to = "super::circles::Column::Id")]
    Circles,
}

impl ActiveModelBehavior for ActiveModel {}
