//! Courses and their contents: creation and editing by the owning verified master, the
//! draft -> published -> archived lifecycle, ordered contents, and who may read what.

use super::pagination::{cached_id_page, keyset, Direction, Page, PageRequest, SortKey};
use super::values::{int_range, money, optional_text, optional_url, string_list, text};
use super::write;
use crate::auth::Viewer;
use crate::cache::{Cache, Kind as CacheKind};
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::enums::{
    ContentType, CourseStatus, Difficulty, IdentityStatus, IdentityType, StringList, VerificationStatus,
};
use entity::{course_contents, courses, user_identities, users};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Select, Set, TransactionTrait,
};
use uuid::Uuid;

/// Fields of `createCourse` / `updateCourse`; on update `None` leaves a field as it is.
#[derive(Default)]
pub struct CourseInput {
    pub identity_id: Option<Uuid>,
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image: Option<Option<String>>,
    pub price: Option<Decimal>,
    pub duration_hours: Option<i32>,
    pub difficulty: Option<Option<Difficulty>>,
    pub max_students: Option<Option<i32>>,
    pub tags: Option<Vec<String>>,
    pub prerequisites: Option<Option<String>>,
    pub learning_objectives: Option<Vec<String>>,
}

#[derive(Default)]
pub struct ContentInput {
    pub title: Option<String>,
    pub content_type: Option<ContentType>,
    pub content_url: Option<Option<String>>,
    pub content_text: Option<Option<String>>,
    pub duration_minutes: Option<Option<i32>>,
    pub is_free: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CourseFilter {
    pub status: Option<CourseStatus>,
    pub difficulty: Option<Difficulty>,
    pub mentor_id: Option<Uuid>,
    pub domain: Option<String>,
    pub tag: Option<String>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseOrder {
    Rating,
    Price,
    CreatedAt,
    Students,
}

/// A course with the mentor identity that owns it.
struct Owned {
    course: courses::Model,
    identity: user_identities::Model,
}

pub async fn find(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<courses::Model>> {
    Ok(courses::Entity::find_by_id(id).one(db).await?)
}

/// The course if the viewer may see it: drafts only by their owner and admins.
pub async fn get(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<Option<courses::Model>> {
    let Some(course) = find(db, id).await? else { return Ok(None) };
    visible(db, viewer, course).await
}

/// `course` if the viewer may see it (see [`get`]); for a course already loaded (e.g. cached).
pub async fn visible(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    course: courses::Model,
) -> AppResult<Option<courses::Model>> {
    if course.status != CourseStatus::Draft || super::is_admin(viewer) {
        return Ok(Some(course));
    }
    let Some(viewer_id) = viewer.optional()? else { return Ok(None) };
    let owner = super::identities::find(db, course.mentor_id).await?.map(|i| i.user_id);
    Ok((owner == Some(viewer_id)).then_some(course))
}

/// The viewer's course, for editing; others get FORBIDDEN (admins too: a course is its master's).
async fn owned(
    db: &(impl ConnectionTrait + TransactionTrait),
    viewer: &Viewer,
    course_id: Uuid,
) -> AppResult<(users::Model, Owned)> {
    let user = super::active_user(db, viewer).await?;
    let course = find(db, course_id).await?.ok_or_else(|| AppError::not_found("course"))?;
    let identity =
        super::identities::find(db, course.mentor_id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    if identity.user_id != user.id {
        return Err(AppError::forbidden("only the course's master can change it"));
    }
    Ok((user, Owned { course, identity }))
}

fn ensure_teaching(identity: &user_identities::Model) -> AppResult<()> {
    let teaching = identity.identity_type == IdentityType::Master
        && identity.status == IdentityStatus::Active
        && identity.verification_status == VerificationStatus::Verified;
    if !teaching {
        return Err(AppError::forbidden("only an active, verified master identity can teach"));
    }
    Ok(())
}

/// Takes the course's row lock (PostgreSQL) / the write lock (SQLite) as the transaction's first
/// statement, so edits of one course's contents run one after another.
async fn lock_course(txn: &DatabaseTransaction, id: Uuid) -> AppResult<()> {
    write::update_many(
        txn,
        courses::Entity::update_many()
            .col_expr(courses::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(courses::Column::Id.eq(id)),
    )
    .await?;
    Ok(())
}

struct ValidCourse {
    title: Option<String>,
    description: Option<Option<String>>,
    cover_image: Option<Option<String>>,
    price: Option<Decimal>,
    duration_hours: Option<i32>,
    difficulty: Option<Option<Difficulty>>,
    max_students: Option<Option<i32>>,
    tags: Option<Vec<String>>,
    prerequisites: Option<Option<String>>,
    learning_objectives: Option<Vec<String>>,
}

/// Every field of a course input checked, all bad ones reported at once; `creating` also
/// requires what a new course must have.
fn validate(input: CourseInput, creating: bool) -> AppResult<ValidCourse> {
    let mut c = Checks::default();
    if creating {
        for (field, missing) in [
            ("input.identityId", input.identity_id.is_none()),
            ("input.title", input.title.is_none()),
            ("input.price", input.price.is_none()),
            ("input.durationHours", input.duration_hours.is_none()),
        ] {
            if missing {
                c.fail(field, "is required");
            }
        }
    } else if input.identity_id.is_some() {
        c.fail("input.identityId", "a course cannot move to another identity");
    }
    let valid = ValidCourse {
        title: c.on(input.title.as_deref().map(|t| text("input.title", t, 1, 200)).transpose()),
        description: c.on(input.description.map(|v| optional_text("input.description", v, 20_000)).transpose()),
        cover_image: c.on(input.cover_image.map(|v| optional_url("input.coverImage", v, 500)).transpose()),
        price: c.on(input.price.map(|p| money("input.price", p)).transpose()),
        duration_hours: c.on(input.duration_hours.map(|h| int_range("input.durationHours", h, 1, 10_000)).transpose()),
        difficulty: input.difficulty,
        max_students: c.on(input
            .max_students
            .map(|m| m.map(|n| int_range("input.maxStudents", n, 1, 1_000_000)).transpose())
            .transpose()),
        tags: c.on(input.tags.map(|t| string_list("input.tags", t, 20, 50)).transpose()),
        prerequisites: c.on(input.prerequisites.map(|v| optional_text("input.prerequisites", v, 5000)).transpose()),
        learning_objectives: c
            .on(input.learning_objectives.map(|o| string_list("input.learningObjectives", o, 20, 200)).transpose()),
    };
    c.finish()?;
    Ok(valid)
}

#[tracing::instrument(name = "courses.create", skip_all)]
/// A cover image: an external URL, or a READY COURSE_COVER upload of the course's master.
async fn cover(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    user_id: Uuid,
    value: Option<Option<String>>,
) -> AppResult<Option<Option<String>>> {
    let purpose = entity::enums::UploadPurpose::CourseCover;
    super::uploads::claim_optional(db, storage, user_id, "input.coverImage", value, purpose).await
}

pub async fn create(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    input: CourseInput,
) -> AppResult<courses::Model> {
    let identity_id = input.identity_id.ok_or_else(|| AppError::bad_input("input.identityId", "is required"));
    let mut valid = validate(input, true)?;
    let identity_id = identity_id?;
    let title = valid.title.ok_or_else(|| AppError::bad_input("input.title", "is required"))?;
    let price = valid.price.ok_or_else(|| AppError::bad_input("input.price", "is required"))?;
    let hours = valid.duration_hours.ok_or_else(|| AppError::bad_input("input.durationHours", "is required"))?;
    let user = super::active_user(db, viewer).await?;
    let identity = super::identities::find(db, identity_id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    if identity.user_id != user.id {
        return Err(AppError::forbidden("you can only teach through your own identity"));
    }
    ensure_teaching(&identity)?;
    valid.cover_image = cover(db, storage, user.id, valid.cover_image).await?;
    let now = Utc::now();
    let course = write::insert(
        db,
        courses::ActiveModel {
            id: Set(Uuid::new_v4()),
            mentor_id: Set(identity.id),
            title: Set(title),
            description: Set(valid.description.flatten()),
            cover_image: Set(valid.cover_image.flatten()),
            price: Set(price),
            duration_hours: Set(hours),
            difficulty: Set(valid.difficulty.flatten()),
            status: Set(CourseStatus::Draft),
            max_students: Set(valid.max_students.flatten()),
            current_students: Set(0),
            rating: Set(Decimal::ZERO),
            review_count: Set(0),
            tags: Set(Some(StringList(valid.tags.unwrap_or_default()))),
            prerequisites: Set(valid.prerequisites.flatten()),
            learning_objectives: Set(Some(StringList(valid.learning_objectives.unwrap_or_default()))),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    Ok(course)
}

#[tracing::instrument(name = "courses.update", skip_all, fields(course = %id))]
pub async fn update(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    id: Uuid,
    input: CourseInput,
) -> AppResult<courses::Model> {
    let mut valid = validate(input, false)?;
    let (_, owned) = owned(db, viewer, id).await?;
    ensure_teaching(&owned.identity)?;
    valid.cover_image = cover(db, storage, owned.identity.user_id, valid.cover_image).await?;
    if owned.course.status == CourseStatus::Archived {
        return Err(AppError::Conflict {
            field: None,
            message: "an archived course cannot be edited; publish it again first".into(),
        });
    }
    let txn = db.begin().await?;
    lock_course(&txn, id).await?;
    let course = find(&txn, id).await?.ok_or_else(|| AppError::not_found("course"))?;
    if let Some(Some(max)) = valid.max_students {
        if max < course.current_students {
            return Err(AppError::bad_input(
                "input.maxStudents",
                format!("{} students are enrolled already", course.current_students),
            ));
        }
    }
    let old_cover = course.cover_image.clone();
    let mut active: courses::ActiveModel = course.into();
    if let Some(v) = valid.title {
        active.title = Set(v);
    }
    if let Some(v) = valid.description {
        active.description = Set(v);
    }
    if let Some(v) = &valid.cover_image {
        active.cover_image = Set(v.clone());
    }
    if let Some(v) = valid.price {
        active.price = Set(v);
    }
    if let Some(v) = valid.duration_hours {
        active.duration_hours = Set(v);
    }
    if let Some(v) = valid.difficulty {
        active.difficulty = Set(v);
    }
    if let Some(v) = valid.max_students {
        active.max_students = Set(v);
    }
    if let Some(v) = valid.tags {
        active.tags = Set(Some(StringList(v)));
    }
    if let Some(v) = valid.prerequisites {
        active.prerequisites = Set(v);
    }
    if let Some(v) = valid.learning_objectives {
        active.learning_objectives = Set(Some(StringList(v)));
    }
    active.updated_at = Set(Utc::now());
    let course = write::update(&txn, active).await?;
    txn.commit().await?;
    super::uploads::release_replaced(
        db,
        storage,
        entity::enums::UploadPurpose::CourseCover,
        old_cover.as_deref(),
        &valid.cover_image,
    )
    .await?;
    Ok(course)
}

/// draft|archived -> published; needs at least one content item. Already published: no-op.
#[tracing::instrument(name = "courses.publish", skip_all, fields(course = %id))]
pub async fn publish(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<courses::Model> {
    let (_, owned) = owned(db, viewer, id).await?;
    ensure_teaching(&owned.identity)?;
    if owned.course.status == CourseStatus::Published {
        return Ok(owned.course);
    }
    let has_content =
        course_contents::Entity::find().filter(course_contents::Column::CourseId.eq(id)).count(db).await? > 0;
    if !has_content {
        return Err(AppError::Conflict {
            field: None,
            message: "add at least one content item before publishing".into(),
        });
    }
    transition(db, id, &[CourseStatus::Draft, CourseStatus::Archived], CourseStatus::Published).await
}

/// published -> archived (drafts are not archived: they were never public). Already archived: no-op.
#[tracing::instrument(name = "courses.archive", skip_all, fields(course = %id))]
pub async fn archive(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<courses::Model> {
    let (_, owned) = owned(db, viewer, id).await?;
    match owned.course.status {
        CourseStatus::Archived => Ok(owned.course),
        CourseStatus::Draft => Err(AppError::Conflict { field: None, message: "a draft cannot be archived".into() }),
        CourseStatus::Published => transition(db, id, &[CourseStatus::Published], CourseStatus::Archived).await,
    }
}

/// Moves the status with a conditional update, so concurrent transitions cannot both apply.
async fn transition(
    db: &DatabaseConnection,
    id: Uuid,
    from: &[CourseStatus],
    to: CourseStatus,
) -> AppResult<courses::Model> {
    let moved = write::update_many(
        db,
        courses::Entity::update_many()
            .col_expr(courses::Column::Status, Expr::value(to.as_str()))
            .col_expr(courses::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(courses::Column::Id.eq(id))
            .filter(courses::Column::Status.is_in(from.iter().map(CourseStatus::as_str))),
    )
    .await?;
    let course = find(db, id).await?.ok_or_else(|| AppError::not_found("course"))?;
    if moved == 0 && course.status != to {
        return Err(AppError::Conflict { field: None, message: "the course changed meanwhile; try again".into() });
    }
    Ok(course)
}

/// Every field of a content input checked, all bad ones reported at once; `creating` also
/// requires the title and the type.
fn validate_content(input: ContentInput, creating: bool) -> AppResult<ContentInput> {
    let mut c = Checks::default();
    if creating {
        if input.title.is_none() {
            c.fail("input.title", "is required");
        }
        if input.content_type.is_none() {
            c.fail("input.contentType", "is required");
        }
    }
    let valid = ContentInput {
        title: c.on(input.title.as_deref().map(|t| text("input.title", t, 1, 200)).transpose()),
        content_type: input.content_type,
        content_url: c.on(input.content_url.map(|v| optional_url("input.contentUrl", v, 500)).transpose()),
        content_text: c.on(input.content_text.map(|v| optional_text("input.contentText", v, 100_000)).transpose()),
        duration_minutes: c.on(input
            .duration_minutes
            .map(|d| d.map(|m| int_range("input.durationMinutes", m, 0, 10_000)).transpose())
            .transpose()),
        is_free: input.is_free,
    };
    c.finish()?;
    Ok(valid)
}

async fn editable(db: &DatabaseConnection, viewer: &Viewer, course_id: Uuid) -> AppResult<Owned> {
    let (_, owned) = owned(db, viewer, course_id).await?;
    ensure_teaching(&owned.identity)?;
    if owned.course.status == CourseStatus::Archived {
        return Err(AppError::Conflict { field: None, message: "an archived course cannot be edited".into() });
    }
    Ok(owned)
}

/// A content's media: an external URL, or a READY COURSE_MEDIA upload of the course's master
/// (private: read through signed URLs by those the content is open to).
async fn media(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    user_id: Uuid,
    value: Option<Option<String>>,
) -> AppResult<Option<Option<String>>> {
    let purpose = entity::enums::UploadPurpose::CourseMedia;
    super::uploads::claim_optional(db, storage, user_id, "input.contentUrl", value, purpose).await
}

/// Appends a content item at the end of the course.
#[tracing::instrument(name = "courses.add_content", skip_all, fields(course = %course_id))]
pub async fn add_content(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    course_id: Uuid,
    input: ContentInput,
) -> AppResult<course_contents::Model> {
    let mut input = validate_content(input, true)?;
    let title = input.title.clone().ok_or_else(|| AppError::bad_input("input.title", "is required"))?;
    let content_type = input.content_type.ok_or_else(|| AppError::bad_input("input.contentType", "is required"))?;
    let owned = editable(db, viewer, course_id).await?;
    input.content_url = media(db, storage, owned.identity.user_id, input.content_url).await?;
    let txn = db.begin().await?;
    lock_course(&txn, course_id).await?;
    let count =
        course_contents::Entity::find().filter(course_contents::Column::CourseId.eq(course_id)).count(&txn).await?;
    if count >= 500 {
        return Err(AppError::bad_input("courseId", "a course holds at most 500 content items"));
    }
    let now = Utc::now();
    let content = write::insert(
        &txn,
        course_contents::ActiveModel {
            id: Set(Uuid::new_v4()),
            course_id: Set(course_id),
            title: Set(title),
            content_type: Set(content_type),
            content_url: Set(input.content_url.flatten()),
            content_text: Set(input.content_text.flatten()),
            order_index: Set(count as i32),
            duration_minutes: Set(input.duration_minutes.flatten()),
            is_free: Set(input.is_free.unwrap_or(false)),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(content)
}

async fn content_of_viewer(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<course_contents::Model> {
    let content =
        course_contents::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("content"))?;
    editable(db, viewer, content.course_id).await?;
    Ok(content)
}

#[tracing::instrument(name = "courses.update_content", skip_all, fields(content = %id))]
pub async fn update_content(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    id: Uuid,
    input: ContentInput,
) -> AppResult<course_contents::Model> {
    let mut input = validate_content(input, false)?;
    let content = content_of_viewer(db, viewer, id).await?;
    input.content_url = media(db, storage, viewer.require()?, input.content_url).await?;
    let old_media = content.content_url.clone();
    let mut active: course_contents::ActiveModel = content.into();
    if let Some(v) = input.title {
        active.title = Set(v);
    }
    if let Some(v) = input.content_type {
        active.content_type = Set(v);
    }
    if let Some(v) = &input.content_url {
        active.content_url = Set(v.clone());
    }
    if let Some(v) = input.content_text {
        active.content_text = Set(v);
    }
    if let Some(v) = input.duration_minutes {
        active.duration_minutes = Set(v);
    }
    if let Some(v) = input.is_free {
        active.is_free = Set(v);
    }
    active.updated_at = Set(Utc::now());
    let updated = write::update(db, active).await?;
    super::uploads::release_replaced(
        db,
        storage,
        entity::enums::UploadPurpose::CourseMedia,
        old_media.as_deref(),
        &input.content_url,
    )
    .await?;
    Ok(updated)
}

/// Removes a content item and closes the gap in the order. A published course keeps at least one.
#[tracing::instrument(name = "courses.remove_content", skip_all, fields(content = %id))]
pub async fn remove_content(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<course_contents::Model> {
    let content = content_of_viewer(db, viewer, id).await?;
    let txn = db.begin().await?;
    lock_course(&txn, content.course_id).await?;
    let course = find(&txn, content.course_id).await?.ok_or_else(|| AppError::not_found("course"))?;
    let siblings = contents_in_order(&txn, content.course_id).await?;
    if course.status == CourseStatus::Published && siblings.len() <= 1 {
        return Err(AppError::Conflict {
            field: None,
            message: "a published course keeps at least one content item".into(),
        });
    }
    write::delete_many(&txn, course_contents::Entity::delete_many().filter(course_contents::Column::Id.eq(id))).await?;
    let remaining: Vec<Uuid> = siblings.iter().map(|c| c.id).filter(|c| *c != id).collect();
    write_order(&txn, &remaining).await?;
    txn.commit().await?;
    super::uploads::release(db, storage, entity::enums::UploadPurpose::CourseMedia, content.content_url.as_deref())
        .await?;
    Ok(content)
}

/// Sets the order of a course's contents; `content_ids` must name each of them exactly once.
#[tracing::instrument(name = "courses.reorder", skip_all, fields(course = %course_id))]
pub async fn reorder(
    db: &DatabaseConnection,
    viewer: &Viewer,
    course_id: Uuid,
    content_ids: Vec<Uuid>,
) -> AppResult<Vec<course_contents::Model>> {
    editable(db, viewer, course_id).await?;
    let txn = db.begin().await?;
    lock_course(&txn, course_id).await?;
    let current = contents_in_order(&txn, course_id).await?;
    let mut expected: Vec<Uuid> = current.iter().map(|c| c.id).collect();
    let mut given = content_ids.clone();
    expected.sort();
    given.sort();
    if expected != given {
        return Err(AppError::bad_input("contentIds", "must list every content item of the course exactly once"));
    }
    write_order(&txn, &content_ids).await?;
    let ordered = contents_in_order(&txn, course_id).await?;
    txn.commit().await?;
    Ok(ordered)
}

/// Writes order_index 0..n-1 in the given order (dense and unique within the course).
async fn write_order(txn: &DatabaseTransaction, ids: &[Uuid]) -> AppResult<()> {
    for (index, id) in ids.iter().enumerate() {
        write::update_many(
            txn,
            course_contents::Entity::update_many()
                .col_expr(course_contents::Column::OrderIndex, Expr::value(index as i32))
                .filter(course_contents::Column::Id.eq(*id)),
        )
        .await?;
    }
    Ok(())
}

pub async fn contents_in_order(
    db: &(impl ConnectionTrait + TransactionTrait),
    course_id: Uuid,
) -> AppResult<Vec<course_contents::Model>> {
    Ok(course_contents::Entity::find()
        .filter(course_contents::Column::CourseId.eq(course_id))
        .order_by_asc(course_contents::Column::OrderIndex)
        .all(db)
        .await?)
}

/// `tags` JSON array contains `tag`: the GIN-indexed `@>` on PostgreSQL, json_each on SQLite.
pub fn json_array_contains(backend: DatabaseBackend, column: &str, value: &str) -> sea_orm::sea_query::SimpleExpr {
    match backend {
        DatabaseBackend::Postgres => Expr::cust_with_values(
            // sea-query numbers PostgreSQL placeholders of a custom expression from $1.
            format!("{column} @> CAST($1 AS jsonb)"),
            [serde_json::Value::Array(vec![serde_json::Value::String(value.to_string())]).to_string()],
        ),
        _ => Expr::cust_with_values(
            format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = ?)"),
            [value],
        ),
    }
}

/// The courses query: filters, visibility (drafts: own only, unless admin), keyset order.
pub async fn list(
    db: &DatabaseConnection,
    cache: &Cache,
    viewer: &Viewer,
    filter: CourseFilter,
    order: CourseOrder,
    direction: Direction,
    page: &PageRequest,
) -> AppResult<(Page<courses::Model>, Select<courses::Entity>)> {
    // The unfiltered catalogue (published, any order) is the hot list: its first page is cached,
    // and its later pages under the listing's generation.
    let published = CourseFilter { status: None, ..filter.clone() };
    let listing = (matches!(filter.status, None | Some(CourseStatus::Published))
        && published == CourseFilter::default())
    .then(|| crate::cache::course_listing(order as u8 * 2 + u8::from(direction == Direction::Desc)))
    .flatten();
    let status = filter.status.unwrap_or(CourseStatus::Published);
    let mut select = courses::Entity::find().filter(courses::Column::Status.eq(status.as_str()));
    if status == CourseStatus::Draft && !super::is_admin(viewer) {
        // Anonymous viewers own no drafts: an always-false condition keeps list and count empty.
        let viewer_id = viewer.optional()?.unwrap_or_else(Uuid::nil);
        select = select.filter(
            courses::Column::MentorId.in_subquery(
                Query::select()
                    .column(user_identities::Column::Id)
                    .from(user_identities::Entity)
                    .and_where(user_identities::Column::UserId.eq(viewer_id))
                    .to_owned(),
            ),
        );
    }
    if let Some(difficulty) = filter.difficulty {
        select = select.filter(courses::Column::Difficulty.eq(difficulty.as_str()));
    }
    if let Some(mentor) = filter.mentor_id {
        select = select.filter(courses::Column::MentorId.eq(mentor));
    }
    if let Some(domain) = filter.domain {
        select = select.filter(
            courses::Column::MentorId.in_subquery(
                Query::select()
                    .column(user_identities::Column::Id)
                    .from(user_identities::Entity)
                    .and_where(user_identities::Column::Domain.eq(domain.trim().to_lowercase()))
                    .to_owned(),
            ),
        );
    }
    if let Some(tag) = filter.tag {
        select = select.filter(Condition::all().add(json_array_contains(
            db.get_database_backend(),
            "courses.tags",
            tag.trim(),
        )));
    }
    if let Some(min) = filter.min_price {
        select = select.filter(courses::Column::Price.gte(min));
    }
    if let Some(max) = filter.max_price {
        select = select.filter(courses::Column::Price.lte(max));
    }
    let (column, keys): (courses::Column, fn(&courses::Model) -> Vec<SortKey>) = match order {
        CourseOrder::Rating => (courses::Column::Rating, |c| vec![SortKey::Num(c.rating)]),
        CourseOrder::Price => (courses::Column::Price, |c| vec![SortKey::Num(c.price)]),
        CourseOrder::CreatedAt => (courses::Column::CreatedAt, |c| vec![SortKey::Time(c.created_at)]),
        CourseOrder::Students => (courses::Column::CurrentStudents, |c| vec![SortKey::Int(c.current_students.into())]),
    };
    let counted = select.clone();
    let run = |page: PageRequest| {
        let select = select.clone();
        async move { keyset(db, select, &[(column, direction)], courses::Column::Id, &page, |c| (keys(c), c.id)).await }
    };
    let page = match listing {
        Some(listing) => {
            let list = (CacheKind::CourseListing, listing);
            let keys = Some(keys);
            cached_id_page::<courses::Entity, _, _>(cache, db, list, CacheKind::Course, page, |c| c.id, keys, run)
                .await?
        }
        None => run(page.clone()).await?,
    };
    Ok((page, counted))
}
