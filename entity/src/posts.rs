//! `posts`: a member's post in a circle, with denormalized like/comment/view counters.

use crate::enums::{ContentStatus, PostType, StringList};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "posts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub identity_id: Uuid,
    pub circle_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub media_urls: Option<StringList>,
    pub post_type: PostType,
    pub status: ContentStatus,
    pub like_count: i32,
    pub comment_count: i32,
    pub share_count: i32,
    pub view_count: i32,
    pub is_top: bool,
    pub is_essence: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
        belongs_to = "super::user_identities::Entity",
        from = "Column::IdentityId",
        to = "super::user_identities::Column::Id",
        on_delete = "Cascade"
    )]
    UserIdentities,
    #[sea_orm(
        belongs_to = "super::circles::Entity",
        from = "Column::CircleId",
        to = "super::circles::Column::Id",
        on_delete = "Cascade"
    )]
    Circles,
    #[sea_orm(has_many = "super::comments::Entity")]
    Comments,
    #[sea_orm(has_many = "super::post_likes::Entity")]
    PostLikes,
}

impl Related<super::circles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Circles.def()
    }
}

impl Related<super::comments::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Comments.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
