//! Posts, threaded comments and likes in circles, and the feeds. Counters (`post_count`,
//! `comment_count`, `like_count`) move in the same transaction as the rows they count, and every
//! transaction starts with a write (see `circles::join` for why).

use super::audit::{self, Actor};
use super::circles::{self, membership, moderates, own_active_identity};
use super::notify::{self, Kind, Notice};
use super::pagination::{
    cached_id_page, keyset_merged, primed_rows, ChildList, Cursor, Direction, Page, PageRequest, Sort, SortKey,
    CACHED_PREFIX,
};
use super::values::{text, url_list};
use super::write;
use crate::auth::Viewer;
use crate::cache::{Cache, Kind as CacheKind};
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::enums::{CircleStatus, ContentStatus, PostType, StringList, UploadPurpose};
use entity::{circle_members, circles as circle_table, comment_likes, comments, post_likes, posts, users};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use uuid::Uuid;

pub const MAX_POST_CHARS: usize = 10_000;
pub const MAX_COMMENT_CHARS: usize = 5_000;
pub const MAX_MEDIA: usize = 9;

pub struct NewPost {
    pub circle_id: Uuid,
    pub identity_id: Uuid,
    pub content: String,
    pub post_type: PostType,
    pub media_urls: Vec<String>,
    /// A POLL post's options.
    pub poll_options: Vec<String>,
}

pub struct NewComment {
    pub post_id: Uuid,
    pub identity_id: Uuid,
    pub content: String,
    pub parent_id: Option<Uuid>,
}

/// What a list of posts is sorted by (the id breaks ties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostSort {
    /// By creation time.
    Latest,
    /// By likes, then creation time.
    Hot,
}

/// How a list of posts is ordered: by what, which way, and whether pinned posts come first (in
/// either direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PostOrder {
    pub by: PostSort,
    pub direction: Direction,
    pub pinned_first: bool,
}

impl PostOrder {
    /// A circle's page as it opens: pinned first, then newest.
    pub const CIRCLE_DEFAULT: Self = Self { by: PostSort::Latest, direction: Direction::Desc, pinned_first: true };
    /// Newest first, pinned posts with the rest: the feed's default order.
    pub const NEWEST: Self = Self { by: PostSort::Latest, direction: Direction::Desc, pinned_first: false };
}

