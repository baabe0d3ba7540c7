//! The one pagination helper: keyset (seek) pages over any entity, ordered by one or more sort
//! columns (all in one direction) and the id as tie-breaker. Cursors are opaque (base64 JSON of the sort value and id), stay valid
//! while rows are added, and never skip or repeat a row. Page size is capped at 100.

use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// `first/after` (forward) or `last/before` (backward), validated.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub after: Option<Cursor>,
    pub last: Option<u64>,
    pub before: Option<Cursor>,
}

impl PageRequest {
    pub fn parse(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Self> {
        let size = |field: &str, value: Option<i32>| -> AppResult<Option<u64>> {
            match value {
                None => Ok(None),
                Some(n) if (0..=MAX_PAGE as i32).contains(&n) => Ok(Some(n as u64)),
                Some(_) => Err(AppError::bad_input(field, format!("must be between 0 and {MAX_PAGE}"))),
            }
        };
        let first = size("first", first)?;
        let last = size("last", last)?;
        if first.is_some() && last.is_some() {
            return Err(AppError::bad_input("last", "use either first or last, not both"));
        }
        Ok(Self {
            first,
            after: after.map(|c| Cursor::decode("after", &c)).transpose()?,
            last,
            before: before.map(|c| Cursor::decode("before", &c)).transpose()?,
        })
    }

    /// The first `n` rows.
    pub fn first(n: u64) -> Self {
        Self { first: Some(n.min(MAX_PAGE)), ..Default::default() }
    }

    fn backward(&self) -> bool {
        self.last.is_some()
    }

    fn size(&self) -> u64 {
        self.last.or(self.first).unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
    }
}

/// One page of rows with the cursor of each.
pub struct Page<M> {
    pub rows: Vec<(String, M)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<M> Page<M> {
    pub fn map<N>(self, f: impl Fn(M) -> N) -> Page<N> {
        Page {
            rows: self.rows.into_iter().map(|(cursor, row)| (cursor, f(row))).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// Runs `select` as one keyset page ordered by the `sort` columns (then `id`) in `direction`;
/// `key_of` gives a row's sort values (one per sort column) and id.
pub async fn keyset<E, C>(
    db: &C,
    select: Select<E>,
    sort: &[E::Column],
    id: E::Column,
    direction: Direction,
    request: &PageRequest,
    key_of: impl Fn(&E::Model) -> (Vec<SortKey>, Uuid),
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let backward = request.backward();
    let ascending = (direction == Direction::Asc) != backward;
    let order = if ascending { Order::Asc } else { Order::Desc };
    let cursor = if backward { request.before.as_ref() } else { request.after.as_ref() };
    let mut select = select;
    if let Some(cursor) = cursor {
        if cursor.keys.len() != sort.len() {
            let field = if backward { "before" } else { "after" };
            return Err(AppError::bad_input(field, "the cursor belongs to another ordering"));
        }
        select = select.filter(after_cursor(sort, id, ascending, cursor));
    }
    let size = request.size();
    for column in sort {
        select = select.order_by(*column, order.clone());
    }
    let mut rows = select.order_by(id, order).limit(size + 1).all(db).await?;
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    if backward {
        rows.reverse();
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            let (keys, id) = key_of(&row);
            (Cursor { keys, id }.encode(), row)
        })
        .collect();
    Ok(Page {
        rows,
        has_next_page: if backward { request.before.is_some() } else { more },
        has_previous_page: if backward { more } else { request.after.is_some() },
    })
}

/// Rows strictly after the cursor in the given order, lexicographically over (sort..., id):
/// `s1 > k1 OR (s1 = k1 AND s2 > k2) OR ... OR (all equal AND id > id)` (or `<`).
fn after_cursor<C: ColumnTrait>(sort: &[C], id: C, ascending: bool, cursor: &Cursor) -> Condition {
    let beyond = |column: Expr, value: sea_orm::Value| -> SimpleExpr {
        if ascending {
            column.gt(value)
        } else {
            column.lt(value)
        }
    };
    let mut any = Condition::any();
    for depth in 0..=sort.len() {
        let mut all = Condition::all();
        for (column, key) in sort.iter().zip(&cursor.keys).take(depth) {
            all = all.add(Expr::col(*column).eq(key.to_value()));
        }
        all = all.add(match sort.get(depth).zip(cursor.keys.get(depth)) {
            Some((column, key)) => beyond(Expr::col(*column), key.to_value()),
            None => beyond(Expr::col(id), cursor.id.into()),
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
        let cursor =
            Cursor { keys: vec![SortKey::Bool(true), SortKey::Num(Decimal::new(19900, 2))], id: Uuid::new_v4() };
        assert_eq!(Cursor::decode("after", &cursor.encode())?, cursor);
        assert!(Cursor::decode("after", "not-a-cursor").is_err());
        assert!(Cursor::decode("after", "e30").is_err()); // "{}"
        Ok(())
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert!(PageRequest::parse(Some(101), None, None, None).is_err());
        assert!(PageRequest::parse(Some(-1), None, None, None).is_err());
        assert!(PageRequest::parse(Some(5), None, Some(5), None).is_err());
        assert_eq!(PageRequest::parse(None, None, None, None).map(|r| r.size()).ok(), Some(DEFAULT_PAGE));
        assert_eq!(PageRequest::parse(None, None, Some(7), None).map(|r| r.size()).ok(), Some(7));
    }
}
