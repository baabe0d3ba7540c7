//! `circle_members`: a user's membership (through one identity) and role in a circle.

use crate::enums::MemberRole;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "circle_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub circle_id: Uuid,
    pub user_id: Uuid,
    pub identity_id: Uuid,
    pub role: MemberRole,
    pub joined_at: DateTimeUtc,
    pub is_active: bool,
    /// Set when a moderator removed the member with a ban: they cannot join again until it is lifted.
    pub banned_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub ban_reason: Option<String>,
    /// How far the member has read the circle's chat (added to the design; null: nothing read since
    /// joining).
    pub last_read_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::circles::Entity",
        from = "Column::CircleId",
        to = "super::circles::Column::Id",
        on_delete = "Cascade"
    )]
    Circles,
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

impl Related<super::circles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Circles.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
