//! `circles`: communities run by an identity, with denormalized member and post counters.

use crate::enums::{CircleStatus, StringList};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "circles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    pub domain: String,
    pub created_by: Uuid,
    pub status: CircleStatus,
    pub member_count: i32,
    pub post_count: i32,
    pub avatar: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rules: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub tags: Option<StringList>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user_identities::Entity",
        from = "Column::CreatedBy",
        to = "super::user_identities::Column::Id"
    )]
    Creator,
    #[sea_orm(has_many = "super::circle_members::Entity")]
    CircleMembers,
    #[sea_orm(has_many = "super::posts::Entity")]
    Posts,
}

impl Related<super::circle_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CircleMembers.def()
    }
}

impl Related<super::posts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Posts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
