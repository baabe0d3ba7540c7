//! Enrollment and progress: seats never oversold, one record per student and course, progress
//! that only moves forward, and the record's status following the contents completed.

use super::pagination::{keyset, ChildList, Direction, Page, PageRequest, SortKey};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use chrono::Utc;
use entity::enums::{CourseStatus, LearningStatus};
use entity::{content_progress, course_contents, courses, learning_records};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

pub async fn record_of(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    course_id: Uuid,
) -> AppResult<Option<learning_records::Model>> {
    Ok(learning_records::Entity::find()
        .filter(learning_records::Column::UserId.eq(user_id))
        .filter(learning_records::Column::CourseId.eq(course_id))
        .one(db)
        .await?)
}

/// Takes a seat: `current_students + 1` only while below `max_students`, as one conditional
/// UPDATE, so two requests that both saw "one seat left" cannot both win.
async fn take_seat(db: &(impl ConnectionTrait + TransactionTrait), course_id: Uuid) -> Result<bool, DbErr> {
    let taken = write::update_many(
        db,
        courses::Entity::update_many()
            .col_expr(courses::Column::CurrentStudents, Expr::col(courses::Column::CurrentStudents).add(1))
            .filter(courses::Column::Id.eq(course_id))
            .filter(courses::Column::Status.eq(CourseStatus::Published.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(courses::Column::MaxStudents.is_null())
                    .add(Expr::col(courses::Column::CurrentStudents).lt(Expr::col(courses::Column::MaxStudents))),
            ),
    )
    .await?;
    Ok(taken == 1)
}

async fn free_seat(db: &(impl ConnectionTrait + TransactionTrait), course_id: Uuid) -> Result<(), DbErr> {
    write::update_many(
        db,
        courses::Entity::update_many()
            .col_expr(courses::Column::CurrentStudents, Expr::col(courses::Column::CurrentStudents).sub(1))
            .filter(courses::Column::Id.eq(course_id))
            .filter(courses::Column::CurrentStudents.gt(0)),
    )
    .await?;
    Ok(())
}

/// Enrolls the viewer. A repeat returns the existing record; a full course is CONFLICT.
#[tracing::instrument(name = "learning.enroll", skip_all, fields(course = %course_id))]
pub async fn enroll(db: &DatabaseConnection, viewer: &Viewer, course_id: Uuid) -> AppResult<learning_records::Model> {
    let user = super::active_user(db, viewer).await?;
    let course = super::courses::get(db, viewer, course_id).await?.ok_or_else(|| AppError::not_found("course"))?;
    let existing = record_of(db, user.id, course_id).await?;
    if let Some(record) = &existing {
        if record.status != LearningStatus::Dropped {
            return Ok(record.clone());
        }
    }
    if course.status != CourseStatus::Published {
        return Err(AppError::Conflict {
            field: Some("courseId".into()),
            message: "the course is not open for enrollment".into(),
        });
    }
    let teacher = super::identities::find(db, course.mentor_id).await?.map(|i| i.user_id);
    if teacher == Some(user.id) {
        return Err(AppError::forbidden("you teach this course"));
    }

    let txn = db.begin().await?;
    // The seat is the transaction's first statement: it takes the course row's lock (PostgreSQL)
    // or the database write lock (SQLite) before anything is read.
    if !take_seat(&txn, course_id).await? {
        return Err(AppError::Conflict { field: Some("courseId".into()), message: "the course is full".into() });
    }
    let now = Utc::now();
    let record = match existing {
        Some(dropped) => {
            // Only while it is still dropped: of concurrent re-enrollments (serialized by the seat's
            // lock) the first moves it, the others give their seat back and return its record.
            let moved = write::update_many(
                &txn,
                learning_records::Entity::update_many()
                    .col_expr(learning_records::Column::Status, Expr::value(LearningStatus::Enrolled.as_str()))
                    .col_expr(learning_records::Column::EnrolledAt, Expr::value(now))
                    .col_expr(learning_records::Column::LastAccessedAt, Expr::value(now))
                    .filter(learning_records::Column::Id.eq(dropped.id))
                    .filter(learning_records::Column::Status.eq(LearningStatus::Dropped.as_str())),
            )
            .await?;
            if moved != 1 {
                txn.rollback().await?;
                return record_of(db, user.id, course_id).await?.ok_or_else(|| AppError::not_found("enrollment"));
            }
            learning_records::Entity::find_by_id(dropped.id)
                .one(&txn)
                .await?
                .ok_or_else(|| AppError::not_found("enrollment"))?
        }
        None => {
            let inserted = write::insert(
                &txn,
                learning_records::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    user_id: Set(user.id),
                    course_id: Set(course_id),
                    progress_percentage: Set(Decimal::ZERO),
                    status: Set(LearningStatus::Enrolled),
                    enrolled_at: Set(now),
                    completed_at: Set(None),
                    last_accessed_at: Set(now),
                    total_study_time: Set(0),
                },
            )
            .await;
            match inserted {
                Ok(record) => record,
                // The same student enrolling twice at once: the unique key lets one in; the other
                // gives its seat back (rollback) and returns the winner's record.
                Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    txn.rollback().await?;
                    return record_of(db, user.id, course_id).await?.ok_or_else(|| AppError::not_found("enrollment"));
                }
                Err(error) => return Err(error.into()),
            }
        }
    };
    txn.commit().await?;
    metrics::counter!("business_enrollments_total").increment(1);
    Ok(record)
}

