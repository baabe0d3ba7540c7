//! Object identification: the `Node` interface over every type a client opens by id (a Mentor is
//! its Identity's view and shares its id, so node(id) answers the Identity), `node(id)`
//! (ids are UUIDs, unique across tables, so an id alone names its row) and `Notification.target`.
//! Each kind is resolved through the same visibility rules as its own root field (`post(id)`,
//! `course(id)`, ...): `node` shows nothing those would not.

use super::accounts::User;
use super::appointments::{Appointment, Review};
use super::circles::{Circle, CirclesQuery, Comment, Post};
use super::context::{loaders, state, viewer};
use super::courses::{Course, CourseContent, CoursesQuery};
use super::id_arg;
use super::identities::Identity;
use super::learning::LearningRecord;
use super::messages::Notification;
use super::uploads::{Upload, UploadsQuery};
use crate::error::AppError;
use async_graphql::{Context, Interface, Object, Result, ID};
use sea_orm::sea_query::{Alias, Expr, Query, SelectStatement, UnionType};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

/// An object with a globally unique id, to open it with `node(id)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Globally unique: `node(id)` finds the object again."))]
pub enum Node {
    User(User),
    Identity(Identity),
    Course(Course),
    CourseContent(CourseContent),
    LearningRecord(LearningRecord),
    Circle(Circle),
    Post(Post),
    Comment(Comment),
    Review(Review),
    Appointment(Appointment),
    Notification(Notification),
    Upload(Upload),
}

/// The tables `node(id)` looks in, each one kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users,
    Identities,
    Courses,
    Contents,
    LearningRecords,
    Circles,
    Posts,
    Comments,
    Reviews,
    Appointments,
    Notifications,
    Uploads,
}

impl Table {
    const ALL: [Table; 12] = [
        Table::Users,
        Table::Identities,
        Table::Courses,
        Table::Contents,
        Table::LearningRecords,
        Table::Circles,
        Table::Posts,
        Table::Comments,
        Table::Reviews,
        Table::Appointments,
        Table::Notifications,
        Table::Uploads,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Identities => "user_identities",
            Table::Courses => "courses",
            Table::Contents => "course_contents",
            Table::LearningRecords => "learning_records",
            Table::Circles => "circles",
            Table::Posts => "posts",
            Table::Comments => "comments",
            Table::Reviews => "reviews",
            Table::Appointments => "appointments",
            Table::Notifications => "notifications",
            Table::Uploads => "uploads",
        }
    }

    /// What a notification of `kind` is about (its `related_id`).
    pub fn of_notification(kind: &str) -> Option<Table> {
        match kind {
            "post_commented" | "comment_replied" | "post_liked" => Some(Table::Posts),
            "appointment_booked" | "appointment_confirmed" | "appointment_cancelled" | "appointment_rescheduled" => {
                Some(Table::Appointments)
            }
            "role_changed" => Some(Table::Circles),
            "reviewed" => Some(Table::Reviews),
            "identity_approved" | "identity_rejected" => Some(Table::Identities),
            _ => None,
        }
    }
}

/// Which table holds `id`: one statement, a UNION ALL of primary-key look-ups.
async fn table_of(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Table>, AppError> {
    let one = |table: Table| -> SelectStatement {
        Query::select()
            .expr_as(Expr::cust(format!("'{}'", table.name())), Alias::new("t"))
            .from(Alias::new(table.name()))
            .and_where(Expr::col(Alias::new("id")).eq(id))
            .to_owned()
    };
    let mut query = one(Table::ALL[0]);
    for table in &Table::ALL[1..] {
        query.union(UnionType::All, one(*table));
    }
    let row = db.query_one(db.get_database_backend().build(&query)).await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get("", "t")?;
    Ok(Table::ALL.into_iter().find(|t| t.name() == name))
}

/// The object `id` in `table` as the viewer may see it, or null.
pub async fn resolve(ctx: &Context<'_>, table: Table, id: Uuid) -> Result<Option<Node>> {
    let raw = ID(id.to_string());
    let db = &state(ctx)?.db;
    let viewer = viewer(ctx);
    // The viewer's own kinds: nothing for an anonymous caller (their fields would say
    // UNAUTHENTICATED; an object that cannot be seen is null here).
    let own = matches!(table, Table::LearningRecords | Table::Appointments | Table::Notifications | Table::Uploads);
    if own && viewer.user_id().is_none() {
        return Ok(None);
    }
    Ok(match table {
        Table::Users => Some(Node::User(User::by_id(id))),
        Table::Identities => {
            let identity = loaders(ctx)?.identities.load_one(id).await.map_err(AppError::from)?;
            identity.map(|i| Node::Identity(Identity(i)))
        }
        Table::Courses => CoursesQuery.course(ctx, raw).await?.map(Node::Course),
        Table::Contents => {
            let content = loaders(ctx)?.contents.load_one(id).await.map_err(AppError::from)?;
            let Some(content) = content else { return Ok(None) };
            // As visible as its course.
            let course = CoursesQuery.course(ctx, ID(content.course_id.to_string())).await?;
            course.map(|_| Node::CourseContent(CourseContent(content)))
        }
        Table::LearningRecords => {
            let Some(user_id) = viewer.optional()? else { return Ok(None) };
            let Some(record) = entity::learning_records::Entity::find_by_id(id).one(db).await? else {
                return Ok(None);
            };
            let teaches = match loaders(ctx)?.courses.load_one(record.course_id).await.map_err(AppError::from)? {
                Some(course) => {
                    let owner = loaders(ctx)?.identities.load_one(course.mentor_id).await.map_err(AppError::from)?;
                    owner.is_some_and(|o| o.user_id == user_id)
                }
                None => false,
            };
            // The master sees the students `Course.students` lists: not those who dropped.
            let teaches = teaches && record.status != entity::enums::LearningStatus::Dropped;
            let allowed = record.user_id == user_id || teaches || crate::domain::is_admin(viewer);
            allowed.then(|| Node::LearningRecord(LearningRecord(record)))
        }
        Table::Circles => CirclesQuery.circle(ctx, raw).await?.map(Node::Circle),
        // Not through `post(id)`: opening a post counts a view, listing notifications must not.
        Table::Posts => {
            let Some(post) = loaders(ctx)?.posts.load_one(id).await.map_err(AppError::from)? else { return Ok(None) };
            crate::domain::posts::visible(db, viewer, post).await?.map(|p| Node::Post(Post(p)))
        }
        Table::Comments => CirclesQuery.comment(ctx, raw).await?.map(Node::Comment),
        Table::Reviews => super::appointments::review_by_id(ctx, id).await?.map(Node::Review),
        Table::Appointments => super::appointments::appointment_by_id(ctx, id).await?.map(Node::Appointment),
        Table::Notifications => {
            let Some(user_id) = viewer.optional()? else { return Ok(None) };
            let row = entity::notifications::Entity::find_by_id(id).one(db).await?;
            row.filter(|n| n.user_id == user_id).map(|n| Node::Notification(Notification(n)))
        }
        Table::Uploads => UploadsQuery.upload(ctx, raw).await?.map(Node::Upload),
    })
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its id (Relay's object identification): null when there is none or you may
    /// not see it, by the same rules as its own field (`post(id)`, `course(id)`, ...).
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id of any type that implements `Node`.")] id: ID,
    ) -> Result<Option<Node>> {
        let id = id_arg("id", &id)?;
        // Reads the viewer's own rows through uncached look-ups: never kept as a whole response.
        crate::cache::uncacheable();
        let Some(table) = table_of(&state(ctx)?.db, id).await? else { return Ok(None) };
        resolve(ctx, table, id).await
    }
}
