//! Which changes make which cached entries stale.

use super::{Key, Kind, COURSE_LISTINGS};
use uuid::Uuid;
/// What a set of changes makes stale: the marks themselves, plus what is derived from them. A
/// course (its row, enrollments or reviews) feeds its `course_stats`, its mentor's `mentor_stats`
/// and course list, and every cached course listing; an identity feeds its `mentor_stats`; a
/// user's notifications feed their unread count.
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
        keys.extend((0..COURSE_LISTINGS).map(|order| (Kind::CourseListing, Uuid::from_u128(order))));
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
            (Kind::Course, Kind::CourseListing | Kind::MentorStats | Kind::MentorCourses) => true,
            _ => false,
        }
}
