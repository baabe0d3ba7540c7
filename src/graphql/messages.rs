//! Messages, notifications and the live subscriptions over GraphQL.

use super::accounts::User;
use super::circles::Circle;
use super::context::{loaders, state, viewer};
use super::id_arg;
use super::pagination::{connection, page_request, Conn, ConnectionFields};
use crate::domain::messages::{self, Target};
use crate::error::AppError;
use crate::events::{Event, EventBus};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, Result, Subscription, ID};
use chrono::{DateTime, Utc};
use entity::enums::MessageType;
use entity::{messages as message_table, notifications as notification_table};
use futures_util::{Stream, StreamExt};

/// A private or circle message.
pub struct Message(pub message_table::Model);

/// A private message between two users, or a message in a circle's chat.
#[Object]
impl Message {
    /// The message's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The text, or the file's URL for IMAGE and FILE messages (a file uploaded here: a signed URL
    /// that works for a short while; ask again for a fresh one).
    async fn content(&self, ctx: &Context<'_>) -> Result<String> {
        if matches!(self.0.message_type, MessageType::Image | MessageType::File) {
            return Ok(crate::domain::uploads::readable_url(
                &state(ctx)?.storage,
                &self.0.content,
                entity::enums::UploadPurpose::MessageFile,
            ));
        }
        Ok(self.0.content.clone())
    }
    /// TEXT, IMAGE, FILE or SYSTEM.
    async fn message_type(&self) -> MessageType {
        self.0.message_type
    }
    /// Whether you have read it. A private message: its recipient marked it read
    /// (`markMessagesRead`; for its sender, whether the recipient did). A circle message: it is
    /// yours or no later than your read position in that circle (`markCircleMessagesRead`).
    async fn is_read(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(circle) = self.0.circle_id else { return Ok(self.0.is_read) };
        let Some(me) = viewer(ctx).optional()? else { return Ok(false) };
        let member = loaders(ctx)?.memberships.load_one((me, circle)).await.map_err(AppError::from)?;
        Ok(member.is_some_and(|m| messages::read_by(&m, &self.0)))
    }
    /// When the recipient read a private message.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    /// When it was sent.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Who sent it.
    async fn sender(&self) -> User {
        User::by_id(self.0.from_user_id)
    }
    /// Private messages only.
    async fn recipient(&self) -> Result<Option<User>> {
        let Some(id) = self.0.to_user_id else { return Ok(None) };
        Ok(Some(User::by_id(id)))
    }
    /// The circle of a circle message (null for private ones).
    async fn circle(&self, ctx: &Context<'_>) -> Result<Option<Circle>> {
        let Some(id) = self.0.circle_id else { return Ok(None) };
        let circle = loaders(ctx)?.circles.load_one(id).await.map_err(AppError::from)?;
        Ok(circle.map(Circle))
    }
}

/// A private conversation: the other user, the last message and your unread count.
pub struct Conversation(messages::Conversation);

/// A private conversation: the other user, the last message and your unread count.
#[Object]
impl Conversation {
    /// The other user.
    async fn partner(&self) -> User {
        User::by_id(self.0.partner)
    }
    /// The latest message either of you sent.
    async fn last_message(&self) -> Message {
        Message(self.0.last_message.clone())
    }
    /// Their messages you have not read.
    async fn unread_count(&self) -> i64 {
        self.0.unread
    }
}

/// A circle's chat as one of its members sees it: the circle, its last message and how many of
/// the others' messages came after your read position.
pub struct CircleConversation(messages::CircleConversation);

/// A circle's chat as you see it: the circle, its last message and your unread count.
#[Object]
impl CircleConversation {
    /// The circle.
    async fn circle(&self, ctx: &Context<'_>) -> Result<Circle> {
        let circle = loaders(ctx)?.circles.load_one(self.0.circle).await.map_err(AppError::from)?;
        circle.map(Circle).ok_or_else(|| AppError::not_found("circle").into())
    }
    /// The latest message in the circle.
    async fn last_message(&self) -> Message {
        Message(self.0.last_message.clone())
    }
    /// The others' messages after your read position (`markCircleMessagesRead` clears it).
    async fn unread_count(&self) -> i64 {
        self.0.unread
    }
}

