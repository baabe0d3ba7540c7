//! Identities, profiles and mentors over GraphQL.

use super::accounts::User;
use super::context::{client_ip, loaders, state, viewer};
use super::courses::Course;
use super::pagination::{connection, page_request, Conn, ConnectionFields};
use super::{id_arg, maybe_undefined, present, SortDirection};
use crate::domain::identities::{self, Application, Decision, ProfileInput, Standing};
use crate::domain::mentors::{self, MentorFilter, MentorOrder};
use crate::domain::values::scale2;
use crate::error::AppError;
use async_graphql::{Context, Enum, InputObject, Json, MaybeUndefined, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::enums::{CourseStatus, IdentityStatus, IdentityType, VerificationStatus};
use entity::{mentor_stats, user_identities, user_profiles};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A user's identity in one professional domain: a master (teaches) or an apprentice (learns).
pub struct Identity(pub user_identities::Model);

/// A user's role in a domain: a master (mentor) or an apprentice, each with its own profile.
#[Object]
impl Identity {
    /// The identity's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// MASTER or APPRENTICE.
    async fn identity_type(&self) -> IdentityType {
        self.0.identity_type
    }
    /// The domain code (see `domains`).
    async fn domain(&self) -> &str {
        &self.0.domain
    }
    /// PENDING, ACTIVE, SUSPENDED or REJECTED.
    async fn status(&self) -> IdentityStatus {
        self.0.status
    }
    /// Verification of a master's documents by an administrator.
    async fn verification_status(&self) -> VerificationStatus {
        self.0.verification_status
    }
    /// Document URLs sent with a master application: visible to the owner and admins only.
    /// Uploaded documents come as short-lived signed URLs.
    async fn verification_documents(&self, ctx: &Context<'_>) -> Result<Option<Vec<String>>> {
        let viewer = viewer(ctx);
        let allowed = viewer.user_id() == Some(self.0.user_id) || crate::domain::is_admin(viewer);
        if !allowed {
            return Ok(None);
        }
        let storage = &state(ctx)?.storage;
        let documents = self.0.verification_documents.clone().map(|d| d.0).unwrap_or_default();
        Ok(Some(
            documents
                .iter()
                .map(|url| {
                    crate::domain::uploads::readable_url(storage, url, entity::enums::UploadPurpose::IdentityDocument)
                })
                .collect(),
        ))
    }
    /// Why an administrator rejected the application: the owner and admins see it, until the
    /// next decision (a re-application keeps it for the reviewer).
    async fn rejection_reason(&self, ctx: &Context<'_>) -> Option<&str> {
        let viewer = viewer(ctx);
        let allowed = viewer.user_id() == Some(self.0.user_id) || crate::domain::is_admin(viewer);
        self.0.rejection_reason.as_deref().filter(|_| allowed)
    }
    /// When the identity last changed (an application, a decision, a suspension).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The identity's public profile, once created with `updateProfile`.
    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        profile_of(ctx, self.0.id).await
    }
    /// The account the identity belongs to.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        let user = loaders(ctx)?.users.load_one(self.0.user_id).await.map_err(AppError::from)?;
        Ok(User::new(present(user, "identity user")?))
    }
    /// When it was applied for.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

async fn profile_of(ctx: &Context<'_>, identity_id: Uuid) -> Result<Option<Profile>> {
    let rows = loaders(ctx)?.profiles_by_identity.load_one(identity_id).await.map_err(AppError::from)?;
    Ok(rows.and_then(|mut rows| rows.pop()).map(Profile))
}

/// The public profile of an identity.
pub struct Profile(pub user_profiles::Model);

/// An identity's public profile: name, avatar, bio and what they offer.
#[Object]
impl Profile {
    /// The profile's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The name shown for the identity.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Image URL.
    async fn avatar(&self) -> Option<&str> {
        self.0.avatar.as_deref()
    }
    /// About them.
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }
    /// What they are good at (searched; case-insensitive filters).
    async fn skills(&self) -> Vec<String> {
        self.0.skills.clone().map(|s| s.0).unwrap_or_default()
    }
    /// Years of experience.
    async fn experience_years(&self) -> i32 {
        self.0.experience_years
    }
    /// Price of one hour with this mentor, e.g. "120.00".
    async fn hourly_rate(&self) -> Option<Decimal> {
        self.0.hourly_rate.map(scale2)
    }
    /// Where they are.
    async fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }
    /// Their website.
    async fn website(&self) -> Option<&str> {
        self.0.website.as_deref()
    }
    /// `{ "github": "https://...", ... }`
    async fn social_links(&self) -> Option<Json<serde_json::Value>> {
        self.0.social_links.clone().map(Json)
    }
    /// When it was last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A verified master: an active MASTER identity with its profile, statistics and courses.
