//! Domain events, published after commit, fanned out to live subscriptions and to the cache.
//!
//! Domain code calls [`emit`] while it works, and `cache::changed` for what it writes; the GraphQL
//! layer runs every root mutation field inside [`capture`], which publishes what was emitted only
//! when the field succeeded (its transaction committed) and drops it otherwise, and which drops
//! what was changed from the cache in either case. Fan-out is an in-process broadcast, or Redis
//! pub/sub when REDIS_URL is set, so a subscriber on one instance sees events caused on another
//! and every instance drops its in-process copies of what another instance changed.

use crate::cache::{Cache, Key};
use crate::redis_link::RedisLink;
use entity::{messages, notifications};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// A message and the users it is for (the recipient, or a circle's active members).
    Message {
        message: messages::Model,
        recipients: Vec<Uuid>,
    },
    Notification(notifications::Model),
    /// Cached entities a change made stale (for the other instances' in-process caches).
    Invalidate(Vec<Key>),
    /// A user's sessions ended: one (`session`, a logout) or all of them (a ban). Sockets of those
    /// sessions close, on every instance.
    SessionsEnded {
        user_id: Uuid,
        session: Option<Uuid>,
        banned: bool,
    },
}

impl Event {
    /// Whether `user_id` should receive this event.
    pub fn is_for(&self, user_id: Uuid) -> bool {
        match self {
            Self::Message { recipients, .. } => recipients.contains(&user_id),
            Self::Notification(notification) => notification.user_id == user_id,
            Self::Invalidate(_) | Self::SessionsEnded { .. } => false,
        }
    }
}

tokio::task_local! {
    static PENDING: Mutex<Vec<Event>>;
}

/// Records an event of the current mutation (a no-op outside [`capture`], e.g. in the CLI).
pub fn emit(event: Event) {
    let _ = PENDING.try_with(|pending| {
        if let Ok(mut pending) = pending.lock() {
            pending.push(event);
        }
    });
}

/// Runs one mutation; publishes its events if `succeeded` says its result is a success, and drops
/// what it changed from the cache whatever the outcome (a failure after a commit must not leave a
/// stale copy; dropping an unchanged entry only costs a reload).
pub async fn capture<T>(
    bus: &EventBus,
    cache: &Cache,
    db: &sea_orm::DatabaseConnection,
    work: impl Future<Output = T>,
    succeeded: impl Fn(&T) -> bool,
) -> T {
    let ((result, events), changed) = crate::cache::track(PENDING.scope(Mutex::new(Vec::new()), async {
        let result = work.await;
        let events = PENDING.with(|pending| pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default());
        (result, events)
    }))
    .await;
    if !changed.is_empty() {
        let keys = crate::cache::dependents(db, changed).await;
        bus.invalidate(cache, keys).await;
    }
    if succeeded(&result) {
        for event in events {
            bus.publish(event).await;
        }
    }
    result
}

/// Where events go: local subscribers, through Redis when configured.
#[derive(Clone)]
pub struct EventBus {
    local: broadcast::Sender<Arc<Event>>,
    redis: Option<RedisFanout>,
}

#[derive(Clone)]
struct RedisFanout {
    link: RedisLink,
    channel: String,
    /// Whether this instance's relay is subscribed: while it is not, this instance's events are
    /// also delivered locally (they would not come back through Redis).
    relaying: Arc<AtomicBool>,
}

