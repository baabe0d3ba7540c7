//! The search outbox: documents to re-index, queued by the write helpers in the transaction of
//! the change ([`append`]), drained by the indexer in batches ([`drain_forever`]). A failed batch
//! stays queued and is retried with backoff; rows are deleted by id once the index has them.

use super::{documents, Collection, Search};
use chrono::Utc;
use entity::search_outbox;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// How often the indexer looks for rows it was not woken for (another instance's writes).
const POLL: Duration = Duration::from_millis(500);

/// Queues documents in the caller's transaction.
#[allow(clippy::disallowed_methods)] // the outbox feeds no cache entry (see `domain::write`)
pub async fn append(db: &impl ConnectionTrait, documents: &[(Collection, Uuid)]) -> Result<(), DbErr> {
    if documents.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = documents.iter().map(|(collection, id)| search_outbox::ActiveModel {
        collection: Set(collection.name().to_string()),
        document_id: Set(*id),
        created_at: Set(now),
        ..Default::default()
    });
    search_outbox::Entity::insert_many(rows).exec_without_returning(db).await?;
    crate::search::queued();
    Ok(())
}

/// Drains the outbox until `stopping`: at once when woken, else every [`POLL`].
pub async fn drain_forever(search: Search, mut stopping: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match crate::db::background(drain(&search)).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(error) => {
                metrics::counter!("search_index_errors_total").increment(1);
                tracing::warn!(error = %error, "search indexing failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        if *stopping.borrow() {
            return;
        }
        tokio::select! {
            _ = super::QUEUED.notified() => {
                // Woken by a write before its commit: give the transaction a moment.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Indexes everything queued now, batch by batch.
pub async fn drain(search: &Search) -> anyhow::Result<()> {
    let db = search.db();
    loop {
        let rows = search_outbox::Entity::find()
            .order_by_asc(search_outbox::Column::Id)
            .limit(search.settings().batch)
            .all(db)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut wanted: BTreeMap<Collection, Vec<Uuid>> = BTreeMap::new();
        for row in &rows {
            if let Some(collection) = Collection::parse(&row.collection) {
                wanted.entry(collection).or_default().push(row.document_id);
            }
        }
        // A course's document carries its master's name and domain.
        if let Some(mentors) = wanted.get(&Collection::Mentors) {
            let courses = documents::courses_of(db, mentors).await?;
            wanted.entry(Collection::Courses).or_default().extend(courses);
        }
        for (collection, mut ids) in wanted {
            ids.sort();
            ids.dedup();
            search.refresh(collection, &ids).await?;
        }
        let oldest = rows.iter().map(|r| r.created_at).min().unwrap_or_else(Utc::now);
        metrics::histogram!("search_lag_seconds")
            .record((Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0);
        let done: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let delete = search_outbox::Entity::delete_many().filter(search_outbox::Column::Id.is_in(done));
        crate::domain::write::delete_many(db, delete).await?;
    }
}
