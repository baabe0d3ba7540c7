//! Relay connections over domain pages: one helper turns a keyset `Page` into a `Connection` with
//! a lazily counted `totalCount` (the count runs only when a client asks for it).

use super::loaders::{Counts, Pages, Uncached};
use crate::domain::pagination::{Card, ChildList, Joins, Owner, Page, PageRequest};
use crate::error::AppResult;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, OutputType, Result};
use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait, Select};
use std::sync::Arc;

type CountFn = Arc<dyn Fn() -> BoxFuture<'static, AppResult<u64>> + Send + Sync>;

/// Extra fields of every connection.
pub struct ConnectionFields {
    count: CountFn,
}

impl ConnectionFields {
    /// `totalCount` counts the rows of `select` (the filtered query, without paging).
    pub fn counting<E>(db: &DatabaseConnection, select: Select<E>) -> Self
    where
        E: EntityTrait + Send + Sync,
        E::Model: Send + Sync,
    {
        let db = db.clone();
        Self {
            count: Arc::new(move || {
                let db = db.clone();
                let select = select.clone();
                Box::pin(async move { Ok(select.count(&db).await?) })
            }),
        }
    }

    /// `totalCount` from a parent's count loader (one grouped statement for a batch of parents).
    pub fn loaded<E>(counts: Arc<super::loaders::Uncached<super::loaders::Counts<E>>>, parent: uuid::Uuid) -> Self
    where
        E: EntityTrait + Send + Sync,
        E::Model: Clone + Send + Sync,
        E::Column: Send + Sync,
    {
        Self {
            count: Arc::new(move || {
                let counts = counts.clone();
                Box::pin(async move {
                    let count = counts.load_one(parent).await.map_err(crate::error::AppError::from)?;
                    Ok(count.unwrap_or(0))
                })
            }),
        }
    }
}

#[Object]
impl ConnectionFields {
    /// Rows matching the filter, over all pages.
    async fn total_count(&self) -> Result<i64> {
        Ok((self.count)().await? as i64)
    }
}

pub type Conn<N> = Connection<String, N, ConnectionFields>;

pub fn connection<M, N: OutputType>(page: Page<M>, fields: ConnectionFields, node: impl Fn(M) -> N) -> Conn<N> {
    let Page { rows, has_next_page, has_previous_page, cards } = page;
    // What the page's statement read with its rows answers its nodes' author and profile fields.
    cards.into_iter().for_each(Card::prime);
    let mut connection = Connection::with_additional_fields(has_previous_page, has_next_page, fields);
    connection.edges.extend(rows.into_iter().map(|(cursor, row)| Edge::new(cursor, node(row))));
    connection
}

/// What a page of rows owned by identities reads with its rows in the same statement ([`Joins`]),
/// as the selection asks: the identity the rows' `owner` column holds when its nodes select
/// `field` and resolving it reads the identity (`loads`: a post's `author`; a course's `mentor`
/// needs only the id), and its `profile` when selected under `field`. Only with the cache off:
/// with it on, the identities and profiles come from their cache entries, which a join would bypass.
pub fn joins(ctx: &Context<'_>, field: &str, owner: Owner, loads: bool) -> Joins {
    if super::context::state(ctx).map_or(true, |state| state.cache.is_enabled()) {
        return Joins::default();
    }
    let look = ctx.look_ahead();
    let related = [look.field("edges").field("node").field(field), look.field("nodes").field(field)];
    Joins {
        owner: Some(owner),
        identity: loads && related.iter().any(|r| r.exists()),
        profile: related.iter().any(|r| r.field("profile").exists()),
    }
}

/// A per-parent list's two batched loaders: its pages and its counts.
pub type Batched<'a, E, O> = (&'a Uncached<Pages<E, O>>, &'a Arc<Uncached<Counts<E>>>);

/// One parent's page of a per-parent list ([`ChildList`]): the cursor checked against the list's
/// order before it joins the batch, the page from the batched `pages` loader, `totalCount` from
/// the batched `counts` loader.
pub async fn child_connection<E, O, N>(
    (pages, counts): Batched<'_, E, O>,
    list: ChildList<E>,
    (parent, order): (uuid::Uuid, O),
    page: &PageRequest,
    node: impl Fn(E::Model) -> N,
) -> Result<Conn<N>>
where
    E: EntityTrait + Send + Sync,
    E::Model: Clone + Send + Sync,
    E::Column: Send + Sync,
    O: Copy + Eq + std::hash::Hash + Send + Sync + 'static,
    N: OutputType,
{
    list.check(page)?;
    let rows = pages.page(parent, order, page.clone()).await?;
    Ok(connection(rows, ConnectionFields::loaded(counts.clone(), parent), node))
}

/// Parses Relay arguments (first and last exclusive, each at most the live
/// `pagination.max_page_size`).
pub fn page_request(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<PageRequest> {
    PageRequest::parse(first, after, last, before, max_page_size(ctx))
}

/// The live `pagination.max_page_size` of this server.
pub fn max_page_size(ctx: &Context<'_>) -> u64 {
    super::context::state(ctx).map(|s| s.settings.live().max_page_size).unwrap_or(crate::domain::pagination::MAX_PAGE)
}
