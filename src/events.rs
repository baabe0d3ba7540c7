//! Domain events, published after commit, fanned out to live subscriptions.
//!
//! Domain code calls [`emit`] while it works; the GraphQL layer runs every root mutation field
//! inside [`capture`], which publishes what was emitted only when the field succeeded (its
//! transaction committed) and drops it otherwise. Fan-out is an in-process broadcast, or Redis
//! pub/sub when REDIS_URL is set, so a subscriber on one instance sees events caused on another.

use entity::{messages, notifications};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex};
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
}

impl Event {
    /// Whether `user_id` should receive this event.
    pub fn is_for(&self, user_id: Uuid) -> bool {
        match self {
            Self::Message { recipients, .. } => recipients.contains(&user_id),
            Self::Notification(notification) => notification.user_id == user_id,
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

/// Runs one mutation; publishes its events if `succeeded` says its result is a success.
pub async fn capture<T>(bus: &EventBus, work: impl Future<Output = T>, succeeded: impl Fn(&T) -> bool) -> T {
    let (result, events) = PENDING
        .scope(Mutex::new(Vec::new()), async {
            let result = work.await;
            let events =
                PENDING.with(|pending| pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default());
            (result, events)
        })
        .await;
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
    connection: redis::aio::ConnectionManager,
    channel: String,
}

impl EventBus {
    /// In-process only.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(1024);
        Self { local, redis: None }
    }

    /// Through Redis pub/sub: publishes go to `channel`, and a background task relays everything on
    /// the channel (this instance's events included) to local subscribers.
    pub async fn redis(url: &str, channel: String) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client.clone()).await?;
        let (local, _) = broadcast::channel(1024);
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        let relay = local.clone();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(message) = stream.next().await {
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(event) => {
                        let _ = relay.send(Arc::new(event));
                    }
                    Err(error) => tracing::warn!(error = %error, "undecodable event on the bus"),
                }
            }
            tracing::error!("redis event subscription ended");
        });
        Ok(Self { local, redis: Some(RedisFanout { connection, channel }) })
    }

    pub async fn publish(&self, event: Event) {
        metrics::counter!("events_published_total").increment(1);
        if let Some(fanout) = &self.redis {
            match serde_json::to_string(&event) {
                Ok(payload) => {
                    let mut connection = fanout.connection.clone();
                    let sent: redis::RedisResult<i64> =
                        redis::cmd("PUBLISH").arg(&fanout.channel).arg(payload).query_async(&mut connection).await;
                    match sent {
                        Ok(_) => return,
                        // Degrade rather than fail: this instance's subscribers still get it.
                        Err(error) => {
                            metrics::counter!("events_redis_fallback_total").increment(1);
                            tracing::warn!(error = %error, "redis publish failed; delivering locally");
                        }
                    }
                }
                Err(error) => tracing::error!(error = %error, "cannot encode event"),
            }
        }
        let _ = self.local.send(Arc::new(event));
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
