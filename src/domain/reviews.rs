//! Reviews of courses (by enrolled students), and of mentors and appointments (by the student of a
//! completed appointment). One live review per reviewer and target. `courses.rating` and
//! `review_count` are recomputed from the reviews in the same transaction, under the course's row
//! lock, so they stay right through concurrent reviews, edits and deletes. Mentor statistics read
//! the `mentor_stats` view and are always current.

use super::audit::{self, Actor};
use super::notify::{self, Kind, Notice};
use super::pagination::{cached_first_page, ChildList, Direction, Page, PageRequest, SortKey};
use super::values::optional_text;
use super::write;
use crate::auth::Viewer;
use crate::cache::{Cache, Kind as CacheKind};
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::enums::{AppointmentStatus, ContentStatus, LearningStatus, ReviewType};
use entity::{appointments, courses, review_likes, reviews};
use sea_orm::sea_query::Expr;
use sea_orm::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};
use std::net::IpAddr;
use uuid::Uuid;

/// A master's own reviews (MENTOR and APPOINTMENT), as the partial index of migration 17 states it.
const MENTOR_REVIEWS_PREDICATE: &str = "review_type <> 'course'";

pub struct NewReview {
    pub review_type: ReviewType,
    pub course_id: Option<Uuid>,
    pub mentor_id: Option<Uuid>,
    pub appointment_id: Option<Uuid>,
    pub rating: i32,
    pub content: Option<String>,
}

fn rating(value: i32) -> AppResult<i32> {
    if !(1..=5).contains(&value) {
        return Err(AppError::bad_input("input.rating", "must be between 1 and 5"));
    }
    Ok(value)
}

