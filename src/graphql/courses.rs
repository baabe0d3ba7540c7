//! Courses and their contents over GraphQL.

use super::context::{loaders, state, viewer};
use super::identities::Mentor;
use super::learning::{ContentProgress, LearningRecord};
use super::pagination::{child_connection, connection, joins, page_request, Conn, ConnectionFields};
use super::{id_arg, maybe_undefined, SortDirection};
use crate::domain::courses::{self, ContentInput, CourseFilter, CourseInput, CourseOrder};
use crate::domain::pagination::Owner;
use crate::domain::values::scale2;
use crate::error::AppError;
use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::enums::{ContentType, CourseStatus, Difficulty};
use entity::{course_contents, course_stats, courses as table};
use rust_decimal::Decimal;

/// A course taught by a master.
pub struct Course(pub table::Model);

/// A course a master teaches: contents, enrollments and reviews.
#[Object]
impl Course {
    /// The course's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its title (1 to 200 characters).
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// What it teaches.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Its cover image's URL.
    async fn cover_image(&self) -> Option<&str> {
        self.0.cover_image.as_deref()
    }
    /// e.g. "199.00".
    async fn price(&self) -> Decimal {
        scale2(self.0.price)
    }
    /// How many hours it takes, as its master estimates.
    async fn duration_hours(&self) -> i32 {
        self.0.duration_hours
    }
    /// BEGINNER, INTERMEDIATE or ADVANCED.
    async fn difficulty(&self) -> Option<Difficulty> {
        self.0.difficulty
    }
    /// DRAFT, PUBLISHED or ARCHIVED.
    async fn status(&self) -> CourseStatus {
        self.0.status
    }
    /// Seats; null means unlimited.
    async fn max_students(&self) -> Option<i32> {
        self.0.max_students
    }
    /// Students holding a seat now.
    async fn current_students(&self) -> i32 {
        self.0.current_students
    }
    /// Average COURSE review rating, e.g. "4.50" ("0.00" until reviewed).
    async fn rating(&self) -> Decimal {
        scale2(self.0.rating)
    }
    /// How many active COURSE reviews it has.
    async fn review_count(&self) -> i32 {
        self.0.review_count
    }
    /// Its tags (searched and faceted).
    async fn tags(&self) -> Vec<String> {
        self.0.tags.clone().map(|t| t.0).unwrap_or_default()
    }
    /// What a student should know first.
    async fn prerequisites(&self) -> Option<&str> {
        self.0.prerequisites.as_deref()
    }
    /// What a student will be able to do.
    async fn learning_objectives(&self) -> Vec<String> {
        self.0.learning_objectives.clone().map(|t| t.0).unwrap_or_default()
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The master who teaches it.
    async fn mentor(&self) -> Mentor {
        Mentor::new(self.0.mentor_id)
    }
    /// Contents in order. Paid items show `contentUrl` / `contentText` to enrolled students and the
    /// master only; others see title, type and duration (`locked: true`).
    async fn contents(&self, ctx: &Context<'_>) -> Result<Vec<CourseContent>> {
        let rows = loaders(ctx)?.contents_by_course.load_one(self.0.id).await.map_err(AppError::from)?;
        Ok(rows.unwrap_or_default().into_iter().map(CourseContent).collect())
    }
    /// How many content items it has.
    async fn contents_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let rows = loaders(ctx)?.contents_by_course.load_one(self.0.id).await.map_err(AppError::from)?;
        Ok(rows.map(|r| r.len() as i32).unwrap_or(0))
    }
    /// The design's course_stats (published courses only).
    async fn stats(&self, ctx: &Context<'_>) -> Result<Option<CourseStats>> {
        let stats = loaders(ctx)?.course_stats.load_one(self.0.id).await.map_err(AppError::from)?;
        Ok(stats.map(CourseStats))
    }
    /// Active COURSE reviews, newest first.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<super::pagination::Conn<super::appointments::Review>> {
        super::appointments::review_connection(ctx, crate::domain::reviews::ReviewsOf::Course(self.0.id), first, after)
            .await
    }
    /// The course's students (enrollments not dropped), newest first, with their progress: for
    /// the course's master and admins (FORBIDDEN for others).
    async fn students(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<LearningRecord>> {
        let page = page_request(ctx, first, after, last, before)?;
        let viewer = viewer(ctx);
        let user_id = viewer.require()?;
        let loaders = loaders(ctx)?;
        let owner = loaders.identities.load_one(self.0.mentor_id).await.map_err(AppError::from)?;
        let teaches = owner.is_some_and(|i| i.user_id == user_id);
        if !teaches && !crate::domain::is_admin(viewer) {
            return Err(AppError::forbidden("only the course's master sees its students").into());
        }
        let batched = (&loaders.course_students, &loaders.course_student_counts);
        let list = crate::domain::learning::student_list();
        child_connection(batched, list, (self.0.id, ()), &page, LearningRecord).await
    }
    /// The viewer's enrollment in this course, if any.
    async fn viewer_enrollment(&self, ctx: &Context<'_>) -> Result<Option<LearningRecord>> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(None) };
        let record = loaders(ctx)?.enrollments.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(record.map(LearningRecord))
    }
}

