//! Private messages (between two users) and circle messages (to a circle's active members), the
//! conversation list, read state, and notifications read by their owner.

use super::pagination::{cached_first_page, keyset, Direction, Page, PageRequest, SortKey};
use super::values::text;
use super::write;
use crate::auth::Viewer;
use crate::cache::{Cache, Kind as CacheKind};
use crate::error::{AppError, AppResult};
use crate::events::{emit, Event};
use chrono::{DateTime, Utc};
use entity::enums::{MessageType, UserStatus};
use entity::{circle_members, messages, notifications};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set, Statement, TransactionTrait,
};
use uuid::Uuid;

pub enum Target {
    User(Uuid),
    Circle(Uuid),
}

#[tracing::instrument(name = "messages.send", skip_all)]
/// An IMAGE or FILE message's content is the file's URL: a READY MESSAGE_FILE upload of the
/// sender's (private: read through signed URLs by the message's parties) or an external http(s)
/// URL.
pub async fn send(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    target: Target,
    content: &str,
    message_type: MessageType,
) -> AppResult<messages::Model> {
    let mut c = crate::error::Checks::default();
    let file = matches!(message_type, MessageType::Image | MessageType::File);
    let content = if file {
        c.on(super::values::url("input.content", content, 1000))
    } else {
        c.on(text("input.content", content, 1, 5000))
    };
    if message_type == MessageType::System {
        c.fail("input.messageType", "SYSTEM messages are sent by the platform only");
    }
    c.finish()?;
    let sender = super::active_user(db, viewer).await?;
    let content = if file {
        let purposes = [entity::enums::UploadPurpose::MessageFile];
        super::uploads::claim(db, storage, sender.id, "input.content", &content, &purposes).await?
    } else {
        content
    };
    let (to_user_id, circle_id, recipients) = match target {
        Target::User(to) => {
            if to == sender.id {
                return Err(AppError::bad_input("input.toUserId", "you cannot message yourself"));
            }
            let recipient = super::accounts::find_user(db, to).await?.ok_or_else(|| AppError::not_found("user"))?;
            if recipient.status == UserStatus::Banned {
                return Err(AppError::not_found("user"));
            }
            (Some(to), None, vec![to])
        }
        Target::Circle(circle) => {
            super::circles::find(db, circle).await?.ok_or_else(|| AppError::not_found("circle"))?;
            if super::circles::membership(db, circle, sender.id).await?.is_none() {
                return Err(AppError::forbidden("only members message a circle"));
            }
            let members: Vec<Uuid> = circle_members::Entity::find()
                .select_only()
                .column(circle_members::Column::UserId)
                .filter(circle_members::Column::CircleId.eq(circle))
                .filter(circle_members::Column::IsActive.eq(true))
                .into_tuple()
                .all(db)
                .await?;
            (None, Some(circle), members.into_iter().filter(|m| *m != sender.id).collect())
        }
    };
    let message = write::insert(
        db,
        messages::ActiveModel {
            id: Set(Uuid::new_v4()),
            from_user_id: Set(sender.id),
            to_user_id: Set(to_user_id),
            circle_id: Set(circle_id),
            content: Set(content),
            message_type: Set(message_type),
            is_read: Set(false),
            read_at: Set(None),
            created_at: Set(Utc::now()),
        },
    )
    .await?;
    emit(Event::Message { message: message.clone(), recipients });
    Ok(message)
}

