//! DataLoaders: every relation a list can ask for is fetched in one statement per relation and
//! request, however many parents the list holds. Two generic loaders cover most relations
//! (`ById`, `ByColumn`); the rest are specific. The hot entities read through the cache facade
//! (`Cached`): a batch asks the cache first and the database only for what it lacks. The rest
//! only batch.

use crate::cache::{Cache, Kind};
use crate::domain::pagination::{ChildList, Page, PageKey, PageRequest};
use async_graphql::dataloader::{DataLoader, Loader};
use entity::enums::{CourseStatus, LearningStatus};
use entity::*;
use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, IdenStatic, Iterable, ModelTrait,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use uuid::Uuid;

/// A loader failure, shareable between the fields waiting on the same batch.
#[derive(Clone, Debug)]
pub struct LoadError(pub Arc<sea_orm::DbErr>);

impl From<LoadError> for crate::error::AppError {
    fn from(error: LoadError) -> Self {
        crate::error::AppError::Internal(anyhow::anyhow!(error.0.to_string()))
    }
}

fn load_error(error: sea_orm::DbErr) -> LoadError {
    LoadError(Arc::new(error))
}

fn uuid_of(value: sea_orm::Value) -> Option<Uuid> {
    match value {
        sea_orm::Value::Uuid(Some(id)) => Some(*id),
        _ => None,
    }
}

/// Rows of `E` by primary key.
pub struct ById<E>(DatabaseConnection, PhantomData<E>);

impl<E> Loader<Uuid> for ById<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
{
    type Value = E::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        crate::domain::rows_by_id::<E>(&self.0, keys).await.map_err(load_error)
    }
}

/// The rows of `E` whose foreign key `column` is one of `keys`, narrowed by `condition`.
fn children<E: EntityTrait>(column: E::Column, condition: Option<&Condition>, keys: &[Uuid]) -> sea_orm::Select<E> {
    let select = E::find().filter(column.is_in(keys.iter().copied()));
    match condition {
        Some(condition) => select.filter(condition.clone()),
        None => select,
    }
}

/// `rows` by their foreign key `column`, in the order they came.
fn group_by<E: EntityTrait>(rows: Vec<E::Model>, column: E::Column) -> HashMap<Uuid, Vec<E::Model>> {
    let mut grouped: HashMap<Uuid, Vec<E::Model>> = HashMap::new();
    for row in rows {
        if let Some(key) = uuid_of(row.get(column)) {
            grouped.entry(key).or_default().push(row);
        }
    }
    grouped
}

/// Rows of `E` grouped by a foreign-key column, optionally narrowed and ordered.
pub struct ByColumn<E: EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
    condition: Option<Condition>,
    order: Option<E::Column>,
}

impl<E> Loader<Uuid> for ByColumn<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut select = children::<E>(self.column, self.condition.as_ref(), keys);
        if let Some(order) = self.order {
            select = select.order_by_asc(order);
        }
        let rows = select.all(&self.db).await.map_err(load_error)?;
        Ok(group_by::<E>(rows, self.column))
    }
}

/// The ids of the newest `limit` rows of `E` per foreign key (a parent's first page), newest first,
/// in one statement: `ORDER BY time DESC, id DESC LIMIT n` for one parent, `ROW_NUMBER() OVER
/// (PARTITION BY column ORDER BY time DESC, id DESC)` for several, so a parent with thousands of rows
/// costs an index range, not the transfer of all of them. The rows themselves come from their own
/// (cached) loader.
pub struct NewestByColumn<E: EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
    condition: Option<Condition>,
    time: E::Column,
    limit: i64,
}