/// A notice for the viewer (a comment, a booking, a review...).
pub struct Notification(pub notification_table::Model);

/// A notice for you: a comment, a like, a booking, a review, a decision on your application.
#[Object]
impl Notification {
    /// The notification's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// A short headline.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// More detail (an excerpt, a reason).
    async fn content(&self) -> Option<&str> {
        self.0.content.as_deref()
    }
    /// e.g. post_commented, appointment_booked, identity_approved.
    async fn notification_type(&self) -> &str {
        &self.0.notification_type
    }
    /// The id of the object it is about (post, appointment, identity, review...); `target` is
    /// the object itself.
    async fn related_id(&self) -> Option<ID> {
        self.0.related_id.map(|id| ID(id.to_string()))
    }
    /// The object it is about, typed (a Post, Appointment, Circle, Review or Identity; ask with
    /// `... on Post { id }`): null when it is gone or no longer visible to you. A page of
    /// notifications reads its targets in one batch per kind (a hidden post, shown to moderators
    /// only, checks its circle's moderators on its own).
    async fn target(&self, ctx: &Context<'_>) -> Result<Option<super::node::Node>> {
        let (Some(id), Some(table)) =
            (self.0.related_id, super::node::Table::of_notification(&self.0.notification_type))
        else {
            return Ok(None);
        };
        super::node::resolve(ctx, table, id).await
    }
    /// Whether you have read it.
    async fn is_read(&self) -> bool {
        self.0.is_read
    }
    /// When you read it.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    /// When it was sent.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `sendMessage`: exactly one of `toUserId` and `circleId`.
#[derive(InputObject)]
pub struct SendMessageInput {
    /// The recipient of a private message (or give `circleId`).
    pub to_user_id: Option<ID>,
    /// A circle you belong to, for a circle message (or give `toUserId`).
    pub circle_id: Option<ID>,
    /// 1..5000 characters.
    pub content: String,
    /// TEXT (default), IMAGE or FILE.
    #[graphql(default_with = "MessageType::Text")]
    pub message_type: MessageType,
}

fn target(to_user: Option<ID>, circle: Option<ID>, fields: (&str, &str)) -> Result<Target, AppError> {
    match (to_user, circle) {
        (Some(user), None) => Ok(Target::User(id_arg(fields.0, &user)?)),
        (None, Some(circle)) => Ok(Target::Circle(id_arg(fields.1, &circle)?)),
        _ => Err(AppError::bad_input(fields.0, format!("give exactly one of {} and {}", fields.0, fields.1))),
    }
}

#[derive(Default)]
pub struct MessagesQuery;

#[Object]
impl MessagesQuery {
    /// Your private conversations, most recent first.
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<Connection<String, Conversation>> {
        let page = page_request(ctx, first, after, None, None)?;
        let (rows, more) = messages::conversations(&state(ctx)?.db, viewer(ctx), &page).await?;
        let mut connection = Connection::new(page.after.is_some(), more);
        connection.edges.extend(rows.into_iter().map(|(cursor, c)| Edge::new(cursor, Conversation(c))));
        Ok(connection)
    }

    /// The chats of the circles you belong to, most recent first, each with your unread count.
    async fn circle_conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<Connection<String, CircleConversation>> {
        let page = page_request(ctx, first, after, None, None)?;
        let (rows, more) = messages::circle_conversations(&state(ctx)?.db, viewer(ctx), &page).await?;
        let mut connection = Connection::new(page.after.is_some(), more);
        connection.edges.extend(rows.into_iter().map(|(cursor, c)| Edge::new(cursor, CircleConversation(c))));
        Ok(connection)
    }

