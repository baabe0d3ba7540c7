//! Database connection: SQLite (embedded default) or PostgreSQL, migrated on start, with every
//! statement counted for /metrics (the benchmark and the N+1 tests read that counter).

use crate::config::DatabaseSettings;
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// SQLite serializes writers; a handful of connections is all it can use.
const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// How many SQL statements this process ran (successful or not).
#[derive(Debug, Default)]
pub struct StatementCounter(AtomicU64);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<(DatabaseConnection, Arc<StatementCounter>)> {
    let sqlite = settings.url.starts_with("sqlite:");
    if sqlite {
        ensure_sqlite_dir(&settings.url)?;
    }
    let mut options = ConnectOptions::new(settings.url.clone());
    let max = if sqlite { settings.max_connections.min(SQLITE_MAX_CONNECTIONS) } else { settings.max_connections };
    options
        .max_connections(max)
        .min_connections(settings.min_connections.min(max))
        .max_lifetime(settings.max_lifetime)
        .idle_timeout(settings.idle_timeout)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // sqlx pings every connection before handing it out by default: one extra round trip per
        // query. Broken connections surface as errors and are replaced by the pool anyway.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        // PostgreSQL: every connection starts with a statement_timeout, so no statement outlives
        // the request that ran it by much (SQLite has no such setting; its busy timeout bounds waits).
        .map_sqlx_postgres_opts({
            let ms = settings.statement_timeout.as_millis().to_string();
            move |opts| opts.options([("statement_timeout", ms.clone())])
        });
    let mut db = Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to {}", crate::config::redact_url(&settings.url)))?;
    let counter = Arc::new(StatementCounter::default());
    let sink = counter.clone();
    db.set_metric_callback(move |info| {
        if BACKGROUND.try_with(|_| ()).is_ok() {
            metrics::counter!("db_background_statements_total").increment(1);
            return;
        }
        sink.0.fetch_add(1, Ordering::Relaxed);
        // A statement on a request's task: what it read is not in the cache, so neither is the
        // response (see `cache::recording`).
        crate::cache::uncacheable();
        metrics::counter!("db_statements_total").increment(1);
        metrics::histogram!("db_statement_duration_seconds").record(info.elapsed.as_secs_f64());
        if info.failed {
            metrics::counter!("db_statement_errors_total").increment(1);
        }
    });
    Ok((db, counter))
}

tokio::task_local! {
    static BACKGROUND: ();
}

/// Runs `work` (a background task: the search indexer) with its statements counted apart
/// (`db_background_statements_total`), so the per-request statement counts stay exact.
pub async fn background<F: std::future::Future>(work: F) -> F::Output {
    BACKGROUND.scope((), work).await
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("running migrations")
}

/// Readiness: the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

fn ensure_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}
