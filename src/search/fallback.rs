//! The database search used while the index cannot answer: the title (or name) contains the
//! query, case-insensitively, among at most [`CANDIDATES`] searchable rows; filters, order,
//! facets and pages are then applied to their documents exactly as the index would.

use super::analysis::Matcher;
use super::{documents, Collection, Document, Filter, Hit, Order, Request, Results, FACET_SIZE};
use crate::error::AppResult;
use entity::enums::{CircleStatus, CourseStatus, IdentityStatus, IdentityType};
use entity::{circles, courses, user_identities, user_profiles};
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use uuid::Uuid;

/// Most rows a fallback search considers.
const CANDIDATES: u64 = 1_000;

fn pattern(query: &str) -> String {
    let escaped: String = query
        .trim()
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

fn contains<C: ColumnTrait>(column: C, query: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::lower(Expr::col(column))).like(sea_orm::sea_query::LikeExpr::new(pattern(query)).escape('\\'))
}

pub async fn search(db: &DatabaseConnection, request: &Request, _: &Matcher) -> AppResult<Results> {
    let q = request.query.trim();
    let ids: Vec<Uuid> = match request.collection {
        Collection::Courses => {
            let mut select = courses::Entity::find()
                .select_only()
                .column(courses::Column::Id)
                .filter(courses::Column::Status.eq(CourseStatus::Published.as_str()));
            if !q.is_empty() {
                select = select.filter(contains(courses::Column::Title, q));
            }
            select.order_by_desc(courses::Column::CreatedAt).limit(CANDIDATES).into_tuple().all(db).await?
        }
        Collection::Mentors => {
            let mut select = user_identities::Entity::find()
                .select_only()
                .column(user_identities::Column::Id)
                .filter(user_identities::Column::IdentityType.eq(IdentityType::Master.as_str()))
                .filter(user_identities::Column::Status.eq(IdentityStatus::Active.as_str()));
            if !q.is_empty() {
                select = select.filter(
                    user_identities::Column::Id.in_subquery(
                        Query::select()
                            .column(user_profiles::Column::IdentityId)
                            .from(user_profiles::Entity)
                            .and_where(contains(user_profiles::Column::Name, q))
                            .to_owned(),
                    ),
                );
            }
            select.order_by_desc(user_identities::Column::CreatedAt).limit(CANDIDATES).into_tuple().all(db).await?
        }
        Collection::Circles => {
            let mut select = circles::Entity::find()
                .select_only()
                .column(circles::Column::Id)
                .filter(circles::Column::Status.eq(CircleStatus::Active.as_str()));
            if !q.is_empty() {
                select = select.filter(contains(circles::Column::Name, q));
            }
            select.order_by_desc(circles::Column::CreatedAt).limit(CANDIDATES).into_tuple().all(db).await?
        }
    };
    let found = documents::load(db, request.collection, &ids).await?;
    Ok(answer(request, found))
}

fn keeps(document: &Document, filter: &Filter) -> bool {
    match filter {
        Filter::AnyOf(field, wanted) => document
            .keywords
            .iter()
            .find(|(name, _)| name == field)
            .is_some_and(|(_, values)| values.iter().any(|v| wanted.contains(v))),
        Filter::Range(field, min, max) => {
            let value = document.number(field);
            min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m)
        }
    }
}

/// Filters, orders, counts and pages documents as the index does.
fn answer(request: &Request, documents: Vec<Document>) -> Results {
    let mut matching: Vec<Document> =
        documents.into_iter().filter(|d| request.filters.iter().all(|f| keeps(d, f))).collect();
    let popularity = if request.collection == Collection::Circles { "members" } else { "students" };
    matching.sort_by(|a, b| {
        let (x, y) = match request.order {
            Order::Relevance => {
                ((a.number("rating"), a.number(popularity)), (b.number("rating"), b.number(popularity)))
            }
            Order::Field { field, descending: true } => ((a.number(field), 0.0), (b.number(field), 0.0)),
            Order::Field { field, descending: false } => ((-a.number(field), 0.0), (-b.number(field), 0.0)),
        };
        y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.id.cmp(&b.id))
    });
    let mut facets = Vec::new();
    for name in &request.facets {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for document in &matching {
            if let Some((_, values)) = document.keywords.iter().find(|(field, _)| field == name) {
                for value in values {
                    *counts.entry(value.clone()).or_default() += 1;
                }
            }
        }
        let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(FACET_SIZE);
        facets.push((*name, counts));
    }
    let total = matching.len() as u64;
    let hits =
        matching.into_iter().skip(request.offset).take(request.limit).map(|d| Hit { id: d.id, score: 0.0 }).collect();
    Results { hits, total, facets, degraded: true }
}
