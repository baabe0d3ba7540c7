//! Circles, members, posts, comments, likes and the feed over GraphQL.

use super::accounts::User;
use super::context::{client_ip, loaders, state, viewer};
use super::identities::Identity;
use super::pagination::{child_connection, connection, joins, page_request, Conn, ConnectionFields};
use super::{id_arg, maybe_undefined, present, SortDirection};
use crate::domain::circles::{self, CircleFilter, CircleInput, CircleOrder};
use crate::domain::pagination::Owner;
use crate::domain::posts::{self, Flag, NewComment, NewPost, PostOrder, PostSort};
use crate::error::AppError;
use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::enums::{CircleStatus, ContentStatus, MemberRole, PostType};
use entity::{circle_members, circles as circle_table, comments, posts as post_table};

/// A community run by its members.
pub struct Circle(pub circle_table::Model);

/// What a list of posts is sorted by; the id breaks ties, and `direction` says which way.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum PostOrderBy {
    /// By creation time (DESC: newest first).
    Latest,
    /// By likes, then creation time (DESC: most liked first).
    Hot,
}

impl PostOrderBy {
    fn sort(self) -> PostSort {
        match self {
            Self::Latest => PostSort::Latest,
            Self::Hot => PostSort::Hot,
        }
    }
}

/// A community around a domain: members, posts, and a chat.
#[Object]
impl Circle {
    /// The circle's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its name (1 to 100 characters).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What it is about.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// A domain code.
    async fn domain(&self) -> &str {
        &self.0.domain
    }
    /// ACTIVE, INACTIVE or ARCHIVED.
    async fn status(&self) -> CircleStatus {
        self.0.status
    }
    /// Active members.
    async fn member_count(&self) -> i32 {
        self.0.member_count
    }
    /// Active posts.
    async fn post_count(&self) -> i32 {
        self.0.post_count
    }
    /// Its picture's URL.
    async fn avatar(&self) -> Option<&str> {
        self.0.avatar.as_deref()
    }
    /// Its rules, shown to members.
    async fn rules(&self) -> Option<&str> {
        self.0.rules.as_deref()
    }
    /// Its tags (searched and faceted).
    async fn tags(&self) -> Vec<String> {
        self.0.tags.clone().map(|t| t.0).unwrap_or_default()
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The identity that created the circle.
    async fn creator(&self, ctx: &Context<'_>) -> Result<Identity> {
        let identity = loaders(ctx)?.identities.load_one(self.0.created_by).await.map_err(AppError::from)?;
        Ok(Identity(present(identity, "circle creator")?))
    }
    /// Active members, earliest first.
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<CircleMember>> {
        let page = page_request(ctx, first, after, last, before)?;
        let loaders = loaders(ctx)?;
        let batched = (&loaders.circle_members, &loaders.circle_member_counts);
        child_connection(batched, circles::member_list(), (self.0.id, ()), &page, CircleMember).await
    }
    /// Active posts: by default pinned first, then newest. `pinnedFirst: false` orders the pinned
    /// posts with the rest; pinned posts come first in either `direction`.
    #[allow(clippy::too_many_arguments)]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "PostOrderBy::Latest", desc = "The order: LATEST (newest first) or HOT.")]
        order_by: PostOrderBy,
        #[graphql(default_with = "SortDirection::Desc", desc = "DESC (default) or ASC.")] direction: SortDirection,
        #[graphql(default = true, desc = "Pinned posts first, before the order (default true).")] pinned_first: bool,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Post>> {
        let authors = joins(ctx, "author", Owner::Author, true);
        let page = page_request(ctx, first, after, last, before)?.joining(authors);
        let order = PostOrder { by: order_by.sort(), direction: direction.into(), pinned_first };
        posts::circle_post_list(order).check(&page)?;
        let state = state(ctx)?;
        let loaders = loaders(ctx)?;
        let pages = &loaders.circle_posts;
        let circle = self.0.id;
        let load = |page| pages.page(circle, order, page);
        let rows = posts::circle_posts(&state.db, &state.cache, circle, order, &page, load).await?;
        let count = ConnectionFields::loaded(loaders.circle_post_counts.clone(), circle);
        Ok(connection(rows, count, Post))
    }
    /// The viewer's active membership, if any.
    async fn viewer_membership(&self, ctx: &Context<'_>) -> Result<Option<CircleMember>> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(None) };
        let member = loaders(ctx)?.memberships.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(member.map(CircleMember))
    }
}

