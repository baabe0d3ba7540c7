//! Documents built from the database: published courses, active master identities (with their
//! profile and stats), active circles. A row that is not searchable (a draft, an archived course,
//! a suspended master, an archived circle) has no document, so the indexer removes it.

use super::{Collection, Document};
use entity::enums::{CircleStatus, CourseStatus, IdentityStatus, IdentityType};
use entity::{circles, courses, mentor_stats, user_identities, user_profiles};
use rust_decimal::prelude::ToPrimitive;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows read per statement when building everything.
const CHUNK: u64 = 2_000;

fn lower(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = values.into_iter().map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty()).collect();
    out.sort();
    out.dedup();
    out
}

/// The searchable documents among `ids`.
pub async fn load(db: &impl ConnectionTrait, collection: Collection, ids: &[Uuid]) -> Result<Vec<Document>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match collection {
        Collection::Courses => {
            let rows = courses::Entity::find()
                .filter(courses::Column::Id.is_in(ids.iter().copied()))
                .filter(courses::Column::Status.eq(CourseStatus::Published.as_str()))
                .all(db)
                .await?;
            course_documents(db, rows).await
        }
        Collection::Mentors => {
            let rows = user_identities::Entity::find()
                .filter(user_identities::Column::Id.is_in(ids.iter().copied()))
                .filter(user_identities::Column::IdentityType.eq(IdentityType::Master.as_str()))
                .filter(user_identities::Column::Status.eq(IdentityStatus::Active.as_str()))
                .all(db)
                .await?;
            mentor_documents(db, rows).await
        }
        Collection::Circles => {
            let rows = circles::Entity::find()
                .filter(circles::Column::Id.is_in(ids.iter().copied()))
                .filter(circles::Column::Status.eq(CircleStatus::Active.as_str()))
                .all(db)
                .await?;
            Ok(rows.into_iter().map(circle_document).collect())
        }
    }
}

/// Every searchable document of `collection`, read in chunks in id order; `progress(n)` after each
/// chunk with the documents read so far.
pub async fn all(
    db: &impl ConnectionTrait,
    collection: Collection,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Document>, DbErr> {
    let mut out = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let ids = match collection {
            Collection::Courses => {
                let published =
                    courses::Entity::find().filter(courses::Column::Status.eq(CourseStatus::Published.as_str()));
                ids_after(db, published, courses::Column::Id, after).await?
            }
            Collection::Mentors => {
                let masters = user_identities::Entity::find()
                    .filter(user_identities::Column::IdentityType.eq(IdentityType::Master.as_str()))
                    .filter(user_identities::Column::Status.eq(IdentityStatus::Active.as_str()));
                ids_after(db, masters, user_identities::Column::Id, after).await?
            }
            Collection::Circles => {
                let active = circles::Entity::find().filter(circles::Column::Status.eq(CircleStatus::Active.as_str()));
                ids_after(db, active, circles::Column::Id, after).await?
            }
        };
        let Some(last) = ids.last().copied() else { break };
        out.extend(load(db, collection, &ids).await?);
        progress(out.len());
        if (ids.len() as u64) < CHUNK {
            break;
        }
        after = Some(last);
    }
    Ok(out)
}

/// The next [`CHUNK`] ids of `select`'s rows after `after`, in id order.
async fn ids_after<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
    id: E::Column,
    after: Option<Uuid>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut select = select.select_only().column(id);
    if let Some(after) = after {
        select = select.filter(id.gt(after));
    }
    select.order_by_asc(id).limit(CHUNK).into_tuple().all(db).await
}

/// Ids of the published courses of these master identities (their documents carry the mentor's
/// name and domain).
pub async fn courses_of(db: &impl ConnectionTrait, mentors: &[Uuid]) -> Result<Vec<Uuid>, DbErr> {
    if mentors.is_empty() {
        return Ok(Vec::new());
    }
    courses::Entity::find()
        .select_only()
        .column(courses::Column::Id)
        .filter(courses::Column::MentorId.is_in(mentors.iter().copied()))
        .into_tuple()
        .all(db)
        .await
}

async fn profiles_of(
    db: &impl ConnectionTrait,
    identities: &[Uuid],
) -> Result<HashMap<Uuid, user_profiles::Model>, DbErr> {
    Ok(user_profiles::Entity::find()
        .filter(user_profiles::Column::IdentityId.is_in(identities.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.identity_id, p))
        .collect())
}