impl<E> Loader<Uuid> for NewestByColumn<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    type Value = Vec<Uuid>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let Some(pk) = E::PrimaryKey::iter().next().map(|pk| pk.into_column()) else { return Ok(HashMap::new()) };
        let select = children::<E>(self.column, self.condition.as_ref(), keys).select_only();
        if let [key] = keys {
            // One parent (a detail page): a backward index range that stops after `limit` rows.
            let ids: Vec<Uuid> = select
                .column(pk)
                .order_by_desc(self.time)
                .order_by_desc(pk)
                .limit(self.limit as u64)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(load_error)?;
            return Ok(HashMap::from([(*key, ids)]));
        }
        let rank = format!(
            r#"ROW_NUMBER() OVER (PARTITION BY "{}" ORDER BY "{}" DESC, "{}" DESC)"#,
            self.column.as_str(),
            self.time.as_str(),
            pk.as_str()
        );
        let ranked = select.column(self.column).column(pk).column_as(Expr::cust(rank), "mg_rank").into_query();
        let query = Query::select()
            .column(Alias::new(self.column.as_str()))
            .column(Alias::new(pk.as_str()))
            .from_subquery(ranked, Alias::new("ranked"))
            .and_where(Expr::col(Alias::new("mg_rank")).lte(self.limit))
            .order_by(Alias::new("mg_rank"), Order::Asc)
            .to_owned();
        let statement = self.db.get_database_backend().build(&query);
        let rows = self.db.query_all(statement).await.map_err(load_error)?;
        let mut grouped: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for row in rows {
            let parent: Uuid = row.try_get("", self.column.as_str()).map_err(load_error)?;
            let id: Uuid = row.try_get("", pk.as_str()).map_err(load_error)?;
            grouped.entry(parent).or_default().push(id);
        }
        Ok(grouped)
    }
}

/// The same page of each parent's [`ChildList`] (a circle's members, a post's comments), keyed by
/// (parent, page): a list of 20 circles asking for their first 5 members each is one statement.
pub struct Pages<E: EntityTrait, O = ()> {
    db: DatabaseConnection,
    /// The list in an order (`()` for a list with one order).
    list: fn(O) -> ChildList<E>,
}

impl<E, O> Loader<(Uuid, O, PageKey)> for Pages<E, O>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
    O: Copy + Eq + std::hash::Hash + Send + Sync + 'static,
{
    type Value = Page<E::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[(Uuid, O, PageKey)]) -> Result<HashMap<(Uuid, O, PageKey), Self::Value>, Self::Error> {
        let mut by_page: HashMap<(O, &PageKey), Vec<Uuid>> = HashMap::new();
        for (parent, order, page) in keys {
            by_page.entry((*order, page)).or_default().push(*parent);
        }
        let mut found = HashMap::with_capacity(keys.len());
        for ((order, page), parents) in by_page {
            let list = (self.list)(order);
            let pages = list.pages(&self.db, &parents, &page.request()).await.map_err(app_load_error)?;
            found.extend(pages.into_iter().map(|(parent, rows)| ((parent, order, page.clone()), rows)));
        }
        Ok(found)
    }
}

/// How many rows each parent's [`ChildList`] has (`totalCount`), in one grouped statement.
pub struct Counts<E: EntityTrait> {
    db: DatabaseConnection,
    list: ChildList<E>,
}

impl<E> Loader<Uuid> for Counts<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    type Value = u64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, u64>, Self::Error> {
        self.list.counts(&self.db, keys).await.map_err(app_load_error)
    }
}

fn app_load_error(error: crate::error::AppError) -> LoadError {
    load_error(sea_orm::DbErr::Custom(error.message()))
}

/// At most one row of `E` per pair of columns, keyed by (first, second): a viewer's enrollment in
/// a course, membership of a circle, like of a post.
pub struct ByPair<E: EntityTrait> {
    db: DatabaseConnection,
    columns: (E::Column, E::Column),
    condition: Option<Condition>,
}

impl<E> Loader<(Uuid, Uuid)> for ByPair<E>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    type Value = E::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[(Uuid, Uuid)]) -> Result<HashMap<(Uuid, Uuid), Self::Value>, Self::Error> {
        let (first, second) = self.columns;
        let mut select =
            E::find().filter(first.is_in(keys.iter().map(|k| k.0))).filter(second.is_in(keys.iter().map(|k| k.1)));
        if let Some(condition) = &self.condition {
            select = select.filter(condition.clone());
        }
        let rows = select.all(&self.db).await.map_err(load_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some(((uuid_of(row.get(first))?, uuid_of(row.get(second))?), row)))
            .collect())
    }
}

/// The times people are booked in given ranges (`appointments::busy_many`).
pub struct BusyTimes(DatabaseConnection);

impl Loader<crate::domain::appointments::BusyKey> for BusyTimes {
    type Value = Vec<crate::domain::availability::Span>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[crate::domain::appointments::BusyKey],
    ) -> Result<HashMap<crate::domain::appointments::BusyKey, Self::Value>, Self::Error> {
        let rows = crate::domain::appointments::busy_many(&self.0, keys).await.map_err(load_error)?;
        Ok(rows.into_iter().collect())
    }
}

