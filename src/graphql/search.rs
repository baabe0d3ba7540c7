//! `searchCourses`, `searchMentors`, `searchCircles`: the search facade's hits as the same
//! Course / Mentor / Circle types as everywhere else (loaded in one batch), with scores,
//! highlighted snippets, facet counts and offset cursors bound to their query.

use super::circles::Circle;
use super::context::{loaders, state};
use super::courses::Course;
use super::identities::Mentor;
use super::pagination::max_page_size;
use crate::domain::pagination::OffsetCursor;
use crate::error::{AppError, AppResult};
use crate::search::analysis::{Highlighter, Matcher};
use crate::search::{self, Collection, Filter, Order, Request, Results};
use async_graphql::connection::PageInfo;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use entity::enums::{CircleStatus, CourseStatus, Difficulty};
use std::cell::Cell;
use std::collections::HashMap;
use uuid::Uuid;

/// Longest query accepted, in characters.
const MAX_QUERY_CHARS: usize = 200;
/// Characters of a highlighted snippet.
const SNIPPET_CHARS: usize = 160;

tokio::task_local! {
    /// Set when a search of the running request was answered by the database fallback.
    pub static DEGRADED: Cell<bool>;
}

/// A matched part of a field: `snippet` is HTML-escaped text with the matches in `<mark>`.
#[derive(SimpleObject, Clone)]
pub struct Highlight {
    /// The field it comes from (`title`, `description`, `name`, `bio`, …).
    pub field: String,
    /// The passage, HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet: String,
}

/// A facet value and how many matches have it.
#[derive(SimpleObject, Clone)]
pub struct FacetValue {
    /// The value (a domain code, a tag, a difficulty).
    pub value: String,
    /// How many matches have it.
    pub count: i64,
}

/// One edge and one connection type per searched type.
macro_rules! search_types {
    ($($edge:ident, $connection:ident, $node:ty, $facets:ty;)*) => {$(
        /// One search result: the item, its highlights and its cursor.
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Pass it as `after` for the results that follow.
            pub cursor: String,
            /// Relevance (higher is better); 0 when the results are sorted by a field.
            pub score: f64,
            /// The passages that matched.
            pub highlights: Vec<Highlight>,
            /// The item found.
            pub node: $node,
        }

        /// A page of search results with their total, facets and paging.
        #[derive(SimpleObject)]
        pub struct $connection {
            /// The results of this page, best first.
            pub edges: Vec<$edge>,
            /// Whether there are more results and the cursors to reach them.
            pub page_info: PageInfo,
            /// Matches over all pages.
            pub total_count: i64,
            /// Value counts over all matches.
            pub facets: $facets,
            /// Answered by the plain database search (title or name contains the query) because
            /// the index is being built or unavailable; also flagged in `extensions.search`.
            pub degraded: bool,
        }

        impl From<Page<$node, $facets>> for $connection {
            fn from(page: Page<$node, $facets>) -> Self {
                Self {
                    edges: page
                        .edges
                        .into_iter()
                        .map(|(cursor, score, highlights, node)| $edge { cursor, score, highlights, node })
                        .collect(),
                    page_info: page.page_info,
                    total_count: page.total_count,
                    facets: page.facets,
                    degraded: page.degraded,
                }
            }
        }
    )*};
}

search_types! {
    CourseSearchEdge, CourseSearchConnection, Course, CourseFacets;
    MentorSearchEdge, MentorSearchConnection, Mentor, MentorFacets;
    CircleSearchEdge, CircleSearchConnection, Circle, CircleFacets;
}

/// The loaded node of each hit, with its highlights (None: gone, or no longer searchable).
type Nodes<N> = Vec<Option<(N, Vec<Highlight>)>>;

/// A page of hits, before it takes its GraphQL type.
struct Page<N, F> {
    edges: Vec<(String, f64, Vec<Highlight>, N)>,
    page_info: PageInfo,
    total_count: i64,
    facets: F,
    degraded: bool,
}

