//! Added to the design for a circle's posts read oldest first (or least liked first) with the pinned
//! posts still on top: `is_top DESC` ahead of ascending columns, an order neither
//! `idx_posts_circle_latest` nor `idx_posts_circle_hot` (migration 14) gives in either scan
//! direction.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns)
const INDEXES: &[(&str, &str, &str)] = &[
    ("idx_posts_circle_pinned_oldest", "posts", "circle_id, status, is_top DESC, created_at, id"),
    ("idx_posts_circle_pinned_least_liked", "posts", "circle_id, status, is_top DESC, like_count, created_at, id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::create(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::drop(manager, INDEXES).await
    }
}