/// Messages between the viewer and another user, or of a circle the viewer belongs to; in time
/// order (page backwards with `last` / `before`; the default is the latest 20).
pub async fn thread(
    db: &DatabaseConnection,
    viewer: &Viewer,
    target: Target,
    page: &PageRequest,
) -> AppResult<(Page<messages::Model>, Select<messages::Entity>)> {
    let me = viewer.require()?;
    let select = match target {
        Target::User(other) => messages::Entity::find().filter(messages::Column::CircleId.is_null()).filter(
            Condition::any()
                .add(
                    Condition::all().add(messages::Column::FromUserId.eq(me)).add(messages::Column::ToUserId.eq(other)),
                )
                .add(
                    Condition::all().add(messages::Column::FromUserId.eq(other)).add(messages::Column::ToUserId.eq(me)),
                ),
        ),
        Target::Circle(circle) => {
            if super::circles::membership(db, circle, me).await?.is_none() {
                return Err(AppError::forbidden("only members read a circle's messages"));
            }
            messages::Entity::find().filter(messages::Column::CircleId.eq(circle))
        }
    };
    let mut request = page.clone();
    if request.first.is_none() && request.last.is_none() {
        request.last = Some(20);
    }
    let counted = select.clone();
    let page =
        keyset(db, select, &[(messages::Column::CreatedAt, Direction::Asc)], messages::Column::Id, &request, |m| {
            (vec![SortKey::Time(m.created_at)], m.id)
        })
        .await?;
    Ok((page, counted))
}

/// Marks the private messages `from` sent the viewer as read; returns how many changed.
pub async fn mark_read(db: &DatabaseConnection, viewer: &Viewer, from: Uuid) -> AppResult<u64> {
    let me = super::active_user(db, viewer).await?.id;
    let result = write::update_many(
        db,
        messages::Entity::update_many()
            .col_expr(messages::Column::IsRead, Expr::value(true))
            .col_expr(messages::Column::ReadAt, Expr::value(Utc::now()))
            .filter(messages::Column::FromUserId.eq(from))
            .filter(messages::Column::ToUserId.eq(me))
            .filter(messages::Column::IsRead.eq(false)),
    )
    .await?;
    Ok(result)
}

/// The tags of the two conversation lists' cursors: one list's cursor is refused by the other.
const PRIVATE_LIST: &str = "conversations";
const CIRCLE_LIST: &str = "circleConversations";

/// The last message time of the `after` cursor of a conversation list tagged `list`.
fn after_time(page: &PageRequest, list: &str) -> AppResult<Option<DateTime<Utc>>> {
    let Some(cursor) = &page.after else { return Ok(None) };
    match cursor.keys.as_slice() {
        // An empty tag: a cursor issued before the tags existed.
        [SortKey::Time(at)] if cursor.order == list || cursor.order.is_empty() => Ok(Some(*at)),
        _ => Err(AppError::bad_input("after", format!("not a cursor of `{list}`"))),
    }
}

/// The cursor of a conversation list's row tagged `list`: its last message time and its id.
fn list_cursor(list: &str, at: DateTime<Utc>, id: Uuid) -> String {
    super::pagination::Cursor { keys: vec![SortKey::Time(at)], id, order: list.into() }.encode()
}

/// One conversation: the other user, the last message, how many of theirs are unread.
pub struct Conversation {
    pub partner: Uuid,
    pub last_message: messages::Model,
    pub unread: i64,
}

#[derive(FromQueryResult)]
struct ConversationRow {
    partner: Uuid,
    last_at: DateTime<Utc>,
    unread: i64,
}