/// A user's membership of a circle.
pub struct CircleMember(pub circle_members::Model);

/// A user's membership of a circle: the identity they joined with and their role.
#[Object]
impl CircleMember {
    /// The membership's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// MEMBER, MODERATOR or ADMIN.
    async fn role(&self) -> MemberRole {
        self.0.role
    }
    /// When they (last) joined.
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
    /// False once they left or were removed.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    /// Whether a moderator removed the user with a ban (they cannot join again until lifted).
    async fn is_banned(&self) -> bool {
        self.0.banned_at.is_some()
    }
    /// Why the user was banned: the user and the circle's moderators see it (in `removeMember`'s
    /// and `unbanMember`'s answers).
    async fn ban_reason(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let Some(reason) = self.0.ban_reason.as_deref() else { return Ok(None) };
        let viewer = viewer(ctx);
        if viewer.user_id() == Some(self.0.user_id) {
            return Ok(Some(reason));
        }
        let Some(user_id) = viewer.user_id() else { return Ok(None) };
        let db = &state(ctx)?.db;
        let Some(user) = crate::domain::accounts::find_user(db, user_id).await? else { return Ok(None) };
        let sees = crate::domain::circles::moderates(db, &user, self.0.circle_id).await?;
        Ok(sees.then_some(reason))
    }
    /// The member's account.
    async fn user(&self) -> User {
        User::by_id(self.0.user_id)
    }
    /// The identity the member joined with.
    async fn identity(&self, ctx: &Context<'_>) -> Result<Identity> {
        let identity = loaders(ctx)?.identities.load_one(self.0.identity_id).await.map_err(AppError::from)?;
        Ok(Identity(present(identity, "member identity")?))
    }
    /// The circle.
    async fn circle(&self, ctx: &Context<'_>) -> Result<Circle> {
        let circle = loaders(ctx)?.circles.load_one(self.0.circle_id).await.map_err(AppError::from)?;
        Ok(Circle(present(circle, "member circle")?))
    }
}

/// A post in a circle.
pub struct Post(pub post_table::Model);

/// A post in a circle.
#[Object]
impl Post {
    /// The post's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its text.
    async fn content(&self) -> &str {
        &self.0.content
    }
    /// At most 9 http(s) URLs.
    async fn media_urls(&self) -> Vec<String> {
        self.0.media_urls.clone().map(|m| m.0).unwrap_or_default()
    }
    /// TEXT, IMAGE, VIDEO, LINK or POLL.
    async fn post_type(&self) -> PostType {
        self.0.post_type
    }
    /// ACTIVE, HIDDEN or DELETED.
    async fn status(&self) -> ContentStatus {
        self.0.status
    }
    /// How many people like it.
    async fn like_count(&self) -> i32 {
        self.0.like_count
    }
    /// Active comments.
    async fn comment_count(&self) -> i32 {
        self.0.comment_count
    }
    /// How many times it was shared (`sharePost`).
    async fn share_count(&self) -> i32 {
        self.0.share_count
    }
    /// Views, written in batches every few seconds.
    async fn view_count(&self) -> i32 {
        self.0.view_count
    }
    /// Pinned to the top of the circle.
    async fn is_top(&self) -> bool {
        self.0.is_top
    }
    /// Marked as essence (a featured post) by a moderator.
    async fn is_essence(&self) -> bool {
        self.0.is_essence
    }
    /// When it was posted.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last edited.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The identity the author posted as (its `profile` has name and avatar).
    async fn author(&self, ctx: &Context<'_>) -> Result<Identity> {
        let identity = loaders(ctx)?.identities.load_one(self.0.identity_id).await.map_err(AppError::from)?;
        Ok(Identity(present(identity, "post author")?))
    }
    /// The circle the post is in.
    async fn circle(&self, ctx: &Context<'_>) -> Result<Circle> {
        let circle = loaders(ctx)?.circles.load_one(self.0.circle_id).await.map_err(AppError::from)?;
        Ok(Circle(present(circle, "post circle")?))
    }
    /// Comments oldest first: every comment in one flat list (`parentId` links replies), or with
    /// `topLevel: true` only those answering the post, their replies under `Comment.replies`.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default = false,
            desc = "Only the comments answering the post (their replies under `Comment.replies`); default false: every comment."
        )]
        top_level: bool,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Comment>> {
        let authors = joins(ctx, "author", Owner::Author, true);
        let page = page_request(ctx, first, after, last, before)?.joining(authors);
        posts::post_comment_list(top_level).check(&page)?;
        let loaders = loaders(ctx)?;
        let counts = if top_level { &loaders.post_top_level_counts } else { &loaders.post_comment_counts };
        let (pages, post) = (&loaders.post_comments, self.0.id);
        let load = |page| pages.page(post, top_level, page);
        let state = state(ctx)?;
        let rows = posts::comment_page(&state.db, &state.cache, post, top_level, &page, load).await?;
        Ok(connection(rows, ConnectionFields::loaded(counts.clone(), post), Comment))
    }
    /// A POLL post's choices and votes; null for other posts.
    async fn poll(&self) -> Option<Poll> {
        (self.0.post_type == PostType::Poll).then_some(Poll { post_id: self.0.id })
    }
    /// Whether you like it (false when signed out).
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(false) };
        let like = loaders(ctx)?.post_likes.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(like.is_some())
    }
}