async fn course_documents(db: &impl ConnectionTrait, rows: Vec<courses::Model>) -> Result<Vec<Document>, DbErr> {
    let mentor_ids: Vec<Uuid> = rows.iter().map(|c| c.mentor_id).collect();
    let profiles = profiles_of(db, &mentor_ids).await?;
    let domains: HashMap<Uuid, String> = user_identities::Entity::find()
        .filter(user_identities::Column::Id.is_in(mentor_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|i| (i.id, i.domain))
        .collect();
    Ok(rows
        .into_iter()
        .map(|c| {
            let tags = c.tags.map(|t| t.0).unwrap_or_default();
            let objectives = c.learning_objectives.map(|t| t.0).unwrap_or_default();
            let body = [c.description.unwrap_or_default(), objectives.join("\n"), c.prerequisites.unwrap_or_default()]
                .join("\n");
            Document {
                id: c.id,
                text: vec![
                    ("title", c.title),
                    ("tags_text", tags.join(" ")),
                    ("mentor", profiles.get(&c.mentor_id).map(|p| p.name.clone()).unwrap_or_default()),
                    ("body", body),
                ],
                keywords: vec![
                    ("difficulty", lower(c.difficulty.map(|d| d.as_str().to_string()))),
                    ("domain", lower(domains.get(&c.mentor_id).cloned())),
                    ("tags", lower(tags)),
                ],
                numbers: vec![
                    ("price", c.price.to_f64().unwrap_or(0.0)),
                    ("rating", c.rating.to_f64().unwrap_or(0.0)),
                    ("reviews", f64::from(c.review_count)),
                    ("students", f64::from(c.current_students)),
                    ("created", c.created_at.timestamp_millis() as f64),
                ],
            }
        })
        .collect())
}

async fn mentor_documents(
    db: &impl ConnectionTrait,
    rows: Vec<user_identities::Model>,
) -> Result<Vec<Document>, DbErr> {
    let ids: Vec<Uuid> = rows.iter().map(|i| i.id).collect();
    let profiles = profiles_of(db, &ids).await?;
    let stats: HashMap<Uuid, mentor_stats::Model> = mentor_stats::Entity::find()
        .filter(mentor_stats::Column::IdentityId.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.identity_id, s))
        .collect();
    Ok(rows
        .into_iter()
        .map(|identity| {
            let profile = profiles.get(&identity.id);
            let stat = stats.get(&identity.id);
            let skills = profile.and_then(|p| p.skills.clone()).map(|s| s.0).unwrap_or_default();
            Document {
                id: identity.id,
                text: vec![
                    ("name", profile.map(|p| p.name.clone()).unwrap_or_default()),
                    ("skills_text", skills.join(" ")),
                    ("bio", profile.and_then(|p| p.bio.clone()).unwrap_or_default()),
                ],
                keywords: vec![
                    ("domain", lower([identity.domain.clone()])),
                    ("skills", lower(skills)),
                    ("location", lower(profile.and_then(|p| p.location.clone()))),
                ],
                numbers: vec![
                    ("rate", profile.and_then(|p| p.hourly_rate).and_then(|r| r.to_f64()).unwrap_or(0.0)),
                    ("experience", f64::from(profile.map(|p| p.experience_years).unwrap_or(0))),
                    ("rating", stat.map(|s| s.average_rating).unwrap_or(0.0)),
                    ("reviews", stat.map(|s| s.review_count as f64).unwrap_or(0.0)),
                    ("students", stat.map(|s| s.student_count as f64).unwrap_or(0.0)),
                    ("created", identity.created_at.timestamp_millis() as f64),
                ],
            }
        })
        .collect())
}

fn circle_document(c: circles::Model) -> Document {
    let tags = c.tags.map(|t| t.0).unwrap_or_default();
    Document {
        id: c.id,
        text: vec![("name", c.name), ("tags_text", tags.join(" ")), ("description", c.description.unwrap_or_default())],
        keywords: vec![("domain", lower([c.domain])), ("tags", lower(tags))],
        numbers: vec![
            ("members", f64::from(c.member_count)),
            ("rating", 0.0),
            ("created", c.created_at.timestamp_millis() as f64),
        ],
    }
}