/// The viewer's private conversations, most recent first (keyset on the last message's time).
pub async fn conversations(
    db: &DatabaseConnection,
    viewer: &Viewer,
    page: &PageRequest,
) -> AppResult<(Vec<(String, Conversation)>, bool)> {
    let me = viewer.require()?;
    let size = page.first.unwrap_or(20).min(100);
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = vec![me.into(), me.into(), me.into(), me.into()];
    let mut having = String::new();
    if let Some(at) = after_time(page, PRIVATE_LIST)? {
        having = " HAVING MAX(created_at) < ? OR (MAX(created_at) = ? AND partner < ?)".into();
        values.extend([at.into(), at.into(), page.after.as_ref().map(|c| c.id).into()]);
    }
    let sql = format!(
        "SELECT partner, MAX(created_at) AS last_at, \
                CAST(SUM(CASE WHEN to_user_id = ? AND is_read = FALSE THEN 1 ELSE 0 END) AS BIGINT) AS unread \
         FROM (SELECT CASE WHEN from_user_id = ? THEN to_user_id ELSE from_user_id END AS partner, \
                      created_at, to_user_id, is_read \
               FROM messages WHERE circle_id IS NULL AND (from_user_id = ? OR to_user_id = ?)) t \
         GROUP BY partner{having} ORDER BY last_at DESC, partner DESC LIMIT {}",
        size + 1
    );
    let rows =
        ConversationRow::find_by_statement(Statement::from_sql_and_values(backend, numbered(backend, &sql), values))
            .all(db)
            .await?;
    let more = rows.len() as u64 > size;
    let mut out = Vec::new();
    for row in rows.into_iter().take(size as usize) {
        let last = messages::Entity::find()
            .filter(messages::Column::CircleId.is_null())
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(messages::Column::FromUserId.eq(me))
                            .add(messages::Column::ToUserId.eq(row.partner)),
                    )
                    .add(
                        Condition::all()
                            .add(messages::Column::FromUserId.eq(row.partner))
                            .add(messages::Column::ToUserId.eq(me)),
                    ),
            )
            .filter(messages::Column::CreatedAt.eq(row.last_at))
            .one(db)
            .await?;
        if let Some(last_message) = last {
            let cursor = list_cursor(PRIVATE_LIST, row.last_at, row.partner);
            out.push((cursor, Conversation { partner: row.partner, last_message, unread: row.unread }));
        }
    }
    Ok((out, more))
}

/// One circle chat of the viewer's: the circle, its last message, how many of the others' messages
/// came after the viewer's read position.
pub struct CircleConversation {
    pub circle: Uuid,
    pub last_message: messages::Model,
    pub unread: i64,
}

#[derive(FromQueryResult)]
struct CircleConversationRow {
    circle_id: Uuid,
    last_at: DateTime<Utc>,
    unread: i64,
}

/// Where a member's unread circle messages start: the later of their read position and their
/// (re)joining. One SQL expression over `circle_members cm`.
const READ_FROM: &str = "CASE WHEN cm.last_read_at IS NULL OR cm.last_read_at < cm.joined_at \
                         THEN cm.joined_at ELSE cm.last_read_at END";

/// The chats of the circles the viewer is an active member of that have messages, most recent
/// first (keyset on the last message's time), each with its unread count: two statements a page.
pub async fn circle_conversations(
    db: &DatabaseConnection,
    viewer: &Viewer,
    page: &PageRequest,
) -> AppResult<(Vec<(String, CircleConversation)>, bool)> {
    let me = viewer.require()?;
    let size = page.first.unwrap_or(20).min(100);
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = vec![me.into(), me.into()];
    let mut having = String::new();
    if let Some(at) = after_time(page, CIRCLE_LIST)? {
        having = " HAVING MAX(m.created_at) < ? OR (MAX(m.created_at) = ? AND m.circle_id < ?)".into();
        values.extend([at.into(), at.into(), page.after.as_ref().map(|c| c.id).into()]);
    }
    let sql = format!(
        "SELECT m.circle_id AS circle_id, MAX(m.created_at) AS last_at, \
                CAST(SUM(CASE WHEN m.from_user_id <> ? AND m.created_at > {READ_FROM} THEN 1 ELSE 0 END) \
                     AS BIGINT) AS unread \
         FROM circle_members cm JOIN messages m ON m.circle_id = cm.circle_id \
         WHERE cm.user_id = ? AND cm.is_active = TRUE \
         GROUP BY m.circle_id{having} ORDER BY last_at DESC, circle_id DESC LIMIT {}",
        size + 1
    );
    let statement = Statement::from_sql_and_values(backend, numbered(backend, &sql), values);
    let rows = CircleConversationRow::find_by_statement(statement).all(db).await?;
    let more = rows.len() as u64 > size;
    let rows: Vec<CircleConversationRow> = rows.into_iter().take(size as usize).collect();
    // The last messages of the page in one statement (a message at the same instant in the same
    // circle: the greatest id, as the order of `messages` would show it last).
    let mut condition = Condition::any();
    for row in &rows {
        condition = condition.add(
            Condition::all()
                .add(messages::Column::CircleId.eq(row.circle_id))
                .add(messages::Column::CreatedAt.eq(row.last_at)),
        );
    }
    let lasts = if rows.is_empty() { Vec::new() } else { messages::Entity::find().filter(condition).all(db).await? };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let last = lasts
            .iter()
            .filter(|m| m.circle_id == Some(row.circle_id) && m.created_at == row.last_at)
            .max_by_key(|m| m.id);
        if let Some(last_message) = last {
            let cursor = list_cursor(CIRCLE_LIST, row.last_at, row.circle_id);
            let conversation =
                CircleConversation { circle: row.circle_id, last_message: last_message.clone(), unread: row.unread };
            out.push((cursor, conversation));
        }
    }
    Ok((out, more))
}