/// Drops the viewer's enrollment and frees the seat. Already dropped: no-op.
#[tracing::instrument(name = "learning.drop", skip_all, fields(course = %course_id))]
pub async fn drop_course(
    db: &DatabaseConnection,
    viewer: &Viewer,
    course_id: Uuid,
) -> AppResult<learning_records::Model> {
    let user = super::active_user(db, viewer).await?;
    let record = record_of(db, user.id, course_id).await?.ok_or_else(|| AppError::not_found("enrollment"))?;
    match record.status {
        LearningStatus::Dropped => return Ok(record),
        LearningStatus::Completed => {
            return Err(AppError::Conflict {
                field: Some("courseId".into()),
                message: "a completed course cannot be dropped".into(),
            })
        }
        LearningStatus::Enrolled | LearningStatus::Learning => {}
    }
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        learning_records::Entity::update_many()
            .col_expr(learning_records::Column::Status, Expr::value(LearningStatus::Dropped.as_str()))
            .filter(learning_records::Column::Id.eq(record.id))
            .filter(
                learning_records::Column::Status
                    .is_in([LearningStatus::Enrolled.as_str(), LearningStatus::Learning.as_str()]),
            ),
    )
    .await?;
    if moved == 1 {
        free_seat(&txn, course_id).await?;
    }
    let record = learning_records::Entity::find_by_id(record.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("enrollment"))?;
    txn.commit().await?;
    Ok(record)
}

/// Records progress on one content item (0..=100, never lower than before) and study minutes, then
/// recomputes the course progress and status.
#[tracing::instrument(name = "learning.record_progress", skip_all, fields(content = %content_id))]
pub async fn record_progress(
    db: &DatabaseConnection,
    viewer: &Viewer,
    content_id: Uuid,
    progress: f64,
    study_minutes: i32,
) -> AppResult<content_progress::Model> {
    if !progress.is_finite() || !(0.0..=100.0).contains(&progress) {
        return Err(AppError::bad_input("progressPercentage", "must be between 0 and 100"));
    }
    if !(0..=1440).contains(&study_minutes) {
        return Err(AppError::bad_input("studyMinutes", "must be between 0 and 1440"));
    }
    let progress = Decimal::from_f64(progress).unwrap_or_default().round_dp(2);
    let user = super::active_user(db, viewer).await?;
    let content =
        course_contents::Entity::find_by_id(content_id).one(db).await?.ok_or_else(|| AppError::not_found("content"))?;
    let record = record_of(db, user.id, content.course_id)
        .await?
        .filter(|r| r.status != LearningStatus::Dropped)
        .ok_or_else(|| AppError::forbidden("enroll in the course to record progress"))?;

    let txn = db.begin().await?;
    let now = Utc::now();
    // First statement writes the learning record: progress updates of one enrollment serialize.
    write::update_many(
        &txn,
        learning_records::Entity::update_many()
            .col_expr(learning_records::Column::LastAccessedAt, Expr::value(now))
            .col_expr(
                learning_records::Column::TotalStudyTime,
                Expr::col(learning_records::Column::TotalStudyTime).add(study_minutes),
            )
            .filter(learning_records::Column::Id.eq(record.id)),
    )
    .await?;
    let existing = content_progress::Entity::find()
        .filter(content_progress::Column::UserId.eq(user.id))
        .filter(content_progress::Column::ContentId.eq(content_id))
        .one(&txn)
        .await?;
    let saved = match existing {
        Some(row) => {
            let best = row.progress_percentage.max(progress);
            let completed = row.is_completed || best >= Decimal::ONE_HUNDRED;
            let completed_at = row.completed_at.or(completed.then_some(now));
            let study_time = row.study_time + study_minutes;
            let mut active: content_progress::ActiveModel = row.into();
            active.progress_percentage = Set(best);
            active.is_completed = Set(completed);
            active.completed_at = Set(completed_at);
            active.study_time = Set(study_time);
            active.last_accessed_at = Set(now);
            write::update(&txn, active).await?
        }
        None => {
            let completed = progress >= Decimal::ONE_HUNDRED;
            write::insert(
                &txn,
                content_progress::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    user_id: Set(user.id),
                    content_id: Set(content_id),
                    progress_percentage: Set(progress),
                    is_completed: Set(completed),
                    completed_at: Set(completed.then_some(now)),
                    last_accessed_at: Set(now),
                    study_time: Set(study_minutes),
                },
            )
            .await?
        }
    };
    recompute_course_progress(&txn, &record, now).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Course progress = the mean over all its contents of the student's progress (0 where none);