/// A poll's choices, their counts and the viewer's vote.
pub struct Poll {
    post_id: uuid::Uuid,
}

/// A POLL post's choices, their counts and your vote.
impl Poll {
    async fn options_of(&self, ctx: &Context<'_>) -> Result<Vec<entity::poll_options::Model>> {
        let rows = loaders(ctx)?.poll_options.load_one(self.post_id).await.map_err(AppError::from)?;
        Ok(rows.unwrap_or_default())
    }
}

/// A POLL post's choices, their counts and your vote.
#[Object]
impl Poll {
    /// The choices, in the order they were posted.
    async fn options(&self, ctx: &Context<'_>) -> Result<Vec<PollOption>> {
        Ok(self.options_of(ctx).await?.into_iter().map(PollOption).collect())
    }
    /// Votes over all choices (one per person).
    async fn total_votes(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(self.options_of(ctx).await?.iter().map(|o| o.vote_count).sum())
    }
    /// The choice the signed-in viewer voted for; null before they vote.
    async fn viewer_vote(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(None) };
        let vote = loaders(ctx)?.poll_votes.load_one((user_id, self.post_id)).await.map_err(AppError::from)?;
        Ok(vote.map(|v| ID(v.option_id.to_string())))
    }
}

/// One choice of a poll.
pub struct PollOption(entity::poll_options::Model);

/// One choice of a poll.
#[Object]
impl PollOption {
    /// The option's id (what `votePoll` takes).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its text.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// 0-based position in the poll.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// People who chose it.
    async fn vote_count(&self) -> i32 {
        self.0.vote_count
    }
}

/// A comment on a post; `parentId` makes it a reply.
pub struct Comment(pub comments::Model);

