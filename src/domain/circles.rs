//! Circles and their membership: creation by an active identity (which becomes the circle's
//! admin), roles, joins and leaves with `member_count` kept equal to the active members.

use super::audit::{self, Actor};
use super::notify::{self, Kind, Notice};
use super::pagination::{keyset, ChildList, Direction, Page, PageRequest, SortKey};
use super::values::{optional_text, optional_url, string_list, text};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::enums::{CircleStatus, IdentityStatus, MemberRole, StringList};
use entity::{circle_members, circles, user_identities, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, Select, Set, TransactionTrait,
};
use serde_json::json;
use std::net::IpAddr;
use uuid::Uuid;

#[derive(Default)]
pub struct CircleInput {
    pub identity_id: Option<Uuid>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub domain: Option<String>,
    pub rules: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub avatar: Option<Option<String>>,
}

#[derive(Default)]
pub struct CircleFilter {
    pub domain: Option<String>,
    pub tag: Option<String>,
    /// Only circles this user is an active member of (`myCircles`).
    pub member: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircleOrder {
    Members,
    Newest,
}

pub async fn find(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<circles::Model>> {
    Ok(circles::Entity::find_by_id(id).one(db).await?)
}

/// The viewer's active membership of a circle.
pub async fn membership(
    db: &(impl ConnectionTrait + TransactionTrait),
    circle_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<circle_members::Model>> {
    Ok(circle_members::Entity::find()
        .filter(circle_members::Column::CircleId.eq(circle_id))
        .filter(circle_members::Column::UserId.eq(user_id))
        .filter(circle_members::Column::IsActive.eq(true))
        .one(db)
        .await?)
}

/// A user's membership row of a circle in any state (left, removed, banned).
async fn membership_row(
    db: &(impl ConnectionTrait + TransactionTrait),
    circle_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<circle_members::Model>> {
    Ok(circle_members::Entity::find()
        .filter(circle_members::Column::CircleId.eq(circle_id))
        .filter(circle_members::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// An active identity of the viewer (posting, joining and creating happen through one).
pub async fn own_active_identity(
    db: &(impl ConnectionTrait + TransactionTrait),
    user: &users::Model,
    id: Uuid,
    field: &str,
) -> AppResult<user_identities::Model> {
    let identity = super::identities::find(db, id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    if identity.user_id != user.id {
        return Err(AppError::forbidden("that identity is not yours"));
    }
    if identity.status != IdentityStatus::Active {
        return Err(AppError::bad_input(field, "the identity is not active"));
    }
    Ok(identity)
}

/// Whether the user moderates the circle (circle moderator or admin, or platform admin).
pub async fn moderates(
    db: &(impl ConnectionTrait + TransactionTrait),
    user: &users::Model,
    circle_id: Uuid,
) -> AppResult<bool> {
    if user.role == entity::enums::UserRole::Admin {
        return Ok(true);
    }
    Ok(membership(db, circle_id, user.id).await?.is_some_and(|m| m.role != MemberRole::Member))
}

async fn lock_circle(txn: &DatabaseTransaction, id: Uuid) -> AppResult<()> {
    write::update_many(
        txn,
        circles::Entity::update_many()
            .col_expr(circles::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(circles::Column::Id.eq(id)),
    )
    .await?;
    Ok(())
}

#[tracing::instrument(name = "circles.create", skip_all)]
pub async fn create(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    input: CircleInput,
) -> AppResult<circles::Model> {
    let mut c = Checks::default();
    let identity_id =
        c.on(input.identity_id.ok_or_else(|| AppError::bad_input("input.identityId", "is required")).map(Some));
    let name = c.on(text("input.name", input.name.as_deref().unwrap_or_default(), 1, 100));
    let description = c.on(optional_text("input.description", input.description.flatten(), 5000));
    let domain = c.on(text("input.domain", input.domain.as_deref().unwrap_or_default(), 1, 100)).to_lowercase();
    let rules = c.on(optional_text("input.rules", input.rules.flatten(), 5000));
    let tags = c.on(string_list("input.tags", input.tags.unwrap_or_default(), 20, 50));
    let avatar = c.on(optional_url("input.avatar", input.avatar.flatten(), 500));
    c.finish()?;
    let identity_id = identity_id.ok_or_else(|| AppError::bad_input("input.identityId", "is required"))?;
    let user = super::active_user(db, viewer).await?;
    let identity = own_active_identity(db, &user, identity_id, "input.identityId").await?;
    let avatar = super::uploads::claim_optional(db, storage, user.id, "input.avatar", Some(avatar), CIRCLE_AVATAR)
        .await?
        .flatten();
    let now = Utc::now();
    let txn = db.begin().await?;
    super::domains::hold_active(&txn, &domain, "input.domain").await?;
    let circle = write::insert(
        &txn,
        circles::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name),
            description: Set(description),
            domain: Set(domain),
            created_by: Set(identity.id),
            status: Set(CircleStatus::Active),
            member_count: Set(1),
            post_count: Set(0),
            avatar: Set(avatar),
            rules: Set(rules),
            tags: Set(Some(StringList(tags))),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    write::insert(
        &txn,
        circle_members::ActiveModel {
            id: Set(Uuid::new_v4()),
            circle_id: Set(circle.id),
            user_id: Set(user.id),
            identity_id: Set(identity.id),
            role: Set(MemberRole::Admin),
            joined_at: Set(now),
            is_active: Set(true),
            banned_at: Set(None),
            ban_reason: Set(None),
            last_read_at: Set(None),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(circle)
}

/// The circle, if the viewer administers it (circle admin or platform admin).
async fn administered(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<(users::Model, circles::Model)> {
    let user = super::active_user(db, viewer).await?;
    let circle = find(db, id).await?.ok_or_else(|| AppError::not_found("circle"))?;
    let is_admin = user.role == entity::enums::UserRole::Admin
        || membership(db, id, user.id).await?.is_some_and(|m| m.role == MemberRole::Admin);
    if !is_admin {
        return Err(AppError::forbidden("circle admins only"));
    }
    // Every caller changes the circle (or its members).
    Ok((user, circle))
}

#[tracing::instrument(name = "circles.update", skip_all, fields(circle = %id))]
pub async fn update(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    id: Uuid,
    input: CircleInput,
) -> AppResult<circles::Model> {
    if input.identity_id.is_some() || input.domain.is_some() {
        return Err(AppError::bad_input("input", "a circle's creator and domain do not change"));
    }
    let mut c = Checks::default();
    let name = c.on(input.name.as_deref().map(|n| text("input.name", n, 1, 100)).transpose());
    let description = c.on(input.description.map(|v| optional_text("input.description", v, 5000)).transpose());
    let rules = c.on(input.rules.map(|v| optional_text("input.rules", v, 5000)).transpose());
    let tags = c.on(input.tags.map(|t| string_list("input.tags", t, 20, 50)).transpose());
    let avatar = c.on(input.avatar.map(|v| optional_url("input.avatar", v, 500)).transpose());
    c.finish()?;
    let (_, circle) = administered(db, viewer, id).await?;
    if circle.status == CircleStatus::Archived {
        return Err(AppError::Conflict { field: None, message: "an archived circle cannot be edited".into() });
    }
    let avatar =
        super::uploads::claim_optional(db, storage, viewer.require()?, "input.avatar", avatar, CIRCLE_AVATAR).await?;
    let old_avatar = circle.avatar.clone();
    let mut active: circles::ActiveModel = circle.into();
    if let Some(v) = name {
        active.name = Set(v);
    }
    if let Some(v) = description {
        active.description = Set(v);
    }
    if let Some(v) = rules {
        active.rules = Set(v);
    }
    if let Some(v) = tags {
        active.tags = Set(Some(StringList(v)));
    }
    if let Some(v) = &avatar {
        active.avatar = Set(v.clone());
    }
    active.updated_at = Set(Utc::now());
    let updated = write::update(db, active).await?;
    super::uploads::release_replaced(db, storage, CIRCLE_AVATAR, old_avatar.as_deref(), &avatar).await?;
    Ok(updated)
}

/// Archives a circle: it stays readable, takes no new members, posts or comments. Idempotent.
#[tracing::instrument(name = "circles.archive", skip_all, fields(circle = %id))]
pub async fn archive(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<circles::Model> {
    let (_, circle) = administered(db, viewer, id).await?;
    if circle.status == CircleStatus::Archived {
        return Ok(circle);
    }
    let mut active: circles::ActiveModel = circle.into();
    active.status = Set(CircleStatus::Archived);
    active.updated_at = Set(Utc::now());
    Ok(write::update(db, active).await?)
}

fn ensure_open(circle: &circles::Model) -> AppResult<()> {
    if circle.status != CircleStatus::Active {
        return Err(AppError::Conflict { field: Some("circleId".into()), message: "the circle is not active".into() });
    }
    Ok(())
}

/// Joins with one of the viewer's active identities. Already a member: returns the membership.
#[tracing::instrument(name = "circles.join", skip_all, fields(circle = %circle_id))]
pub async fn join(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle_id: Uuid,
    identity_id: Uuid,
) -> AppResult<circle_members::Model> {
    let user = super::active_user(db, viewer).await?;
    let identity = own_active_identity(db, &user, identity_id, "identityId").await?;
    let circle = find(db, circle_id).await?.ok_or_else(|| AppError::not_found("circle"))?;
    if let Some(member) = membership(db, circle_id, user.id).await? {
        return Ok(member);
    }
    ensure_open(&circle)?;
    let txn = db.begin().await?;
    // A write first: on SQLite a transaction that reads before it writes can lose its snapshot to
    // a concurrent writer; on PostgreSQL this takes the circle row whose counter moves anyway.
    lock_circle(&txn, circle_id).await?;
    let now = Utc::now();
    // The unique (circle, user) key decides concurrent joins of one user.
    let previous = membership_row(&txn, circle_id, user.id).await?;
    let joined = match previous {
        Some(old) if old.banned_at.is_some() => {
            return Err(AppError::forbidden("you are banned from this circle"));
        }
        Some(old) => {
            let moved = write::update_many(
                &txn,
                circle_members::Entity::update_many()
                    .col_expr(circle_members::Column::IsActive, Expr::value(true))
                    .col_expr(circle_members::Column::Role, Expr::value(MemberRole::Member.as_str()))
                    .col_expr(circle_members::Column::IdentityId, Expr::value(identity.id))
                    .col_expr(circle_members::Column::JoinedAt, Expr::value(now))
                    .filter(circle_members::Column::Id.eq(old.id))
                    .filter(circle_members::Column::IsActive.eq(false))
                    .filter(circle_members::Column::BannedAt.is_null()),
            )
            .await?;
            moved == 1
        }
        None => {
            let row = circle_members::ActiveModel {
                id: Set(Uuid::new_v4()),
                circle_id: Set(circle_id),
                user_id: Set(user.id),
                identity_id: Set(identity.id),
                role: Set(MemberRole::Member),
                joined_at: Set(now),
                is_active: Set(true),
                banned_at: Set(None),
                ban_reason: Set(None),
                last_read_at: Set(None),
            };
            write::insert_new(&txn, row, [circle_members::Column::CircleId, circle_members::Column::UserId]).await?
        }
    };
    if joined {
        write::update_many(
            &txn,
            circles::Entity::update_many()
                .col_expr(circles::Column::MemberCount, Expr::col(circles::Column::MemberCount).add(1))
                .filter(circles::Column::Id.eq(circle_id)),
        )
        .await?;
    }
    txn.commit().await?;
    membership(db, circle_id, user.id).await?.ok_or_else(|| AppError::not_found("membership"))
}

async fn active_admins(db: &(impl ConnectionTrait + TransactionTrait), circle_id: Uuid) -> AppResult<u64> {
    Ok(circle_members::Entity::find()
        .filter(circle_members::Column::CircleId.eq(circle_id))
        .filter(circle_members::Column::IsActive.eq(true))
        .filter(circle_members::Column::Role.eq(MemberRole::Admin.as_str()))
        .count(db)
        .await?)
}

async fn one_member_fewer(txn: &DatabaseTransaction, circle_id: Uuid) -> AppResult<()> {
    write::update_many(
        txn,
        circles::Entity::update_many()
            .col_expr(circles::Column::MemberCount, Expr::col(circles::Column::MemberCount).sub(1))
            .filter(circles::Column::Id.eq(circle_id))
            .filter(circles::Column::MemberCount.gt(0)),
    )
    .await?;
    Ok(())
}

/// Leaves a circle. The last admin cannot leave (hand the role on first).
#[tracing::instrument(name = "circles.leave", skip_all, fields(circle = %circle_id))]
pub async fn leave(db: &DatabaseConnection, viewer: &Viewer, circle_id: Uuid) -> AppResult<circle_members::Model> {
    let user = super::active_user(db, viewer).await?;
    find(db, circle_id).await?.ok_or_else(|| AppError::not_found("circle"))?;
    let txn = db.begin().await?;
    lock_circle(&txn, circle_id).await?;
    let Some(member) = membership(&txn, circle_id, user.id).await? else {
        return Err(AppError::not_found("membership"));
    };
    if member.role == MemberRole::Admin && active_admins(&txn, circle_id).await? <= 1 {
        return Err(AppError::Conflict {
            field: None,
            message: "the last admin cannot leave; make another member admin first".into(),
        });
    }
    let moved = write::update_many(
        &txn,
        circle_members::Entity::update_many()
            .col_expr(circle_members::Column::IsActive, Expr::value(false))
            .filter(circle_members::Column::Id.eq(member.id))
            .filter(circle_members::Column::IsActive.eq(true)),
    )
    .await?;
    if moved == 1 {
        one_member_fewer(&txn, circle_id).await?;
    }
    let left = circle_members::Entity::find_by_id(member.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("membership"))?;
    txn.commit().await?;
    Ok(left)
}

/// Circle admins set a member's role; the last admin cannot be demoted. The member is notified;
/// audited.
#[tracing::instrument(name = "circles.set_role", skip_all, fields(circle = %circle_id))]
pub async fn set_role(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle_id: Uuid,
    user_id: Uuid,
    role: MemberRole,
    ip: Option<IpAddr>,
) -> AppResult<circle_members::Model> {
    let (actor, circle) = administered(db, viewer, circle_id).await?;
    let txn = db.begin().await?;
    lock_circle(&txn, circle_id).await?;
    let member = membership(&txn, circle_id, user_id).await?.ok_or_else(|| AppError::not_found("membership"))?;
    if member.role == role {
        return Ok(member);
    }
    if member.role == MemberRole::Admin && active_admins(&txn, circle_id).await? <= 1 {
        return Err(AppError::Conflict {
            field: Some("role".into()),
            message: "the last admin cannot be demoted".into(),
        });
    }
    let old = json!({ "id": member.id, "circle_id": circle_id, "user_id": user_id, "role": member.role.as_str() });
    let mut active: circle_members::ActiveModel = member.into();
    active.role = Set(role);
    let member = write::update(&txn, active).await?;
    let new = json!({ "id": member.id, "circle_id": circle_id, "user_id": user_id, "role": role.as_str() });
    audit::updated(&txn, Actor { user_id: actor.id, ip }, "circle_members", old, new).await?;
    notify::send(
        &txn,
        Notice {
            user_id,
            kind: Kind::RoleChanged,
            title: format!("You are now {} of {}", role.as_str(), circle.name),
            content: None,
            related_id: Some(circle_id),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(member)
}

fn rank(role: MemberRole) -> u8 {
    match role {
        MemberRole::Member => 0,
        MemberRole::Moderator => 1,
        MemberRole::Admin => 2,
    }
}

/// Moderators remove a member below their own role (platform admins anyone but themselves), and
/// with `ban` keep them from joining again until `unbanMember`. Audited; idempotent.
#[tracing::instrument(name = "circles.remove_member", skip_all, fields(circle = %circle_id))]
pub async fn remove_member(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle_id: Uuid,
    user_id: Uuid,
    ban: bool,
    reason: Option<String>,
    ip: Option<IpAddr>,
) -> AppResult<circle_members::Model> {
    let reason = optional_text("reason", reason, 1000)?;
    let actor = super::active_user(db, viewer).await?;
    find(db, circle_id).await?.ok_or_else(|| AppError::not_found("circle"))?;
    if actor.id == user_id {
        return Err(AppError::bad_input("userId", "use leaveCircle to leave a circle yourself"));
    }
    let txn = db.begin().await?;
    lock_circle(&txn, circle_id).await?;
    // Roles read under the circle's lock: a moderator demoted meanwhile no longer removes anyone.
    let actor_rank = if actor.role == entity::enums::UserRole::Admin {
        3
    } else {
        match membership(&txn, circle_id, actor.id).await? {
            Some(m) if m.role != MemberRole::Member => rank(m.role),
            _ => return Err(AppError::forbidden("circle moderators only")),
        }
    };
    let member = membership_row(&txn, circle_id, user_id).await?.ok_or_else(|| AppError::not_found("membership"))?;
    if rank(member.role) >= actor_rank {
        return Err(AppError::forbidden("you can only remove members below your own role"));
    }
    if member.is_active && member.role == MemberRole::Admin && active_admins(&txn, circle_id).await? <= 1 {
        return Err(AppError::Conflict {
            field: Some("userId".into()),
            message: "the circle's last admin cannot be removed; make another member admin first".into(),
        });
    }
    let banned = ban || member.banned_at.is_some();
    if !member.is_active && banned == member.banned_at.is_some() {
        return Ok(member);
    }
    let mut update = circle_members::Entity::update_many()
        .col_expr(circle_members::Column::IsActive, Expr::value(false))
        .col_expr(circle_members::Column::Role, Expr::value(MemberRole::Member.as_str()))
        .filter(circle_members::Column::Id.eq(member.id));
    if ban && member.banned_at.is_none() {
        update = update
            .col_expr(circle_members::Column::BannedAt, Expr::value(Utc::now()))
            .col_expr(circle_members::Column::BanReason, Expr::value(reason.clone()));
    }
    write::update_many(&txn, update).await?;
    if member.is_active {
        one_member_fewer(&txn, circle_id).await?;
    }
    let old = json!({
        "id": member.id, "circle_id": circle_id, "user_id": user_id, "role": member.role.as_str(),
        "is_active": member.is_active, "banned": member.banned_at.is_some(),
    });
    let new = json!({
        "id": member.id, "circle_id": circle_id, "user_id": user_id, "role": MemberRole::Member.as_str(),
        "is_active": false, "banned": banned, "reason": reason,
    });
    audit::updated(&txn, Actor { user_id: actor.id, ip }, "circle_members", old, new).await?;
    let member = circle_members::Entity::find_by_id(member.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("membership"))?;
    txn.commit().await?;
    Ok(member)
}

/// Circle admins (and platform admins) lift a ban: the user may join again. Audited; idempotent.
#[tracing::instrument(name = "circles.unban_member", skip_all, fields(circle = %circle_id))]
pub async fn unban_member(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle_id: Uuid,
    user_id: Uuid,
    ip: Option<IpAddr>,
) -> AppResult<circle_members::Model> {
    let (actor, _) = administered(db, viewer, circle_id).await?;
    let member = membership_row(db, circle_id, user_id).await?.ok_or_else(|| AppError::not_found("membership"))?;
    if member.banned_at.is_none() {
        return Ok(member);
    }
    let txn = db.begin().await?;
    let lifted = write::update_many(
        &txn,
        circle_members::Entity::update_many()
            .col_expr(circle_members::Column::BannedAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .col_expr(circle_members::Column::BanReason, Expr::value(Option::<String>::None))
            .filter(circle_members::Column::Id.eq(member.id))
            .filter(circle_members::Column::BannedAt.is_not_null()),
    )
    .await?;
    if lifted == 1 {
        let old = json!({ "id": member.id, "circle_id": circle_id, "user_id": user_id, "banned": true });
        let new = json!({ "id": member.id, "circle_id": circle_id, "user_id": user_id, "banned": false });
        audit::updated(&txn, Actor { user_id: actor.id, ip }, "circle_members", old, new).await?;
    }
    let member = circle_members::Entity::find_by_id(member.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("membership"))?;
    txn.commit().await?;
    Ok(member)
}

const CIRCLE_AVATAR: entity::enums::UploadPurpose = entity::enums::UploadPurpose::CircleAvatar;

/// Active circles, filtered and ordered.
pub async fn list(
    db: &DatabaseConnection,
    filter: CircleFilter,
    order: CircleOrder,
    direction: Direction,
    page: &PageRequest,
) -> AppResult<(Page<circles::Model>, Select<circles::Entity>)> {
    let mut select = circles::Entity::find().filter(circles::Column::Status.eq(CircleStatus::Active.as_str()));
    if let Some(domain) = filter.domain {
        select = select.filter(circles::Column::Domain.eq(domain.trim().to_lowercase()));
    }
    if let Some(tag) = filter.tag {
        let contains = super::courses::json_array_contains(db.get_database_backend(), "circles.tags", tag.trim());
        select = select.filter(Condition::all().add(contains));
    }
    if let Some(user_id) = filter.member {
        select = select.filter(
            circles::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(circle_members::Column::CircleId)
                    .from(circle_members::Entity)
                    .and_where(circle_members::Column::UserId.eq(user_id))
                    .and_where(circle_members::Column::IsActive.eq(true))
                    .to_owned(),
            ),
        );
    }
    let counted = select.clone();
    let page = match order {
        CircleOrder::Members => {
            keyset(db, select, &[(circles::Column::MemberCount, direction)], circles::Column::Id, page, |c| {
                (vec![SortKey::Int(c.member_count.into())], c.id)
            })
            .await?
        }
        CircleOrder::Newest => {
            keyset(db, select, &[(circles::Column::CreatedAt, direction)], circles::Column::Id, page, |c| {
                (vec![SortKey::Time(c.created_at)], c.id)
            })
            .await?
        }
    };
    Ok((page, counted))
}

/// A circle's active members, earliest first.
pub fn member_list() -> ChildList<circle_members::Entity> {
    ChildList {
        parent: circle_members::Column::CircleId,
        condition: Condition::all().add(circle_members::Column::IsActive.eq(true)),
        sort: vec![(circle_members::Column::JoinedAt, Direction::Asc)],
        id: circle_members::Column::Id,
        key_of: |m| vec![SortKey::Time(m.joined_at)],
        id_of: |m| m.id,
    }
}
