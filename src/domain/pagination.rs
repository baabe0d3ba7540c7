//! The one pagination helper: keyset (seek) pages over any entity, ordered by one or more sort
//! columns (each in its own direction) and the id as tie-breaker. Cursors are opaque (base64 JSON of the sort value and id), stay valid
//! while rows are added, and never skip or repeat a row. Page size is capped at 100.
//!
//! Hot lists keep their first page in the cache facade ([`cached_first_page`],
//! [`cached_id_page`]): the first [`CACHED_PREFIX`] rows under one key, from which every first page
//! up to that size is cut; writes that change such a list mark its key.

use crate::cache::{Cache, Kind};
use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{user_identities, user_profiles};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityName, EntityTrait, FromQueryResult, IdenStatic, Iterable, Order,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use uuid::Uuid;

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;
/// How many rows of a hot list's first page the cache keeps.
pub const CACHED_PREFIX: u64 = DEFAULT_PAGE;

/// The value a row is sorted by, as carried in a cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum SortKey {
    Bool(bool),
    Int(i64),
    Num(Decimal),
    Float(f64),
    Time(DateTime<Utc>),
}

impl SortKey {
    /// Whether this key can be compared with a column of type `ty` (a cursor edited by hand may
    /// carry a key of another type, which the database would refuse).
    fn fits(&self, ty: &sea_orm::ColumnType) -> bool {
        use sea_orm::ColumnType as T;
        match self {
            Self::Bool(_) => matches!(ty, T::Boolean),
            Self::Int(_) => matches!(
                ty,
                T::TinyInteger
                    | T::SmallInteger
                    | T::Integer
                    | T::BigInteger
                    | T::TinyUnsigned
                    | T::SmallUnsigned
                    | T::Unsigned
                    | T::BigUnsigned
            ),
            Self::Num(_) => matches!(ty, T::Decimal(_) | T::Money(_)),
            Self::Float(v) => v.is_finite() && matches!(ty, T::Float | T::Double),
            Self::Time(_) => matches!(ty, T::DateTime | T::Timestamp | T::TimestampWithTimeZone),
        }
    }

    fn to_value(&self) -> sea_orm::Value {
        match self {
            Self::Bool(v) => (*v).into(),
            Self::Int(v) => (*v).into(),
            Self::Num(v) => (*v).into(),
            Self::Float(v) => (*v).into(),
            Self::Time(v) => (*v).into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub keys: Vec<SortKey>,
    pub id: Uuid,
    /// The direction of each sort column (`a`/`d`) of the list that issued it, so a cursor of one
    /// direction is refused by the other rather than misread (empty: any, as before it existed).
    #[serde(rename = "o", default, skip_serializing_if = "String::is_empty")]
    pub order: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(field: &str, raw: &str) -> AppResult<Self> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::bad_input(field, "is not a cursor this API issued"))
    }
}

/// A cursor into a ranked list (search hits): the position of a hit, bound to a fingerprint of
/// the query it came from, so a cursor of another query is refused rather than misread.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OffsetCursor {
    #[serde(rename = "q")]
    pub query: String,
    #[serde(rename = "o")]
    pub offset: usize,
}

impl OffsetCursor {
    fn fingerprint(query_key: &str) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(query_key.as_bytes())[..6])
    }

    pub fn encode(query_key: &str, offset: usize) -> String {
        let cursor = Self { query: Self::fingerprint(query_key), offset };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }

    /// The offset of the hit `raw` points at, if it is a cursor of `query_key` below `max`.
    pub fn decode(field: &str, query_key: &str, raw: &str, max: usize) -> AppResult<usize> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Self>(&bytes).ok())
            .filter(|c| c.query == Self::fingerprint(query_key) && c.offset < max)
            .map(|c| c.offset)
            .ok_or_else(|| AppError::bad_input(field, "is not a cursor of this search"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

/// A sort column and its direction.
pub type Sort<C> = (C, Direction);

/// `first/after` (forward) or `last/before` (backward), validated, and what to read with the rows.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub after: Option<Cursor>,
    pub last: Option<u64>,
    pub before: Option<Cursor>,
    /// The single-row relations the page's statement reads with its rows (none by default).
    pub joins: Joins,
}

/// Single-row relations a page reads in its own statement: the identity each row's owner column
/// points at (a post's or comment's author, a course's mentor) and that identity's profile. The
/// page comes back with them as [`Card`]s, which the connection primes for the request
/// ([`Card::prime`]), where the author and profile fields find them: a page of posts with their
/// authors' names is one statement, not three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Joins {
    /// The rows' column that holds the identity id (none: nothing is joined).
    pub owner: Option<Owner>,
    /// Read the identity (`user_identities`).
    pub identity: bool,
    /// Read the identity's profile (`user_profiles`).
    pub profile: bool,
}

