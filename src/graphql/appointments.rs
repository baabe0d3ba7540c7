//! Appointments and reviews over GraphQL.

use super::accounts::User;
use super::context::{client_ip, loaders, state, viewer};
use super::courses::Course;
use super::identities::Mentor;
use super::pagination::{connection, page_request, Conn, ConnectionFields};
use super::{id_arg, maybe_undefined};
use crate::domain::appointments::{self, Booking, Side, Transition};
use crate::domain::reviews::{self, NewReview};
use crate::domain::values::scale2;
use crate::error::AppError;
use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::enums::{AppointmentStatus, ContentStatus, MeetingType, ReviewType};
use entity::{appointment_status_logs, appointments as table, reviews as review_table};
use rust_decimal::Decimal;

/// A paid one-to-one session with a mentor.
pub struct Appointment(pub table::Model);

/// One step of an appointment's status history.
#[derive(SimpleObject)]
pub struct AppointmentTransition {
    /// Null for the booking itself.
    pub from_status: Option<AppointmentStatus>,
    /// The status it moved to.
    pub to_status: AppointmentStatus,
    /// Why (a cancellation's reason, a reschedule's old and new times).
    pub reason: Option<String>,
    /// The user who made the change.
    pub changed_by: Option<ID>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<appointment_status_logs::Model> for AppointmentTransition {
    fn from(log: appointment_status_logs::Model) -> Self {
        Self {
            from_status: log.from_status,
            to_status: log.to_status,
            reason: log.reason,
            changed_by: log.changed_by.map(|id| ID(id.to_string())),
            at: log.created_at,
        }
    }
}

/// A paid one-to-one session between a student and a mentor.
#[Object]
impl Appointment {
    /// The appointment's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When it starts (UTC).
    async fn appointment_time(&self) -> DateTime<Utc> {
        self.0.appointment_time
    }
    /// When it ends (UTC): the start plus the duration.
    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }
    /// Its length, 15 to 240 minutes.
    async fn duration_minutes(&self) -> i32 {
        self.0.duration_minutes
    }
    /// VIDEO, VOICE or TEXT.
    async fn meeting_type(&self) -> MeetingType {
        self.0.meeting_type
    }
    /// PENDING -> CONFIRMED -> COMPLETED | NO_SHOW; PENDING | CONFIRMED -> CANCELLED.
    async fn status(&self) -> AppointmentStatus {
        self.0.status
    }
    /// Hourly rate x duration, fixed at booking.
    async fn price(&self) -> Decimal {
        scale2(self.0.price)
    }
    /// What the student wrote when booking (the parties only).
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    /// Set by the mentor on confirmation.
    async fn meeting_url(&self) -> Option<&str> {
        self.0.meeting_url.as_deref()
    }
    /// The meeting room's id, given on confirmation.
    async fn meeting_id(&self) -> Option<&str> {
        self.0.meeting_id.as_deref()
    }
    /// When it was booked.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The student who booked.
    async fn student(&self) -> User {
        User::by_id(self.0.student_id)
    }
    /// The mentor booked.
    async fn mentor(&self) -> Mentor {
        Mentor::new(self.0.mentor_id)
    }
    /// Every status transition, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<AppointmentTransition>> {
        let rows = loaders(ctx)?.appointment_history.load_one(self.0.id).await.map_err(AppError::from)?;
        Ok(rows.unwrap_or_default().into_iter().map(AppointmentTransition::from).collect())
    }
}

/// Input of `bookAppointment`.
#[derive(InputObject)]
pub struct BookAppointmentInput {
    /// The mentor (an active master identity).
    pub mentor_id: ID,
    /// In the future (at most a year ahead).
    pub appointment_time: DateTime<Utc>,
    /// 15..240.
    pub duration_minutes: i32,
    /// VIDEO (default), VOICE or TEXT.
    #[graphql(default_with = "MeetingType::Video")]
    pub meeting_type: MeetingType,
    /// A note to the mentor (at most 2000 characters).
    pub notes: Option<String>,
}

