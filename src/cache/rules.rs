//! Which changes make which cached entries stale: [`Feeds`], the one table of which rows feed which
//! cached kinds (marked by the write helpers, `domain::write`, for every row they write), and
//! [`dependents`], what is derived from those marks by lookups.

use super::{pair_id, Key, Kind, COURSE_LISTINGS};
use crate::search::Collection;
use entity::*;
use sea_orm::{EntityTrait, ModelTrait};
use uuid::Uuid;

/// A table's column type.
pub type Column<M> = <<M as ModelTrait>::Entity as EntityTrait>::Column;

/// What a written row feeds in the cache. `touched` says whether the write set a column (always
/// true for inserted and deleted rows), so a row can feed an entry only through some columns.
pub trait Feeds: ModelTrait {
    /// Whether rows of this table feed anything (the helpers skip `RETURNING` for those that do not).
    const FEEDS: bool = true;
    /// Whether rows of this table are part of search documents (their writes queue them).
    const SEARCHED: bool = false;
    fn feeds(&self, touched: &dyn Fn(Column<Self>) -> bool, keys: &mut Vec<Key>);
    /// The search documents this row's written columns are part of (queued in `search_outbox` by
    /// the same write; a write of other columns, such as a lock's `updated_at`, queues nothing).
    fn documents(&self, touched: &dyn Fn(Column<Self>) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        let _ = (touched, documents);
    }
}

impl Feeds for courses::Model {
    const SEARCHED: bool = true;
    fn feeds(&self, _: &dyn Fn(courses::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Course, self.id));
    }
    fn documents(&self, touched: &dyn Fn(courses::Column) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        use courses::Column::*;
        let fields = [Title, Description, Price, Difficulty, Status, CurrentStudents, Rating, ReviewCount, Tags];
        if fields.into_iter().chain([LearningObjectives, Prerequisites, MentorId, CreatedAt]).any(touched) {
            documents.push((Collection::Courses, self.id));
        }
        // A master's document counts their students.
        if [Status, CurrentStudents].into_iter().any(touched) {
            documents.push((Collection::Mentors, self.mentor_id));
        }
    }
}

impl Feeds for course_contents::Model {
    fn feeds(&self, _: &dyn Fn(course_contents::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::CourseContents, self.course_id));
    }
}

impl Feeds for learning_records::Model {
    fn feeds(&self, touched: &dyn Fn(learning_records::Column) -> bool, keys: &mut Vec<Key>) {
        // Progress feeds the course's `course_stats`; who is enrolled also the mentor's students.
        keys.push((Kind::CourseStats, self.course_id));
        if touched(learning_records::Column::Status) {
            keys.push((Kind::Course, self.course_id));
        }
    }
}

impl Feeds for reviews::Model {
    const SEARCHED: bool = true;
    fn feeds(&self, _: &dyn Fn(reviews::Column) -> bool, keys: &mut Vec<Key>) {
        keys.extend([(Kind::MentorReviews, self.reviewed_id), (Kind::MentorStats, self.reviewed_id)]);
        if let Some(course) = self.course_id {
            keys.extend([(Kind::CourseReviews, course), (Kind::CourseStats, course)]);
        }
    }
    fn documents(&self, touched: &dyn Fn(reviews::Column) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        // A master's rating (a course's is on its row).
        use reviews::Column::*;
        if [Rating, Status, ReviewType, ReviewedId].into_iter().any(touched) {
            documents.push((Collection::Mentors, self.reviewed_id));
        }
    }
}

impl Feeds for user_identities::Model {
    const SEARCHED: bool = true;
    fn feeds(&self, _: &dyn Fn(user_identities::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Identity, self.id));
    }
    fn documents(&self, touched: &dyn Fn(user_identities::Column) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        use user_identities::Column::*;
        if [IdentityType, Domain, Status, VerificationStatus, CreatedAt].into_iter().any(touched) {
            documents.push((Collection::Mentors, self.id));
        }
    }
}

impl Feeds for user_profiles::Model {
    const SEARCHED: bool = true;
    fn feeds(&self, _: &dyn Fn(user_profiles::Column) -> bool, keys: &mut Vec<Key>) {
        // Name, avatar and rate also show in `mentor_stats` (and, by lookup, `course_stats`).
        keys.extend([(Kind::Profile, self.identity_id), (Kind::MentorStats, self.identity_id)]);
    }
    fn documents(&self, touched: &dyn Fn(user_profiles::Column) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        use user_profiles::Column::*;
        if [Name, Bio, Skills, HourlyRate, Location, ExperienceYears, IdentityId].into_iter().any(touched) {
            documents.push((Collection::Mentors, self.identity_id));
        }
    }
}

impl Feeds for circles::Model {
    const SEARCHED: bool = true;
    fn feeds(&self, _: &dyn Fn(circles::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Circle, self.id));
    }
    fn documents(&self, touched: &dyn Fn(circles::Column) -> bool, documents: &mut Vec<(Collection, Uuid)>) {
        use circles::Column::*;
        if [Name, Description, Tags, Domain, Status, MemberCount, CreatedAt].into_iter().any(touched) {
            documents.push((Collection::Circles, self.id));
        }
    }
}

impl Feeds for posts::Model {
    fn feeds(&self, touched: &dyn Fn(posts::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Post, self.id));
        // The lists hold ids in (pinned, newest) and newest order: counters do not move a post.
        use posts::Column::*;
        if [Status, IsTop, CreatedAt, CircleId].into_iter().any(touched) {
            keys.push((Kind::CircleFeed, self.circle_id));
        }
        if [Status, CreatedAt, CircleId].into_iter().any(touched) {
            keys.push((Kind::CircleNewest, self.circle_id));
        }
    }
}

