//! `user_identities`: a user's master or apprentice identity in one domain, with its verification.

use crate::enums::{IdentityStatus, IdentityType, StringList, VerificationStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "user_identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub identity_type: IdentityType,
    pub domain: String,
    pub status: IdentityStatus,
    pub verification_status: VerificationStatus,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub verification_documents: Option<StringList>,
    /// Why an admin rejected the application (kept until the next decision).
    #[sea_orm(column_type = "Text", nullable)]
    pub rejection_reason: Option<String>,
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
    #[sea_orm(has_one = "super::user_profiles::Entity")]
    UserProfiles,
    #[sea_orm(has_many = "super::courses::Entity")]
    Courses,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::user_profiles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserProfiles.def()
    }
}

impl Related<super::courses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Courses.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