/// Moves the viewer's read position in a circle's chat to the message `through` (the last one
/// they saw), or to the circle's latest message; never backwards (two devices marking at once
/// keep the later position). Returns how many of the others' messages it marked read.
pub async fn mark_circle_read(
    db: &DatabaseConnection,
    viewer: &Viewer,
    circle: Uuid,
    through: Option<Uuid>,
) -> AppResult<u64> {
    let me = super::active_user(db, viewer).await?.id;
    let member = super::circles::membership(db, circle, me).await?.ok_or_else(|| AppError::not_found("membership"))?;
    let mut last = messages::Entity::find().filter(messages::Column::CircleId.eq(circle));
    last = match through {
        Some(id) => last.filter(messages::Column::Id.eq(id)),
        None => last.order_by_desc(messages::Column::CreatedAt),
    };
    let Some(position) = last.one(db).await?.map(|m| m.created_at) else {
        return match through {
            Some(_) => Err(AppError::bad_input("throughMessageId", "not a message of this circle")),
            None => Ok(0),
        };
    };
    // The membership row is written first (locking it on PostgreSQL, the writer on SQLite), then
    // read again: two marks at once count from the position the other left, never twice.
    let txn = db.begin().await?;
    let lock = circle_members::Entity::update_many()
        .col_expr(circle_members::Column::LastReadAt, Expr::col(circle_members::Column::LastReadAt).into())
        .filter(circle_members::Column::Id.eq(member.id));
    write::update_many(&txn, lock).await?;
    let member = circle_members::Entity::find_by_id(member.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("membership"))?;
    if member.last_read_at.is_some_and(|at| at >= position) {
        return Ok(0);
    }
    let unread = unread_in(&txn, &member, position).await?;
    write::update_many(
        &txn,
        circle_members::Entity::update_many()
            .col_expr(circle_members::Column::LastReadAt, Expr::value(position))
            .filter(circle_members::Column::Id.eq(member.id)),
    )
    .await?;
    txn.commit().await?;
    Ok(unread)
}

/// The others' messages in a member's circle after their read position, up to `until`.
async fn unread_in(db: &impl ConnectionTrait, member: &circle_members::Model, until: DateTime<Utc>) -> AppResult<u64> {
    let from = read_from(member);
    Ok(messages::Entity::find()
        .filter(messages::Column::CircleId.eq(member.circle_id))
        .filter(messages::Column::FromUserId.ne(member.user_id))
        .filter(messages::Column::CreatedAt.gt(from))
        .filter(messages::Column::CreatedAt.lte(until))
        .count(db)
        .await?)
}

/// Whether the member has read a message of their circle: their own, or one no later than their
/// read position.
pub fn read_by(member: &circle_members::Model, message: &messages::Model) -> bool {
    message.from_user_id == member.user_id || message.created_at <= read_from(member)
}

/// Where a member's unread circle messages start: the later of their read position and their
/// (re)joining (what [`READ_FROM`] says in SQL).
fn read_from(member: &circle_members::Model) -> DateTime<Utc> {
    member.last_read_at.filter(|at| *at >= member.joined_at).unwrap_or(member.joined_at)
}