/// status: enrolled -> learning on first progress -> completed when every content is complete.
async fn recompute_course_progress(
    txn: &(impl ConnectionTrait + TransactionTrait),
    record: &learning_records::Model,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let contents = super::courses::contents_in_order(txn, record.course_id).await?;
    let ids: Vec<Uuid> = contents.iter().map(|c| c.id).collect();
    let rows = content_progress::Entity::find()
        .filter(content_progress::Column::UserId.eq(record.user_id))
        .filter(content_progress::Column::ContentId.is_in(ids))
        .all(txn)
        .await?;
    let total: Decimal = rows.iter().map(|r| r.progress_percentage.min(Decimal::ONE_HUNDRED)).sum();
    let count = Decimal::from(contents.len().max(1) as u64);
    let percentage = (total / count).round_dp(2);
    let all_done = !contents.is_empty() && rows.iter().filter(|r| r.is_completed).count() == contents.len();
    let current = learning_records::Entity::find_by_id(record.id)
        .one(txn)
        .await?
        .ok_or_else(|| AppError::not_found("enrollment"))?;
    let status = match (current.status, all_done) {
        (LearningStatus::Completed, _) | (_, true) => LearningStatus::Completed,
        _ => LearningStatus::Learning,
    };
    let completed_at = current.completed_at.or((status == LearningStatus::Completed).then_some(now));
    let mut active: learning_records::ActiveModel = current.into();
    active.progress_percentage = Set(percentage);
    active.status = Set(status);
    active.completed_at = Set(completed_at);
    write::update(txn, active).await?;
    Ok(())
}

/// The viewer's learning records, newest enrollment first.
pub async fn my_learning(
    db: &DatabaseConnection,
    viewer: &Viewer,
    status: Option<LearningStatus>,
    page: &PageRequest,
) -> AppResult<Page<learning_records::Model>> {
    let user_id = viewer.require()?;
    let mut select = learning_records::Entity::find().filter(learning_records::Column::UserId.eq(user_id));
    if let Some(status) = status {
        select = select.filter(learning_records::Column::Status.eq(status.as_str()));
    }
    keyset(
        db,
        select,
        &[(learning_records::Column::EnrolledAt, Direction::Desc)],
        learning_records::Column::Id,
        page,
        |r| (vec![SortKey::Time(r.enrolled_at)], r.id),
    )
    .await
}

/// A course's students, newest enrollment first: every record that is not dropped.
pub fn student_list() -> ChildList<learning_records::Entity> {
    ChildList {
        parent: learning_records::Column::CourseId,
        condition: sea_orm::Condition::all().add(learning_records::Column::Status.ne(LearningStatus::Dropped.as_str())),
        sort: vec![(learning_records::Column::EnrolledAt, Direction::Desc)],
        id: learning_records::Column::Id,
        key_of: |r| vec![SortKey::Time(r.enrolled_at)],
        id_of: |r| r.id,
    }
}

/// Percentages as GraphQL floats.
pub fn percent(value: Decimal) -> f64 {
    value.round_dp(2).to_f64().unwrap_or_default()
}
