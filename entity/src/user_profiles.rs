//! `user_profiles`: the public profile of one identity (name, bio, skills, hourly rate, links).

use crate::enums::StringList;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "user_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    #[sea_orm(unique)]
    pub identity_id: Uuid,
    pub name: String,
    pub avatar: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub bio: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub skills: Option<StringList>,
    pub experience_years: i32,
    #[sea_orm(column_type = "Decimal(Some((10, 2)))", nullable)]
    pub hourly_rate: Option<Decimal>,
    pub location: Option<String>,
    pub website: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub social_links: Option<Json>,
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
}

impl Related<super::user_identities::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserIdentities.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