impl Joins {
    /// The owner column, when anything is joined through it.
    fn active(&self) -> Option<&'static str> {
        self.owner.filter(|_| self.identity || self.profile).map(Owner::column)
    }
}

/// The identity a row belongs to, by the column that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// `identity_id`: a post's or comment's author.
    Author,
    /// `mentor_id`: a course's master.
    Mentor,
}

impl Owner {
    fn column(self) -> &'static str {
        match self {
            Self::Author => "identity_id",
            Self::Mentor => "mentor_id",
        }
    }
}

/// An identity and its profile as a page's statement read them with its rows ([`Joins`]): each
/// `None` when not asked for, `Some(None)` when there is none.
#[derive(Debug, Clone)]
pub struct Card {
    pub owner: Uuid,
    pub identity: Option<Option<user_identities::Model>>,
    pub profile: Option<Option<user_profiles::Model>>,
}

impl Card {
    /// Hands the card to the rest of the request: under the kinds and value types the identity
    /// and profile loaders read (`Identity` by id; `Profile` by identity, as a list).
    pub fn prime(self) {
        if let Some(identity) = self.identity {
            crate::cache::prime(Kind::Identity, self.owner, identity);
        }
        if let Some(profile) = self.profile {
            crate::cache::prime(Kind::Profile, self.owner, profile.map(|profile| vec![profile]));
        }
    }

    /// The card joined to `row` (none when nothing was joined or the owner column is null).
    fn read(row: &sea_orm::QueryResult, joins: Joins) -> AppResult<Option<Self>> {
        let Some(owner) = joins.active() else { return Ok(None) };
        let Some(owner) = row.try_get::<Option<Uuid>>("", owner)? else { return Ok(None) };
        let present = |alias: &str| row.try_get::<Option<Uuid>>(alias, "id").map(|id| id.is_some());
        let identity = match joins.identity {
            false => None,
            true if present("mg_i_")? => Some(Some(user_identities::Model::from_query_result(row, "mg_i_")?)),
            true => Some(None),
        };
        let profile = match joins.profile {
            false => None,
            true if present("mg_p_")? => Some(Some(user_profiles::Model::from_query_result(row, "mg_p_")?)),
            true => Some(None),
        };
        Ok(Some(Self { owner, identity, profile }))
    }
}