/// `?` placeholders as the backend wants them (`$1, $2, ...` on PostgreSQL).
fn numbered(backend: DatabaseBackend, sql: &str) -> String {
    if backend != DatabaseBackend::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// The viewer's notifications, newest first.
pub async fn notifications(
    db: &DatabaseConnection,
    cache: &Cache,
    viewer: &Viewer,
    unread_only: bool,
    page: &PageRequest,
) -> AppResult<(Page<notifications::Model>, Select<notifications::Entity>)> {
    let me = viewer.require()?;
    let mut select = notifications::Entity::find().filter(notifications::Column::UserId.eq(me));
    if unread_only {
        select = select.filter(notifications::Column::IsRead.eq(false));
    }
    let counted = select.clone();
    let run = |page: PageRequest| {
        let select = select.clone();
        async move {
            let order = [(notifications::Column::CreatedAt, Direction::Desc)];
            keyset(db, select, &order, notifications::Column::Id, &page, |n| (vec![SortKey::Time(n.created_at)], n.id))
                .await
        }
    };
    let page = if unread_only {
        run(page.clone()).await?
    } else {
        cached_first_page(cache, (CacheKind::Notifications, me), page, run).await?
    };
    Ok((page, counted))
}

/// Marks one of the viewer's notifications read (others' are NOT_FOUND).
pub async fn mark_notification_read(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<notifications::Model> {
    let me = viewer.require()?;
    let notification = notifications::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|n| n.user_id == me)
        .ok_or_else(|| AppError::not_found("notification"))?;
    if notification.is_read {
        return Ok(notification);
    }
    let mut active: notifications::ActiveModel = notification.into();
    active.is_read = Set(true);
    active.read_at = Set(Some(Utc::now()));
    Ok(write::update(db, active).await?)
}

pub async fn mark_all_notifications_read(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<u64> {
    let me = viewer.require()?;
    let txn = db.begin().await?;
    let result = write::update_many(
        &txn,
        notifications::Entity::update_many()
            .col_expr(notifications::Column::IsRead, Expr::value(true))
            .col_expr(notifications::Column::ReadAt, Expr::value(Utc::now()))
            .filter(notifications::Column::UserId.eq(me))
            .filter(notifications::Column::IsRead.eq(false)),
    )
    .await?;
    txn.commit().await?;
    Ok(result)
}

/// How many messages to the viewer are unread: private ones not marked read, and the others'
/// messages in their circles after their read position (one statement).
pub async fn unread_messages(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<u64> {
    #[derive(FromQueryResult)]
    struct Unread {
        unread: i64,
    }
    let me = viewer.require()?;
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT CAST((SELECT COUNT(*) FROM messages WHERE to_user_id = ? AND is_read = FALSE) + \
                     (SELECT COUNT(*) FROM circle_members cm JOIN messages m ON m.circle_id = cm.circle_id \
                      WHERE cm.user_id = ? AND cm.is_active = TRUE AND m.from_user_id <> ? \
                        AND m.created_at > {READ_FROM}) AS BIGINT) AS unread"
    );
    let statement = Statement::from_sql_and_values(backend, numbered(backend, &sql), [me.into(), me.into(), me.into()]);
    let row = Unread::find_by_statement(statement).one(db).await?;
    Ok(row.map_or(0, |r| r.unread.max(0) as u64))
}

/// How many of the viewer's notifications are unread (cached per user; every notification sent
/// to them or marked read drops it).
pub async fn unread_notifications(
    db: &(impl ConnectionTrait + TransactionTrait),
    cache: &Cache,
    viewer: &Viewer,
) -> AppResult<u64> {
    let me = viewer.require()?;
    let count = cache
        .load_one(CacheKind::UnreadNotifications, me, || async {
            let unread = notifications::Entity::find()
                .filter(notifications::Column::UserId.eq(me))
                .filter(notifications::Column::IsRead.eq(false))
                .count(db)
                .await?;
            Ok::<_, AppError>(Some(unread))
        })
        .await?;
    Ok(count.unwrap_or(0))
}