/// Recomputes a course's rating and review count from its active COURSE reviews.
async fn refresh_course(txn: &DatabaseTransaction, course_id: Uuid) -> AppResult<()> {
    let ratings: Vec<i32> = reviews::Entity::find()
        .select_only()
        .column(reviews::Column::Rating)
        .filter(reviews::Column::CourseId.eq(course_id))
        .filter(reviews::Column::ReviewType.eq(ReviewType::Course.as_str()))
        .filter(reviews::Column::Status.eq(ContentStatus::Active.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let count = ratings.len() as i32;
    let average = super::values::average_rating(ratings.iter().map(|r| i64::from(*r)).sum(), i64::from(count));
    write::update_many(
        txn,
        courses::Entity::update_many()
            .col_expr(courses::Column::Rating, Expr::value(average))
            .col_expr(courses::Column::ReviewCount, Expr::value(count))
            .filter(courses::Column::Id.eq(course_id)),
    )
    .await?;
    Ok(())
}

/// The course's row lock as the transaction's first statement.
async fn lock_course(txn: &DatabaseTransaction, course_id: Uuid) -> AppResult<()> {
    write::update_many(
        txn,
        courses::Entity::update_many()
            .col_expr(courses::Column::UpdatedAt, Expr::col(courses::Column::UpdatedAt).into())
            .filter(courses::Column::Id.eq(course_id)),
    )
    .await?;
    Ok(())
}

#[tracing::instrument(name = "reviews.create", skip_all)]
pub async fn create(db: &DatabaseConnection, viewer: &Viewer, input: NewReview) -> AppResult<reviews::Model> {
    let mut c = Checks::default();
    let stars = c.on(rating(input.rating));
    let content = c.on(optional_text("input.content", input.content, 5000));
    c.finish()?;
    let user = super::active_user(db, viewer).await?;
    let (reviewed, course_id, appointment_id) = match input.review_type {
        ReviewType::Course => {
            let course_id = input
                .course_id
                .ok_or_else(|| AppError::bad_input("input.courseId", "a COURSE review names the course"))?;
            let course = super::courses::find(db, course_id).await?.ok_or_else(|| AppError::not_found("course"))?;
            let enrolled = super::learning::record_of(db, user.id, course_id)
                .await?
                .is_some_and(|r| r.status != LearningStatus::Dropped);
            if !enrolled {
                return Err(AppError::forbidden("only enrolled students review a course"));
            }
            (course.mentor_id, Some(course_id), None)
        }
        ReviewType::Appointment => {
            let id = input.appointment_id.ok_or_else(|| {
                AppError::bad_input("input.appointmentId", "an APPOINTMENT review names the appointment")
            })?;
            let appointment = appointments::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or_else(|| AppError::not_found("appointment"))?;
            if appointment.student_id != user.id {
                return Err(AppError::forbidden("only the appointment's student reviews it"));
            }
            if appointment.status != AppointmentStatus::Completed {
                return Err(AppError::Conflict {
                    field: Some("input.appointmentId".into()),
                    message: "the appointment is not completed".into(),
                });
            }
            (appointment.mentor_id, None, Some(id))
        }
        ReviewType::Mentor => {
            let mentor_id = input
                .mentor_id
                .ok_or_else(|| AppError::bad_input("input.mentorId", "a MENTOR review names the mentor"))?;
            super::identities::find(db, mentor_id).await?.ok_or_else(|| AppError::not_found("mentor"))?;
            let completed = appointments::Entity::find()
                .filter(appointments::Column::StudentId.eq(user.id))
                .filter(appointments::Column::MentorId.eq(mentor_id))
                .filter(appointments::Column::Status.eq(AppointmentStatus::Completed.as_str()))
                .one(db)
                .await?;
            if completed.is_none() {
                return Err(AppError::forbidden("review a mentor after a completed appointment with them"));
            }
            (mentor_id, None, None)
        }
    };
    let mentor_user = super::identities::find(db, reviewed).await?.map(|i| i.user_id);
    let txn = db.begin().await?;
    match course_id {
        Some(course) => lock_course(&txn, course).await?,
        None => {
            // Same first-statement write for the other kinds: the mentor identity's row.
            write::update_many(
                &txn,
                entity::user_identities::Entity::update_many()
                    .col_expr(
                        entity::user_identities::Column::UpdatedAt,
                        Expr::col(entity::user_identities::Column::UpdatedAt).into(),
                    )
                    .filter(entity::user_identities::Column::Id.eq(reviewed)),
            )
            .await?;
        }
    }
    let now = Utc::now();
    let review = write::insert(
        &txn,
        reviews::ActiveModel {
            id: Set(Uuid::new_v4()),
            reviewer_id: Set(user.id),
            reviewed_id: Set(reviewed),
            course_id: Set(course_id),
            appointment_id: Set(appointment_id),
            rating: Set(stars),
            content: Set(content),
            review_type: Set(input.review_type),
            status: Set(ContentStatus::Active),
            like_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await
    .map_err(AppError::on_unique("input", "you have reviewed this already; edit your review instead"))?;
    if let Some(course) = course_id {
        refresh_course(&txn, course).await?;
    }
    if let Some(mentor_user) = mentor_user.filter(|u| *u != user.id) {
        notify::send(
            &txn,
            Notice {
                user_id: mentor_user,
                kind: Kind::Reviewed,
                title: format!("New {}-star {} review", stars, input.review_type.as_str()),
                content: review.content.clone(),
                related_id: Some(review.id),
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(review)
}

async fn own_review(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<reviews::Model> {
    let user = super::active_user(db, viewer).await?;
    let review = reviews::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|r| r.status != ContentStatus::Deleted)
        .ok_or_else(|| AppError::not_found("review"))?;
    if review.reviewer_id != user.id {
        return Err(AppError::forbidden("only the author changes a review"));
    }
    Ok(review)
}

/// Applies `change` to a review and keeps the course aggregates right, in one transaction.
async fn change(
    db: &DatabaseConnection,
    review: reviews::Model,
    moderator: Option<Actor>,
    apply: impl FnOnce(&mut reviews::ActiveModel),
) -> AppResult<reviews::Model> {
    let txn = db.begin().await?;
    match review.course_id {
        Some(course) => lock_course(&txn, course).await?,
        None => {
            write::update_many(
                &txn,
                reviews::Entity::update_many()
                    .col_expr(reviews::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(reviews::Column::Id.eq(review.id)),
            )
            .await?;
        }
    }
    // Under the lock: what was read before it may have changed (deleted by its author, hidden by
    // an admin), and the change was decided on what was read.
    let current =
        reviews::Entity::find_by_id(review.id).one(&txn).await?.ok_or_else(|| AppError::not_found("review"))?;
    if current.status != review.status {
        return Err(AppError::Conflict { field: None, message: "the review changed meanwhile; try again".into() });
    }
    let mut active: reviews::ActiveModel = review.clone().into();
    apply(&mut active);
    active.updated_at = Set(Utc::now());
    let updated = write::update(&txn, active).await?;
    if let Some(course) = review.course_id {
        refresh_course(&txn, course).await?;
    }
    if let Some(actor) = moderator {
        let old = serde_json::json!({ "id": review.id, "status": review.status.as_str() });
        let new = serde_json::json!({ "id": review.id, "status": updated.status.as_str() });
        audit::updated(&txn, actor, "reviews", old, new).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

#[tracing::instrument(name = "reviews.update", skip_all, fields(review = %id))]
pub async fn update(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    stars: Option<i32>,
    content: Option<Option<String>>,
) -> AppResult<reviews::Model> {
    let mut c = Checks::default();
    let stars = c.on(stars.map(rating).transpose());
    let content = c.on(content.map(|text| optional_text("input.content", text, 5000)).transpose());
    c.finish()?;
    let review = own_review(db, viewer, id).await?;
    change(db, review, None, |active| {
        if let Some(stars) = stars {
            active.rating = Set(stars);
        }
        if let Some(content) = content {
            active.content = Set(content);
        }
    })
    .await
}

#[tracing::instrument(name = "reviews.delete", skip_all, fields(review = %id))]
pub async fn delete(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<reviews::Model> {
    let review = own_review(db, viewer, id).await?;
    change(db, review, None, |active| active.status = Set(ContentStatus::Deleted)).await
}

/// Marks a review helpful, or takes that back (idempotent): the like row (its unique key decides
/// between concurrent likes) and `like_count` move in one transaction. Not on one's own review.
#[tracing::instrument(name = "reviews.like", skip_all, fields(review = %id))]
pub async fn like(db: &DatabaseConnection, viewer: &Viewer, id: Uuid, like: bool) -> AppResult<reviews::Model> {
    let user = super::active_user(db, viewer).await?;
    let review = find(db, id)
        .await?
        .filter(|r| r.status == ContentStatus::Active)
        .ok_or_else(|| AppError::not_found("review"))?;
    if review.reviewer_id == user.id {
        return Err(AppError::forbidden("you cannot like your own review"));
    }
    let txn = db.begin().await?;
    let row = review_likes::ActiveModel {
        id: Set(Uuid::new_v4()),
        review_id: Set(id),
        user_id: Set(user.id),
        created_at: Set(Utc::now()),
    };
    let key = [(review_likes::Column::ReviewId, id), (review_likes::Column::UserId, user.id)];
    let counter = (reviews::Column::LikeCount, reviews::Column::Id, id);
    write::toggle_mark::<_, reviews::Entity>(&txn, like, row, key, counter).await?;
    let review = find(&txn, id).await?.ok_or_else(|| AppError::not_found("review"))?;
    txn.commit().await?;
    Ok(review)
}

/// Platform admins hide a review (it stops counting) or bring it back. Idempotent; audited.
#[tracing::instrument(name = "reviews.moderate", skip_all, fields(review = %id))]
pub async fn set_hidden(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    hidden: bool,
    ip: Option<IpAddr>,
) -> AppResult<reviews::Model> {
    let admin = super::admin(db, viewer).await?;
    let review = reviews::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|r| r.status != ContentStatus::Deleted)
        .ok_or_else(|| AppError::not_found("review"))?;
    let to = if hidden { ContentStatus::Hidden } else { ContentStatus::Active };
    if review.status == to {
        return Ok(review);
    }
    change(db, review, Some(Actor { user_id: admin.id, ip }), |active| active.status = Set(to)).await
}

/// Whose reviews a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewsOf {
    /// A course's active COURSE reviews.
    Course(Uuid),
    /// A master identity's active MENTOR and APPOINTMENT reviews.
    Mentor(Uuid),
}

/// The active reviews of a course, or of a master, newest first.
pub fn review_list(course: bool) -> ChildList<reviews::Entity> {
    let active = reviews::Column::Status.eq(ContentStatus::Active.as_str());
    let (parent, condition) = if course {
        (
            reviews::Column::CourseId,
            Condition::all().add(active).add(reviews::Column::ReviewType.eq(ReviewType::Course.as_str())),
        )
    } else {
        // A literal, not a bound value: the partial index of migration 17 has exactly this
        // predicate, and only a literal lets the planner prove it for every plan.
        (reviews::Column::ReviewedId, Condition::all().add(active).add(Expr::cust(MENTOR_REVIEWS_PREDICATE)))
    };
    ChildList {
        parent,
        condition,
        sort: vec![(reviews::Column::CreatedAt, Direction::Desc)],
        id: reviews::Column::Id,
        key_of: |r| vec![SortKey::Time(r.created_at)],
        id_of: |r| r.id,
    }
}

/// A page of the reviews of `of`, `load` reading it from the database (batched across parents by
/// the caller); first pages are cached.
pub async fn list<F, Fut>(cache: &Cache, of: ReviewsOf, page: &PageRequest, load: F) -> AppResult<Page<reviews::Model>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = AppResult<Page<reviews::Model>>>,
{
    let list = match of {
        ReviewsOf::Course(course) => (CacheKind::CourseReviews, course),
        ReviewsOf::Mentor(mentor) => (CacheKind::MentorReviews, mentor),
    };
    cached_first_page(cache, list, page, load).await
}

/// Whether the viewer sees a review by id: active ones everyone, hidden ones admins.
pub fn visible_to(viewer: &Viewer, review: &reviews::Model) -> bool {
    match review.status {
        ContentStatus::Active => true,
        ContentStatus::Hidden => super::is_admin(viewer),
        ContentStatus::Deleted => false,
    }
}

pub async fn find(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<reviews::Model>> {
    Ok(reviews::Entity::find_by_id(id).one(db).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mentor_reviews_predicate_names_the_course_type() {
        let course = entity::enums::ReviewType::Course.as_str();
        assert_eq!(super::MENTOR_REVIEWS_PREDICATE, format!("review_type <> '{course}'"));
    }
}