/// The design's course_stats row.
pub struct CourseStats(course_stats::Model);

/// A course's figures for its page and its master.
#[Object]
impl CourseStats {
    /// Enrollments that are not dropped.
    async fn enrolled_students(&self) -> i64 {
        self.0.enrolled_students
    }
    /// Mean progress of those students, 0..100.
    async fn avg_progress(&self) -> f64 {
        (self.0.avg_progress * 100.0).round() / 100.0
    }
    /// Mean COURSE review rating; null until there is one.
    async fn average_rating(&self) -> Option<f64> {
        (self.0.review_count > 0).then_some((self.0.average_rating * 100.0).round() / 100.0)
    }
    /// Active COURSE reviews.
    async fn review_count(&self) -> i64 {
        self.0.review_count
    }
}

/// One lesson of a course.
pub struct CourseContent(pub course_contents::Model);

/// One item of a course: a video, a text, a quiz or an assignment.
impl CourseContent {
    /// Free items are open; paid ones to the course's master, admins and enrolled students.
    async fn unlocked(&self, ctx: &Context<'_>) -> Result<bool> {
        if self.0.is_free {
            return Ok(true);
        }
        let viewer = viewer(ctx);
        let Some(user_id) = viewer.user_id() else { return Ok(false) };
        if crate::domain::is_admin(viewer) {
            return Ok(true);
        }
        let loaders = loaders(ctx)?;
        if let Some(course) = loaders.courses.load_one(self.0.course_id).await.map_err(AppError::from)? {
            let owner = loaders.identities.load_one(course.mentor_id).await.map_err(AppError::from)?;
            if owner.is_some_and(|i| i.user_id == user_id) {
                return Ok(true);
            }
        }
        let record = loaders.enrollments.load_one((user_id, self.0.course_id)).await.map_err(AppError::from)?;
        Ok(super::loaders::is_enrolled(record.as_ref()))
    }
}

