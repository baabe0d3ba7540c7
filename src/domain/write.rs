//! The write helpers: every statement that writes rows goes through one of these, and each marks
//! what the rows it wrote feed in the cache ([`Feeds`], the one table of which rows feed which
//! cached kinds), so no write path has an invalidation to remember. The sea-orm writers they wrap
//! are refused everywhere else (`clippy.toml`, `disallowed-methods`).
//!
//! The same table says which search documents a row's written columns are part of; `insert`,
//! `update` and `update_many` queue those in `search_outbox` in one transaction with the write
//! (the caller's, as a savepoint, or their own), so a committed change always has its outbox row
//! (see `search::outbox`). (`insert_new` and `delete_many` queue on the caller's connection: no
//! searched table is written through them.)
//!
//! Updates and deletes of tables that feed the cache read the rows they wrote back with
//! `RETURNING` (PostgreSQL, and SQLite 3.35+), so a bulk update marks exactly the rows it moved;
//! tables that feed nothing are written without it.
#![allow(clippy::disallowed_methods)]

use crate::cache::rules::{Column, Feeds};
use crate::search::Collection;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, DeleteMany, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, QueryFilter, QueryTrait, TransactionTrait, TryIntoModel, UpdateMany,
};
use uuid::Uuid;

type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// Marks what `row` feeds in the cache and adds the search documents it is part of to `queue`.
fn mark<M: Feeds>(row: &M, touched: &dyn Fn(Column<M>) -> bool, queue: &mut Vec<(Collection, Uuid)>) {
    let mut keys = Vec::new();
    row.feeds(touched, &mut keys);
    for (kind, id) in keys {
        crate::cache::changed(kind, id);
    }
    row.documents(touched, queue);
}

/// Queues the documents in `search_outbox`, on the same connection (the caller's transaction).
async fn queue(db: &impl ConnectionTrait, mut documents: Vec<(Collection, Uuid)>) -> Result<(), DbErr> {
    documents.sort();
    documents.dedup();
    crate::search::outbox::append(db, &documents).await
}

/// The names of the columns an active model sets.
fn set_columns<A: ActiveModelTrait>(row: &A) -> Vec<String> {
    <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| row.get(*c).is_set())
        .map(|c| c.as_str().to_string())
        .collect()
}

/// Inserts one row and returns it.
pub async fn insert<A>(db: &(impl ConnectionTrait + TransactionTrait), row: A) -> Result<ModelOf<A>, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
{
    if <ModelOf<A> as Feeds>::SEARCHED {
        let txn = db.begin().await?;
        let model = insert_here(&txn, row).await?;
        txn.commit().await?;
        return Ok(model);
    }
    insert_here(db, row).await
}

async fn insert_here<A>(db: &impl ConnectionTrait, row: A) -> Result<ModelOf<A>, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
{
    let model = row.insert(db).await?;
    let mut documents = Vec::new();
    mark(&model, &|_| true, &mut documents);
    queue(db, documents).await?;
    Ok(model)
}