/// A comment on a post, or a reply to another comment.
#[Object]
impl Comment {
    /// The comment's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// "deleted" once the comment was deleted (replies keep their context).
    async fn content(&self) -> &str {
        if self.0.status == ContentStatus::Deleted {
            "deleted"
        } else {
            &self.0.content
        }
    }
    /// ACTIVE, HIDDEN or DELETED.
    async fn status(&self) -> ContentStatus {
        self.0.status
    }
    /// The comment it replies to (null for a comment on the post).
    async fn parent_id(&self) -> Option<ID> {
        self.0.parent_id.map(|id| ID(id.to_string()))
    }
    /// The user the comment answers (the parent comment's author).
    async fn reply_to_user(&self) -> Result<Option<User>> {
        let Some(id) = self.0.reply_to_user_id else { return Ok(None) };
        Ok(Some(User::by_id(id)))
    }
    /// The identity the author commented as.
    async fn author(&self, ctx: &Context<'_>) -> Result<Identity> {
        let identity = loaders(ctx)?.identities.load_one(self.0.identity_id).await.map_err(AppError::from)?;
        Ok(Identity(present(identity, "comment author")?))
    }
    /// How many people like it.
    async fn like_count(&self) -> i32 {
        self.0.like_count
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The post it is on (null when the post is no longer visible).
    async fn post(&self, ctx: &Context<'_>) -> Result<Option<Post>> {
        let post = loaders(ctx)?.posts.load_one(self.0.post_id).await.map_err(AppError::from)?;
        Ok(post.filter(|p| p.status == ContentStatus::Active).map(Post))
    }
    /// Direct replies, oldest first; each has its own `replies` (one batched statement per level
    /// however many comments are on the page).
    async fn replies(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Comment>> {
        let page = page_request(ctx, first, after, last, before)?;
        let loaders = loaders(ctx)?;
        let batched = (&loaders.comment_replies, &loaders.comment_reply_counts);
        child_connection(batched, posts::reply_list(), (self.0.id, ()), &page, Comment).await
    }
    /// Whether you like it (false when signed out).
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(false) };
        let like = loaders(ctx)?.comment_likes.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(like.is_some())
    }
}

/// Input of `createCircle`.
#[derive(InputObject)]
pub struct CreateCircleInput {
    /// One of your active identities; it becomes the circle's admin.
    pub identity_id: ID,
    /// 1..100 characters.
    pub name: String,
    /// What the circle is about (at most 5000 characters).
    pub description: Option<String>,
    /// An active domain code.
    pub domain: String,
    /// Rules shown to members (at most 5000 characters).
    pub rules: Option<String>,
    /// At most 20 tags of at most 50 characters.
    #[graphql(default)]
    pub tags: Vec<String>,
    /// http(s) URL.
    pub avatar: Option<String>,
}

/// Input of `updateCircle`: omitted fields stay; null clears.
#[derive(InputObject)]
pub struct UpdateCircleInput {
    /// A new name.
    pub name: Option<String>,
    /// A new description; null clears it.
    pub description: MaybeUndefined<String>,
    /// New rules; null clears them.
    pub rules: MaybeUndefined<String>,
    /// New tags (replacing the old).
    pub tags: Option<Vec<String>>,
    /// A new picture: a READY CIRCLE_AVATAR upload of yours or an http(s) URL; null clears it.
    pub avatar: MaybeUndefined<String>,
}

/// Narrows `circles`.
#[derive(InputObject, Default)]
pub struct CircleFilterInput {
    /// Only circles of this domain code.
    pub domain: Option<String>,
    /// Only circles with this tag.
    pub tag: Option<String>,
}

/// Orders of circle lists.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CircleOrderBy {
    /// By member count.
    Members,
    /// By creation time.
    Newest,
}

impl From<CircleOrderBy> for CircleOrder {
    fn from(order: CircleOrderBy) -> Self {
        match order {
            CircleOrderBy::Members => Self::Members,
            CircleOrderBy::Newest => Self::Newest,
        }
    }
}

/// Input of `createPost`.
#[derive(InputObject)]
pub struct CreatePostInput {
    /// The circle to post in (you must be a member).
    pub circle_id: ID,
    /// One of your active identities.
    pub identity_id: ID,
    /// 1..10000 characters.
    pub content: String,
    /// TEXT (default), IMAGE, VIDEO, LINK or POLL.
    #[graphql(default_with = "PostType::Text")]
    pub post_type: PostType,
    /// At most 9 http(s) URLs; IMAGE, VIDEO and LINK posts need at least one.
    #[graphql(default)]
    pub media_urls: Vec<String>,
    /// A POLL post's choices, in order: 2 to 10 distinct labels of 1..100 characters (none for
    /// other posts).
    #[graphql(default)]
    pub poll_options: Vec<String>,
}

/// Input of `updatePost`.
#[derive(InputObject)]
pub struct UpdatePostInput {
    /// A new text.
    pub content: Option<String>,
    /// New media URLs (replacing the old).
    pub media_urls: Option<Vec<String>>,
}