/// A loader whose values go through the cache facade (`crate::cache`) under `kind`.
pub struct Cached<L> {
    inner: L,
    cache: Cache,
    kind: Kind,
}

impl<L> Loader<Uuid> for Cached<L>
where
    L: Loader<Uuid, Error = LoadError>,
    L::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    type Value = L::Value;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        self.cache.load_many(self.kind, keys, |ids| async move { self.inner.load(&ids).await }).await
    }
}

/// A cached relation as resolvers use it: what the in-process cache level already holds is answered
/// at once; only the rest waits for the DataLoader's batch (and its delay).
pub struct CachedLoader<L: Loader<Uuid>> {
    loader: DataLoader<Cached<L>>,
    cache: Cache,
    kind: Kind,
}

impl<L> CachedLoader<L>
where
    L: Loader<Uuid, Error = LoadError>,
    L::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    /// The values of `ids` that exist, in the order of `ids`.
    pub async fn load_ordered(&self, ids: &[Uuid]) -> Result<Vec<L::Value>, LoadError> {
        let mut known: HashMap<Uuid, L::Value> = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.cache.peek::<L::Value>(self.kind, *id) {
                Some(value) => known.extend(value.map(|value| (*id, value))),
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            known.extend(self.loader.load_many(missing).await?);
        }
        Ok(ids.iter().filter_map(|id| known.remove(id)).collect())
    }

    pub async fn load_one(&self, id: Uuid) -> Result<Option<L::Value>, LoadError> {
        if crate::cache::changed_here(self.kind, id) {
            // The running mutation changed it: read it fresh (the batch runs on another task).
            return Ok(self.loader.loader().inner.load(&[id]).await?.remove(&id));
        }
        match self.cache.peek(self.kind, id) {
            Some(known) => Ok(known),
            None => self.loader.load_one(id).await,
        }
    }
}

/// A loader keyed by a pair of ids whose values go through the cache facade under `kind`, one
/// entry per pair ([`crate::cache::pair_id`]).
pub struct CachedPairs<L> {
    inner: L,
    cache: Cache,
    kind: Kind,
}

impl<L> Loader<(Uuid, Uuid)> for CachedPairs<L>
where
    L: Loader<(Uuid, Uuid), Error = LoadError>,
    L::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    type Value = L::Value;
    type Error = LoadError;

    async fn load(&self, keys: &[(Uuid, Uuid)]) -> Result<HashMap<(Uuid, Uuid), Self::Value>, Self::Error> {
        let pairs: HashMap<Uuid, (Uuid, Uuid)> =
            keys.iter().map(|&(first, second)| (crate::cache::pair_id(first, second), (first, second))).collect();
        let ids: Vec<Uuid> = pairs.keys().copied().collect();
        let found = self
            .cache
            .load_many(self.kind, &ids, |wanted| {
                let pairs = &pairs;
                async move {
                    let wanted: Vec<(Uuid, Uuid)> = wanted.iter().filter_map(|id| pairs.get(id).copied()).collect();
                    let rows = self.inner.load(&wanted).await?;
                    Ok(rows
                        .into_iter()
                        .map(|((first, second), row)| (crate::cache::pair_id(first, second), row))
                        .collect())
                }
            })
            .await?;
        Ok(found.into_iter().filter_map(|(id, row)| Some((*pairs.get(&id)?, row))).collect())
    }
}

/// [`CachedLoader`] for pairs: what the in-process level holds is answered at once.
pub struct CachedPairLoader<L: Loader<(Uuid, Uuid)>> {
    loader: DataLoader<CachedPairs<L>>,
    cache: Cache,
    kind: Kind,
}

impl<L> CachedPairLoader<L>
where
    L: Loader<(Uuid, Uuid), Error = LoadError>,
    L::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    pub async fn load_one(&self, (first, second): (Uuid, Uuid)) -> Result<Option<L::Value>, LoadError> {
        let id = crate::cache::pair_id(first, second);
        if crate::cache::changed_here(self.kind, id) {
            return Ok(self.loader.loader().inner.load(&[(first, second)]).await?.remove(&(first, second)));
        }
        match self.cache.peek(self.kind, id) {
            Some(known) => Ok(known),
            None => self.loader.load_one((first, second)).await,
        }
    }
}