/// How many matching courses have each difficulty, domain and tag.
#[derive(SimpleObject, Default)]
pub struct CourseFacets {
    /// Counts per difficulty.
    pub difficulty: Vec<FacetValue>,
    /// Counts per domain code.
    pub domain: Vec<FacetValue>,
    /// Counts per tag.
    pub tags: Vec<FacetValue>,
}

/// How many matching masters have each domain and skill.
#[derive(SimpleObject, Default)]
pub struct MentorFacets {
    /// Counts per domain code.
    pub domain: Vec<FacetValue>,
    /// Counts per skill.
    pub skills: Vec<FacetValue>,
}

/// How many matching circles have each domain and tag.
#[derive(SimpleObject, Default)]
pub struct CircleFacets {
    /// Counts per domain code.
    pub domain: Vec<FacetValue>,
    /// Counts per tag.
    pub tags: Vec<FacetValue>,
}

/// Narrows `searchCourses`.
#[derive(InputObject, Default)]
pub struct CourseSearchFilter {
    /// Only this difficulty.
    pub difficulty: Option<Difficulty>,
    /// A domain code.
    pub domain: Option<String>,
    /// Courses with any of these tags.
    pub tags: Option<Vec<String>>,
    /// Price at least this.
    pub min_price: Option<f64>,
    /// Price at most this.
    pub max_price: Option<f64>,
    /// Average rating at least this.
    pub min_rating: Option<f64>,
}

/// Orders of `searchCourses` (default: relevance).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum CourseSearchSort {
    /// Best match first; rating and popularity break ties.
    #[default]
    Relevance,
    /// Best rated first.
    Rating,
    /// Cheapest first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
    /// Newest first.
    Newest,
}

/// Narrows `searchMentors`.
#[derive(InputObject, Default)]
pub struct MentorSearchFilter {
    /// A domain code.
    pub domain: Option<String>,
    /// Masters with any of these skills.
    pub skills: Option<Vec<String>>,
    /// Hourly rate at least this.
    pub min_rate: Option<f64>,
    /// Hourly rate at most this.
    pub max_rate: Option<f64>,
    /// Average rating at least this.
    pub min_rating: Option<f64>,
    /// Location contains this.
    pub location: Option<String>,
}

/// Orders of `searchMentors`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum MentorSearchSort {
    /// Best match first (default).
    #[default]
    Relevance,
    /// Best rated first.
    Rating,
    /// Cheapest first.
    RateAsc,
    /// Most expensive first.
    RateDesc,
    /// Most years of experience first.
    Experience,
}

/// Narrows `searchCircles`.
#[derive(InputObject, Default)]
pub struct CircleSearchFilter {
    /// A domain code.
    pub domain: Option<String>,
}

fn any_of(field: &'static str, values: Option<Vec<String>>, name: &str) -> AppResult<Option<Filter>> {
    let Some(values) = values else { return Ok(None) };
    if values.len() > 20 {
        return Err(AppError::bad_input(name, "at most 20 values"));
    }
    let values: Vec<String> = values.into_iter().map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty()).collect();
    Ok((!values.is_empty()).then_some(Filter::AnyOf(field, values)))
}

fn range(field: &'static str, min: Option<f64>, max: Option<f64>, name: &str) -> AppResult<Option<Filter>> {
    for value in [min, max].into_iter().flatten() {
        if !value.is_finite() || value < 0.0 {
            return Err(AppError::bad_input(name, "must be a number of 0 or more"));
        }
    }
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(AppError::bad_input(name, "the minimum is above the maximum"));
        }
    }
    Ok((min.is_some() || max.is_some()).then_some(Filter::Range(field, min, max)))
}

/// A validated search: the request for the facade, its page and the key its cursors are bound to.
struct Prepared {
    request: Request,
    key: String,
}