/// Input of `addComment`.
#[derive(InputObject)]
pub struct AddCommentInput {
    /// The post commented on.
    pub post_id: ID,
    /// Your identity to comment as (one you joined the circle with).
    pub identity_id: ID,
    /// 1..5000 characters.
    pub content: String,
    /// Reply to this comment (of the same post).
    pub parent_id: Option<ID>,
}

#[derive(Default)]
pub struct CirclesQuery;

#[Object]
impl CirclesQuery {
    /// A circle by id (archived ones too).
    pub(crate) async fn circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle's id.")] id: ID,
    ) -> Result<Option<Circle>> {
        let id = id_arg("id", &id)?;
        let circle = loaders(ctx)?.circles.load_one(id).await.map_err(AppError::from)?;
        Ok(circle.map(Circle))
    }

    /// Active circles (default: most members first; the id breaks ties).
    #[allow(clippy::too_many_arguments)]
    async fn circles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the list by domain or name.")] filter: Option<CircleFilterInput>,
        #[graphql(
            default_with = "CircleOrderBy::Members",
            desc = "The order: by member count (default), newest or name."
        )]
        order_by: CircleOrderBy,
        #[graphql(default_with = "SortDirection::Desc", desc = "DESC (default) or ASC.")] direction: SortDirection,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Circle>> {
        let page = page_request(ctx, first, after, last, before)?;
        let filter = filter.unwrap_or_default();
        let order = CircleOrder::from(order_by);
        let db = &state(ctx)?.db;
        let filter = CircleFilter { domain: filter.domain, tag: filter.tag, member: None };
        let (rows, select) = circles::list(db, filter, order, direction.into(), &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Circle))
    }

    /// The active circles you belong to (default: most members first; the id breaks ties).
    #[allow(clippy::too_many_arguments)]
    async fn my_circles(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default_with = "CircleOrderBy::Members",
            desc = "The order: by member count (default), newest or name."
        )]
        order_by: CircleOrderBy,
        #[graphql(default_with = "SortDirection::Desc", desc = "DESC (default) or ASC.")] direction: SortDirection,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Circle>> {
        let me = viewer(ctx).require()?;
        let page = page_request(ctx, first, after, last, before)?;
        let order = CircleOrder::from(order_by);
        let db = &state(ctx)?.db;
        let filter = CircleFilter { domain: None, tag: None, member: Some(me) };
        let (rows, select) = circles::list(db, filter, order, direction.into(), &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Circle))
    }

    /// A comment, to open it from a notification or a link: null when it or its post is not
    /// visible to you (hidden comments: the circle's moderators only).
    pub(crate) async fn comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment's id.")] id: ID,
    ) -> Result<Option<Comment>> {
        let id = id_arg("id", &id)?;
        let state = state(ctx)?;
        let Some(comment) = loaders(ctx)?.comments.load_one(id).await.map_err(AppError::from)? else {
            return Ok(None);
        };
        Ok(posts::visible_comment(&state.db, viewer(ctx), comment).await?.map(Comment))
    }

    /// A post (counts a view). Hidden posts: moderators only; deleted: nobody.
    pub(crate) async fn post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post's id.")] id: ID,
    ) -> Result<Option<Post>> {
        let id = id_arg("id", &id)?;
        let state = state(ctx)?;
        let Some(post) = loaders(ctx)?.posts.load_one(id).await.map_err(AppError::from)? else { return Ok(None) };
        let post = posts::visible(&state.db, viewer(ctx), post).await?;
        if let Some(post) = &post {
            // The view is counted again by every answer from a kept response.
            state.views.record(post.id);
            crate::cache::viewed(post.id);
        }
        Ok(post.map(Post))
    }

    /// Active posts of the circles you belong to: newest first (LATEST), or most liked first
    /// (HOT, newest breaking ties), or the other way round with `direction: ASC`. Pinned posts
    /// belong to their circle's page, so the feed orders them with the rest.
    #[allow(clippy::too_many_arguments)]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(PostOrderBy::Latest)", desc = "LATEST (default) or HOT.")] order_by: Option<
            PostOrderBy,
        >,
        #[graphql(default_with = "Some(SortDirection::Desc)", desc = "DESC (default) or ASC.")] direction: Option<
            SortDirection,
        >,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Post>> {
        let authors = joins(ctx, "author", Owner::Author, true);
        let page = page_request(ctx, first, after, last, before)?.joining(authors);
        let state = state(ctx)?;
        // null (an unset variable) means the default too.
        let order = PostOrder {
            by: order_by.unwrap_or(PostOrderBy::Latest).sort(),
            direction: direction.unwrap_or(SortDirection::Desc).into(),
            pinned_first: false,
        };
        let (rows, select) = posts::feed(&state.db, &state.cache, viewer(ctx), order, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(&state.db, select), Post))
    }
}