impl Feeds for post_likes::Model {
    fn feeds(&self, _: &dyn Fn(post_likes::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::PostLike, pair_id(self.user_id, self.post_id)));
    }
}

impl Feeds for comments::Model {
    fn feeds(&self, touched: &dyn Fn(comments::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Comment, self.id));
        // The post's page holds ids in thread order: an edit or a like does not move a comment.
        use comments::Column::*;
        if [Status, CreatedAt, PostId].into_iter().any(touched) {
            keys.push((Kind::PostComments, self.post_id));
        }
    }
}

impl Feeds for circle_members::Model {
    fn feeds(&self, touched: &dyn Fn(circle_members::Column) -> bool, keys: &mut Vec<Key>) {
        // Who is an active member of which circle (not a role or a read mark).
        use circle_members::Column::*;
        if [IsActive, UserId, CircleId].into_iter().any(touched) {
            keys.push((Kind::MemberCircles, self.user_id));
        }
    }
}

impl Feeds for notifications::Model {
    fn feeds(&self, _: &dyn Fn(notifications::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Notifications, self.user_id));
    }
}

/// Tables nothing is cached from (their reads go to the database).
macro_rules! feeds_nothing {
    ($($table:ident),* $(,)?) => {$(
        impl Feeds for $table::Model {
            const FEEDS: bool = false;
            fn feeds(&self, _: &dyn Fn($table::Column) -> bool, _: &mut Vec<Key>) {}
        }
    )*};
}

feeds_nothing!(
    account_tokens,
    appointment_status_logs,
    appointments,
    audit_logs,
    comment_likes,
    content_progress,
    domains,
    idempotency_keys,
    mail_outbox,
    mentor_availability,
    messages,
    poll_options,
    poll_votes,
    review_likes,
    search_outbox,
    system_configs,
);

impl Feeds for users::Model {
    fn feeds(&self, touched: &dyn Fn(users::Column) -> bool, keys: &mut Vec<Key>) {
        if touched(users::Column::Status) {
            keys.push((Kind::Account, self.id));
        }
    }
}

impl Feeds for refresh_tokens::Model {
    fn feeds(&self, _: &dyn Fn(refresh_tokens::Column) -> bool, keys: &mut Vec<Key>) {
        keys.push((Kind::Session, self.family_id));
    }
}
/// What a set of changes makes stale: the marks themselves, plus what is derived from them. A
/// course (its row, enrollments or reviews) feeds its `course_stats`, its mentor's `mentor_stats`
/// and course list, and every cached course listing; an identity feeds its `mentor_stats`; a
/// profile feeds the `course_stats` of its identity's courses (the mentor's name); a user's
/// notifications feed their unread count.
pub async fn dependents(db: &sea_orm::DatabaseConnection, changed: Vec<Key>) -> Vec<Key> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let mut keys = changed.clone();
    let courses: Vec<Uuid> = changed.iter().filter(|(kind, _)| *kind == Kind::Course).map(|(_, id)| *id).collect();
    for (kind, id) in &changed {
        match kind {
            Kind::Course => keys.push((Kind::CourseStats, *id)),
            Kind::Identity => keys.push((Kind::MentorStats, *id)),
            Kind::Notifications => keys.push((Kind::UnreadNotifications, *id)),
            _ => {}
        }
    }
    if !courses.is_empty() {
        let listings = (0..COURSE_LISTINGS).map(|order| (Kind::CourseListing, Uuid::from_u128(order)));
        // Each with its generation: the later pages kept under it are never read again.
        keys.extend(listings.flat_map(|listing| std::iter::once(listing).chain(super::generation_of(listing))));
    }
    let profiles: Vec<Uuid> = changed.iter().filter(|(kind, _)| *kind == Kind::Profile).map(|(_, id)| *id).collect();
    if !profiles.is_empty() {
        let taught = entity::courses::Entity::find()
            .select_only()
            .column(entity::courses::Column::Id)
            .filter(entity::courses::Column::MentorId.is_in(profiles))
            .into_tuple::<Uuid>()
            .all(db)
            .await;
        match taught {
            Ok(taught) => keys.extend(taught.into_iter().map(|id| (Kind::CourseStats, id))),
            Err(error) => tracing::warn!(error = %error, "cannot resolve courses of changed profiles"),
        }
    }
    if !courses.is_empty() {
        let mentors = entity::courses::Entity::find()
            .select_only()
            .column(entity::courses::Column::MentorId)
            .filter(entity::courses::Column::Id.is_in(courses))
            .into_tuple::<Uuid>()
            .all(db)
            .await;
        match mentors {
            Ok(mentors) => {
                keys.extend(mentors.into_iter().flat_map(|id| [(Kind::MentorStats, id), (Kind::MentorCourses, id)]))
            }
            // Without the mentor ids the stats entries expire on their own; say so.
            Err(error) => tracing::warn!(error = %error, "cannot resolve mentors of changed courses"),
        }
    }
    keys.sort_by_key(|(kind, id)| (kind.name(), *id));
    keys.dedup();
    keys
}

/// Whether a change to `mark` makes `key` stale (the rules of [`dependents`], without its lookups).
pub(super) fn affects(mark: Key, key: Key) -> bool {
    mark == key
        || match (mark.0, key.0) {
            (Kind::Course, Kind::CourseStats)
            | (Kind::Identity, Kind::MentorStats)
            | (Kind::Notifications, Kind::UnreadNotifications) => mark.1 == key.1,
            // Which mentor a course belongs to takes a lookup: any of them may be stale.
            (Kind::Course, Kind::CourseListing | Kind::ListingGeneration | Kind::MentorStats | Kind::MentorCourses)
            | (Kind::Profile, Kind::CourseStats) => true,
            _ => false,
        }
}