pub struct Mentor {
    pub identity_id: Uuid,
    pub stats: Option<mentor_stats::Model>,
}

/// An active master as a mentor: profile, courses, reviews, schedule.
impl Mentor {
    pub fn new(identity_id: Uuid) -> Self {
        Self { identity_id, stats: None }
    }
}

/// The design's mentor_stats: published courses, distinct students, and the reviews
/// `Mentor.reviews` lists (MENTOR and APPOINTMENT reviews).
pub struct MentorStats(mentor_stats::Model);

/// A mentor's figures for their page.
#[Object]
impl MentorStats {
    /// Published courses.
    async fn course_count(&self) -> i64 {
        self.0.course_count
    }
    /// Distinct students over the mentor's courses (dropped enrollments excluded).
    async fn student_count(&self) -> i64 {
        self.0.student_count
    }
    /// Mean rating of the mentor's MENTOR and APPOINTMENT reviews (half away from zero to two
    /// places); null until there is one.
    async fn average_rating(&self) -> Option<f64> {
        (self.0.review_count > 0).then_some((self.0.average_rating * 100.0).round() / 100.0)
    }
    /// Active MENTOR and APPOINTMENT reviews: `Mentor.reviews.totalCount`.
    async fn review_count(&self) -> i64 {
        self.0.review_count
    }
}

/// An active master as a mentor: profile, courses, reviews, schedule.
#[Object]
impl Mentor {
    /// The master identity's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.identity_id.to_string())
    }
    /// The master identity.
    async fn identity(&self, ctx: &Context<'_>) -> Result<Option<Identity>> {
        let identity = loaders(ctx)?.identities.load_one(self.identity_id).await.map_err(AppError::from)?;
        Ok(identity.map(Identity))
    }
    /// The master's public profile.
    async fn profile(&self, ctx: &Context<'_>) -> Result<Option<Profile>> {
        profile_of(ctx, self.identity_id).await
    }
    /// Null when the identity is not (or no longer) an active master.
    async fn stats(&self, ctx: &Context<'_>) -> Result<Option<MentorStats>> {
        if let Some(stats) = &self.stats {
            return Ok(Some(MentorStats(stats.clone())));
        }
        let stats = loaders(ctx)?.mentor_stats.load_one(self.identity_id).await.map_err(AppError::from)?;
        Ok(stats.map(MentorStats))
    }
    /// Active MENTOR and APPOINTMENT reviews, newest first.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> Result<Conn<super::appointments::Review>> {
        super::appointments::review_connection(
            ctx,
            crate::domain::reviews::ReviewsOf::Mentor(self.identity_id),
            first,
            after,
        )
        .await
    }
    /// When the master can be booked; null until they set a schedule.
    async fn availability(&self, ctx: &Context<'_>) -> Result<Option<super::availability::Availability>> {
        super::availability::of_mentor(ctx, self.identity_id).await
    }
    /// Free slots of `durationMinutes` (15..240) starting in `[from, to)` (at most 62 days), in
    /// UTC: the schedule's windows minus booked time and its buffer, no sooner than the notice
    /// allows, laid end to end from the start of each free stretch. Empty without a schedule.
    /// A page of mentors reads every one's appointments in one batch.
    async fn available_slots(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start of the range (UTC).")] from: DateTime<Utc>,
        #[graphql(desc = "End of the range (UTC; at most 62 days after `from`).")] to: DateTime<Utc>,
        #[graphql(default = 60, desc = "The length of the appointment sought, 15 to 240 minutes.")]
        duration_minutes: i32,
    ) -> Result<Vec<super::availability::TimeSlot>> {
        super::availability::slots_of_mentor(ctx, self.identity_id, from, to, duration_minutes).await
    }
    /// The mentor's published courses, newest first.
    async fn courses(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, desc = "At most this many items from the start (page size).")] first: i32,
    ) -> Result<Vec<Course>> {
        let limit = super::loaders::MENTOR_COURSES_LIMIT;
        let first = crate::domain::values::int_range("first", first, 0, limit)? as usize;
        let loaders = loaders(ctx)?;
        let ids = loaders.published_courses_by_mentor.load_one(self.identity_id).await.map_err(AppError::from)?;
        let ids: Vec<Uuid> = ids.unwrap_or_default().into_iter().take(first).collect();
        let rows = loaders.courses.load_ordered(&ids).await.map_err(AppError::from)?;
        // A course unpublished since the list was read is dropped from it too; this filters the gap.
        Ok(rows.into_iter().filter(|c| c.status == CourseStatus::Published).map(Course).collect())
    }
}