/// The state, if likes are switched on (`features.likes`).
pub(crate) fn likes_on<'a>(ctx: &Context<'a>) -> Result<&'a crate::app::AppState, AppError> {
    let state = state(ctx)?;
    if !state.settings.live().likes {
        return Err(AppError::FeatureDisabled { feature: "features.likes" });
    }
    Ok(state)
}

#[derive(Default)]
pub struct CirclesMutation;

#[Object]
impl CirclesMutation {
    /// Creates a circle; your identity becomes its admin.
    async fn create_circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new circle.")] input: CreateCircleInput,
    ) -> Result<Circle> {
        let input = CircleInput {
            identity_id: Some(id_arg("input.identityId", &input.identity_id)?),
            name: Some(input.name),
            description: Some(input.description),
            domain: Some(input.domain),
            rules: Some(input.rules),
            tags: Some(input.tags),
            avatar: Some(input.avatar),
        };
        let state = state(ctx)?;
        Ok(Circle(circles::create(&state.db, &state.storage, viewer(ctx), input).await?))
    }

    /// Circle admins.
    async fn update_circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay, null clears.")] input: UpdateCircleInput,
    ) -> Result<Circle> {
        let id = id_arg("id", &id)?;
        let input = CircleInput {
            identity_id: None,
            name: input.name,
            description: maybe_undefined(input.description),
            domain: None,
            rules: maybe_undefined(input.rules),
            tags: input.tags,
            avatar: maybe_undefined(input.avatar),
        };
        let state = state(ctx)?;
        Ok(Circle(circles::update(&state.db, &state.storage, viewer(ctx), id, input).await?))
    }

    /// Circle admins: the circle stays readable but takes no new members, posts or comments.
    async fn archive_circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle to archive.")] id: ID,
    ) -> Result<Circle> {
        let id = id_arg("id", &id)?;
        Ok(Circle(circles::archive(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// Joins with one of your active identities (idempotent).
    async fn join_circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle to join.")] circle_id: ID,
        #[graphql(desc = "Your identity to join as (shown as your name there).")] identity_id: ID,
    ) -> Result<CircleMember> {
        let circle_id = id_arg("circleId", &circle_id)?;
        let identity_id = id_arg("identityId", &identity_id)?;
        Ok(CircleMember(circles::join(&state(ctx)?.db, viewer(ctx), circle_id, identity_id).await?))
    }

    /// Leaves a circle (the last admin cannot).
    async fn leave_circle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle to leave.")] circle_id: ID,
    ) -> Result<CircleMember> {
        let circle_id = id_arg("circleId", &circle_id)?;
        Ok(CircleMember(circles::leave(&state(ctx)?.db, viewer(ctx), circle_id).await?))
    }

    /// Circle admins set a member's role (the last admin cannot be demoted). Audited.
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle.")] circle_id: ID,
        #[graphql(desc = "The member.")] user_id: ID,
        #[graphql(desc = "The new role.")] role: MemberRole,
    ) -> Result<CircleMember> {
        let circle_id = id_arg("circleId", &circle_id)?;
        let user_id = id_arg("userId", &user_id)?;
        let db = &state(ctx)?.db;
        Ok(CircleMember(circles::set_role(db, viewer(ctx), circle_id, user_id, role, client_ip(ctx)).await?))
    }

    /// Members post in their circle.
    async fn create_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new post.")] input: CreatePostInput,
    ) -> Result<Post> {
        let input = NewPost {
            circle_id: id_arg("input.circleId", &input.circle_id)?,
            identity_id: id_arg("input.identityId", &input.identity_id)?,
            content: input.content,
            post_type: input.post_type,
            media_urls: input.media_urls,
            poll_options: input.poll_options,
        };
        let state = state(ctx)?;
        Ok(Post(posts::create(&state.db, &state.storage, viewer(ctx), input).await?))
    }

    /// The author edits their post.
    async fn update_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay.")] input: UpdatePostInput,
    ) -> Result<Post> {
        let id = id_arg("id", &id)?;
        let state = state(ctx)?;
        Ok(Post(posts::update(&state.db, &state.storage, viewer(ctx), id, input.content, input.media_urls).await?))
    }

    /// The author deletes their post (soft: gone from lists and counts).
    async fn delete_post(&self, ctx: &Context<'_>, #[graphql(desc = "The post to delete.")] id: ID) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::delete(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// Moderators pin or unpin a post.
    async fn set_post_pinned(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to pin or unpin.")] id: ID,
        #[graphql(desc = "True to pin, false to unpin.")] pinned: bool,
    ) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::set_flag(&state(ctx)?.db, viewer(ctx), id, Flag::Pinned, pinned).await?))
    }

    /// Moderators mark a post as essence.
    async fn set_post_essence(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to mark or unmark.")] id: ID,
        #[graphql(desc = "True to mark as essence, false to unmark.")] essence: bool,
    ) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::set_flag(&state(ctx)?.db, viewer(ctx), id, Flag::Essence, essence).await?))
    }

    /// Moderators hide a post from everyone but moderators (audited).
    async fn hide_post(&self, ctx: &Context<'_>, #[graphql(desc = "The post to hide.")] id: ID) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::hide(&state(ctx)?.db, viewer(ctx), id, client_ip(ctx)).await?))
    }

    /// Moderators bring a hidden post back into the circle (audited).
    async fn unhide_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The hidden post to bring back.")] id: ID,
    ) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::unhide(&state(ctx)?.db, viewer(ctx), id, client_ip(ctx)).await?))
    }

    /// Moderators hide a comment: it leaves the thread (for everyone) and the post's comment count
    /// (audited); keep the id from this answer to undo it with `unhideComment`.
    async fn hide_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to hide.")] id: ID,
    ) -> Result<Comment> {
        let id = id_arg("id", &id)?;
        Ok(Comment(posts::set_comment_hidden(&state(ctx)?.db, viewer(ctx), id, true, client_ip(ctx)).await?))
    }

    /// Moderators bring a hidden comment back (audited).
    async fn unhide_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The hidden comment to bring back.")] id: ID,
    ) -> Result<Comment> {
        let id = id_arg("id", &id)?;
        Ok(Comment(posts::set_comment_hidden(&state(ctx)?.db, viewer(ctx), id, false, client_ip(ctx)).await?))
    }

    /// Circle moderators remove a member below their role (platform admins: anyone). With
    /// `ban: true` the user cannot join again until `unbanMember`. Audited.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle.")] circle_id: ID,
        #[graphql(desc = "The member to remove.")] user_id: ID,
        #[graphql(desc = "Also ban them: they cannot join again until unbanned.")] ban: Option<bool>,
        #[graphql(desc = "Why; shown to the member and moderators.")] reason: Option<String>,
    ) -> Result<CircleMember> {
        let ban = ban.unwrap_or(false);
        let circle_id = id_arg("circleId", &circle_id)?;
        let user_id = id_arg("userId", &user_id)?;
        let db = &state(ctx)?.db;
        let member = circles::remove_member(db, viewer(ctx), circle_id, user_id, ban, reason, client_ip(ctx)).await?;
        Ok(CircleMember(member))
    }

    /// Circle admins (and platform admins) lift a ban: the user may join again (audited).
    async fn unban_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The circle.")] circle_id: ID,
        #[graphql(desc = "The banned user.")] user_id: ID,
    ) -> Result<CircleMember> {
        let circle_id = id_arg("circleId", &circle_id)?;
        let user_id = id_arg("userId", &user_id)?;
        let db = &state(ctx)?.db;
        Ok(CircleMember(circles::unban_member(db, viewer(ctx), circle_id, user_id, client_ip(ctx)).await?))
    }

    /// Members comment on active posts; `parentId` replies to a comment of the same post.
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post, the text and the comment answered.")] input: AddCommentInput,
    ) -> Result<Comment> {
        let input = NewComment {
            post_id: id_arg("input.postId", &input.post_id)?,
            identity_id: id_arg("input.identityId", &input.identity_id)?,
            content: input.content,
            parent_id: input.parent_id.map(|p| id_arg("input.parentId", &p)).transpose()?,
        };
        let state = state(ctx)?;
        let fanout = state.settings.live().notification_fanout;
        Ok(Comment(posts::add_comment(&state.db, viewer(ctx), input, fanout).await?))
    }

    /// A member of the poll's circle votes for one of its options, once: the same vote again is
    /// a no-op, another option after voting is CONFLICT.
    async fn vote_poll(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The POLL post.")] post_id: ID,
        #[graphql(desc = "The chosen option (one of `Post.poll.options`).")] option_id: ID,
    ) -> Result<Post> {
        let post_id = id_arg("postId", &post_id)?;
        let option_id = id_arg("optionId", &option_id)?;
        Ok(Post(crate::domain::polls::vote(&state(ctx)?.db, viewer(ctx), post_id, option_id).await?))
    }

    /// The author edits an active comment (1..5000 characters).
    async fn update_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to edit.")] id: ID,
        #[graphql(desc = "The new text (1 to 5000 characters).")] content: String,
    ) -> Result<Comment> {
        let id = id_arg("id", &id)?;
        Ok(Comment(posts::update_comment(&state(ctx)?.db, viewer(ctx), id, &content).await?))
    }

    /// Counts a share of a post you can see (`shareCount` + 1); the apps share the link themselves.
    async fn share_post(&self, ctx: &Context<'_>, #[graphql(desc = "The post shared.")] id: ID) -> Result<Post> {
        let id = id_arg("id", &id)?;
        Ok(Post(posts::share(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// The author or a moderator deletes a comment (its replies stay).
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to delete.")] id: ID,
    ) -> Result<Comment> {
        let id = id_arg("id", &id)?;
        Ok(Comment(posts::delete_comment(&state(ctx)?.db, viewer(ctx), id, client_ip(ctx)).await?))
    }

    /// Idempotent: liking twice is one like.
    async fn like_post(&self, ctx: &Context<'_>, #[graphql(desc = "The post to like.")] post_id: ID) -> Result<Post> {
        let post_id = id_arg("postId", &post_id)?;
        let state = likes_on(ctx)?;
        let fanout = state.settings.live().notification_fanout;
        Ok(Post(posts::like_post(&state.db, viewer(ctx), post_id, true, fanout).await?))
    }

    /// Takes your like back (idempotent).
    async fn unlike_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to unlike.")] post_id: ID,
    ) -> Result<Post> {
        let post_id = id_arg("postId", &post_id)?;
        let state = likes_on(ctx)?;
        let fanout = state.settings.live().notification_fanout;
        Ok(Post(posts::like_post(&state.db, viewer(ctx), post_id, false, fanout).await?))
    }

    /// Likes a comment (idempotent: twice is one like).
    async fn like_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to like.")] comment_id: ID,
    ) -> Result<Comment> {
        let comment_id = id_arg("commentId", &comment_id)?;
        Ok(Comment(posts::like_comment(&likes_on(ctx)?.db, viewer(ctx), comment_id, true).await?))
    }

    /// Takes your like back (idempotent).
    async fn unlike_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to unlike.")] comment_id: ID,
    ) -> Result<Comment> {
        let comment_id = id_arg("commentId", &comment_id)?;
        Ok(Comment(posts::like_comment(&likes_on(ctx)?.db, viewer(ctx), comment_id, false).await?))
    }
}
