//! Mentors: active master identities, read through the `mentor_stats` view (profile fields and the
//! design's statistics in one row), filtered and ordered with keyset pages.

use super::pagination::{keyset, Direction, Page, PageRequest, SortKey};
use crate::error::AppResult;
use entity::enums::{IdentityStatus, IdentityType};
use entity::{mentor_stats, user_identities, user_profiles};
use rust_decimal::Decimal;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

#[derive(Default)]
pub struct MentorFilter {
    pub domain: Option<String>,
    pub skill: Option<String>,
    pub min_rate: Option<Decimal>,
    pub max_rate: Option<Decimal>,
    pub min_rating: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MentorOrder {
    Rating,
    HourlyRate,
    Students,
    Courses,
    Newest,
}

/// An active master identity, or `None`.
/// Whether an identity is a mentor: an active master.
pub fn is_mentor(identity: &user_identities::Model) -> bool {
    identity.identity_type == IdentityType::Master && identity.status == IdentityStatus::Active
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user_identities::Model>> {
    Ok(user_identities::Entity::find_by_id(id)
        .filter(user_identities::Column::IdentityType.eq(IdentityType::Master.as_str()))
        .filter(user_identities::Column::Status.eq(IdentityStatus::Active.as_str()))
        .one(db)
        .await?)
}

pub async fn list(
    db: &DatabaseConnection,
    filter: MentorFilter,
    order: MentorOrder,
    direction: Direction,
    page: &PageRequest,
) -> AppResult<(Page<mentor_stats::Model>, Select<mentor_stats::Entity>)> {
    let mut select = mentor_stats::Entity::find();
    if let Some(domain) = filter.domain {
        select = select.filter(mentor_stats::Column::Domain.eq(domain.trim().to_lowercase()));
    }
    if let Some(min) = filter.min_rate {
        select = select.filter(mentor_stats::Column::HourlyRate.gte(min));
    }
    if let Some(max) = filter.max_rate {
        select = select.filter(mentor_stats::Column::HourlyRate.lte(max));
    }
    if let Some(rating) = filter.min_rating {
        select = select.filter(mentor_stats::Column::AverageRating.gte(rating));
    }
    if let Some(skill) = filter.skill {
        let contains =
            super::courses::json_array_contains(db.get_database_backend(), "user_profiles.skills", skill.trim());
        select = select.filter(
            mentor_stats::Column::IdentityId.in_subquery(
                Query::select()
                    .column(user_profiles::Column::IdentityId)
                    .from(user_profiles::Entity)
                    .cond_where(Condition::all().add(contains))
                    .to_owned(),
            ),
        );
    }
    let (column, key): (mentor_stats::Column, fn(&mentor_stats::Model) -> SortKey) = match order {
        MentorOrder::Rating => (mentor_stats::Column::AverageRating, |m| SortKey::Float(m.average_rating)),
        MentorOrder::HourlyRate => (mentor_stats::Column::HourlyRate, |m| SortKey::Num(m.hourly_rate)),
        MentorOrder::Students => (mentor_stats::Column::StudentCount, |m| SortKey::Int(m.student_count)),
        MentorOrder::Courses => (mentor_stats::Column::CourseCount, |m| SortKey::Int(m.course_count)),
        MentorOrder::Newest => (mentor_stats::Column::CreatedAt, |m| SortKey::Time(m.created_at)),
    };
    let counted = select.clone();
    let page = keyset(db, select, &[(column, direction)], mentor_stats::Column::IdentityId, page, |m| {
        (vec![key(m)], m.identity_id)
    })
    .await?;
    Ok((page, counted))
}
