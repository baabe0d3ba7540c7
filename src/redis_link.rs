//! The one link to Redis that the cache, the rate limiter and the event bus share: Redis may come
//! and go without any request failing or waiting on it.
//!
//! - **Start-up never waits for Redis**: the link connects in the background and keeps retrying
//!   with backoff (100 ms doubling to 5 s) until Redis answers.
//! - **A circuit breaker**: the first call that fails for a connection reason or times out opens
//!   the link. While it is open [`RedisLink::connection`] answers `None` at once, so callers take
//!   their fallback (the database, the in-process level, the local limiter, local delivery) without
//!   spending a timeout per call. A probe (`PING`, with backoff) closes it once Redis answers.
//! - **State for operators**: `redis_up` (gauge, 1 or 0) and `redis_transitions_total`, and
//!   `/readyz` says "degraded" while the link is down.
//! - **Listeners** ([`RedisLink::changes`]) hear every transition: the cache drops its in-process
//!   level when the link comes back (it may have missed other instances' invalidations).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The longest wait between two attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct RedisLink(Arc<Inner>);

struct Inner {
    client: redis::Client,
    connection: RwLock<Option<redis::aio::ConnectionManager>>,
    up: AtomicBool,
    /// Signals the supervisor that a call failed (it probes until Redis answers again).
    tripped: tokio::sync::Notify,
    changes: watch::Sender<bool>,
}

impl RedisLink {
    /// A link to `url`, connecting in the background. Fails only on a malformed URL.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let (changes, _) = watch::channel(false);
        let link = Self(Arc::new(Inner {
            client,
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            tripped: tokio::sync::Notify::new(),
            changes,
        }));
        metrics::gauge!("redis_up").set(0.0);
        tokio::spawn(supervise(Arc::downgrade(&link.0)));
        Ok(link)
    }

    /// Waits up to `patience` for the first connection (start-up gives Redis a moment so the first
    /// requests share state; it carries on without it after that).
    pub async fn wait_up(&self, patience: Duration) -> bool {
        let mut changes = self.0.changes.subscribe();
        let waited = tokio::time::timeout(patience, changes.wait_for(|up| *up)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.0.client
    }

    /// The shared connection while the link is up; `None` at once while it is down.
    pub fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        if !self.0.up.load(Ordering::Acquire) {
            return None;
        }
        self.0.connection.read().ok().and_then(|c| c.clone())
    }

    pub fn is_up(&self) -> bool {
        self.0.up.load(Ordering::Acquire)
    }

    /// Up/down transitions from now on.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.0.changes.subscribe()
    }

    /// A call failed (`error`) or timed out (`None`): a connection-level failure opens the link.
    /// Replies Redis itself gave (a wrong type, a script error) leave it closed.
    pub fn failed(&self, error: Option<&redis::RedisError>) {
        let connection_level = match error {
            None => true,
            Some(error) => {
                error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_unrecoverable_error()
            }
        };
        if connection_level && set_up(&self.0, false) {
            tracing::warn!(error = ?error.map(|e| e.to_string()), "Redis unreachable: degrading until it answers");
            self.0.tripped.notify_one();
        }
    }
}

/// Sets the state; true when it changed.
fn set_up(inner: &Inner, up: bool) -> bool {
    let was = inner.up.swap(up, Ordering::AcqRel);
    if was != up {
        metrics::gauge!("redis_up").set(if up { 1.0 } else { 0.0 });
        metrics::counter!("redis_transitions_total", "to" => if up { "up" } else { "down" }).increment(1);
        inner.changes.send_replace(up);
    }
    was != up
}

/// Connects, then waits for a trip, probes until Redis answers, and so on, for as long as the link
/// is held.
async fn supervise(link: std::sync::Weak<Inner>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(inner) = link.upgrade() else { return };
        if inner.up.load(Ordering::Acquire) {
            // Up: sleep until a call trips the link (and now and then see whether it is still held).
            let _ = tokio::time::timeout(Duration::from_secs(30), inner.tripped.notified()).await;
            drop(inner);
            backoff = MIN_BACKOFF;
            continue;
        }
        if probe(&inner).await {
            if set_up(&inner, true) {
                tracing::info!("Redis reachable again");
            }
            backoff = MIN_BACKOFF;
            continue;
        }
        drop(inner);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One attempt: a connection (made when there is none yet) that answers `PING` within a second.
async fn probe(inner: &Inner) -> bool {
    let existing = inner.connection.read().ok().and_then(|c| c.clone());
    let mut connection = match existing {
        Some(connection) => connection,
        None => {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_secs(1))
                .set_number_of_retries(1);
            let made = tokio::time::timeout(
                Duration::from_secs(2),
                redis::aio::ConnectionManager::new_with_config(inner.client.clone(), config),
            )
            .await;
            match made {
                Ok(Ok(connection)) => {
                    if let Ok(mut slot) = inner.connection.write() {
                        *slot = Some(connection.clone());
                    }
                    connection
                }
                _ => return false,
            }
        }
    };
    let ping = redis::cmd("PING");
    let answered = tokio::time::timeout(Duration::from_secs(1), ping.query_async::<String>(&mut connection)).await;
    matches!(answered, Ok(Ok(_)))
}