/// `statement` (a page's rows) with the relations `joins` asks for, as `mg_i_*` (identity) and
/// `mg_p_*` (profile) columns beside the row's own, in `order` (terms over the rows' alias
/// `mg_rows`). Unchanged when nothing is joined.
fn joined(statement: Statement, joins: Joins, order: &[String]) -> Statement {
    let Some(owner) = joins.active() else { return statement };
    let mut columns = vec![r#""mg_rows".*"#.to_owned()];
    let mut from = format!(r#"({}) AS "mg_rows""#, statement.sql);
    let mut join = |table: &str, alias: &str, on: &str, names: Vec<String>| {
        columns.extend(names.into_iter().map(|name| format!(r#""{alias}"."{name}" AS "{alias}_{name}""#)));
        from.push_str(&format!(r#" LEFT JOIN "{table}" AS "{alias}" ON "{alias}"."{on}" = "mg_rows"."{owner}""#));
    };
    if joins.identity {
        let names = user_identities::Column::iter().map(|c| c.as_str().to_owned()).collect();
        join(user_identities::Entity.table_name(), "mg_i", "id", names);
    }
    if joins.profile {
        let names = user_profiles::Column::iter().map(|c| c.as_str().to_owned()).collect();
        join(user_profiles::Entity.table_name(), "mg_p", "identity_id", names);
    }
    let mut sql = format!("SELECT {} FROM {from}", columns.join(", "));
    if !order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    Statement { sql, ..statement }
}

/// Runs a page's `statement` with the request's joins ([`joined`]): each row of `E` with the card
/// joined to it. A joined statement is ordered again as the page reads (`first`: a column of the
/// page's own, ahead of the sort columns, that groups a batch's rows by parent).
async fn read_rows<E: EntityTrait>(
    db: &impl ConnectionTrait,
    statement: Statement,
    (sort, id, request): (&[Sort<E::Column>], E::Column, &PageRequest),
    first: Option<&str>,
) -> AppResult<Vec<(E::Model, Option<Card>)>> {
    let joins = request.joins;
    let statement = match joins.active() {
        None => statement,
        Some(_) => {
            let mut order: Vec<String> = first.map(|column| format!(r#""mg_rows"."{column}""#)).into_iter().collect();
            order.extend(order_terms(sort, id, request, Some("mg_rows")));
            joined(statement, joins, &order)
        }
    };
    let rows = db.query_all(statement).await?;
    rows.iter()
        .map(|row| Ok((<E::Model as FromQueryResult>::from_query_result(row, "")?, Card::read(row, joins)?)))
        .collect()
}

/// A page size argument (`first`, `last`): 0..=`cap` (the live `pagination.max_page_size`, at
/// most [`MAX_PAGE`]).
pub fn page_size(field: &str, value: Option<i32>, cap: u64) -> AppResult<Option<u64>> {
    let cap = cap.min(MAX_PAGE);
    match value {
        None => Ok(None),
        Some(n) if n >= 0 && n as u64 <= cap => Ok(Some(n as u64)),
        Some(_) => Err(AppError::bad_input(field, format!("must be between 0 and {cap}"))),
    }
}

impl PageRequest {
    /// Relay arguments; `cap` bounds `first` and `last` (see [`page_size`]).
    pub fn parse(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        cap: u64,
    ) -> AppResult<Self> {
        let first = page_size("first", first, cap)?;
        let last = page_size("last", last, cap)?;
        if first.is_some() && last.is_some() {
            return Err(AppError::bad_input("last", "use either first or last, not both"));
        }
        Ok(Self {
            first,
            after: after.map(|c| Cursor::decode("after", &c)).transpose()?,
            last,
            before: before.map(|c| Cursor::decode("before", &c)).transpose()?,
            joins: Joins::default(),
        })
    }

    /// The same page, read with `joins`.
    pub fn joining(self, joins: Joins) -> Self {
        Self { joins, ..self }
    }

    /// The first `n` rows.
    pub fn first(n: u64) -> Self {
        Self { first: Some(n.min(MAX_PAGE)), ..Default::default() }
    }

    fn backward(&self) -> bool {
        self.last.is_some()
    }

    /// The page's size: as asked, else [`DEFAULT_PAGE`], at most [`MAX_PAGE`].
    pub fn size(&self) -> u64 {
        self.last.or(self.first).unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
    }

    /// The start of the list (no cursor, forward), no bigger than the cached prefix.
    pub fn within_cached_prefix(&self) -> bool {
        self.after.is_none() && self.before.is_none() && self.last.is_none() && self.size() <= CACHED_PREFIX
    }
}

/// A page request as a hashable key (cursors as their encoded text), so a DataLoader can group the
/// parents that ask for the same page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    first: Option<u64>,
    last: Option<u64>,
    after: Option<String>,
    before: Option<String>,
    joins: Joins,
}

impl PageRequest {
    pub fn key(&self) -> PageKey {
        PageKey {
            first: self.first,
            last: self.last,
            after: self.after.as_ref().map(Cursor::encode),
            before: self.before.as_ref().map(Cursor::encode),
            joins: self.joins,
        }
    }
}

impl PageKey {
    /// The request again (its cursors were issued by [`Cursor::encode`], so they decode).
    pub fn request(&self) -> PageRequest {
        let decode = |raw: &Option<String>| raw.as_deref().and_then(|raw| Cursor::decode("cursor", raw).ok());
        PageRequest {
            first: self.first,
            last: self.last,
            after: decode(&self.after),
            before: decode(&self.before),
            joins: self.joins,
        }
    }
}

/// A list every parent row has of its own (a circle's members, a post's comments): which child
/// rows belong to a parent (`parent` column, `condition`) and their order, so a page of it can be
/// read for a batch of parents in one statement ([`keyset_many`]) and counted in one ([`ChildList::counts`]).
pub struct ChildList<E: EntityTrait> {
    pub parent: E::Column,
    pub condition: Condition,
    /// Sort columns with their directions; the id breaks ties in the last one's direction.
    pub sort: Vec<Sort<E::Column>>,
    pub id: E::Column,
    pub key_of: fn(&E::Model) -> Vec<SortKey>,
    pub id_of: fn(&E::Model) -> Uuid,
}

impl<E: EntityTrait> ChildList<E> {
    /// Refuses a cursor of another ordering before the request joins a batch ([`check_cursor`]).
    pub fn check(&self, request: &PageRequest) -> AppResult<()> {
        check_cursor(&self.sort, request)
    }

    /// The same page of each parent's list.
    pub async fn pages(
        &self,
        db: &impl ConnectionTrait,
        parents: &[Uuid],
        request: &PageRequest,
    ) -> AppResult<HashMap<Uuid, Page<E::Model>>> {
        let select = E::find().filter(self.condition.clone());
        let (key_of, id_of) = (self.key_of, self.id_of);
        keyset_many(db, select, self.parent, parents, &self.sort, self.id, request, |row| (key_of(row), id_of(row)))
            .await
    }

    /// How many rows each parent's list has (`totalCount`), in one grouped statement.
    pub async fn counts(&self, db: &impl ConnectionTrait, parents: &[Uuid]) -> AppResult<HashMap<Uuid, u64>> {
        let rows: Vec<(Uuid, i64)> = E::find()
            .filter(self.condition.clone())
            .filter(self.parent.is_in(parents.iter().copied()))
            .select_only()
            .column(self.parent)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(self.parent)
            .into_tuple()
            .all(db)
            .await?;
        let mut counts: HashMap<Uuid, u64> = parents.iter().map(|p| (*p, 0)).collect();
        counts.extend(rows.into_iter().map(|(parent, n)| (parent, n.max(0) as u64)));
        Ok(counts)
    }
}

/// One page of rows with the cursor of each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<M> {
    pub rows: Vec<(String, M)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// What the page's statement read with its rows ([`Joins`]); never cached.
    #[serde(skip)]
    pub cards: Vec<Card>,
}

impl<M> Default for Page<M> {
    fn default() -> Self {
        Self { rows: Vec::new(), has_next_page: false, has_previous_page: false, cards: Vec::new() }
    }
}

impl<M> Page<M> {
    pub fn map<N>(self, f: impl Fn(M) -> N) -> Page<N> {
        Page {
            rows: self.rows.into_iter().map(|(cursor, row)| (cursor, f(row))).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            cards: self.cards,
        }
    }
}

impl<M> Page<M> {
    /// The first `size` rows of a first page that holds at least that many when there are more.
    fn cut(mut self, size: u64) -> Self {
        let more = self.rows.len() as u64 > size;
        self.rows.truncate(size as usize);
        self.has_next_page |= more;
        self
    }
}

/// The first page of a hot list through the cache facade, kept under `(kind, id)`: the cache holds
/// the list's first [`CACHED_PREFIX`] rows and cuts every first page up to that size from them.
/// Other pages (a cursor, `last`, a bigger page) and a disabled cache run `load` as asked. Writes
/// that change the list mark `(kind, id)` changed.
pub async fn cached_first_page<M, F, Fut>(
    cache: &Cache,
    (kind, id): (Kind, Uuid),
    request: &PageRequest,
    load: F,
) -> AppResult<Page<M>>
where
    M: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = AppResult<Page<M>>>,
{
    if !cache.is_enabled() || !request.within_cached_prefix() {
        return load(request.clone()).await;
    }
    let prefix = cache.load_one(kind, id, || async { load(PageRequest::first(CACHED_PREFIX)).await.map(Some) }).await?;
    match prefix {
        Some(prefix) => Ok(prefix.cut(request.size())),
        None => load(request.clone()).await,
    }
}

/// A row's sort values, as a cursor of it holds them.
pub type KeysOf<M> = fn(&M) -> Vec<SortKey>;

/// Like [`cached_first_page`] for a list of entities the cache also holds by id (under `rows`):
/// the list keeps only ids and cursors, and the rows come from their own entries, so a change to
/// one row (a like, an edit) does not drop the list. On a cold list the rows it read prime them.
/// A list with a generation ([`crate::cache::generation_of`]: the course listings) that gives
/// `keys_of` (a row's sort values, as its cursor holds them) also keeps its later pages, each
/// under the generation it was read in ([`later_key`]).
#[allow(clippy::too_many_arguments)]
pub async fn cached_id_page<E, F, Fut>(
    cache: &Cache,
    db: &impl ConnectionTrait,
    list: (Kind, Uuid),
    rows: Kind,
    request: &PageRequest,
    id_of: fn(&E::Model) -> Uuid,
    keys_of: Option<KeysOf<E::Model>>,
    load: F,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = AppResult<Page<E::Model>>>,
{
    if !cache.is_enabled() {
        return load(request.clone()).await;
    }
    // What is kept holds no joined rows ([`Joins`]: they are read with the cache off only).
    let request = &request.clone().joining(Joins::default());
    let later = match request.within_cached_prefix() {
        true => None,
        false => match later_key::<E>(cache, db, (list, rows), request, keys_of).await? {
            Some(id) => Some(id),
            None => return load(request.clone()).await,
        },
    };
    let read: Mutex<HashMap<Uuid, E::Model>> = Mutex::default();
    let fetch = |page: PageRequest| {
        let read = &read;
        let load = &load;
        async move {
            let page = load(page).await?;
            if let Ok(mut read) = read.lock() {
                read.extend(page.rows.iter().map(|(_, row)| (id_of(row), row.clone())));
            }
            Ok(page.map(|row| id_of(&row)))
        }
    };
    let ids = match later {
        None => cached_first_page(cache, list, request, &fetch).await?,
        Some(id) => match cache.load_one(list.0, id, || async { fetch(request.clone()).await.map(Some) }).await? {
            Some(ids) => ids,
            None => fetch(request.clone()).await?,
        },
    };
    let wanted: Vec<Uuid> = ids.rows.iter().map(|(_, id)| *id).collect();
    let mut found = primed_rows::<E>(cache, db, rows, &wanted, &read).await?;
    // A row deleted since the list was cached is left out (its deletion drops the list too).
    Ok(Page {
        rows: ids.rows.into_iter().filter_map(|(cursor, id)| Some((cursor, found.remove(&id)?))).collect(),
        has_next_page: ids.has_next_page,
        has_previous_page: ids.has_previous_page,
        cards: Vec::new(),
    })
}

/// The rows `wanted` of `E` through the cache (kept under `kind`): those it lacks are taken from
/// `read` (rows a list's fill just read) when it has them all, else read by id.
pub async fn primed_rows<E>(
    cache: &Cache,
    db: &impl ConnectionTrait,
    kind: Kind,
    wanted: &[Uuid],
    read: &Mutex<HashMap<Uuid, E::Model>>,
) -> AppResult<HashMap<Uuid, E::Model>>
where
    E: EntityTrait,
    E::Model: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    cache
        .load_many(kind, wanted, |missing| async move {
            let primed: Option<HashMap<Uuid, E::Model>> = read
                .lock()
                .ok()
                .and_then(|read| missing.iter().map(|id| read.get(id).map(|row| (*id, row.clone()))).collect());
            match primed {
                Some(primed) => Ok(primed),
                None => Ok::<_, AppError>(super::rows_by_id::<E>(db, &missing).await?),
            }
        })
        .await
}

/// Where a later page of `list` is kept, when the list keeps them: a forward page (after a
/// cursor, no longer than the cached prefix) in the list's current generation. Whatever drops the
/// list drops its generation, and the next read starts a new one, so a page kept under the old
/// generation is never read again; a page read while a change was being written is not kept (the
/// cache's epoch check, as for every fill). Only a cursor of a row as it is now is kept (its sort
/// values are the row's): a client can make up any number of well-formed cursors, and those are
/// read from the database, so what is kept is bounded by the list's rows.
async fn later_key<E>(
    cache: &Cache,
    db: &impl ConnectionTrait,
    (list, rows): ((Kind, Uuid), Kind),
    request: &PageRequest,
    keys_of: Option<KeysOf<E::Model>>,
) -> AppResult<Option<Uuid>>
where
    E: EntityTrait,
    E::Model: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let (Some(keys_of), Some((kind, id)), Some(after), None, None) =
        (keys_of, crate::cache::generation_of(list), request.after.as_ref(), request.before.as_ref(), request.last)
    else {
        return Ok(None);
    };
    if request.size() > CACHED_PREFIX {
        return Ok(None);
    }
    let row = cache
        .load_many(rows, &[after.id], |missing| async move { super::rows_by_id::<E>(db, &missing).await })
        .await?
        .remove(&after.id);
    if row.is_none_or(|row| keys_of(&row) != after.keys) {
        return Ok(None);
    }
    let generation: Option<Uuid> =
        cache.load_one(kind, id, || async { Ok::<_, AppError>(Some(Uuid::new_v4())) }).await?;
    Ok(generation.map(|generation| crate::cache::later_page(generation, &after.encode(), request.size())))
}

/// Runs `select` as one keyset page ordered by the `sort` columns, each in its own direction,
/// then `id` (in the last column's direction) as tie-breaker; `key_of` gives a row's sort values
/// (one per sort column) and id.
pub async fn keyset<E, C>(
    db: &C,
    select: Select<E>,
    sort: &[Sort<E::Column>],
    id: E::Column,
    request: &PageRequest,
    key_of: impl Fn(&E::Model) -> (Vec<SortKey>, Uuid),
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut select = seek(select, sort, id, request)?;
    for (column, order) in read_order(sort, id, request) {
        select = select.order_by(column, order);
    }
    let statement = select.limit(request.size() + 1).build(db.get_database_backend());
    let rows = read_rows::<E>(db, statement, (sort, id, request), None).await?;
    Ok(assemble(rows, sort, request, &key_of))
}

/// The same page of each of `parents`' lists (rows whose `parent` column is the parent), in one
/// statement: on PostgreSQL a LATERAL index range per parent ([`lateral_pages`]), on SQLite a
/// window function ([`ranked_pages`]). One parent takes [`keyset`]'s index range.
#[allow(clippy::too_many_arguments)]
pub async fn keyset_many<E, C>(
    db: &C,
    select: Select<E>,
    parent: E::Column,
    parents: &[Uuid],
    sort: &[Sort<E::Column>],
    id: E::Column,
    request: &PageRequest,
    key_of: impl Fn(&E::Model) -> (Vec<SortKey>, Uuid),
) -> AppResult<HashMap<Uuid, Page<E::Model>>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut parents = parents.to_vec();
    parents.sort_unstable();
    parents.dedup();
    let parents = &parents[..];
    match parents {
        [] => return Ok(HashMap::new()),
        [one] => {
            let page = keyset(db, select.filter(parent.eq(*one)), sort, id, request, key_of).await?;
            return Ok(HashMap::from([(*one, page)]));
        }
        _ => {}
    }
    let list = Batch { select, parent, parents, sort, id, request };
    let (statement, first) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => lateral_pages(list)?,
        _ => ranked_pages(db, list)?,
    };
    let rows = read_rows::<E>(db, statement, (sort, id, request), Some(first)).await?;
    let mut grouped: HashMap<Uuid, Vec<_>> = parents.iter().map(|p| (*p, Vec::new())).collect();
    for (model, card) in rows {
        if let sea_orm::Value::Uuid(Some(key)) = sea_orm::ModelTrait::get(&model, parent) {
            grouped.entry(*key).or_default().push((model, card));
        }
    }
    Ok(grouped.into_iter().map(|(key, rows)| (key, assemble(rows, sort, request, &key_of))).collect())
}

/// One page of several parents' lists, as [`keyset_many`] reads it.
struct Batch<'a, E: EntityTrait> {
    select: Select<E>,
    parent: E::Column,
    parents: &'a [Uuid],
    sort: &'a [Sort<E::Column>],
    id: E::Column,
    request: &'a PageRequest,
}

/// `ORDER BY` terms in seek order, over the columns of the subquery `alias` if given.
fn order_terms<C: IdenStatic + Copy>(
    sort: &[Sort<C>],
    id: C,
    request: &PageRequest,
    alias: Option<&str>,
) -> Vec<String> {
    let prefix = alias.map(|alias| format!(r#""{alias}"."#)).unwrap_or_default();
    read_order(sort, id, request)
        .into_iter()
        .map(|(column, order)| {
            let word = if order == Order::Asc { "ASC" } else { "DESC" };
            format!(r#"{prefix}"{}" {word}"#, column.as_str())
        })
        .collect()
}

/// PostgreSQL: each parent's page is its own index range scan that stops after `size + 1` rows
/// (`CROSS JOIN LATERAL` over the parents' ids), so a batch of parents costs what their pages
/// hold, not what their lists hold. Rows come back grouped by parent, each group in seek order
/// (the statement, and its column `mg_n` that groups the rows by parent, for [`read_rows`]).
fn lateral_pages<E: EntityTrait>(list: Batch<'_, E>) -> AppResult<(Statement, &'static str)> {
    let inner = lateral_page(list.select, list.parent, list.sort, list.id, list.request)?;
    let statement = sea_orm::DbBackend::Postgres.build(&inner);
    let mut values = statement.values.map(|v| v.0).unwrap_or_default();
    let mut rows = Vec::with_capacity(list.parents.len());
    for (n, parent_id) in list.parents.iter().enumerate() {
        values.push((*parent_id).into());
        rows.push(format!("(CAST(${} AS uuid), {n})", values.len()));
    }
    let mut order_by = vec![r#""mg_parents"."n""#.to_owned()];
    order_by.extend(order_terms(list.sort, list.id, list.request, Some("mg_page")));
    let sql = format!(
        r#"SELECT "mg_page".*, "mg_parents"."n" AS "mg_n" FROM (VALUES {}) AS "mg_parents" ("id", "n") CROSS JOIN LATERAL ({}) AS "mg_page" ORDER BY {}"#,
        rows.join(", "),
        statement.sql,
        order_by.join(", ")
    );
    Ok((Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values), "mg_n"))
}

/// One parent's page inside a `LATERAL` join: `select` narrowed to the rows of the parent
/// `"mg_parents"."id"` past the cursor, in seek order, `size + 1` rows at most.
fn lateral_page<E: EntityTrait>(
    select: Select<E>,
    parent: E::Column,
    sort: &[Sort<E::Column>],
    id: E::Column,
    request: &PageRequest,
) -> AppResult<sea_orm::sea_query::SelectStatement> {
    let outer = Expr::cust(r#""mg_parents"."id""#);
    let mut inner = seek(select.filter(Expr::col(parent).eq(outer)), sort, id, request)?;
    for (column, order) in read_order(sort, id, request) {
        inner = inner.order_by(column, order);
    }
    Ok(inner.limit(request.size() + 1).into_query())
}

/// One page over the lists of several parents merged (the viewer's feed: the posts of every
/// circle they belong to), `parents` a subquery whose one column, named `id`, gives the parents.
/// On PostgreSQL each parent contributes at most `size + 1` rows read from its own index range
/// (`JOIN LATERAL`), so the page costs what it shows whatever the lists hold; SQLite reads the
/// rows whose parent is `IN` the subquery in seek order.
#[allow(clippy::too_many_arguments)]
pub async fn keyset_merged<E, C>(
    db: &C,
    select: Select<E>,
    parent: E::Column,
    parents: sea_orm::sea_query::SelectStatement,
    sort: &[Sort<E::Column>],
    id: E::Column,
    request: &PageRequest,
    key_of: impl Fn(&E::Model) -> (Vec<SortKey>, Uuid),
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    use sea_orm::sea_query::{Alias, Asterisk, JoinType, Query};
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        let select = select.filter(Expr::col(parent).in_subquery(parents));
        return keyset(db, select, sort, id, request, key_of).await;
    }
    let inner = lateral_page(select, parent, sort, id, request)?;
    let mut query = Query::select();
    query.column((Alias::new("mg_page"), Asterisk)).from_subquery(parents, Alias::new("mg_parents")).join_lateral(
        JoinType::InnerJoin,
        inner,
        Alias::new("mg_page"),
        Expr::cust("TRUE"),
    );
    for (column, order) in read_order(sort, id, request) {
        query.order_by_expr(Expr::cust(format!(r#""mg_page"."{}""#, column.as_str())), order);
    }
    query.limit(request.size() + 1);
    let rows = read_rows::<E>(db, db.get_database_backend().build(&query), (sort, id, request), None).await?;
    Ok(assemble(rows, sort, request, &key_of))
}

/// SQLite (no LATERAL): `ROW_NUMBER() OVER (PARTITION BY parent ORDER BY sort..., id)` keeps each
/// parent's first `size + 1` rows past the cursor, in one statement (with its column `mg_rank`,
/// for [`read_rows`]).
fn ranked_pages<E, C>(db: &C, list: Batch<'_, E>) -> AppResult<(Statement, &'static str)>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let Batch { select, parent, parents, sort, id, request } = list;
    let select = seek(select.filter(parent.is_in(parents.iter().copied())), sort, id, request)?;
    let columns = order_terms(sort, id, request, None);
    let rank = format!(r#"ROW_NUMBER() OVER (PARTITION BY "{}" ORDER BY {})"#, parent.as_str(), columns.join(", "));
    let ranked = select.column_as(Expr::cust(rank), "mg_rank").into_query();
    let query = sea_orm::sea_query::Query::select()
        .column(sea_orm::sea_query::Asterisk)
        .from_subquery(ranked, sea_orm::sea_query::Alias::new("ranked"))
        .and_where(Expr::col(sea_orm::sea_query::Alias::new("mg_rank")).lte(request.size() as i64 + 1))
        .order_by(sea_orm::sea_query::Alias::new("mg_rank"), Order::Asc)
        .to_owned();
    Ok((db.get_database_backend().build(&query), "mg_rank"))
}

/// Refuses a cursor issued by another ordering (other columns, types or directions). Per-parent
/// pages call it before their request joins a shared batch, so one client's bad cursor fails its
/// own field only.
pub fn check_cursor<C: ColumnTrait>(sort: &[Sort<C>], request: &PageRequest) -> AppResult<()> {
    let backward = request.backward();
    let cursor = if backward { request.before.as_ref() } else { request.after.as_ref() };
    let Some(cursor) = cursor else { return Ok(()) };
    let fits = (cursor.order.is_empty() || cursor.order == order_signature(sort))
        && cursor.keys.len() == sort.len()
        && sort.iter().zip(&cursor.keys).all(|((column, _), key)| key.fits(column.def().get_column_type()));
    if !fits {
        let field = if backward { "before" } else { "after" };
        return Err(AppError::bad_input(field, "the cursor belongs to another ordering"));
    }
    Ok(())
}

/// The directions of the sort columns, as a cursor carries them.
fn order_signature<C>(sort: &[Sort<C>]) -> String {
    sort.iter().map(|(_, direction)| if *direction == Direction::Asc { 'a' } else { 'd' }).collect()
}

/// The direction the id tie-breaker takes: the last sort column's.
fn id_direction<C>(sort: &[Sort<C>]) -> Direction {
    sort.last().map_or(Direction::Asc, |(_, direction)| *direction)
}

/// Whether a column in `direction` is read ascending (a backward page reads every column reversed).
fn ascending(direction: Direction, request: &PageRequest) -> bool {
    (direction == Direction::Asc) != request.backward()
}

/// The columns (sort columns, then the id) with the order they are read in for `request`.
fn read_order<C: Copy>(sort: &[Sort<C>], id: C, request: &PageRequest) -> Vec<(C, Order)> {
    let order = |direction| if ascending(direction, request) { Order::Asc } else { Order::Desc };
    sort.iter()
        .map(|(column, direction)| (*column, order(*direction)))
        .chain(std::iter::once((id, order(id_direction(sort)))))
        .collect()
}

/// `select` narrowed to the rows past the request's cursor.
fn seek<E: EntityTrait>(
    select: Select<E>,
    sort: &[Sort<E::Column>],
    id: E::Column,
    request: &PageRequest,
) -> AppResult<Select<E>> {
    check_cursor(sort, request)?;
    let cursor = if request.backward() { request.before.as_ref() } else { request.after.as_ref() };
    let Some(cursor) = cursor else { return Ok(select) };
    Ok(select.filter(after_cursor(sort, id, request, cursor)))
}

/// A page from up to `size + 1` rows read in seek order, each with what was joined to it.
fn assemble<M, C>(
    rows: Vec<(M, Option<Card>)>,
    sort: &[Sort<C>],
    request: &PageRequest,
    key_of: &impl Fn(&M) -> (Vec<SortKey>, Uuid),
) -> Page<M> {
    let (mut rows, mut cards): (Vec<M>, Vec<Option<Card>>) = rows.into_iter().unzip();
    let order = order_signature(sort);
    let backward = request.backward();
    let size = request.size();
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    cards.truncate(size as usize);
    if backward {
        rows.reverse();
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            let (keys, id) = key_of(&row);
            (Cursor { keys, id, order: order.clone() }.encode(), row)
        })
        .collect();
    Page {
        rows,
        has_next_page: if backward { request.before.is_some() } else { more },
        has_previous_page: if backward { more } else { request.after.is_some() },
        cards: cards.into_iter().flatten().collect(),
    }
}

/// Rows strictly after the cursor in the read order, lexicographically over (sort..., id):
/// `s1 > k1 OR (s1 = k1 AND s2 > k2) OR ... OR (all equal AND id > id)`, each comparison `>` or `<`
/// as its column is read ascending or descending.
fn after_cursor<C: ColumnTrait>(sort: &[Sort<C>], id: C, request: &PageRequest, cursor: &Cursor) -> Condition {
    let beyond = |column: Expr, direction: Direction, value: sea_orm::Value| -> SimpleExpr {
        if ascending(direction, request) {
            column.gt(value)
        } else {
            column.lt(value)
        }
    };
    let mut any = Condition::any();
    for depth in 0..=sort.len() {
        let mut all = Condition::all();
        for ((column, _), key) in sort.iter().zip(&cursor.keys).take(depth) {
            all = all.add(Expr::col(*column).eq(key.to_value()));
        }
        all = all.add(match sort.get(depth).zip(cursor.keys.get(depth)) {
            Some(((column, direction), key)) => beyond(Expr::col(*column), *direction, key.to_value()),
            None => beyond(Expr::col(id), id_direction(sort), cursor.id.into()),
        });
        any = any.add(all);
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() -> AppResult<()> {
        let cursor = Cursor {
            keys: vec![SortKey::Bool(true), SortKey::Num(Decimal::new(19900, 2))],
            id: Uuid::new_v4(),
            order: "da".into(),
        };
        assert_eq!(Cursor::decode("after", &cursor.encode())?, cursor);
        assert!(Cursor::decode("after", "not-a-cursor").is_err());
        assert!(Cursor::decode("after", "e30").is_err()); // "{}"
        Ok(())
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert!(PageRequest::parse(Some(101), None, None, None, MAX_PAGE).is_err());
        assert!(PageRequest::parse(Some(-1), None, None, None, MAX_PAGE).is_err());
        assert!(PageRequest::parse(Some(5), None, Some(5), None, MAX_PAGE).is_err());
        assert_eq!(PageRequest::parse(None, None, None, None, MAX_PAGE).map(|r| r.size()).ok(), Some(DEFAULT_PAGE));
        assert_eq!(PageRequest::parse(None, None, Some(7), None, MAX_PAGE).map(|r| r.size()).ok(), Some(7));
    }
}
