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
    /// An admin changed a system config: every instance reloads them.
    SettingsChanged,
}

impl Event {
    /// Whether `user_id` should receive this event.
    pub fn is_for(&self, user_id: Uuid) -> bool {
        match self {
            Self::Message { recipients, .. } => recipients.contains(&user_id),
            Self::Notification(notification) => notification.user_id == user_id,
            Self::Invalidate(_) | Self::SessionsEnded { .. } | Self::SettingsChanged => false,
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
///
/// What follows the work runs on a task of its own, and so does the invalidation of whatever the
/// work had marked if this future is dropped before it finished (the request timed out, or its
/// client went away, perhaps after the work committed): a cancellation cannot leave a changed
/// entry cached.
pub async fn capture<T>(
    bus: &EventBus,
    cache: &Cache,
    db: &sea_orm::DatabaseConnection,
    work: impl Future<Output = T>,
    succeeded: impl Fn(&T) -> bool,
) -> T {
    let marks = crate::cache::Marks::default();
    let mut unfinished =
        Unfinished { marks: marks.clone(), bus: bus.clone(), cache: cache.clone(), db: db.clone(), armed: true };
    let (result, events) = crate::cache::track(
        marks.clone(),
        PENDING.scope(Mutex::new(Vec::new()), async {
            let result = work.await;
            let events =
                PENDING.with(|pending| pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default());
            (result, events)
        }),
    )
    .await;
    unfinished.armed = false;
    let changed = crate::cache::take_marks(&marks);
    let events = if succeeded(&result) { events } else { Vec::new() };
    let (bus, cache, db) = (bus.clone(), cache.clone(), db.clone());
    let tail = tokio::spawn(async move {
        if !changed.is_empty() {
            let keys = crate::cache::dependents(&db, changed).await;
            bus.invalidate(&cache, keys).await;
        }
        for event in events {
            bus.publish(event).await;
        }
    });
    let _ = tail.await;
    result
}

/// Invalidates what a mutation marked if its [`capture`] is dropped before the work finished.
struct Unfinished {
    marks: crate::cache::Marks,
    bus: EventBus,
    cache: Cache,
    db: sea_orm::DatabaseConnection,
    armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let changed = crate::cache::take_marks(&self.marks);
        if changed.is_empty() {
            return;
        }
        metrics::counter!("cache_invalidations_after_cancel_total").increment(1);
        let (bus, cache, db) = (self.bus.clone(), self.cache.clone(), self.db.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let keys = crate::cache::dependents(&db, changed).await;
                bus.invalidate(&cache, keys).await;
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheSettings, Kind};

    /// A mutation whose request is cancelled after its work marked a change (it may have
    /// committed) still drops that entry from the cache.
    #[tokio::test]
    async fn a_mutation_dropped_half_way_still_invalidates_what_it_marked() {
        let cache = Cache::local(CacheSettings {
            enabled: true,
            ttl: Duration::from_secs(60),
            local_capacity: 100,
            key_prefix: "t".into(),
            responses: false,
            response_bytes: 1 << 20,
        });
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("sqlite");
        let bus = EventBus::local();
        let id = Uuid::new_v4();
        let kind = Kind::UnreadNotifications;
        let kept = cache.load_one::<u64, _, _, String>(kind, id, || async { Ok(Some(1)) }).await;
        assert_eq!(kept, Ok(Some(1)));
        assert_eq!(cache.peek::<u64>(kind, id), Some(Some(1)));
        let work = async {
            crate::cache::changed(kind, id);
            std::future::pending::<()>().await; // committed, then the request is cut off
        };
        let cancelled = tokio::time::timeout(Duration::from_millis(50), capture(&bus, &cache, &db, work, |_| true));
        assert!(cancelled.await.is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while cache.peek::<u64>(kind, id).is_some() {
            assert!(std::time::Instant::now() < deadline, "the marked entry was never dropped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