/// One item of a course: a video, a text, a quiz or an assignment.
#[Object]
impl CourseContent {
    /// The item's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// VIDEO, TEXT, QUIZ or ASSIGNMENT.
    async fn content_type(&self) -> ContentType {
        self.0.content_type
    }
    /// 0-based position, dense within the course.
    async fn order_index(&self) -> i32 {
        self.0.order_index
    }
    /// How long it takes.
    async fn duration_minutes(&self) -> Option<i32> {
        self.0.duration_minutes
    }
    /// Free items are open to everyone; the others to enrolled students and the master.
    async fn is_free(&self) -> bool {
        self.0.is_free
    }
    /// True when the viewer may not open this item (paid, not enrolled).
    async fn locked(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(!self.unlocked(ctx).await?)
    }
    /// Null while locked. A file uploaded here (COURSE_MEDIA) of a paid item is a signed URL that
    /// works for a short while (ask again for a fresh one); of a free item, a stable URL that works
    /// while the item stays free.
    async fn content_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        use crate::domain::uploads::{free_media_url, readable_url};
        if !self.unlocked(ctx).await? {
            return Ok(None);
        }
        let storage = &state(ctx)?.storage;
        Ok(self.0.content_url.as_deref().map(|url| {
            if self.0.is_free {
                free_media_url(storage, url, self.0.id)
            } else {
                readable_url(storage, url, entity::enums::UploadPurpose::CourseMedia)
            }
        }))
    }
    /// Null while locked.
    async fn content_text(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(if self.unlocked(ctx).await? { self.0.content_text.clone() } else { None })
    }
    /// The course it belongs to (null when you cannot see the course).
    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        let course = crate::domain::courses::get(&state(ctx)?.db, viewer(ctx), self.0.course_id).await?;
        Ok(course.map(Course))
    }
    /// The signed-in viewer's progress on this item; null before they record any (or anonymous).
    async fn viewer_progress(&self, ctx: &Context<'_>) -> Result<Option<ContentProgress>> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(None) };
        let row = loaders(ctx)?.content_progress.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(row.map(ContentProgress))
    }
}

/// Input of `createCourse`.
#[derive(InputObject)]
pub struct CreateCourseInput {
    /// Your active, verified MASTER identity that teaches the course.
    pub identity_id: ID,
    /// 1..200 characters.
    pub title: String,
    /// What it teaches (at most 20000 characters).
    pub description: Option<String>,
    /// http(s) URL.
    pub cover_image: Option<String>,
    /// >= 0 with at most 2 decimals, e.g. "199.00".
    pub price: Decimal,
    /// 1..10000.
    pub duration_hours: i32,
    /// BEGINNER, INTERMEDIATE or ADVANCED.
    pub difficulty: Option<Difficulty>,
    /// Seats (>= 1); null or omitted for unlimited.
    pub max_students: Option<i32>,
    /// At most 20 tags of at most 50 characters.
    pub tags: Option<Vec<String>>,
    /// What a student should know first.
    pub prerequisites: Option<String>,
    /// At most 20 objectives of at most 200 characters.
    pub learning_objectives: Option<Vec<String>>,
}

/// Input of `updateCourse`: omitted fields stay as they are; null clears a nullable field.
#[derive(InputObject)]
pub struct UpdateCourseInput {
    /// A new title.
    pub title: Option<String>,
    /// A new description; null clears it.
    pub description: MaybeUndefined<String>,
    /// A new cover: a READY COURSE_COVER upload of yours or an http(s) URL; null clears it.
    pub cover_image: MaybeUndefined<String>,
    /// A new price.
    pub price: Option<Decimal>,
    /// A new duration.
    pub duration_hours: Option<i32>,
    /// A new difficulty; null clears it.
    pub difficulty: MaybeUndefined<Difficulty>,
    /// Not below the students enrolled now.
    pub max_students: MaybeUndefined<i32>,
    /// New tags (replacing the old).
    pub tags: Option<Vec<String>>,
    /// New prerequisites; null clears them.
    pub prerequisites: MaybeUndefined<String>,
    /// New objectives (replacing the old).
    pub learning_objectives: Option<Vec<String>>,
}

/// Input of `addCourseContent` (appended at the end).
#[derive(InputObject)]
pub struct AddCourseContentInput {
    /// 1..200 characters.
    pub title: String,
    /// VIDEO, TEXT, QUIZ or ASSIGNMENT.
    pub content_type: ContentType,
    /// http(s) URL of the video or file.
    pub content_url: Option<String>,
    /// Up to 100,000 characters.
    pub content_text: Option<String>,
    /// 0..10000.
    pub duration_minutes: Option<i32>,
    /// Free items are open to everyone.
    pub is_free: Option<bool>,
}