/// An administrator's decision on an application.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum IdentityDecision {
    /// Accept: the identity becomes ACTIVE and VERIFIED.
    Approve,
    /// Turn down, with a reason.
    Reject,
}

/// Input of `applyIdentity`.
#[derive(InputObject)]
pub struct ApplyIdentityInput {
    /// MASTER (needs documents and an administrator's approval) or APPRENTICE (active at once).
    pub identity_type: IdentityType,
    /// An active domain code (see `domains`).
    pub domain: String,
    /// http(s) URLs of diplomas, certificates...; at least one for MASTER, at most 10.
    #[graphql(default)]
    pub verification_documents: Vec<String>,
}

/// Input of `updateProfile`: omitted fields stay as they are; null clears a field.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// 1..100 characters; required when the profile is created, and never null (a profile keeps
    /// a name).
    pub name: MaybeUndefined<String>,
    /// A READY AVATAR upload of yours or an http(s) URL; null clears it.
    pub avatar: MaybeUndefined<String>,
    /// Up to 5000 characters.
    pub bio: MaybeUndefined<String>,
    /// At most 30 skills of at most 50 characters; null clears them.
    pub skills: MaybeUndefined<Vec<String>>,
    /// 0..80; null resets it to 0.
    pub experience_years: MaybeUndefined<i32>,
    /// >= 0 with at most 2 decimals, e.g. "120.00".
    pub hourly_rate: MaybeUndefined<Decimal>,
    /// Where you are; null clears it.
    pub location: MaybeUndefined<String>,
    /// Your website; null clears it.
    pub website: MaybeUndefined<String>,
    /// An object of name: http(s) URL, at most 20.
    pub social_links: MaybeUndefined<Json<serde_json::Value>>,
}

/// What `mentors` can be sorted by (the id breaks ties).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum MentorOrderField {
    /// Average rating.
    Rating,
    /// Hourly rate.
    HourlyRate,
    /// Distinct students.
    Students,
    /// Published courses.
    Courses,
    /// When they became a master.
    Newest,
}

/// An order of `mentors`.
#[derive(InputObject)]
pub struct MentorOrderBy {
    /// What to sort by.
    pub field: MentorOrderField,
    /// ASC or DESC.
    #[graphql(default_with = "SortDirection::Desc")]
    pub direction: SortDirection,
}

/// Narrows `mentors`.
#[derive(InputObject, Default)]
pub struct MentorFilterInput {
    /// Only masters of this domain code.
    pub domain: Option<String>,
    /// Only masters with this skill (case-insensitive).
    pub skill: Option<String>,
    /// Hourly rate at least this.
    pub min_rate: Option<Decimal>,
    /// Hourly rate at most this.
    pub max_rate: Option<Decimal>,
    /// Average rating at least this.
    pub min_rating: Option<f64>,
}

#[derive(Default)]
pub struct IdentitiesQuery;

#[Object]
impl IdentitiesQuery {
    /// An active master, or null.
    async fn mentor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The master identity's id.")] id: ID,
    ) -> Result<Option<Mentor>> {
        let id = id_arg("id", &id)?;
        let identity = loaders(ctx)?.identities.load_one(id).await.map_err(AppError::from)?;
        Ok(identity.filter(mentors::is_mentor).map(|m| Mentor::new(m.id)))
    }

    /// Active masters with their statistics (default order: best rated first).
    async fn mentors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the directory (domain, skill, rate, rating, location).")] filter: Option<
            MentorFilterInput,
        >,
        #[graphql(desc = "The order and its direction.")] order_by: Option<MentorOrderBy>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Mentor>> {
        let page = page_request(ctx, first, after, last, before)?;
        let filter = filter.unwrap_or_default();
        let filter = MentorFilter {
            domain: filter.domain,
            skill: filter.skill,
            min_rate: filter.min_rate,
            max_rate: filter.max_rate,
            min_rating: filter.min_rating,
        };
        let (field, direction) =
            order_by.map(|o| (o.field, o.direction)).unwrap_or((MentorOrderField::Rating, SortDirection::Desc));
        let order = match field {
            MentorOrderField::Rating => MentorOrder::Rating,
            MentorOrderField::HourlyRate => MentorOrder::HourlyRate,
            MentorOrderField::Students => MentorOrder::Students,
            MentorOrderField::Courses => MentorOrder::Courses,
            MentorOrderField::Newest => MentorOrder::Newest,
        };
        let db = &state(ctx)?.db;
        let (rows, select) = mentors::list(db, filter, order, direction.into(), &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), |stats| Mentor {
            identity_id: stats.identity_id,
            stats: Some(stats),
        }))
    }
}