/// `first` within the live page size cap (default 20).
fn limit(ctx: &Context<'_>, first: Option<i32>) -> AppResult<usize> {
    let size = crate::domain::pagination::page_size("first", first, max_page_size(ctx))?;
    Ok(size.unwrap_or(crate::domain::pagination::DEFAULT_PAGE) as usize)
}

fn prepare(
    collection: Collection,
    query: String,
    filters: Vec<Option<Filter>>,
    order: Order,
    facets: Vec<&'static str>,
    limit: usize,
    after: Option<String>,
) -> AppResult<Prepared> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::bad_input("query", format!("at most {MAX_QUERY_CHARS} characters")));
    }
    let filters: Vec<Filter> = filters.into_iter().flatten().collect();
    // The query as typed: a trailing space changes the matching (the last word is no prefix).
    let key = format!("{}|{}|{:?}|{:?}", collection.name(), query, filters, order);
    let offset = match after {
        None => 0,
        Some(cursor) => OffsetCursor::decode("after", &key, &cursor, search::MAX_OFFSET)? + 1,
    };
    Ok(Prepared { request: Request { collection, query, filters, order, offset, limit, facets }, key })
}

fn facet(results: &Results, name: &str) -> Vec<FacetValue> {
    results
        .facets
        .iter()
        .find(|(field, _)| *field == name)
        .map(|(_, values)| {
            values.iter().map(|(value, count)| FacetValue { value: value.clone(), count: *count as i64 }).collect()
        })
        .unwrap_or_default()
}

/// What the selection asks for: whether any edge's `highlights`, and which of `facets` (each
/// is work: segmenting the hits' texts, counting values over every match).
fn wanted(ctx: &Context<'_>, facets: &[&'static str]) -> (bool, Vec<&'static str>) {
    let look = ctx.look_ahead();
    let marking = look.field("edges").field("highlights").exists();
    let selected = look.field("facets");
    (marking, facets.iter().copied().filter(|f| selected.field(f).exists()).collect())
}

fn highlights(marking: bool, highlighter: &Highlighter<'_>, fields: &[(&str, Option<&str>)]) -> Vec<Highlight> {
    if !marking {
        return Vec::new();
    }
    fields
        .iter()
        .filter_map(|(field, text)| {
            let snippet = highlighter.highlight(text.as_ref()?, SNIPPET_CHARS)?;
            Some(Highlight { field: field.to_string(), snippet })
        })
        .collect()
}

