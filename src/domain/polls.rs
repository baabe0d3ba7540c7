//! Polls: a POLL post's choices (2 to 10, set when it is posted) and one vote per person and poll.
//! Of concurrent votes by one person the unique key on (post, user) lets one in; the option's
//! `vote_count` moves in the same transaction as the vote it counts, so counts equal the rows.

use super::values::text;
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use chrono::Utc;
use entity::enums::{ContentStatus, PostType};
use entity::{poll_options, poll_votes, posts};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

pub const MIN_OPTIONS: usize = 2;
pub const MAX_OPTIONS: usize = 10;
pub const MAX_LABEL_CHARS: usize = 100;

/// A POLL post's options (required, distinct, in order); any other post takes none.
pub fn validate_options(post_type: PostType, options: Vec<String>) -> AppResult<Vec<String>> {
    if post_type != PostType::Poll {
        if !options.is_empty() {
            return Err(AppError::bad_input("input.pollOptions", "only a POLL post has options"));
        }
        return Ok(options);
    }
    if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&options.len()) {
        return Err(AppError::bad_input(
            "input.pollOptions",
            format!("a poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options"),
        ));
    }
    let mut labels: Vec<String> = Vec::with_capacity(options.len());
    for (i, option) in options.iter().enumerate() {
        let label = text(&format!("input.pollOptions.{i}"), option, 1, MAX_LABEL_CHARS)?;
        if labels.iter().any(|l| l.to_lowercase() == label.to_lowercase()) {
            return Err(AppError::bad_input(format!("input.pollOptions.{i}"), "options must differ"));
        }
        labels.push(label);
    }
    Ok(labels)
}

/// Writes a new poll's options (in the transaction that creates its post).
pub async fn insert_options(txn: &DatabaseTransaction, post_id: Uuid, labels: Vec<String>) -> AppResult<()> {
    for (position, label) in labels.into_iter().enumerate() {
        let row = poll_options::ActiveModel {
            id: Set(Uuid::new_v4()),
            post_id: Set(post_id),
            position: Set(position as i32),
            label: Set(label),
            vote_count: Set(0),
        };
        write::insert(txn, row).await?;
    }
    Ok(())
}

/// The viewer votes `option_id` in the poll `post_id` (members of its circle, once). The same vote
/// again is a no-op; another option after voting is CONFLICT.
#[tracing::instrument(name = "polls.vote", skip_all, fields(post = %post_id))]
pub async fn vote(db: &DatabaseConnection, viewer: &Viewer, post_id: Uuid, option_id: Uuid) -> AppResult<posts::Model> {
    let post = super::posts::find(db, post_id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    if post.post_type != PostType::Poll {
        return Err(AppError::bad_input("postId", "this post is not a poll"));
    }
    let option = poll_options::Entity::find_by_id(option_id).one(db).await?;
    if option.is_none_or(|o| o.post_id != post_id) {
        return Err(AppError::bad_input("optionId", "not an option of this poll"));
    }
    let (user, _) = super::posts::acting_member(db, viewer, post.circle_id).await?;
    let txn = db.begin().await?;
    // The vote row first (its unique key decides), then the option's count.
    let row = poll_votes::ActiveModel {
        id: Set(Uuid::new_v4()),
        post_id: Set(post_id),
        option_id: Set(option_id),
        user_id: Set(user.id),
        created_at: Set(Utc::now()),
    };
    let voted = write::insert_new(&txn, row, [poll_votes::Column::PostId, poll_votes::Column::UserId]).await?;
    if voted {
        write::update_many(
            &txn,
            poll_options::Entity::update_many()
                .col_expr(poll_options::Column::VoteCount, Expr::col(poll_options::Column::VoteCount).add(1))
                .filter(poll_options::Column::Id.eq(option_id)),
        )
        .await?;
    } else {
        let earlier = poll_votes::Entity::find()
            .filter(poll_votes::Column::PostId.eq(post_id))
            .filter(poll_votes::Column::UserId.eq(user.id))
            .one(&txn)
            .await?;
        if earlier.is_some_and(|v| v.option_id != option_id) {
            return Err(AppError::Conflict {
                field: Some("optionId".into()),
                message: "you already voted in this poll".into(),
            });
        }
    }
    txn.commit().await?;
    Ok(post)
}