#[derive(Default)]
pub struct IdentitiesMutation;

#[Object]
impl IdentitiesMutation {
    /// Applies for an identity in a domain. APPRENTICE identities are active at once; MASTER
    /// identities wait for an administrator (`reviewIdentity`). After a rejection the applicant
    /// applies again with new documents: the same identity goes back to PENDING (audited).
    async fn apply_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The identity applied for, its domain and documents.")] input: ApplyIdentityInput,
    ) -> Result<Identity> {
        let application = Application {
            identity_type: input.identity_type,
            domain: input.domain,
            verification_documents: input.verification_documents,
        };
        let state = state(ctx)?;
        Ok(Identity(identities::apply(&state.db, &state.storage, viewer(ctx), application, client_ip(ctx)).await?))
    }

    /// Admins: approves or rejects a pending master identity (a rejection needs a reason).
    async fn review_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The application (identity) to decide on.")] id: ID,
        #[graphql(desc = "APPROVE or REJECT.")] decision: IdentityDecision,
        #[graphql(desc = "Why (required to reject; shown to the applicant).")] reason: Option<String>,
    ) -> Result<Identity> {
        let id = id_arg("id", &id)?;
        let decision = match decision {
            IdentityDecision::Approve => Decision::Approve,
            IdentityDecision::Reject => Decision::Reject,
        };
        let ip = client_ip(ctx);
        Ok(Identity(identities::review(&state(ctx)?.db, viewer(ctx), id, decision, reason, ip).await?))
    }

    /// Admins: suspends an active identity (a reason is required; audited). A suspended master
    /// is no longer listed, found by search or bookable; `reinstateIdentity` undoes it.
    async fn suspend_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The master identity to suspend.")] id: ID,
        #[graphql(desc = "Why (required; shown to the master; audited).")] reason: String,
    ) -> Result<Identity> {
        let id = id_arg("id", &id)?;
        let ip = client_ip(ctx);
        let db = &state(ctx)?.db;
        Ok(Identity(identities::set_standing(db, viewer(ctx), id, Standing::Suspend, Some(reason), ip).await?))
    }

    /// Admins: makes a suspended identity active again (audited).
    async fn reinstate_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The suspended identity to reinstate.")] id: ID,
    ) -> Result<Identity> {
        let id = id_arg("id", &id)?;
        let ip = client_ip(ctx);
        let db = &state(ctx)?.db;
        Ok(Identity(identities::set_standing(db, viewer(ctx), id, Standing::Reinstate, None, ip).await?))
    }

    /// Creates or edits the profile of one of your identities.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Your identity whose profile this is.")] identity_id: ID,
        #[graphql(desc = "The profile fields to set; omitted ones stay, null clears.")] input: UpdateProfileInput,
    ) -> Result<Profile> {
        let identity_id = id_arg("identityId", &identity_id)?;
        let name = match input.name {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => {
                return Err(AppError::bad_input("input.name", "a profile keeps a name; it cannot be cleared").into())
            }
            MaybeUndefined::Value(name) => Some(name),
        };
        let input = ProfileInput {
            name,
            avatar: maybe_undefined(input.avatar),
            bio: maybe_undefined(input.bio),
            skills: maybe_undefined(input.skills).map(Option::unwrap_or_default),
            experience_years: maybe_undefined(input.experience_years).map(|years| years.unwrap_or(0)),
            hourly_rate: maybe_undefined(input.hourly_rate),
            location: maybe_undefined(input.location),
            website: maybe_undefined(input.website),
            social_links: maybe_undefined(input.social_links).map(|v| v.map(|j| j.0)),
        };
        let state = state(ctx)?;
        Ok(Profile(identities::update_profile(&state.db, &state.storage, viewer(ctx), identity_id, input).await?))
    }
}