impl EventBus {
    /// In-process only.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(1024);
        Self { local, redis: None }
    }

    /// Through Redis pub/sub: publishes go to `channel`, and a background task relays everything on
    /// the channel (this instance's events included) to local subscribers. The relay resubscribes
    /// with backoff whenever its connection ends; after a gap it drops the in-process cache level
    /// (invalidations may have been missed). While Redis is away, events are delivered locally.
    pub fn redis(link: RedisLink, channel: String, cache: Cache) -> Self {
        let (local, _) = broadcast::channel(1024);
        let relaying = Arc::new(AtomicBool::new(false));
        tokio::spawn(relay(link.clone(), channel.clone(), cache, local.clone(), relaying.clone()));
        Self { local, redis: Some(RedisFanout { link, channel, relaying }) }
    }

    /// Drops `keys` from this instance's cache levels now (so this response and the client's next
    /// request read fresh rows), then tells the other instances to drop their in-process copies.
    pub async fn invalidate(&self, cache: &Cache, keys: Vec<Key>) {
        if keys.is_empty() || !cache.is_enabled() {
            return;
        }
        cache.invalidate(&keys).await;
        if self.redis.is_some() {
            self.publish(Event::Invalidate(keys)).await;
        }
    }

    pub async fn publish(&self, event: Event) {
        metrics::counter!("events_published_total").increment(1);
        if let Some(fanout) = &self.redis {
            if let Some(mut connection) = fanout.link.connection() {
                match serde_json::to_string(&event) {
                    Ok(payload) => {
                        let sent = tokio::time::timeout(
                            PUBLISH_TIMEOUT,
                            redis::cmd("PUBLISH").arg(&fanout.channel).arg(payload).query_async::<i64>(&mut connection),
                        )
                        .await;
                        match sent {
                            Ok(Ok(_)) if fanout.relaying.load(Ordering::Acquire) => return,
                            Ok(Ok(_)) => {}
                            // Degrade rather than fail: this instance's subscribers still get it.
                            Ok(Err(error)) => {
                                metrics::counter!("events_redis_fallback_total").increment(1);
                                fanout.link.failed(Some(&error));
                            }
                            Err(_) => {
                                metrics::counter!("events_redis_fallback_total").increment(1);
                                fanout.link.failed(None);
                            }
                        }
                    }
                    Err(error) => tracing::error!(error = %error, "cannot encode event"),
                }
            } else {
                metrics::counter!("events_redis_fallback_total").increment(1);
            }
        }
        let _ = self.local.send(Arc::new(event));
    }

    /// Whether events cross instances right now: `None` without Redis, else whether the relay is
    /// subscribed.
    pub fn is_relaying(&self) -> Option<bool> {
        self.redis.as_ref().map(|fanout| fanout.relaying.load(Ordering::Acquire))
    }

    /// Every event from now on, lags included (the server's own watchers, e.g. of sessions, must
    /// know when they missed some).
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    /// A stream of the events for `user_id`, from now on.
    pub fn subscribe(&self, user_id: Uuid) -> impl futures_util::Stream<Item = Arc<Event>> {
        let receiver = self.local.subscribe();
        tokio_stream::wrappers::BroadcastStream::new(receiver).filter_map(move |item| {
            let event = item.ok().filter(|event| event.is_for(user_id));
            async move { event }
        })
    }
}

/// A publish slower than this counts as a failure (the event is delivered locally).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// Relays the channel to local subscribers for as long as the bus lives, resubscribing with backoff
/// (100 ms doubling to 5 s) whenever the subscription ends or cannot be made.
async fn relay(
    link: RedisLink,
    channel: String,
    cache: Cache,
    local: broadcast::Sender<Arc<Event>>,
    relaying: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut subscribed_before = false;
    loop {
        let subscribed = tokio::time::timeout(Duration::from_secs(2), async {
            let mut pubsub = link.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            anyhow::Ok(pubsub)
        })
        .await;
        let pubsub = match subscribed {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        relaying.store(true, Ordering::Release);
        metrics::gauge!("events_relay_up").set(1.0);
        if subscribed_before {
            // Invalidations published while the relay was away never reached this instance.
            cache.clear_local();
            tracing::info!("redis event relay resubscribed");
        }
        subscribed_before = true;
        let mut stream = pubsub.into_on_message();
        while let Some(message) = stream.next().await {
            let Ok(payload) = message.get_payload::<String>() else { continue };
            match serde_json::from_str::<Event>(&payload) {
                Ok(Event::Invalidate(keys)) => cache.invalidate_local(&keys),
                Ok(event) => {
                    let _ = local.send(Arc::new(event));
                }
                Err(error) => tracing::warn!(error = %error, "undecodable event on the bus"),
            }
        }
        relaying.store(false, Ordering::Release);
        metrics::gauge!("events_relay_up").set(0.0);
        tracing::warn!("redis event subscription ended; resubscribing");
        link.failed(None);
        if local.receiver_count() == 0 && std::sync::Arc::strong_count(&relaying) == 1 {
            return; // the bus is gone
        }
    }
}