/// A loader whose values are not cached. Its batches run on their own task, out of sight of the
/// statement callback, so it tells the response cache itself that the request read outside it.
pub struct Uncached<T>(DataLoader<T>);

impl<T: Send + Sync + 'static> Uncached<T> {
    pub async fn load_one<K>(&self, key: K) -> Result<Option<T::Value>, T::Error>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        T: Loader<K>,
    {
        crate::cache::uncacheable();
        self.0.load_one(key).await
    }

    pub async fn load_many<K, I>(&self, keys: I) -> Result<HashMap<K, T::Value>, T::Error>
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        I: IntoIterator<Item = K>,
        T: Loader<K>,
    {
        crate::cache::uncacheable();
        self.0.load_many(keys).await
    }
}

impl<E, O> Uncached<Pages<E, O>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
    O: Copy + Eq + std::hash::Hash + Send + Sync + 'static,
{
    /// `parent`'s page `request` of the list in `order`, batched with the other parents asking
    /// for the same page (empty when the parent has no rows).
    pub async fn page(&self, parent: Uuid, order: O, request: PageRequest) -> crate::error::AppResult<Page<E::Model>> {
        Ok(self.load_one((parent, order, request.key())).await?.unwrap_or_default())
    }
}

// How long a loader waits for more keys before it queries. The fields of a list's items register
// their keys within one pass of the resolver; a release build makes that pass well inside
// async-graphql's 1 ms, while a debug build on a busy 2-core box can outlast it and split a batch
// in two (the tests run with 4 ms). Every level of a page waits this long with the cache off, so it
// is latency on every request: 4 ms cost the cache-off circle feed a fifth of its req/s
// (bench/BENCHMARKS.md). `GRAPHQL_BATCH_DELAY_MS` (default 1 ms): `new` sets it for the loaders it
// builds, all on its own thread and at once.
thread_local! {
    static BATCH_DELAY: std::cell::Cell<std::time::Duration> =
        const { std::cell::Cell::new(std::time::Duration::from_millis(1)) };
}

fn loader<T>(inner: T) -> DataLoader<T> {
    DataLoader::new(inner, tokio::spawn).delay(BATCH_DELAY.with(std::cell::Cell::get))
}

fn by_id<E: EntityTrait + Send + Sync>(db: &DatabaseConnection) -> Uncached<ById<E>>
where
    E::Model: Clone + Send + Sync,
{
    Uncached(loader(ById(db.clone(), PhantomData)))
}

fn cached<L>(inner: L, cache: &Cache, kind: Kind) -> CachedLoader<L>
where
    L: Loader<Uuid, Error = LoadError>,
    L::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    CachedLoader { loader: loader(Cached { inner, cache: cache.clone(), kind }), cache: cache.clone(), kind }
}

fn by_column<E>(
    db: &DatabaseConnection,
    column: E::Column,
    condition: Option<Condition>,
    order: Option<E::Column>,
) -> Uncached<ByColumn<E>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    Uncached(loader(ByColumn { db: db.clone(), column, condition, order }))
}

fn by_pair<E>(
    db: &DatabaseConnection,
    columns: (E::Column, E::Column),
    condition: Option<Condition>,
) -> Uncached<ByPair<E>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    Uncached(loader(ByPair { db: db.clone(), columns, condition }))
}

/// How many of a mentor's courses `Mentor.courses` can show (its `first` is at most this).
pub const MENTOR_COURSES_LIMIT: i32 = 100;

