//! `uploads` (added to the design): a file a user sends to object storage. `object_key` is where
//! the bytes are; `variants` the resized images (`{"256": key, ...}`); `attached_at` is set when a
//! row refers to it (an avatar, a post's media), so the sweeper can delete what nothing uses.

use crate::enums::{UploadPurpose, UploadStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub purpose: UploadPurpose,
    pub status: UploadStatus,
    /// Declared at `createUpload`; the sniffed type once READY.
    pub content_type: String,
    /// Declared at `createUpload`; the stored size once checked.
    pub byte_size: i64,
    pub file_name: String,
    pub object_key: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub variants: Option<Json>,
    pub reject_reason: Option<String>,
    pub attached_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
