//! Idempotency keys: a mutation sent with `Idempotency-Key` runs once per viewer and key.
//!
//! The first request claims the key by inserting a `pending` row (the primary key decides between
//! concurrent duplicates), runs, and stores its response. A repeat with the same fingerprint gets
//! the stored response without running anything; one while the first still runs waits for it a
//! little, then is told CONFLICT (in progress); one with another body is refused. Responses that
//! say the mutation did not happen (INTERNAL, TIMEOUT, RATE_LIMITED before it ran) release the key
//! so a retry runs. Rows expire after 24 h.

use crate::domain::write;
use crate::error::{code, AppError};
use axum::body::Bytes;
use chrono::Utc;
use entity::idempotency_keys::{self, Column, Entity};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use std::time::{Duration, Instant};

/// How long a stored response answers repeats.
pub const RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long a `pending` claim holds its key: longer than a keyed mutation may run
/// (`admission::IDEMPOTENT_RUN_CAP`), so a claim whose process died frees its key soon, not in a day.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// How often a duplicate looks whether the first request finished.
const POLL: Duration = Duration::from_millis(50);
pub const HEADER: &str = "idempotency-key";

/// A claimed key: the caller runs the mutation, then [`finish`]es.
pub struct Ticket {
    scope: String,
    key: String,
}

pub enum Claim {
    /// First of its key: run it.
    Run(Ticket),
    /// Already done: this is the first response's body.
    Replay(Bytes),
}

/// A key as the client sent it: 1..=255 visible ASCII characters.
pub fn parse_key(raw: &str) -> Result<String, AppError> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::bad_input("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(key.to_string())
}

/// Claims `key` for the request whose fingerprint is `fingerprint`, waiting up to `wait` for a
/// duplicate that is still running.
pub async fn claim(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
    fingerprint: &str,
    wait: Duration,
) -> Result<Claim, AppError> {
    let started = Instant::now();
    loop {
        let now = Utc::now();
        let row = idempotency_keys::ActiveModel {
            scope: Set(scope.to_string()),
            idempotency_key: Set(key.to_string()),
            fingerprint: Set(fingerprint.to_string()),
            status: Set("pending".into()),
            response: Set(None),
            created_at: Set(now),
            expires_at: Set(now + LEASE),
        };
        if write::insert_new(db, row, [Column::Scope, Column::IdempotencyKey]).await? {
            return Ok(Claim::Run(Ticket { scope: scope.to_string(), key: key.to_string() }));
        }
        let Some(existing) = Entity::find_by_id((scope.to_string(), key.to_string())).one(db).await? else {
            continue; // released in between: claim again
        };
        if existing.expires_at <= now {
            let expired = Entity::delete_many()
                .filter(Column::Scope.eq(scope))
                .filter(Column::IdempotencyKey.eq(key))
                .filter(Column::ExpiresAt.lte(now));
            write::delete_many(db, expired).await?;
            continue;
        }
        if existing.fingerprint != fingerprint {
            return Err(AppError::bad_input(
                "Idempotency-Key",
                "this key was already used with a different request; use a new key for a new request",
            ));
        }
        if let (Some(response), "done") = (existing.response, existing.status.as_str()) {
            metrics::counter!("idempotent_replays_total").increment(1);
            return Ok(Claim::Replay(Bytes::from(response)));
        }
        if started.elapsed() >= wait {
            return Err(AppError::Conflict {
                field: Some("Idempotency-Key".into()),
                message: "a request with this Idempotency-Key is still in progress; retry shortly".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a response means the mutation did not take effect, so a retry must run it: no data at
/// all, and only errors that say nothing ran or it was rolled back (INTERNAL, TIMEOUT,
/// RATE_LIMITED). A response with any data (one root field committed) is stored as it is.
pub fn is_transient(response: &async_graphql::Response) -> bool {
    let no_data = match &response.data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields.values().all(|v| matches!(v, async_graphql::Value::Null)),
        _ => false,
    };
    no_data
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| {
            let code = error.extensions.as_ref().and_then(|ext| ext.get("code")).and_then(|code| match code {
                async_graphql::Value::String(code) => Some(code.clone()),
                _ => None,
            });
            matches!(code.as_deref(), Some(code::INTERNAL | code::TIMEOUT | code::RATE_LIMITED))
        })
}

/// Stores the response of a claimed key (`Some`), or releases the key (`None`).
pub async fn finish(db: &DatabaseConnection, ticket: Ticket, body: Option<&Bytes>) {
    let filter =
        Entity::update_many().filter(Column::Scope.eq(&ticket.scope)).filter(Column::IdempotencyKey.eq(&ticket.key));
    let result = match body {
        Some(body) => {
            let done = filter
                .col_expr(Column::Status, sea_orm::sea_query::Expr::value("done"))
                .col_expr(Column::ExpiresAt, sea_orm::sea_query::Expr::value(Utc::now() + RETENTION))
                .col_expr(
                    Column::Response,
                    sea_orm::sea_query::Expr::value(String::from_utf8_lossy(body).into_owned()),
                );
            write::update_many(db, done).await.map(|_| ())
        }
        None => {
            let released = Entity::delete_many()
                .filter(Column::Scope.eq(&ticket.scope))
                .filter(Column::IdempotencyKey.eq(&ticket.key));
            write::delete_many(db, released).await.map(|_| ())
        }
    };
    if let Err(error) = result {
        // The mutation's own result stands; the key simply does not protect a retry.
        tracing::error!(error = %error, "cannot record the idempotency key's outcome");
    }
}

/// Deletes expired keys (run now and then by the server).
pub async fn prune(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    write::delete_many(db, Entity::delete_many().filter(Column::ExpiresAt.lte(Utc::now()))).await
}