/// Input of `updateCourseContent`.
#[derive(InputObject)]
pub struct UpdateCourseContentInput {
    /// A new title.
    pub title: Option<String>,
    /// A new type.
    pub content_type: Option<ContentType>,
    /// A new URL; null clears it.
    pub content_url: MaybeUndefined<String>,
    /// A new text; null clears it.
    pub content_text: MaybeUndefined<String>,
    /// A new duration; null clears it.
    pub duration_minutes: MaybeUndefined<i32>,
    /// Whether it is open to everyone.
    pub is_free: Option<bool>,
}

/// Narrows `courses`.
#[derive(InputObject, Default)]
pub struct CourseFilterInput {
    /// Default PUBLISHED. DRAFT lists your own drafts (all drafts for admins).
    pub status: Option<CourseStatus>,
    /// Only this difficulty.
    pub difficulty: Option<Difficulty>,
    /// A master identity id.
    pub mentor_id: Option<ID>,
    /// A domain code.
    pub domain: Option<String>,
    /// Only courses with this tag.
    pub tag: Option<String>,
    /// Price at least this.
    pub min_price: Option<Decimal>,
    /// Price at most this.
    pub max_price: Option<Decimal>,
}

/// What `courses` can be sorted by (the id breaks ties).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CourseOrderField {
    /// Average rating.
    Rating,
    /// Price.
    Price,
    /// Creation time.
    CreatedAt,
    /// Enrolled students.
    Students,
}

/// An order of `courses`.
#[derive(InputObject)]
pub struct CourseOrderBy {
    /// What to sort by.
    pub field: CourseOrderField,
    /// ASC or DESC.
    #[graphql(default_with = "SortDirection::Desc")]
    pub direction: SortDirection,
}

#[derive(Default)]
pub struct CoursesQuery;

#[Object]
impl CoursesQuery {
    /// A course; drafts only for their master (and admins), null otherwise.
    pub(crate) async fn course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course's id.")] id: ID,
    ) -> Result<Option<Course>> {
        let id = id_arg("id", &id)?;
        let Some(course) = loaders(ctx)?.courses.load_one(id).await.map_err(AppError::from)? else { return Ok(None) };
        Ok(courses::visible(&state(ctx)?.db, viewer(ctx), course).await?.map(Course))
    }

    /// Courses, filtered and ordered (default: newest first).
    async fn courses(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the catalogue (domain, difficulty, price, tags, master).")] filter: Option<
            CourseFilterInput,
        >,
        #[graphql(desc = "The order and its direction (default: newest first).")] order_by: Option<CourseOrderBy>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Course>> {
        let mentors = joins(ctx, "mentor", Owner::Mentor, false);
        let page = page_request(ctx, first, after, last, before)?.joining(mentors);
        let filter = filter.unwrap_or_default();
        let filter = CourseFilter {
            status: filter.status,
            difficulty: filter.difficulty,
            mentor_id: filter.mentor_id.map(|m| id_arg("filter.mentorId", &m)).transpose()?,
            domain: filter.domain,
            tag: filter.tag,
            min_price: filter.min_price,
            max_price: filter.max_price,
        };
        let (field, direction) =
            order_by.map(|o| (o.field, o.direction)).unwrap_or((CourseOrderField::CreatedAt, SortDirection::Desc));
        let order = match field {
            CourseOrderField::Rating => CourseOrder::Rating,
            CourseOrderField::Price => CourseOrder::Price,
            CourseOrderField::CreatedAt => CourseOrder::CreatedAt,
            CourseOrderField::Students => CourseOrder::Students,
        };
        let db = &state(ctx)?.db;
        let (rows, select) =
            courses::list(db, &state(ctx)?.cache, viewer(ctx), filter, order, direction.into(), &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Course))
    }
}

#[derive(Default)]
pub struct CoursesMutation;

