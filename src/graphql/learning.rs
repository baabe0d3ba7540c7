//! Enrollment and learning progress over GraphQL.

use super::accounts::User;
use super::context::{loaders, state, viewer};
use super::courses::{Course, CourseContent};
use super::id_arg;
use super::pagination::{connection, page_request, Conn, ConnectionFields};
use crate::domain::learning::{self, percent};
use crate::error::AppError;
use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::enums::LearningStatus;
use entity::{content_progress, course_contents, learning_records};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// A student's enrollment in a course.
pub struct LearningRecord(pub learning_records::Model);

/// A student's enrollment in a course and their progress.
#[Object]
impl LearningRecord {
    /// The record's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The course (null when it is no longer visible).
    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        let course = loaders(ctx)?.courses.load_one(self.0.course_id).await.map_err(AppError::from)?;
        Ok(course.map(Course))
    }
    /// ENROLLED -> LEARNING -> COMPLETED, or DROPPED.
    async fn status(&self) -> LearningStatus {
        self.0.status
    }
    /// Mean progress over the course's contents, 0..100.
    async fn progress_percentage(&self) -> f64 {
        percent(self.0.progress_percentage)
    }
    /// When they enrolled.
    async fn enrolled_at(&self) -> DateTime<Utc> {
        self.0.enrolled_at
    }
    /// When every content item was completed.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// When progress was last recorded.
    async fn last_accessed_at(&self) -> DateTime<Utc> {
        self.0.last_accessed_at
    }
    /// Minutes studied in this course.
    async fn total_study_time(&self) -> i32 {
        self.0.total_study_time
    }
    /// The student.
    async fn student(&self) -> User {
        User::by_id(self.0.user_id)
    }
    /// Every content of the course in order, with this student's progress on it (checkmarks,
    /// "resume here"). Two batched reads for any number of records.
    async fn contents(&self, ctx: &Context<'_>) -> Result<Vec<LearningContent>> {
        let loaders = loaders(ctx)?;
        let contents =
            loaders.contents_by_course.load_one(self.0.course_id).await.map_err(AppError::from)?.unwrap_or_default();
        let keys: Vec<(uuid::Uuid, uuid::Uuid)> = contents.iter().map(|c| (self.0.user_id, c.id)).collect();
        let mut progress = loaders.content_progress.load_many(keys).await.map_err(AppError::from)?;
        Ok(contents
            .into_iter()
            .map(|content| {
                let row = progress.remove(&(self.0.user_id, content.id));
                LearningContent { content, progress: row }
            })
            .collect())
    }
    /// The content this student opened last (where to resume); null before any progress.
    async fn last_content(&self, ctx: &Context<'_>) -> Result<Option<CourseContent>> {
        let contents = self.contents(ctx).await?;
        Ok(contents
            .into_iter()
            .filter_map(|c| Some((c.progress.as_ref()?.last_accessed_at, c.content)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, content)| CourseContent(content)))
    }
}

/// One content of a course with a student's progress on it (0 before they open it).
pub struct LearningContent {
    content: course_contents::Model,
    progress: Option<content_progress::Model>,
}

/// One content item of an enrolled course with the student's progress on it.
#[Object]
impl LearningContent {
    /// The content item.
    async fn content(&self) -> CourseContent {
        CourseContent(self.content.clone())
    }
    /// 0..100.
    async fn progress_percentage(&self) -> f64 {
        self.progress.as_ref().map(|p| percent(p.progress_percentage)).unwrap_or(0.0)
    }
    /// Whether it reached 100%.
    async fn is_completed(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| p.is_completed)
    }
    /// Minutes studied on it.
    async fn study_time(&self) -> i32 {
        self.progress.as_ref().map(|p| p.study_time).unwrap_or(0)
    }
    /// Null before the student opens it.
    async fn last_accessed_at(&self) -> Option<DateTime<Utc>> {
        self.progress.as_ref().map(|p| p.last_accessed_at)
    }
    /// When it reached 100%.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.progress.as_ref().and_then(|p| p.completed_at)
    }
}