    /// Messages with a user or in a circle you belong to, in time order; by default the latest 20
    /// (page back with `last` and `before`).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The other user of a private conversation (or give `circleId`).")] with_user_id: Option<ID>,
        #[graphql(desc = "A circle you belong to (or give `withUserId`).")] circle_id: Option<ID>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Message>> {
        let target = target(with_user_id, circle_id, ("withUserId", "circleId"))?;
        let page = page_request(ctx, first, after, last, before)?;
        let db = &state(ctx)?.db;
        let (rows, select) = messages::thread(db, viewer(ctx), target, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Message))
    }

    /// Your notifications, newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "Only unread notifications.")] unread_only: bool,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Notification>> {
        let page = page_request(ctx, first, after, last, before)?;
        let db = &state(ctx)?.db;
        let (rows, select) = messages::notifications(db, &state(ctx)?.cache, viewer(ctx), unread_only, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Notification))
    }

    /// How many messages to you are unread, private and in your circles' chats (the badge on the
    /// inbox).
    async fn unread_message_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(messages::unread_messages(&state(ctx)?.db, viewer(ctx)).await? as i64)
    }

    /// How many of your notifications are unread.
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let state = state(ctx)?;
        Ok(messages::unread_notifications(&state.db, &state.cache, viewer(ctx)).await? as i64)
    }
}

#[derive(Default)]
pub struct MessagesMutation;

#[Object]
impl MessagesMutation {
    /// Sends a private message (`toUserId`) or a circle message (`circleId`, members only).
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The recipient (a user or a circle), the text and its type.")] input: SendMessageInput,
    ) -> Result<Message> {
        let target = target(input.to_user_id, input.circle_id, ("input.toUserId", "input.circleId"))?;
        if let Some(user) = viewer(ctx).user_id() {
            crate::admission::limits::message(state(ctx)?, user).await?;
        }
        let state = state(ctx)?;
        let message =
            messages::send(&state.db, &state.storage, viewer(ctx), target, &input.content, input.message_type).await?;
        Ok(Message(message))
    }

    /// Marks the messages a user sent you as read; returns how many changed.
    async fn mark_messages_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user whose messages to you are marked read.")] with_user_id: ID,
    ) -> Result<i64> {
        let from = id_arg("withUserId", &with_user_id)?;
        Ok(messages::mark_read(&state(ctx)?.db, viewer(ctx), from).await? as i64)
    }

    /// Moves your read position in a circle's chat up to a message (by default its latest; never
    /// backwards); returns how many of the others' messages that marked read.
    async fn mark_circle_messages_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle whose chat you have read.")] circle_id: ID,
        #[graphql(desc = "The last message you saw (default: the circle's latest).")] through_message_id: Option<ID>,
    ) -> Result<i64> {
        let circle = id_arg("circleId", &circle_id)?;
        let through = through_message_id.map(|id| id_arg("throughMessageId", &id)).transpose()?;
        Ok(messages::mark_circle_read(&state(ctx)?.db, viewer(ctx), circle, through).await? as i64)
    }

    /// Marks one of your notifications read.
    async fn mark_notification_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The notification to mark read.")] id: ID,
    ) -> Result<Notification> {
        let id = id_arg("id", &id)?;
        Ok(Notification(messages::mark_notification_read(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// Returns how many changed.
    async fn mark_all_notifications_read(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(messages::mark_all_notifications_read(&state(ctx)?.db, viewer(ctx)).await? as i64)
    }
}

#[derive(Default)]
pub struct SubscriptionRoot;

/// Live events over WebSocket (graphql-transport-ws).
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Messages sent to you (privately or in your circles), live. Needs a token in connection_init.
    async fn message_received(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Message>> {
        let user_id = viewer(ctx).require()?;
        let bus = ctx.data::<EventBus>().map_err(|_| AppError::Internal(anyhow::anyhow!("event bus missing")))?;
        Ok(bus.subscribe(user_id).filter_map(|event| async move {
            match event.as_ref() {
                Event::Message { message, .. } => Some(Message(message.clone())),
                _ => None,
            }
        }))
    }

    /// Your new notifications, live. Needs a token in connection_init.
    async fn notification_received(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Notification>> {
        let user_id = viewer(ctx).require()?;
        let bus = ctx.data::<EventBus>().map_err(|_| AppError::Internal(anyhow::anyhow!("event bus missing")))?;
        Ok(bus.subscribe(user_id).filter_map(|event| async move {
            match event.as_ref() {
                Event::Notification(notification) => Some(Notification(notification.clone())),
                _ => None,
            }
        }))
    }
}