pub async fn find(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<posts::Model>> {
    Ok(posts::Entity::find_by_id(id).one(db).await?)
}

/// The post as the viewer may see it: active for everyone, hidden for the circle's moderators,
/// deleted for nobody.
pub async fn get(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<Option<posts::Model>> {
    let Some(post) = find(db, id).await? else { return Ok(None) };
    visible(db, viewer, post).await
}

/// `post` if the viewer may see it (see [`get`]); for a post already loaded (e.g. cached).
pub async fn visible(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    post: posts::Model,
) -> AppResult<Option<posts::Model>> {
    match post.status {
        ContentStatus::Active => Ok(Some(post)),
        ContentStatus::Deleted => Ok(None),
        ContentStatus::Hidden => {
            let Some(user_id) = viewer.optional()? else { return Ok(None) };
            let Some(user) = super::accounts::find_user(db, user_id).await? else { return Ok(None) };
            Ok(moderates(db, &user, post.circle_id).await?.then_some(post))
        }
    }
}

/// `comment` if the viewer may see it: its post is visible to them, and a hidden comment only to
/// the circle's moderators (a deleted one reads "deleted", as in its thread).
pub async fn visible_comment(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    comment: comments::Model,
) -> AppResult<Option<comments::Model>> {
    let Some(post) = find(db, comment.post_id).await? else { return Ok(None) };
    let Some(post) = visible(db, viewer, post).await? else { return Ok(None) };
    if comment.status != ContentStatus::Hidden {
        return Ok(Some(comment));
    }
    let Some(user_id) = viewer.optional()? else { return Ok(None) };
    let Some(user) = super::accounts::find_user(db, user_id).await? else { return Ok(None) };
    Ok(moderates(db, &user, post.circle_id).await?.then_some(comment))
}

/// The viewer, if an active member of an active circle (posting, commenting and liking need it).
pub(super) async fn acting_member(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle_id: Uuid,
) -> AppResult<(users::Model, circle_table::Model)> {
    let user = super::active_user(db, viewer).await?;
    let circle = circles::find(db, circle_id).await?.ok_or_else(|| AppError::not_found("circle"))?;
    if membership(db, circle_id, user.id).await?.is_none() {
        return Err(AppError::forbidden("join the circle first"));
    }
    if circle.status != CircleStatus::Active {
        return Err(AppError::Conflict { field: None, message: "the circle is archived".into() });
    }
    Ok((user, circle))
}

fn validate_media(post_type: PostType, media: Vec<String>) -> AppResult<Vec<String>> {
    let media = url_list("input.mediaUrls", media, MAX_MEDIA)?;
    if matches!(post_type, PostType::Image | PostType::Video | PostType::Link) && media.is_empty() {
        return Err(AppError::bad_input(
            "input.mediaUrls",
            format!("a {} post needs at least one URL", post_type.as_str()),
        ));
    }
    Ok(media)
}

#[tracing::instrument(name = "posts.create", skip_all, fields(circle = %input.circle_id))]
pub async fn create(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    input: NewPost,
) -> AppResult<posts::Model> {
    let mut c = Checks::default();
    let content = c.on(text("input.content", &input.content, 1, MAX_POST_CHARS));
    let media = c.on(validate_media(input.post_type, input.media_urls));
    let poll = c.on(super::polls::validate_options(input.post_type, input.poll_options));
    c.finish()?;
    let (user, _) = acting_member(db, viewer, input.circle_id).await?;
    let identity = own_active_identity(db, &user, input.identity_id, "input.identityId").await?;
    let media =
        super::uploads::claim_all(db, storage, user.id, "input.mediaUrls", &media, UploadPurpose::PostImage).await?;
    let txn = db.begin().await?;
    write::update_many(
        &txn,
        circle_table::Entity::update_many()
            .col_expr(circle_table::Column::PostCount, Expr::col(circle_table::Column::PostCount).add(1))
            .filter(circle_table::Column::Id.eq(input.circle_id)),
    )
    .await?;
    let now = Utc::now();
    let post = write::insert(
        &txn,
        posts::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user.id),
            identity_id: Set(identity.id),
            circle_id: Set(input.circle_id),
            content: Set(content),
            media_urls: Set(Some(StringList(media))),
            post_type: Set(input.post_type),
            status: Set(ContentStatus::Active),
            like_count: Set(0),
            comment_count: Set(0),
            share_count: Set(0),
            view_count: Set(0),
            is_top: Set(false),
            is_essence: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    super::polls::insert_options(&txn, post.id, poll).await?;
    txn.commit().await?;
    Ok(post)
}

/// The author edits their own active post.
#[tracing::instrument(name = "posts.update", skip_all, fields(post = %id))]
pub async fn update(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    id: Uuid,
    content: Option<String>,
    media: Option<Vec<String>>,
) -> AppResult<posts::Model> {
    let mut c = Checks::default();
    let content = c.on(content.as_deref().map(|raw| text("input.content", raw, 1, MAX_POST_CHARS)).transpose());
    let user = super::active_user(db, viewer).await?;
    let post =
        find(db, id).await?.filter(|p| p.status == ContentStatus::Active).ok_or_else(|| AppError::not_found("post"))?;
    if post.user_id != user.id {
        return Err(AppError::forbidden("only the author edits a post"));
    }
    let media = c.on(media.map(|m| validate_media(post.post_type, m)).transpose());
    c.finish()?;
    let media = match media {
        Some(media) => Some(
            super::uploads::claim_all(db, storage, user.id, "input.mediaUrls", &media, UploadPurpose::PostImage)
                .await?,
        ),
        None => None,
    };
    let old_media = post.media_urls.clone().map(|list| list.0).unwrap_or_default();
    let mut active: posts::ActiveModel = post.into();
    if let Some(v) = content {
        active.content = Set(v);
    }
    if let Some(v) = &media {
        active.media_urls = Set(Some(StringList(v.clone())));
    }
    active.updated_at = Set(Utc::now());
    let updated = write::update(db, active).await?;
    if let Some(media) = &media {
        let dropped = old_media.iter().filter(|url| !media.contains(url)).map(String::as_str);
        super::uploads::release(db, storage, entity::enums::UploadPurpose::PostImage, dropped).await?;
    }
    Ok(updated)
}

/// Moves a circle's `post_count` by `step` (never below zero), in the transaction that moved a
/// post into or out of it.
async fn move_post_count(txn: &sea_orm::DatabaseTransaction, circle_id: Uuid, step: i32) -> AppResult<()> {
    let mut update = circle_table::Entity::update_many()
        .col_expr(circle_table::Column::PostCount, Expr::col(circle_table::Column::PostCount).add(step))
        .filter(circle_table::Column::Id.eq(circle_id));
    if step < 0 {
        update = update.filter(circle_table::Column::PostCount.gt(0));
    }
    write::update_many(txn, update).await?;
    Ok(())
}

/// Moves an active post to `to` (deleted or hidden) and takes it out of the circle's count; a
/// moderator's move is audited.
async fn retire(
    db: &DatabaseConnection,
    post: &posts::Model,
    to: ContentStatus,
    moderator: Option<Actor>,
) -> AppResult<posts::Model> {
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        posts::Entity::update_many()
            .col_expr(posts::Column::Status, Expr::value(to.as_str()))
            .col_expr(posts::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(posts::Column::Id.eq(post.id))
            .filter(posts::Column::Status.eq(ContentStatus::Active.as_str())),
    )
    .await?;
    if moved == 1 {
        move_post_count(&txn, post.circle_id, -1).await?;
        if let Some(actor) = moderator {
            let (old, new) = (status_of(post.id, ContentStatus::Active), status_of(post.id, to));
            audit::updated(&txn, actor, "posts", old, new).await?;
        }
    } else if to == ContentStatus::Deleted && post.status == ContentStatus::Hidden {
        // A hidden post (already out of the count) may still be deleted by its author; only while
        // it is hidden (a moderator may have brought it back into the count meanwhile).
        let moved = write::update_many(
            &txn,
            posts::Entity::update_many()
                .col_expr(posts::Column::Status, Expr::value(to.as_str()))
                .filter(posts::Column::Id.eq(post.id))
                .filter(posts::Column::Status.eq(ContentStatus::Hidden.as_str())),
        )
        .await?;
        if moved != 1 {
            return Err(AppError::Conflict { field: None, message: "the post changed meanwhile; try again".into() });
        }
    }
    let post = find(&txn, post.id).await?.ok_or_else(|| AppError::not_found("post"))?;
    txn.commit().await?;
    Ok(post)
}

/// Soft delete by the author: gone from lists and counts.
#[tracing::instrument(name = "posts.delete", skip_all, fields(post = %id))]
pub async fn delete(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<posts::Model> {
    let user = super::active_user(db, viewer).await?;
    let post = find(db, id)
        .await?
        .filter(|p| p.status != ContentStatus::Deleted)
        .ok_or_else(|| AppError::not_found("post"))?;
    if post.user_id != user.id {
        return Err(AppError::forbidden("only the author deletes a post"));
    }
    retire(db, &post, ContentStatus::Deleted, None).await
}

/// The post and the viewer, if the viewer moderates its circle.
async fn moderated(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<(users::Model, posts::Model)> {
    let user = super::active_user(db, viewer).await?;
    let post = find(db, id)
        .await?
        .filter(|p| p.status != ContentStatus::Deleted)
        .ok_or_else(|| AppError::not_found("post"))?;
    if !moderates(db, &user, post.circle_id).await? {
        return Err(AppError::forbidden("circle moderators only"));
    }
    Ok((user, post))
}

fn status_of(id: Uuid, status: ContentStatus) -> serde_json::Value {
    json!({ "id": id, "status": status.as_str() })
}

/// Moderators hide a post: only moderators see it afterwards. Idempotent; audited.
#[tracing::instrument(name = "posts.hide", skip_all, fields(post = %id))]
pub async fn hide(db: &DatabaseConnection, viewer: &Viewer, id: Uuid, ip: Option<IpAddr>) -> AppResult<posts::Model> {
    let (user, post) = moderated(db, viewer, id).await?;
    if post.status == ContentStatus::Hidden {
        return Ok(post);
    }
    retire(db, &post, ContentStatus::Hidden, Some(Actor { user_id: user.id, ip })).await
}

/// Moderators bring a hidden post back (into lists and the circle's count). Idempotent; audited.
#[tracing::instrument(name = "posts.unhide", skip_all, fields(post = %id))]
pub async fn unhide(db: &DatabaseConnection, viewer: &Viewer, id: Uuid, ip: Option<IpAddr>) -> AppResult<posts::Model> {
    let (user, post) = moderated(db, viewer, id).await?;
    if post.status == ContentStatus::Active {
        return Ok(post);
    }
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        posts::Entity::update_many()
            .col_expr(posts::Column::Status, Expr::value(ContentStatus::Active.as_str()))
            .col_expr(posts::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(posts::Column::Id.eq(post.id))
            .filter(posts::Column::Status.eq(ContentStatus::Hidden.as_str())),
    )
    .await?;
    if moved == 1 {
        move_post_count(&txn, post.circle_id, 1).await?;
        let (old, new) = (status_of(post.id, ContentStatus::Hidden), status_of(post.id, ContentStatus::Active));
        audit::updated(&txn, Actor { user_id: user.id, ip }, "posts", old, new).await?;
    }
    let post = find(&txn, post.id).await?.ok_or_else(|| AppError::not_found("post"))?;
    txn.commit().await?;
    Ok(post)
}

#[derive(Debug, Clone, Copy)]
pub enum Flag {
    Pinned,
    Essence,
}

/// Moderators pin a post (shown first) or mark it essence.
#[tracing::instrument(name = "posts.flag", skip_all, fields(post = %id))]
pub async fn set_flag(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    flag: Flag,
    on: bool,
) -> AppResult<posts::Model> {
    let (_, post) = moderated(db, viewer, id).await?;
    let mut active: posts::ActiveModel = post.into();
    match flag {
        Flag::Pinned => active.is_top = Set(on),
        Flag::Essence => active.is_essence = Set(on),
    }
    Ok(write::update(db, active).await?)
}

#[tracing::instrument(name = "posts.comment", skip_all, fields(post = %input.post_id))]
/// `fanout` (the `features.notification_fanout` switch) says whether the post's author and the
/// parent's are notified.
pub async fn add_comment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    input: NewComment,
    fanout: bool,
) -> AppResult<comments::Model> {
    let mut c = Checks::default();
    let content = c.on(text("input.content", &input.content, 1, MAX_COMMENT_CHARS));
    let post = find(db, input.post_id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    let parent = match input.parent_id {
        None => None,
        Some(parent_id) => {
            let parent = comments::Entity::find_by_id(parent_id)
                .one(db)
                .await?
                .filter(|c| c.status != ContentStatus::Hidden)
                .ok_or_else(|| AppError::not_found("comment"))?;
            if parent.post_id != post.id {
                c.fail("input.parentId", "the parent comment belongs to another post");
            }
            Some(parent)
        }
    };
    let (user, _) = acting_member(db, viewer, post.circle_id).await?;
    let identity = c.on(own_active_identity(db, &user, input.identity_id, "input.identityId").await.map(Some));
    c.finish()?;
    let Some(identity) = identity else { return Err(AppError::bad_input("input.identityId", "is required")) };
    let txn = db.begin().await?;
    let counted = write::update_many(
        &txn,
        posts::Entity::update_many()
            .col_expr(posts::Column::CommentCount, Expr::col(posts::Column::CommentCount).add(1))
            .filter(posts::Column::Id.eq(post.id))
            .filter(posts::Column::Status.eq(ContentStatus::Active.as_str())),
    )
    .await?;
    if counted != 1 {
        return Err(AppError::not_found("post"));
    }
    let now = Utc::now();
    let comment = write::insert(
        &txn,
        comments::ActiveModel {
            id: Set(Uuid::new_v4()),
            post_id: Set(post.id),
            user_id: Set(user.id),
            identity_id: Set(identity.id),
            content: Set(content),
            parent_id: Set(parent.as_ref().map(|p| p.id)),
            reply_to_user_id: Set(parent.as_ref().map(|p| p.user_id)),
            like_count: Set(0),
            status: Set(ContentStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    if fanout && post.user_id != user.id {
        let title = "New comment on your post".to_string();
        notify::send(
            &txn,
            Notice {
                user_id: post.user_id,
                kind: Kind::PostCommented,
                title,
                content: Some(excerpt(&comment.content)),
                related_id: Some(post.id),
            },
        )
        .await?;
    }
    if let Some(parent) = parent.filter(|p| fanout && p.user_id != user.id && p.user_id != post.user_id) {
        let title = "New reply to your comment".to_string();
        notify::send(
            &txn,
            Notice {
                user_id: parent.user_id,
                kind: Kind::CommentReplied,
                title,
                content: Some(excerpt(&comment.content)),
                related_id: Some(post.id),
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(comment)
}

/// The author edits a comment's text (active comments only: a deleted or hidden one stays as it is).
#[tracing::instrument(name = "posts.update_comment", skip_all, fields(comment = %id))]
pub async fn update_comment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    content: &str,
) -> AppResult<comments::Model> {
    let content = text("content", content, 1, MAX_COMMENT_CHARS)?;
    let user = super::active_user(db, viewer).await?;
    let comment = comments::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|c| c.status != ContentStatus::Hidden || c.user_id == user.id)
        .ok_or_else(|| AppError::not_found("comment"))?;
    if comment.user_id != user.id {
        return Err(AppError::forbidden("only the author edits a comment"));
    }
    if comment.status != ContentStatus::Active {
        return Err(AppError::Conflict {
            field: None,
            message: format!("a {} comment cannot be edited", comment.status.as_str()),
        });
    }
    // As for commenting: an active post, and its author still an active member of an active circle.
    let post = find(db, comment.post_id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    acting_member(db, viewer, post.circle_id).await?;
    let moved = write::update_many(
        db,
        comments::Entity::update_many()
            .col_expr(comments::Column::Content, Expr::value(content))
            .col_expr(comments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(comments::Column::Id.eq(id))
            .filter(comments::Column::Status.eq(ContentStatus::Active.as_str())),
    )
    .await?;
    if moved != 1 {
        return Err(AppError::Conflict { field: None, message: "the comment changed meanwhile".into() });
    }
    comments::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("comment"))
}

/// Counts a share of a post the viewer can see (`share_count` + 1, one conditional update, so
/// concurrent shares all count and a deleted post counts none).
#[tracing::instrument(name = "posts.share", skip_all, fields(post = %id))]
pub async fn share(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<posts::Model> {
    super::active_user(db, viewer).await?;
    get(db, viewer, id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    let moved = write::update_many(
        db,
        posts::Entity::update_many()
            .col_expr(posts::Column::ShareCount, Expr::col(posts::Column::ShareCount).add(1))
            .filter(posts::Column::Id.eq(id))
            .filter(posts::Column::Status.eq(ContentStatus::Active.as_str())),
    )
    .await?;
    if moved != 1 {
        return Err(AppError::not_found("post"));
    }
    find(db, id).await?.ok_or_else(|| AppError::not_found("post"))
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(140).collect();
    if text.chars().count() > 140 {
        out.push('…');
    }
    out
}

/// Soft delete by the author or a moderator (a moderator's is audited): the thread stays
/// readable ("deleted" body).
#[tracing::instrument(name = "posts.delete_comment", skip_all, fields(comment = %id))]
pub async fn delete_comment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    ip: Option<IpAddr>,
) -> AppResult<comments::Model> {
    let user = super::active_user(db, viewer).await?;
    let comment = comments::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("comment"))?;
    let post = find(db, comment.post_id).await?.ok_or_else(|| AppError::not_found("post"))?;
    if comment.user_id != user.id && !moderates(db, &user, post.circle_id).await? {
        return Err(AppError::forbidden("only the author or a moderator deletes a comment"));
    }
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        comments::Entity::update_many()
            .col_expr(comments::Column::Status, Expr::value(ContentStatus::Deleted.as_str()))
            .col_expr(comments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(comments::Column::Id.eq(id))
            .filter(comments::Column::Status.eq(ContentStatus::Active.as_str())),
    )
    .await?;
    if moved == 1 {
        write::update_many(
            &txn,
            posts::Entity::update_many()
                .col_expr(posts::Column::CommentCount, Expr::col(posts::Column::CommentCount).sub(1))
                .filter(posts::Column::Id.eq(comment.post_id))
                .filter(posts::Column::CommentCount.gt(0)),
        )
        .await?;
        if comment.user_id != user.id {
            let (old, new) = (status_of(id, ContentStatus::Active), status_of(id, ContentStatus::Deleted));
            audit::updated(&txn, Actor { user_id: user.id, ip }, "comments", old, new).await?;
        }
    } else {
        // A hidden comment is already out of the count: deleting it only marks it (so a later
        // unhide cannot bring back what its author deleted).
        let moved = write::update_many(
            &txn,
            comments::Entity::update_many()
                .col_expr(comments::Column::Status, Expr::value(ContentStatus::Deleted.as_str()))
                .col_expr(comments::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(comments::Column::Id.eq(id))
                .filter(comments::Column::Status.eq(ContentStatus::Hidden.as_str())),
        )
        .await?;
        if moved == 1 && comment.user_id != user.id {
            let (old, new) = (status_of(id, ContentStatus::Hidden), status_of(id, ContentStatus::Deleted));
            audit::updated(&txn, Actor { user_id: user.id, ip }, "comments", old, new).await?;
        }
    }
    let comment = comments::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("comment"))?;
    txn.commit().await?;
    Ok(comment)
}

/// Moderators hide a comment (out of the thread and the post's count) or bring it back; the
/// author cannot undo a hide. Idempotent; audited.
#[tracing::instrument(name = "posts.moderate_comment", skip_all, fields(comment = %id))]
pub async fn set_comment_hidden(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    hidden: bool,
    ip: Option<IpAddr>,
) -> AppResult<comments::Model> {
    let user = super::active_user(db, viewer).await?;
    let comment = comments::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|c| c.status != ContentStatus::Deleted)
        .ok_or_else(|| AppError::not_found("comment"))?;
    let post = find(db, comment.post_id).await?.ok_or_else(|| AppError::not_found("post"))?;
    if !moderates(db, &user, post.circle_id).await? {
        return Err(AppError::forbidden("circle moderators only"));
    }
    let (from, to, step) = if hidden {
        (ContentStatus::Active, ContentStatus::Hidden, -1)
    } else {
        (ContentStatus::Hidden, ContentStatus::Active, 1)
    };
    if comment.status == to {
        return Ok(comment);
    }
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        comments::Entity::update_many()
            .col_expr(comments::Column::Status, Expr::value(to.as_str()))
            .col_expr(comments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(comments::Column::Id.eq(id))
            .filter(comments::Column::Status.eq(from.as_str())),
    )
    .await?;
    if moved == 1 {
        let mut count = posts::Entity::update_many()
            .col_expr(posts::Column::CommentCount, Expr::col(posts::Column::CommentCount).add(step))
            .filter(posts::Column::Id.eq(comment.post_id));
        if step < 0 {
            count = count.filter(posts::Column::CommentCount.gt(0));
        }
        write::update_many(&txn, count).await?;
        audit::updated(&txn, Actor { user_id: user.id, ip }, "comments", status_of(id, from), status_of(id, to))
            .await?;
    }
    let comment = comments::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("comment"))?;
    txn.commit().await?;
    Ok(comment)
}

/// Likes a post (idempotent): the like row and the counter move together; a repeat does nothing.
#[tracing::instrument(name = "posts.like", skip_all, fields(post = %post_id))]
/// `fanout` says whether the author is notified (collapsed to one notice an hour).
pub async fn like_post(
    db: &DatabaseConnection,
    viewer: &Viewer,
    post_id: Uuid,
    like: bool,
    fanout: bool,
) -> AppResult<posts::Model> {
    let post = find(db, post_id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    let (user, _) = acting_member(db, viewer, post.circle_id).await?;
    let txn = db.begin().await?;
    let row = post_likes::ActiveModel {
        id: Set(Uuid::new_v4()),
        post_id: Set(post_id),
        user_id: Set(user.id),
        created_at: Set(Utc::now()),
    };
    let key = [(post_likes::Column::PostId, post_id), (post_likes::Column::UserId, user.id)];
    let counter = (posts::Column::LikeCount, posts::Column::Id, post_id);
    let changed = write::toggle_mark::<_, posts::Entity>(&txn, like, row, key, counter).await?;
    if changed && fanout && like && post.user_id != user.id {
        let notice = Notice {
            user_id: post.user_id,
            kind: Kind::PostLiked,
            title: "Your post got likes".into(),
            content: Some(excerpt(&post.content)),
            related_id: Some(post_id),
        };
        notify::send_collapsed(&txn, notice, chrono::Duration::hours(1)).await?;
    }
    let post = find(&txn, post_id).await?.ok_or_else(|| AppError::not_found("post"))?;
    txn.commit().await?;
    Ok(post)
}

/// Likes or unlikes a comment (idempotent).
#[tracing::instrument(name = "posts.like_comment", skip_all, fields(comment = %comment_id))]
pub async fn like_comment(
    db: &DatabaseConnection,
    viewer: &Viewer,
    comment_id: Uuid,
    like: bool,
) -> AppResult<comments::Model> {
    let comment = comments::Entity::find_by_id(comment_id)
        .one(db)
        .await?
        .filter(|c| c.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("comment"))?;
    let post = find(db, comment.post_id)
        .await?
        .filter(|p| p.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("post"))?;
    let (user, _) = acting_member(db, viewer, post.circle_id).await?;
    let txn = db.begin().await?;
    let row = comment_likes::ActiveModel {
        id: Set(Uuid::new_v4()),
        comment_id: Set(comment_id),
        user_id: Set(user.id),
        created_at: Set(Utc::now()),
    };
    let key = [(comment_likes::Column::CommentId, comment_id), (comment_likes::Column::UserId, user.id)];
    let counter = (comments::Column::LikeCount, comments::Column::Id, comment_id);
    write::toggle_mark::<_, comments::Entity>(&txn, like, row, key, counter).await?;
    let comment =
        comments::Entity::find_by_id(comment_id).one(&txn).await?.ok_or_else(|| AppError::not_found("comment"))?;
    txn.commit().await?;
    Ok(comment)
}

/// The sort columns of a post ordering and how to read their values off a row.
type PostKeys = (Vec<Sort<posts::Column>>, fn(&posts::Model) -> Vec<SortKey>);

/// Pinned posts first is `is_top DESC` whichever way the rest is read; each order has its index
/// (migrations 4, 14, 24 and 25).
fn post_keys(order: PostOrder) -> PostKeys {
    let d = order.direction;
    let (mut sort, key_of): PostKeys = match (order.by, order.pinned_first) {
        (PostSort::Latest, true) => {
            (vec![(posts::Column::CreatedAt, d)], |p| vec![SortKey::Bool(p.is_top), SortKey::Time(p.created_at)])
        }
        (PostSort::Hot, true) => (vec![(posts::Column::LikeCount, d), (posts::Column::CreatedAt, d)], |p| {
            vec![SortKey::Bool(p.is_top), SortKey::Int(p.like_count.into()), SortKey::Time(p.created_at)]
        }),
        (PostSort::Latest, false) => (vec![(posts::Column::CreatedAt, d)], |p| vec![SortKey::Time(p.created_at)]),
        (PostSort::Hot, false) => (vec![(posts::Column::LikeCount, d), (posts::Column::CreatedAt, d)], |p| {
            vec![SortKey::Int(p.like_count.into()), SortKey::Time(p.created_at)]
        }),
    };
    if order.pinned_first {
        sort.insert(0, (posts::Column::IsTop, Direction::Desc));
    }
    (sort, key_of)
}

/// A circle's active posts in `order`.
pub fn circle_post_list(order: PostOrder) -> ChildList<posts::Entity> {
    let (sort, key_of) = post_keys(order);
    ChildList {
        parent: posts::Column::CircleId,
        condition: Condition::all().add(posts::Column::Status.eq(ContentStatus::Active.as_str())),
        sort,
        id: posts::Column::Id,
        key_of,
        id_of: |p| p.id,
    }
}

/// A page of a circle's posts, `load` reading it from the database (batched across circles by the
/// caller). Two orders have their first page cached: the one a circle's page opens with
/// ([`PostOrder::CIRCLE_DEFAULT`], under `CircleFeed`) and newest first ([`PostOrder::NEWEST`],
/// under `CircleNewest`, which the viewers' feeds are merged from); the others are read as asked
/// (a HOT order moves with every like).
pub async fn circle_posts<F, Fut>(
    db: &DatabaseConnection,
    cache: &Cache,
    circle_id: Uuid,
    order: PostOrder,
    page: &PageRequest,
    load: F,
) -> AppResult<Page<posts::Model>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = AppResult<Page<posts::Model>>>,
{
    let kind = match order {
        PostOrder::CIRCLE_DEFAULT => CacheKind::CircleFeed,
        PostOrder::NEWEST => CacheKind::CircleNewest,
        _ => return load(page.clone()).await,
    };
    cached_id_page::<posts::Entity, _, _>(cache, db, (kind, circle_id), CacheKind::Post, page, |p| p.id, None, load)
        .await
}

/// The viewer's feed: active posts of the circles they are an active member of, in `order`
/// (pinned posts are their circle's, so the feed ignores `pinned_first`).
/// Keyset cursors: posts created while a client pages never shift the pages it has not read yet.
/// Its first page, newest first, is merged from the cache where it can be
/// ([`merged_first_page`]); the rest is read from the database.
pub async fn feed(
    db: &DatabaseConnection,
    cache: &Cache,
    viewer: &Viewer,
    order: PostOrder,
    page: &PageRequest,
) -> AppResult<(Page<posts::Model>, sea_orm::Select<posts::Entity>)> {
    let user_id = viewer.require()?;
    let circles = Query::select()
        .expr_as(Expr::col(circle_members::Column::CircleId), Alias::new("id"))
        .from(circle_members::Entity)
        .and_where(circle_members::Column::UserId.eq(user_id))
        .and_where(circle_members::Column::IsActive.eq(true))
        .to_owned();
    let active = posts::Entity::find().filter(posts::Column::Status.eq(ContentStatus::Active.as_str()));
    let counted = active.clone().filter(posts::Column::CircleId.in_subquery(circles.clone()));
    let order = PostOrder { pinned_first: false, ..order };
    if order == PostOrder::NEWEST {
        if let Some(page) = merged_first_page(db, cache, (user_id, &circles), page).await? {
            return Ok((page, counted));
        }
    }
    let (columns, key) = post_keys(order);
    let (parent, id) = (posts::Column::CircleId, posts::Column::Id);
    let page = keyset_merged(db, active, parent, circles, &columns, id, page, |p| (key(p), p.id)).await?;
    Ok((page, counted))
}

/// The most circles a feed's first page is merged from in memory; a viewer in more reads it from
/// the database.
const MERGED_CIRCLES: usize = 64;

/// The first page of a viewer's feed, newest first, merged from what the cache keeps: the circles
/// they are a member of (`members`, kept as [`CacheKind::MemberCircles`]) and each circle's newest posts
/// ([`CacheKind::CircleNewest`], the list `circle_posts` keeps for that order). So the feed needs
/// no entry of its own, and follows every post and membership change through those. The merge is
/// exact: a post missing from its circle's kept page has at least a page (20) of newer posts
/// there, so it is in no first page of the feed. The circles' cursors are the feed's (the same
/// sort columns and directions). `None` (read the database) for another page, when the cache is
/// off, or for a viewer in more than [`MERGED_CIRCLES`] circles.
async fn merged_first_page(
    db: &DatabaseConnection,
    cache: &Cache,
    (user_id, members): (Uuid, &sea_orm::sea_query::SelectStatement),
    page: &PageRequest,
) -> AppResult<Option<Page<posts::Model>>> {
    if !cache.is_enabled() || !page.within_cached_prefix() {
        return Ok(None);
    }
    let circles: Vec<Uuid> = cache
        .load_one(CacheKind::MemberCircles, user_id, || async {
            let rows = db.query_all(db.get_database_backend().build(members)).await?;
            let circles = rows.iter().map(|row| row.try_get::<Uuid>("", "id")).collect::<Result<Vec<_>, _>>()?;
            Ok::<_, AppError>(Some(circles))
        })
        .await?
        .unwrap_or_default();
    if circles.len() > MERGED_CIRCLES {
        return Ok(None);
    }
    // The circles' newest posts, as `circle_posts` keeps them; the rows read for those not kept
    // prime the posts' own entries.
    let read: std::sync::Mutex<HashMap<Uuid, posts::Model>> = std::sync::Mutex::default();
    let lists: HashMap<Uuid, Page<Uuid>> = cache
        .load_many(CacheKind::CircleNewest, &circles, |missing| {
            let read = &read;
            async move {
                let list = circle_post_list(PostOrder::NEWEST);
                let pages = list.pages(db, &missing, &PageRequest::first(CACHED_PREFIX)).await?;
                let mut ids = HashMap::with_capacity(pages.len());
                for (circle, page) in pages {
                    if let Ok(mut read) = read.lock() {
                        read.extend(page.rows.iter().map(|(_, post)| (post.id, post.clone())));
                    }
                    ids.insert(circle, page.map(|post| post.id));
                }
                Ok::<_, AppError>(ids)
            }
        })
        .await?;
    // Merged newest first, each list's cursor decoded when it comes up: (created at, id, list,
    // position) of each list's next post.
    let lists: Vec<Page<Uuid>> = lists.into_values().collect();
    type Head = (chrono::DateTime<Utc>, Uuid, usize, usize);
    // `Err`: a kept cursor that does not hold one time (never issued so): read the database.
    let head = |list: usize, position: usize| -> Result<Option<Head>, ()> {
        let Some((cursor, id)) = lists[list].rows.get(position) else { return Ok(None) };
        match Cursor::decode("after", cursor).map_err(|_| ())?.keys.as_slice() {
            [SortKey::Time(at)] => Ok(Some((*at, *id, list, position))),
            _ => Err(()),
        }
    };
    let Ok(heads) = (0..lists.len()).map(|list| head(list, 0)).collect::<Result<Vec<_>, ()>>() else {
        return Ok(None);
    };
    let mut heads: Vec<Head> = heads.into_iter().flatten().collect();
    let size = page.size() as usize;
    let mut merged: Vec<(String, Uuid)> = Vec::with_capacity(size);
    while merged.len() < size {
        let Some(newest) = (0..heads.len()).max_by_key(|&i| (heads[i].0, heads[i].1)) else { break };
        let (_, id, list, position) = heads[newest];
        merged.push((lists[list].rows[position].0.clone(), id));
        match head(list, position + 1) {
            Ok(Some(next)) => heads[newest] = next,
            Ok(None) => {
                heads.swap_remove(newest);
            }
            Err(()) => return Ok(None),
        }
    }
    let has_next_page = !heads.is_empty() || lists.iter().any(|list| list.has_next_page);
    let wanted: Vec<Uuid> = merged.iter().map(|(_, id)| *id).collect();
    let mut rows = primed_rows::<posts::Entity>(cache, db, CacheKind::Post, &wanted, &read).await?;
    // A post deleted since its circle's page was kept is left out (its deletion drops that page).
    let rows = merged.into_iter().filter_map(|(cursor, id)| Some((cursor, rows.remove(&id)?))).collect();
    Ok(Some(Page { rows, has_next_page, has_previous_page: false, cards: Vec::new() }))
}

/// A page of a post's comments, `load` reading it from the database (batched across posts by the
/// caller); the first page of all of them (the thread, oldest first) is cached, as ids: the
/// comments come from their own entries, so an edit or a like does not drop the page.
pub async fn comment_page<F, Fut>(
    db: &DatabaseConnection,
    cache: &Cache,
    post_id: Uuid,
    top_level: bool,
    page: &PageRequest,
    load: F,
) -> AppResult<Page<comments::Model>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = AppResult<Page<comments::Model>>>,
{
    if top_level {
        return load(page.clone()).await;
    }
    let list = (CacheKind::PostComments, post_id);
    cached_id_page::<comments::Entity, _, _>(cache, db, list, CacheKind::Comment, page, |c| c.id, None, load).await
}

/// A post's comments in thread order (oldest first), deleted ones included (they read "deleted").
pub fn comment_list() -> ChildList<comments::Entity> {
    post_comment_list(false)
}

/// A post's comments oldest first: all of them (a flat thread), or only those that answer the
/// post itself (`top_level`; their replies come through [`reply_list`]).
pub fn post_comment_list(top_level: bool) -> ChildList<comments::Entity> {
    let mut condition = Condition::all().add(comments::Column::Status.ne(ContentStatus::Hidden.as_str()));
    if top_level {
        condition = condition.add(comments::Column::ParentId.is_null());
    }
    ChildList {
        parent: comments::Column::PostId,
        condition,
        sort: vec![(comments::Column::CreatedAt, Direction::Asc)],
        id: comments::Column::Id,
        key_of: |c| vec![SortKey::Time(c.created_at)],
        id_of: |c| c.id,
    }
}

/// A comment's direct replies, oldest first (hidden ones left out, deleted ones kept as
/// "deleted" so the thread below them stays readable).
pub fn reply_list() -> ChildList<comments::Entity> {
    ChildList {
        parent: comments::Column::ParentId,
        condition: Condition::all().add(comments::Column::Status.ne(ContentStatus::Hidden.as_str())),
        sort: vec![(comments::Column::CreatedAt, Direction::Asc)],
        id: comments::Column::Id,
        key_of: |c| vec![SortKey::Time(c.created_at)],
        id_of: |c| c.id,
    }
}