/// Your side of an appointment.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AppointmentRole {
    /// Appointments you booked.
    Student,
    /// Appointments booked with you.
    Mentor,
}

/// A review of a course, a mentor or an appointment.
pub struct Review(pub review_table::Model);

/// A review of a course, a mentor or an appointment.
#[Object]
impl Review {
    /// The review's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// COURSE, MENTOR or APPOINTMENT.
    async fn review_type(&self) -> ReviewType {
        self.0.review_type
    }
    /// 1..5.
    async fn rating(&self) -> i32 {
        self.0.rating
    }
    /// The text.
    async fn content(&self) -> Option<&str> {
        self.0.content.as_deref()
    }
    /// ACTIVE, HIDDEN or DELETED.
    async fn status(&self) -> ContentStatus {
        self.0.status
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last edited.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The person who wrote the review.
    async fn reviewer(&self) -> User {
        User::by_id(self.0.reviewer_id)
    }
    /// How many people found the review helpful (`likeReview`).
    async fn like_count(&self) -> i32 {
        self.0.like_count
    }
    /// Whether you marked it helpful (false when signed out).
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(user_id) = viewer(ctx).optional()? else { return Ok(false) };
        let like = loaders(ctx)?.review_likes.load_one((user_id, self.0.id)).await.map_err(AppError::from)?;
        Ok(like.is_some())
    }
    /// The mentor the review is about (for every kind).
    async fn mentor(&self) -> Mentor {
        Mentor::new(self.0.reviewed_id)
    }
    /// The course of a COURSE review.
    async fn course(&self, ctx: &Context<'_>) -> Result<Option<Course>> {
        let Some(id) = self.0.course_id else { return Ok(None) };
        let course = loaders(ctx)?.courses.load_one(id).await.map_err(AppError::from)?;
        Ok(course.map(Course))
    }
}

/// Input of `createReview`: name the target that matches `reviewType`.
#[derive(InputObject)]
pub struct CreateReviewInput {
    /// What is reviewed: COURSE, MENTOR or APPOINTMENT.
    pub review_type: ReviewType,
    /// For a COURSE review: the course (you must be enrolled).
    pub course_id: Option<ID>,
    /// For a MENTOR review: the mentor (after a completed appointment).
    pub mentor_id: Option<ID>,
    /// For an APPOINTMENT review: the completed appointment.
    pub appointment_id: Option<ID>,
    /// 1..5.
    pub rating: i32,
    /// Up to 5000 characters.
    pub content: Option<String>,
}

/// Input of `updateReview`.
#[derive(InputObject)]
pub struct UpdateReviewInput {
    /// A new rating, 1 to 5.
    pub rating: Option<i32>,
    /// A new text; null clears it.
    pub content: MaybeUndefined<String>,
}