/// The loaders of the schema, created once and shared by all requests.
pub struct Loaders {
    pub users: Uncached<ById<users::Entity>>,
    pub identities: CachedLoader<ById<user_identities::Entity>>,
    pub identities_by_user: Uncached<ByColumn<user_identities::Entity>>,
    pub profiles_by_identity: CachedLoader<ByColumn<user_profiles::Entity>>,
    pub mentor_stats: CachedLoader<ById<mentor_stats::Entity>>,
    pub courses: CachedLoader<ById<courses::Entity>>,
    /// Ids of a mentor's newest published courses, at most [`MENTOR_COURSES_LIMIT`].
    pub published_courses_by_mentor: CachedLoader<NewestByColumn<courses::Entity>>,
    pub course_stats: CachedLoader<ById<course_stats::Entity>>,
    pub contents: Uncached<ById<course_contents::Entity>>,
    /// By id, for `review(id)`, `appointment(id)` and notification targets.
    pub reviews: Uncached<ById<reviews::Entity>>,
    pub appointments: Uncached<ById<appointments::Entity>>,
    pub contents_by_course: CachedLoader<ByColumn<course_contents::Entity>>,
    /// (user, course) -> learning record
    pub enrollments: Uncached<ByPair<learning_records::Entity>>,
    /// (user, content) -> that user's progress on it
    pub content_progress: Uncached<ByPair<content_progress::Entity>>,
    /// Pages of a course's students (enrollments not dropped), and their counts.
    pub course_students: Uncached<Pages<learning_records::Entity>>,
    pub course_student_counts: Arc<Uncached<Counts<learning_records::Entity>>>,
    pub circles: CachedLoader<ById<circles::Entity>>,
    /// (user, circle) -> active membership
    pub memberships: Uncached<ByPair<circle_members::Entity>>,
    pub posts: CachedLoader<ById<posts::Entity>>,
    pub comments: CachedLoader<ById<comments::Entity>>,
    /// (user, post) -> like
    pub post_likes: CachedPairLoader<ByPair<post_likes::Entity>>,
    /// A poll's options in order; (user, post) -> their vote.
    pub poll_options: Uncached<ByColumn<poll_options::Entity>>,
    pub poll_votes: Uncached<ByPair<poll_votes::Entity>>,
    /// (user, comment) -> like
    pub comment_likes: Uncached<ByPair<comment_likes::Entity>>,
    pub review_likes: Uncached<ByPair<review_likes::Entity>>,
    pub appointment_history: Uncached<ByColumn<appointment_status_logs::Entity>>,
    /// A master identity's schedule.
    pub availability: Uncached<ById<mentor_availability::Entity>>,
    /// (user, from, to) -> the times they are booked then, for a page of mentors' free slots.
    pub busy_times: Uncached<BusyTimes>,
    /// Pages of circles' members, posts (by order) and posts' comments, and their counts.
    pub circle_members: Uncached<Pages<circle_members::Entity>>,
    pub circle_member_counts: Arc<Uncached<Counts<circle_members::Entity>>>,
    pub circle_posts: Uncached<Pages<posts::Entity, crate::domain::posts::PostOrder>>,
    pub circle_post_counts: Arc<Uncached<Counts<posts::Entity>>>,
    /// A post's comments, all of them (`false`) or its top-level ones (`true`), and their counts.
    pub post_comments: Uncached<Pages<comments::Entity, bool>>,
    pub post_comment_counts: Arc<Uncached<Counts<comments::Entity>>>,
    pub post_top_level_counts: Arc<Uncached<Counts<comments::Entity>>>,
    /// Pages of comments' direct replies, and their counts.
    pub comment_replies: Uncached<Pages<comments::Entity>>,
    pub comment_reply_counts: Arc<Uncached<Counts<comments::Entity>>>,
    /// Pages of courses' and masters' reviews, and their counts.
    pub course_reviews: Uncached<Pages<reviews::Entity>>,
    pub course_review_counts: Arc<Uncached<Counts<reviews::Entity>>>,
    pub mentor_reviews: Uncached<Pages<reviews::Entity>>,
    pub mentor_review_counts: Arc<Uncached<Counts<reviews::Entity>>>,
}

