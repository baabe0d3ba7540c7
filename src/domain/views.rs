//! Post view counts without a write per read: views are tallied in memory and flushed as one
//! `UPDATE posts SET view_count = view_count + n` per post every few seconds (and on shutdown).
//! Each instance adds only its own deltas, so several instances add up correctly.

use super::write;
use crate::error::AppResult;
use entity::posts;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

#[derive(Default)]
pub struct ViewCounter {
    pending: Mutex<HashMap<Uuid, i32>>,
}

impl ViewCounter {
    pub fn record(&self, post_id: Uuid) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending.entry(post_id).or_default() += 1;
        }
    }

    /// Writes the tallied views; returns the posts it updated (their cached copies are then
    /// dropped). Views whose write fails are put back for the next flush.
    pub async fn flush(&self, db: &DatabaseConnection) -> AppResult<Vec<Uuid>> {
        let batch: HashMap<Uuid, i32> = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(Vec::new()),
        };
        let mut written = Vec::with_capacity(batch.len());
        for (post_id, views) in &batch {
            let counted = posts::Entity::update_many()
                .col_expr(posts::Column::ViewCount, Expr::col(posts::Column::ViewCount).add(*views))
                .filter(posts::Column::Id.eq(*post_id));
            let result = write::update_many(db, counted).await;
            match result {
                Ok(_) => written.push(*post_id),
                Err(error) => {
                    tracing::warn!(%post_id, error = %error, "view count flush failed; retrying later");
                    if let Ok(mut pending) = self.pending.lock() {
                        *pending.entry(*post_id).or_default() += views;
                    }
                }
            }
        }
        Ok(written)
    }
}