/// Runs the search and pairs each hit with its loaded node (hits whose row is gone or no longer
/// searchable are left out).
async fn run<N, F>(
    ctx: &Context<'_>,
    prepared: Prepared,
    nodes: impl AsyncFnOnce(Vec<Uuid>) -> AppResult<Nodes<N>>,
    facets: impl FnOnce(&Results) -> F,
) -> AppResult<Page<N, F>> {
    let Prepared { request, key } = prepared;
    // What the index says is not keyed in the cache: the response must not be kept whole.
    crate::cache::uncacheable();
    let offset = request.offset;
    let state = state(ctx)?;
    let results = state.search.search(request, state.settings.live().search).await?;
    if results.degraded {
        let _ = DEGRADED.try_with(|flag| flag.set(true));
    }
    let ids: Vec<Uuid> = results.hits.iter().map(|h| h.id).collect();
    let loaded = nodes(ids).await?;
    let mut edges = Vec::with_capacity(loaded.len());
    for (i, (hit, node)) in results.hits.iter().zip(loaded).enumerate() {
        if let Some((node, highlights)) = node {
            edges.push((OffsetCursor::encode(&key, offset + i), f64::from(hit.score), highlights, node));
        }
    }
    // Cursors of the page's first and last hit, even when their rows were left out, so a client
    // always moves on.
    let last = (offset + results.hits.len()).checked_sub(1).filter(|_| !results.hits.is_empty());
    let page_info = PageInfo {
        has_previous_page: offset > 0,
        has_next_page: (offset + results.hits.len()) < results.total as usize,
        start_cursor: last.map(|_| OffsetCursor::encode(&key, offset)),
        end_cursor: last.map(|last| OffsetCursor::encode(&key, last)),
    };
    Ok(Page {
        edges,
        page_info,
        total_count: results.total as i64,
        facets: facets(&results),
        degraded: results.degraded,
    })
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Published courses by title, tags, master's name and description: typo-tolerant,
    /// prefix-matching on the last word, Chinese-aware (words and pinyin: `shujuku`, `sjk`).
    async fn search_courses(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "What the person typed (Chinese, pinyin or English; typos tolerated, the last word as a prefix)."
        )]
        query: String,
        #[graphql(desc = "Narrows the results (domain, difficulty, price, rating, tags).")] filter: Option<
            CourseSearchFilter,
        >,
        #[graphql(desc = "The order (default: relevance).")] sort: Option<CourseSearchSort>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> async_graphql::Result<CourseSearchConnection> {
        let f = filter.unwrap_or_default();
        let order = match sort.unwrap_or_default() {
            CourseSearchSort::Relevance => Order::Relevance,
            CourseSearchSort::Rating => Order::Field { field: "rating", descending: true },
            CourseSearchSort::PriceAsc => Order::Field { field: "price", descending: false },
            CourseSearchSort::PriceDesc => Order::Field { field: "price", descending: true },
            CourseSearchSort::Newest => Order::Field { field: "created", descending: true },
        };
        let filters = vec![
            f.difficulty.map(|d| Filter::AnyOf("difficulty", vec![d.as_str().to_string()])),
            any_of("domain", f.domain.map(|d| vec![d]), "filter.domain")?,
            any_of("tags", f.tags, "filter.tags")?,
            range("price", f.min_price, f.max_price, "filter.minPrice")?,
            range("rating", f.min_rating, None, "filter.minRating")?,
        ];
        let matcher = Matcher::parse(&query);
        let (marking, facets) = wanted(ctx, &["difficulty", "domain", "tags"]);
        let prepared = prepare(Collection::Courses, query, filters, order, facets, limit(ctx, first)?, after)?;
        let nodes = async |ids: Vec<Uuid>| -> AppResult<Nodes<Course>> {
            let rows = loaders(ctx)?.courses.load_ordered(&ids).await.map_err(AppError::from)?;
            let rows: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.id, r)).collect();
            let highlighter = matcher.highlighter();
            Ok(ids
                .iter()
                .map(|id| {
                    let row = rows.get(id).filter(|c| c.status == CourseStatus::Published)?.clone();
                    let marks = highlights(
                        marking,
                        &highlighter,
                        &[("title", Some(&row.title)), ("description", row.description.as_deref())],
                    );
                    Some((Course(row), marks))
                })
                .collect())
        };
        let connection = run(ctx, prepared, nodes, |r| CourseFacets {
            difficulty: facet(r, "difficulty"),
            domain: facet(r, "domain"),
            tags: facet(r, "tags"),
        })
        .await?;
        Ok(connection.into())
    }

    /// Active masters by name, skills and bio (same matching as `searchCourses`).
    async fn search_mentors(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "What the person typed (Chinese, pinyin or English; typos tolerated, the last word as a prefix)."
        )]
        query: String,
        #[graphql(desc = "Narrows the results (domain, skills, rate, rating).")] filter: Option<MentorSearchFilter>,
        #[graphql(desc = "The order (default: relevance).")] sort: Option<MentorSearchSort>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> async_graphql::Result<MentorSearchConnection> {
        let f = filter.unwrap_or_default();
        let order = match sort.unwrap_or_default() {
            MentorSearchSort::Relevance => Order::Relevance,
            MentorSearchSort::Rating => Order::Field { field: "rating", descending: true },
            MentorSearchSort::RateAsc => Order::Field { field: "rate", descending: false },
            MentorSearchSort::RateDesc => Order::Field { field: "rate", descending: true },
            MentorSearchSort::Experience => Order::Field { field: "experience", descending: true },
        };
        let filters = vec![
            any_of("domain", f.domain.map(|d| vec![d]), "filter.domain")?,
            any_of("skills", f.skills, "filter.skills")?,
            any_of("location", f.location.map(|l| vec![l]), "filter.location")?,
            range("rate", f.min_rate, f.max_rate, "filter.minRate")?,
            range("rating", f.min_rating, None, "filter.minRating")?,
        ];
        let matcher = Matcher::parse(&query);
        let (marking, facets) = wanted(ctx, &["domain", "skills"]);
        let prepared = prepare(Collection::Mentors, query, filters, order, facets, limit(ctx, first)?, after)?;
        let nodes = async |ids: Vec<Uuid>| -> AppResult<Nodes<Mentor>> {
            let loaders = loaders(ctx)?;
            let identities = loaders.identities.load_ordered(&ids).await.map_err(AppError::from)?;
            let identities: HashMap<Uuid, _> = identities.into_iter().map(|i| (i.id, i)).collect();
            let profiles = loaders.profiles_by_identity.load_ordered(&ids).await.map_err(AppError::from)?;
            let profiles: HashMap<Uuid, _> = profiles.into_iter().flatten().map(|p| (p.identity_id, p)).collect();
            let highlighter = matcher.highlighter();
            Ok(ids
                .iter()
                .map(|id| {
                    let identity = identities.get(id).filter(|i| crate::domain::mentors::is_mentor(i))?;
                    let profile = profiles.get(id);
                    let skills = profile.and_then(|p| p.skills.clone()).map(|s| s.0.join(", "));
                    let marks = highlights(
                        marking,
                        &highlighter,
                        &[
                            ("name", profile.map(|p| p.name.as_str())),
                            ("skills", skills.as_deref()),
                            ("bio", profile.and_then(|p| p.bio.as_deref())),
                        ],
                    );
                    Some((Mentor::new(identity.id), marks))
                })
                .collect())
        };
        let connection =
            run(ctx, prepared, nodes, |r| MentorFacets { domain: facet(r, "domain"), skills: facet(r, "skills") })
                .await?;
        Ok(connection.into())
    }

    /// Active circles by name, tags and description.
    async fn search_circles(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "What the person typed (Chinese, pinyin or English; typos tolerated, the last word as a prefix)."
        )]
        query: String,
        #[graphql(desc = "Narrows the results (domain, tags).")] filter: Option<CircleSearchFilter>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
    ) -> async_graphql::Result<CircleSearchConnection> {
        let f = filter.unwrap_or_default();
        let filters = vec![any_of("domain", f.domain.map(|d| vec![d]), "filter.domain")?];
        let matcher = Matcher::parse(&query);
        let (marking, facets) = wanted(ctx, &["domain", "tags"]);
        let prepared =
            prepare(Collection::Circles, query, filters, Order::Relevance, facets, limit(ctx, first)?, after)?;
        let nodes = async |ids: Vec<Uuid>| -> AppResult<Nodes<Circle>> {
            let rows = loaders(ctx)?.circles.load_ordered(&ids).await.map_err(AppError::from)?;
            let rows: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.id, r)).collect();
            let highlighter = matcher.highlighter();
            Ok(ids
                .iter()
                .map(|id| {
                    let row = rows.get(id).filter(|c| c.status == CircleStatus::Active)?.clone();
                    let marks = highlights(
                        marking,
                        &highlighter,
                        &[("name", Some(&row.name)), ("description", row.description.as_deref())],
                    );
                    Some((Circle(row), marks))
                })
                .collect())
        };
        let connection =
            run(ctx, prepared, nodes, |r| CircleFacets { domain: facet(r, "domain"), tags: facet(r, "tags") }).await?;
        Ok(connection.into())
    }
}