pub fn new(db: DatabaseConnection, cache: &Cache, batch_delay: std::time::Duration) -> Loaders {
    BATCH_DELAY.with(|delay| delay.set(batch_delay));
    Loaders {
        users: by_id(&db),
        identities: cached(ById(db.clone(), PhantomData), cache, Kind::Identity),
        identities_by_user: by_column(
            &db,
            user_identities::Column::UserId,
            None,
            Some(user_identities::Column::CreatedAt),
        ),
        profiles_by_identity: cached(
            ByColumn { db: db.clone(), column: user_profiles::Column::IdentityId, condition: None, order: None },
            cache,
            Kind::Profile,
        ),
        mentor_stats: cached(ById(db.clone(), PhantomData), cache, Kind::MentorStats),
        courses: cached(ById(db.clone(), PhantomData), cache, Kind::Course),
        published_courses_by_mentor: cached(
            NewestByColumn {
                db: db.clone(),
                column: courses::Column::MentorId,
                condition: Some(Condition::all().add(courses::Column::Status.eq(CourseStatus::Published.as_str()))),
                time: courses::Column::CreatedAt,
                limit: MENTOR_COURSES_LIMIT.into(),
            },
            cache,
            Kind::MentorCourses,
        ),
        course_stats: cached(ById(db.clone(), PhantomData), cache, Kind::CourseStats),
        contents: by_id(&db),
        reviews: by_id(&db),
        appointments: by_id(&db),
        contents_by_course: cached(
            ByColumn {
                db: db.clone(),
                column: course_contents::Column::CourseId,
                condition: None,
                order: Some(course_contents::Column::OrderIndex),
            },
            cache,
            Kind::CourseContents,
        ),
        enrollments: by_pair(&db, (learning_records::Column::UserId, learning_records::Column::CourseId), None),
        content_progress: by_pair(&db, (content_progress::Column::UserId, content_progress::Column::ContentId), None),
        course_students: pages(&db, |()| crate::domain::learning::student_list()),
        course_student_counts: counts(&db, crate::domain::learning::student_list()),
        circles: cached(ById(db.clone(), PhantomData), cache, Kind::Circle),
        memberships: by_pair(
            &db,
            (circle_members::Column::UserId, circle_members::Column::CircleId),
            Some(Condition::all().add(circle_members::Column::IsActive.eq(true))),
        ),
        posts: cached(ById(db.clone(), PhantomData), cache, Kind::Post),
        comments: cached(ById(db.clone(), PhantomData), cache, Kind::Comment),
        post_likes: CachedPairLoader {
            loader: loader(CachedPairs {
                inner: ByPair {
                    db: db.clone(),
                    columns: (post_likes::Column::UserId, post_likes::Column::PostId),
                    condition: None,
                },
                cache: cache.clone(),
                kind: Kind::PostLike,
            }),
            cache: cache.clone(),
            kind: Kind::PostLike,
        },
        poll_options: by_column(&db, poll_options::Column::PostId, None, Some(poll_options::Column::Position)),
        poll_votes: by_pair(&db, (poll_votes::Column::UserId, poll_votes::Column::PostId), None),
        comment_likes: by_pair(&db, (comment_likes::Column::UserId, comment_likes::Column::CommentId), None),
        review_likes: by_pair(&db, (review_likes::Column::UserId, review_likes::Column::ReviewId), None),
        availability: by_id(&db),
        busy_times: Uncached(loader(BusyTimes(db.clone()))),
        appointment_history: by_column(
            &db,
            appointment_status_logs::Column::AppointmentId,
            None,
            Some(appointment_status_logs::Column::CreatedAt),
        ),
        circle_members: pages(&db, |()| crate::domain::circles::member_list()),
        circle_member_counts: counts(&db, crate::domain::circles::member_list()),
        circle_posts: pages(&db, crate::domain::posts::circle_post_list),
        circle_post_counts: counts(
            &db,
            crate::domain::posts::circle_post_list(crate::domain::posts::PostOrder::CIRCLE_DEFAULT),
        ),
        post_comments: pages(&db, crate::domain::posts::post_comment_list),
        post_comment_counts: counts(&db, crate::domain::posts::post_comment_list(false)),
        post_top_level_counts: counts(&db, crate::domain::posts::post_comment_list(true)),
        comment_replies: pages(&db, |()| crate::domain::posts::reply_list()),
        comment_reply_counts: counts(&db, crate::domain::posts::reply_list()),
        course_reviews: pages(&db, |()| crate::domain::reviews::review_list(true)),
        course_review_counts: counts(&db, crate::domain::reviews::review_list(true)),
        mentor_reviews: pages(&db, |()| crate::domain::reviews::review_list(false)),
        mentor_review_counts: counts(&db, crate::domain::reviews::review_list(false)),
    }
}

fn pages<E, O>(db: &DatabaseConnection, list: fn(O) -> ChildList<E>) -> Uncached<Pages<E, O>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    Uncached(loader(Pages { db: db.clone(), list }))
}

fn counts<E>(db: &DatabaseConnection, list: ChildList<E>) -> Arc<Uncached<Counts<E>>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
{
    Arc::new(Uncached(loader(Counts { db: db.clone(), list })))
}

/// Whether a loaded enrollment currently gives access to paid content.
pub fn is_enrolled(record: Option<&learning_records::Model>) -> bool {
    record.is_some_and(|r| r.status != LearningStatus::Dropped)
}