/// A review the viewer may see, through the batched loader (a list of notifications opens its
/// targets in one statement).
pub async fn review_by_id(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Review>> {
    let review = loaders(ctx)?.reviews.load_one(id).await.map_err(AppError::from)?;
    Ok(review.filter(|r| reviews::visible_to(viewer(ctx), r)).map(Review))
}

/// An appointment the viewer takes part in (or any, for admins), through the batched loaders.
pub async fn appointment_by_id(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Appointment>> {
    let loaders = loaders(ctx)?;
    let Some(appointment) = loaders.appointments.load_one(id).await.map_err(AppError::from)? else { return Ok(None) };
    let identity = loaders.identities.load_one(appointment.mentor_id).await.map_err(AppError::from)?;
    let mentor_user = super::present(identity, "appointment mentor")?.user_id;
    let parties = appointments::Parties { appointment, mentor_user };
    Ok(appointments::visible_to(viewer(ctx), &parties).then_some(Appointment(parties.appointment)))
}

/// Reviews of a course (COURSE) or mentor (MENTOR and APPOINTMENT) as a connection.
pub async fn review_connection(
    ctx: &Context<'_>,
    of: reviews::ReviewsOf,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Conn<Review>> {
    let page = page_request(ctx, first, after, None, None)?;
    reviews::review_list(matches!(of, reviews::ReviewsOf::Course(_))).check(&page)?;
    let loaders = loaders(ctx)?;
    let (pages, counts, parent) = match of {
        reviews::ReviewsOf::Course(id) => (&loaders.course_reviews, &loaders.course_review_counts, id),
        reviews::ReviewsOf::Mentor(id) => (&loaders.mentor_reviews, &loaders.mentor_review_counts, id),
    };
    let load = |page| pages.page(parent, (), page);
    let rows = reviews::list(&state(ctx)?.cache, of, &page, load).await?;
    Ok(connection(rows, ConnectionFields::loaded(counts.clone(), parent), Review))
}

#[derive(Default)]
pub struct AppointmentsQuery;

#[Object]
impl AppointmentsQuery {
    /// A review, to open it from a notification or a link: active ones for everyone, hidden
    /// ones for admins, deleted ones for nobody.
    pub(crate) async fn review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review's id.")] id: ID,
    ) -> Result<Option<Review>> {
        let id = id_arg("id", &id)?;
        review_by_id(ctx, id).await
    }

    /// An appointment you are part of (null otherwise).
    pub(crate) async fn appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment's id.")] id: ID,
    ) -> Result<Option<Appointment>> {
        let id = id_arg("id", &id)?;
        viewer(ctx).require()?;
        appointment_by_id(ctx, id).await
    }

    /// Your appointments as student (default) or as mentor, latest first.
    async fn my_appointments(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default_with = "AppointmentRole::Student",
            desc = "Your side of the appointments: as STUDENT or as MENTOR."
        )]
        role: AppointmentRole,
        #[graphql(desc = "Only appointments in this status.")] status: Option<AppointmentStatus>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Appointment>> {
        let page = page_request(ctx, first, after, last, before)?;
        let side = match role {
            AppointmentRole::Student => Side::Student,
            AppointmentRole::Mentor => Side::Mentor,
        };
        let db = &state(ctx)?.db;
        let (rows, select) = appointments::mine(db, viewer(ctx), side, status, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Appointment))
    }
}

#[derive(Default)]
pub struct AppointmentsMutation;