/// Inserts one row unless a row with the same `unique` columns exists (`ON CONFLICT DO NOTHING`);
/// whether it was inserted.
pub async fn insert_new<A>(
    db: &impl ConnectionTrait,
    row: A,
    unique: impl IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
) -> Result<bool, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + TryIntoModel<ModelOf<A>> + Clone + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
{
    let model = row.clone().try_into_model()?;
    let inserted = <A::Entity as EntityTrait>::insert(row)
        .on_conflict(OnConflict::columns(unique).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?
        == 1;
    if inserted {
        let mut documents = Vec::new();
        mark(&model, &|_| true, &mut documents);
        queue(db, documents).await?;
    }
    Ok(inserted)
}

/// Sets (`on`) or clears one person's mark on a row, a like: the mark's unique `key` columns
/// decide between concurrent requests, and the marked row's `counter` moves by one only when the
/// mark changed, in the same transaction (mark first, then counter: one lock order for every
/// kind of like). `counter` is (counted column, id column, id). Whether the mark changed.
pub async fn toggle_mark<A, C>(
    txn: &(impl ConnectionTrait + TransactionTrait),
    on: bool,
    mark: A,
    key: [(<A::Entity as EntityTrait>::Column, Uuid); 2],
    counter: (C::Column, C::Column, Uuid),
) -> Result<bool, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + TryIntoModel<ModelOf<A>> + Clone + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
    C: EntityTrait,
    C::Model: Feeds,
{
    let changed = if on {
        insert_new(txn, mark, key.map(|(column, _)| column)).await?
    } else {
        let delete = key
            .into_iter()
            .fold(<A::Entity as EntityTrait>::delete_many(), |delete, (column, value)| delete.filter(column.eq(value)));
        delete_many(txn, delete).await? == 1
    };
    if changed {
        let (count, id, target) = counter;
        let delta = if on { Expr::col(count).add(1) } else { Expr::col(count).sub(1) };
        update_many(txn, C::update_many().col_expr(count, delta).filter(id.eq(target))).await?;
    }
    Ok(changed)
}

/// Updates the columns `row` sets and returns the row.
pub async fn update<A>(db: &(impl ConnectionTrait + TransactionTrait), row: A) -> Result<ModelOf<A>, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
{
    if <ModelOf<A> as Feeds>::SEARCHED {
        let txn = db.begin().await?;
        let model = update_here(&txn, row).await?;
        txn.commit().await?;
        return Ok(model);
    }
    update_here(db, row).await
}

async fn update_here<A>(db: &impl ConnectionTrait, row: A) -> Result<ModelOf<A>, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    ModelOf<A>: IntoActiveModel<A> + Feeds,
{
    let set = set_columns(&row);
    let model = row.update(db).await?;
    let mut documents = Vec::new();
    mark(&model, &|c| set.iter().any(|name| name == c.as_str()), &mut documents);
    queue(db, documents).await?;
    Ok(model)
}

/// Runs a bulk update; how many rows it changed.
pub async fn update_many<E>(db: &(impl ConnectionTrait + TransactionTrait), update: UpdateMany<E>) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: Feeds,
{
    if <E::Model as Feeds>::SEARCHED {
        let txn = db.begin().await?;
        let moved = update_many_here(&txn, update).await?;
        txn.commit().await?;
        return Ok(moved);
    }
    update_many_here(db, update).await
}

async fn update_many_here<E>(db: &impl ConnectionTrait, update: UpdateMany<E>) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: Feeds,
{
    if !<E::Model as Feeds>::FEEDS {
        return Ok(update.exec(db).await?.rows_affected);
    }
    let set: Vec<String> = update.as_query().get_values().iter().map(|(column, _)| column.to_string()).collect();
    let rows = update.exec_with_returning(db).await?;
    let mut documents = Vec::new();
    for row in &rows {
        mark(row, &|c| set.iter().any(|name| name == c.as_str()), &mut documents);
    }
    queue(db, documents).await?;
    Ok(rows.len() as u64)
}

/// Runs a bulk delete; how many rows it removed.
pub async fn delete_many<E>(db: &impl ConnectionTrait, delete: DeleteMany<E>) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: Feeds,
{
    if !<E::Model as Feeds>::FEEDS {
        return Ok(delete.exec(db).await?.rows_affected);
    }
    let rows = delete.exec_with_returning(db).await?;
    let mut documents = Vec::new();
    for row in &rows {
        mark(row, &|_| true, &mut documents);
    }
    queue(db, documents).await?;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{pair_id, take_marks, track, Key, Kind, Marks};
    use entity::{post_likes, posts};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, ConnectOptions, Database, DatabaseConnection, QueryFilter, Set};
    use uuid::Uuid;

    async fn seeded() -> DatabaseConnection {
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).sqlx_logging(false);
        let db = Database::connect(options).await.expect("sqlite");
        crate::db::migrate(&db).await.expect("migrations");
        crate::domain::seed::demo(&db).await.expect("demo data");
        db
    }

    /// What `work` marked, in `take_marks` order.
    async fn marks_of<F: std::future::Future<Output = ()>>(work: F) -> Vec<Key> {
        let marks = Marks::default();
        track(marks.clone(), work).await;
        take_marks(&marks)
    }

    /// The helpers mark what the table says each written row feeds, by the columns the write set:
    /// a counter does not move a post in its circle's feed, a status change does; a bulk update
    /// marks exactly the rows it moved; a delete marks the row it removed.
    #[tokio::test]
    async fn writes_mark_what_the_rows_they_wrote_feed() {
        let db = seeded().await;
        let post = posts::Entity::find().one(&db).await.expect("query").expect("a demo post");
        let (id, circle) = (post.id, post.circle_id);

        let counted = marks_of(async {
            let bump = posts::Entity::update_many()
                .col_expr(posts::Column::LikeCount, Expr::col(posts::Column::LikeCount).add(1))
                .filter(posts::Column::Id.eq(id));
            assert_eq!(update_many(&db, bump).await.expect("update"), 1);
        })
        .await;
        assert_eq!(counted, vec![(Kind::Post, id)]);

        let hidden = marks_of(async {
            let hide = posts::Entity::update_many()
                .col_expr(posts::Column::Status, Expr::value("hidden"))
                .filter(posts::Column::Id.eq(id));
            update_many(&db, hide).await.expect("update");
        })
        .await;
        assert_eq!(hidden, vec![(Kind::CircleFeed, circle), (Kind::CircleNewest, circle), (Kind::Post, id)]);

        let none = marks_of(async {
            let nothing = posts::Entity::update_many()
                .col_expr(posts::Column::Status, Expr::value("hidden"))
                .filter(posts::Column::Id.eq(Uuid::new_v4()));
            assert_eq!(update_many(&db, nothing).await.expect("update"), 0);
        })
        .await;
        assert!(none.is_empty(), "a bulk update that moved no row marks nothing: {none:?}");

        let pinned = marks_of(async {
            let mut active: posts::ActiveModel = post.clone().into();
            active.is_top = Set(true);
            update(&db, active).await.expect("update");
        })
        .await;
        assert_eq!(pinned, vec![(Kind::CircleFeed, circle), (Kind::Post, id)]);

        let liker = post.user_id;
        let like = || post_likes::ActiveModel {
            id: Set(Uuid::new_v4()),
            post_id: Set(id),
            user_id: Set(liker),
            created_at: Set(chrono::Utc::now()),
        };
        let unique = [post_likes::Column::PostId, post_likes::Column::UserId];
        let liked = marks_of(async { assert!(insert_new(&db, like(), unique).await.expect("insert")) }).await;
        assert_eq!(liked, vec![(Kind::PostLike, pair_id(liker, id))]);
        let again = marks_of(async { assert!(!insert_new(&db, like(), unique).await.expect("insert")) }).await;
        assert!(again.is_empty(), "an insert that conflicted marks nothing: {again:?}");
        let unliked = marks_of(async {
            let delete = post_likes::Entity::delete_many().filter(post_likes::Column::PostId.eq(id));
            assert_eq!(delete_many(&db, delete).await.expect("delete"), 1);
        })
        .await;
        assert_eq!(unliked, vec![(Kind::PostLike, pair_id(liker, id))]);
    }
}
