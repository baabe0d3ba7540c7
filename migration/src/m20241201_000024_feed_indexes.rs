//! Added to the design for the viewer's feed (which, unlike a circle's posts, has no pinned-first). The
//! feed is the newest (or most liked) posts of every circle the viewer belongs to, read on
//! PostgreSQL as one index range per circle (`JOIN LATERAL`): newest first uses
//! `idx_posts_circle_id_status_created_at_id` (migration 4), most liked needs the same range over
//! `like_count` without the pinned flag in front, which `idx_posts_circle_hot` has.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns)
const INDEXES: &[(&str, &str, &str)] =
    &[("idx_posts_circle_liked", "posts", "circle_id, status, like_count, created_at, id")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::create(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::drop(manager, INDEXES).await
    }
}