#[Object]
impl CoursesMutation {
    /// Creates a draft course taught by one of your verified master identities.
    async fn create_course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new course (it starts as a DRAFT).")] input: CreateCourseInput,
    ) -> Result<Course> {
        let input = CourseInput {
            identity_id: Some(id_arg("input.identityId", &input.identity_id)?),
            title: Some(input.title),
            description: Some(input.description),
            cover_image: Some(input.cover_image),
            price: Some(input.price),
            duration_hours: Some(input.duration_hours),
            difficulty: Some(input.difficulty),
            max_students: Some(input.max_students),
            tags: input.tags,
            prerequisites: Some(input.prerequisites),
            learning_objectives: input.learning_objectives,
        };
        let state = state(ctx)?;
        Ok(Course(courses::create(&state.db, &state.storage, viewer(ctx), input).await?))
    }

    /// The master edits a course (an archived course cannot be edited).
    async fn update_course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay, null clears.")] input: UpdateCourseInput,
    ) -> Result<Course> {
        let id = id_arg("id", &id)?;
        let input = CourseInput {
            identity_id: None,
            title: input.title,
            description: maybe_undefined(input.description),
            cover_image: maybe_undefined(input.cover_image),
            price: input.price,
            duration_hours: input.duration_hours,
            difficulty: maybe_undefined(input.difficulty),
            max_students: maybe_undefined(input.max_students),
            tags: input.tags,
            prerequisites: maybe_undefined(input.prerequisites),
            learning_objectives: input.learning_objectives,
        };
        let state = state(ctx)?;
        Ok(Course(courses::update(&state.db, &state.storage, viewer(ctx), id, input).await?))
    }

    /// DRAFT or ARCHIVED -> PUBLISHED (needs at least one content item).
    async fn publish_course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The draft course to publish.")] id: ID,
    ) -> Result<Course> {
        let id = id_arg("id", &id)?;
        Ok(Course(courses::publish(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// PUBLISHED -> ARCHIVED: no new enrollments; enrolled students keep access.
    async fn archive_course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course to archive.")] id: ID,
    ) -> Result<Course> {
        let id = id_arg("id", &id)?;
        Ok(Course(courses::archive(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// The master appends a content item to a course.
    async fn add_course_content(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course to add to (yours).")] course_id: ID,
        #[graphql(desc = "The new content item (added at the end).")] input: AddCourseContentInput,
    ) -> Result<CourseContent> {
        let course_id = id_arg("courseId", &course_id)?;
        let input = ContentInput {
            title: Some(input.title),
            content_type: Some(input.content_type),
            content_url: Some(input.content_url),
            content_text: Some(input.content_text),
            duration_minutes: Some(input.duration_minutes),
            is_free: input.is_free,
        };
        let state = state(ctx)?;
        Ok(CourseContent(courses::add_content(&state.db, &state.storage, viewer(ctx), course_id, input).await?))
    }

    /// The master edits a content item.
    async fn update_course_content(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The content item to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay, null clears.")] input: UpdateCourseContentInput,
    ) -> Result<CourseContent> {
        let id = id_arg("id", &id)?;
        let input = ContentInput {
            title: input.title,
            content_type: input.content_type,
            content_url: maybe_undefined(input.content_url),
            content_text: maybe_undefined(input.content_text),
            duration_minutes: maybe_undefined(input.duration_minutes),
            is_free: input.is_free,
        };
        let state = state(ctx)?;
        Ok(CourseContent(courses::update_content(&state.db, &state.storage, viewer(ctx), id, input).await?))
    }

    /// Removes a content item; the others close the gap.
    async fn remove_course_content(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The content item to remove.")] id: ID,
    ) -> Result<CourseContent> {
        let id = id_arg("id", &id)?;
        Ok(CourseContent(courses::remove_content(&state(ctx)?.db, &state(ctx)?.storage, viewer(ctx), id).await?))
    }

    /// Sets the order of all of a course's contents.
    async fn reorder_course_contents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course (yours).")] course_id: ID,
        #[graphql(desc = "Every content id of the course, in the new order.")] content_ids: Vec<ID>,
    ) -> Result<Vec<CourseContent>> {
        let course_id = id_arg("courseId", &course_id)?;
        let ids = content_ids
            .iter()
            .enumerate()
            .map(|(i, id)| id_arg(&format!("contentIds[{i}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = courses::reorder(&state(ctx)?.db, viewer(ctx), course_id, ids).await?;
        Ok(rows.into_iter().map(CourseContent).collect())
    }
}