/// A student's progress on one content item.
pub struct ContentProgress(pub content_progress::Model);

/// A student's progress on one content item.
#[Object]
impl ContentProgress {
    /// The progress record's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The content item.
    async fn content(&self, ctx: &Context<'_>) -> Result<Option<CourseContent>> {
        let content = loaders(ctx)?.contents.load_one(self.0.content_id).await.map_err(AppError::from)?;
        Ok(content.map(CourseContent))
    }
    /// 0..100; never goes down.
    async fn progress_percentage(&self) -> f64 {
        percent(self.0.progress_percentage)
    }
    /// Whether it reached 100%.
    async fn is_completed(&self) -> bool {
        self.0.is_completed
    }
    /// When it reached 100%.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// Minutes studied on this item.
    async fn study_time(&self) -> i32 {
        self.0.study_time
    }
    /// When progress was last recorded.
    async fn last_accessed_at(&self) -> DateTime<Utc> {
        self.0.last_accessed_at
    }
    /// The enrollment this progress counts towards.
    async fn learning_record(&self, ctx: &Context<'_>) -> Result<Option<LearningRecord>> {
        let content = loaders(ctx)?.contents.load_one(self.0.content_id).await.map_err(AppError::from)?;
        let Some(content) = content else { return Ok(None) };
        let record =
            loaders(ctx)?.enrollments.load_one((self.0.user_id, content.course_id)).await.map_err(AppError::from)?;
        Ok(record.map(LearningRecord))
    }
}

#[derive(Default)]
pub struct LearningQuery;

#[Object]
impl LearningQuery {
    /// The viewer's enrollments, newest first.
    async fn my_learning(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only records in this status.")] status: Option<LearningStatus>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<LearningRecord>> {
        let page = page_request(ctx, first, after, last, before)?;
        let viewer = viewer(ctx);
        let user_id = viewer.require()?;
        let db = &state(ctx)?.db;
        let rows = learning::my_learning(db, viewer, status, &page).await?;
        let mut select = learning_records::Entity::find().filter(learning_records::Column::UserId.eq(user_id));
        if let Some(status) = status {
            select = select.filter(learning_records::Column::Status.eq(status.as_str()));
        }
        Ok(connection(rows, ConnectionFields::counting(db, select), LearningRecord))
    }
}

#[derive(Default)]
pub struct LearningMutation;

#[Object]
impl LearningMutation {
    /// Takes a seat in a published course (CONFLICT when full). Enrolling again returns the
    /// existing record.
    async fn enroll(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The published course to enroll in.")] course_id: ID,
    ) -> Result<LearningRecord> {
        let course_id = id_arg("courseId", &course_id)?;
        Ok(LearningRecord(learning::enroll(&state(ctx)?.db, viewer(ctx), course_id).await?))
    }

    /// Leaves a course and frees the seat.
    async fn drop_course(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The course to drop.")] course_id: ID,
    ) -> Result<LearningRecord> {
        let course_id = id_arg("courseId", &course_id)?;
        Ok(LearningRecord(learning::drop_course(&state(ctx)?.db, viewer(ctx), course_id).await?))
    }

    /// Records progress on a content item (0..100; a lower value never undoes progress) and
    /// minutes studied (0..1440).
    async fn record_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The content item studied.")] content_id: ID,
        #[graphql(desc = "How far through it you are, 0 to 100 (never goes back).")] progress_percentage: f64,
        #[graphql(default = 0, desc = "Minutes studied in this session, added to the record.")] study_minutes: i32,
    ) -> Result<ContentProgress> {
        let content_id = id_arg("contentId", &content_id)?;
        let saved =
            learning::record_progress(&state(ctx)?.db, viewer(ctx), content_id, progress_percentage, study_minutes)
                .await?;
        Ok(ContentProgress(saved))
    }
}