#[Object]
impl AppointmentsMutation {
    /// Books a mentor. CONFLICT when the mentor or you are already booked then.
    async fn book_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mentor, time, length and kind of meeting.")] input: BookAppointmentInput,
    ) -> Result<Appointment> {
        let booking = Booking {
            mentor_id: id_arg("input.mentorId", &input.mentor_id)?,
            appointment_time: input.appointment_time,
            duration_minutes: input.duration_minutes,
            meeting_type: input.meeting_type,
            notes: input.notes,
        };
        Ok(Appointment(appointments::book(&state(ctx)?.db, viewer(ctx), booking).await?))
    }

    /// The mentor confirms a pending appointment with a meeting link.
    async fn confirm_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment to confirm.")] id: ID,
        #[graphql(desc = "Where to meet: an http(s) URL.")] meeting_url: String,
    ) -> Result<Appointment> {
        let id = id_arg("id", &id)?;
        Ok(Appointment(
            appointments::transition(&state(ctx)?.db, viewer(ctx), id, Transition::Confirm { meeting_url }).await?,
        ))
    }

    /// Either side moves a pending or confirmed appointment, before it starts, to another time
    /// both have free (inside the master's availability once set; CONFLICT otherwise). Same
    /// duration; the status stays, except that a student moving a confirmed appointment sends it
    /// back to PENDING (the mentor confirms again). The history records the move and the other
    /// side is notified.
    async fn reschedule_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment to move.")] id: ID,
        #[graphql(desc = "The new start (UTC), in a free slot of the mentor's.")] appointment_time: DateTime<Utc>,
    ) -> Result<Appointment> {
        let id = id_arg("id", &id)?;
        Ok(Appointment(appointments::reschedule(&state(ctx)?.db, viewer(ctx), id, appointment_time).await?))
    }

    /// Either side cancels before the start; a reason is required.
    async fn cancel_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment to cancel.")] id: ID,
        #[graphql(desc = "Why; shown to the other side.")] reason: String,
    ) -> Result<Appointment> {
        let id = id_arg("id", &id)?;
        Ok(Appointment(
            appointments::transition(&state(ctx)?.db, viewer(ctx), id, Transition::Cancel { reason }).await?,
        ))
    }

    /// The mentor marks a confirmed appointment done, after its start.
    async fn complete_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment to complete.")] id: ID,
    ) -> Result<Appointment> {
        let id = id_arg("id", &id)?;
        Ok(Appointment(appointments::transition(&state(ctx)?.db, viewer(ctx), id, Transition::Complete).await?))
    }

    /// The mentor marks that the student did not come, after the start.
    async fn mark_no_show(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment the student missed.")] id: ID,
    ) -> Result<Appointment> {
        let id = id_arg("id", &id)?;
        Ok(Appointment(appointments::transition(&state(ctx)?.db, viewer(ctx), id, Transition::NoShow).await?))
    }

    /// Reviews a course you are enrolled in, or a mentor / appointment after a completed appointment.
    async fn create_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What is reviewed, the rating and the text.")] input: CreateReviewInput,
    ) -> Result<Review> {
        let review = NewReview {
            review_type: input.review_type,
            course_id: input.course_id.map(|id| id_arg("input.courseId", &id)).transpose()?,
            mentor_id: input.mentor_id.map(|id| id_arg("input.mentorId", &id)).transpose()?,
            appointment_id: input.appointment_id.map(|id| id_arg("input.appointmentId", &id)).transpose()?,
            rating: input.rating,
            content: input.content,
        };
        Ok(Review(reviews::create(&state(ctx)?.db, viewer(ctx), review).await?))
    }

    /// The author edits a review.
    async fn update_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay.")] input: UpdateReviewInput,
    ) -> Result<Review> {
        let id = id_arg("id", &id)?;
        let content = maybe_undefined(input.content);
        Ok(Review(reviews::update(&state(ctx)?.db, viewer(ctx), id, input.rating, content).await?))
    }

    /// The author deletes a review.
    async fn delete_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review to delete.")] id: ID,
    ) -> Result<Review> {
        let id = id_arg("id", &id)?;
        Ok(Review(reviews::delete(&state(ctx)?.db, viewer(ctx), id).await?))
    }

    /// Marks someone else's review helpful (idempotent: twice is one like).
    async fn like_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review to mark helpful.")] id: ID,
    ) -> Result<Review> {
        let id = id_arg("id", &id)?;
        let state = super::circles::likes_on(ctx)?;
        Ok(Review(reviews::like(&state.db, viewer(ctx), id, true).await?))
    }

    /// Takes back your "helpful" (idempotent).
    async fn unlike_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The review to take your \"helpful\" from.")] id: ID,
    ) -> Result<Review> {
        let id = id_arg("id", &id)?;
        let state = super::circles::likes_on(ctx)?;
        Ok(Review(reviews::like(&state.db, viewer(ctx), id, false).await?))
    }

    /// Admins hide a review: it leaves lists and stops counting in ratings (audited).
    async fn hide_review(&self, ctx: &Context<'_>, #[graphql(desc = "The review to hide.")] id: ID) -> Result<Review> {
        let id = id_arg("id", &id)?;
        Ok(Review(reviews::set_hidden(&state(ctx)?.db, viewer(ctx), id, true, client_ip(ctx)).await?))
    }

    /// Admins bring a hidden review back (it counts again; audited).
    async fn unhide_review(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The hidden review to bring back.")] id: ID,
    ) -> Result<Review> {
        let id = id_arg("id", &id)?;
        Ok(Review(reviews::set_hidden(&state(ctx)?.db, viewer(ctx), id, false, client_ip(ctx)).await?))
    }
}
