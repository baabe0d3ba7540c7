//! The application: shared state, start-up (connect, migrate, bind) and graceful stop.
//! `main` and the test harness start exactly the same thing.

use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::graphql;
use crate::http::{self, HttpState};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What every request handler and resolver shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub keys: TokenKeys,
    pub config: Arc<Config>,
    pub statements: Arc<StatementCounter>,
    pub metrics: PrometheusHandle,
    /// Post views waiting to be written (see `domain::views`).
    pub views: Arc<crate::domain::views::ViewCounter>,
    /// Live events for subscriptions and cache invalidations (in-process, or through Redis).
    pub events: crate::events::EventBus,
    /// Hot entities by id (in-process, in front of Redis when configured).
    pub cache: crate::cache::Cache,
    /// Rate-limit buckets (shared through Redis when configured).
    pub limiter: crate::admission::limits::Limiter,
    /// The link to Redis when REDIS_URL is set (its state is `/readyz`'s "degraded").
    pub redis: Option<crate::redis_link::RedisLink>,
    /// Courses, masters and circles by text (the embedded index, synced through the outbox).
    pub search: crate::search::Search,
    /// The live system configs (feature switches, rate limits, page size cap, cache TTL).
    pub settings: crate::settings::Settings,
    /// Uploaded files (local disk, or an S3-compatible store).
    pub storage: crate::storage::Storage,
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// `METRICS_ADDR`: /metrics on its own listener.
    metrics: Option<(TcpListener, axum::Router)>,
    state: AppState,
}

impl Application {
    /// Connects to the database, runs pending migrations, builds the schema and binds the listener
    /// (port 0 picks a free port, as the tests do).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (db, statements) = db::connect(&config.database).await?;
        db::migrate(&db).await?;
        // One link to Redis for the cache, the limiter and the bus; it connects (and reconnects) in
        // the background, so a Redis that is down at start-up is picked up when it comes.
        let redis = match &config.redis_url {
            None => None,
            Some(url) => {
                let link = crate::redis_link::RedisLink::connect(url)?;
                if !link.wait_up(Duration::from_secs(2)).await {
                    tracing::warn!("Redis unreachable at start-up: degraded (in-process) until it answers");
                }
                Some(link)
            }
        };
        let cache = match &redis {
            None => crate::cache::Cache::local(config.cache.clone()),
            Some(link) => crate::cache::Cache::redis(config.cache.clone(), link.clone()),
        };
        let events = match &redis {
            None => crate::events::EventBus::local(),
            Some(link) => crate::events::EventBus::redis(link.clone(), config.events_channel.clone(), cache.clone()),
        };
        let keys = TokenKeys::new(&config.auth.jwt_secret, config.auth.access_token_ttl, config.auth.refresh_token_ttl);
        let limiter =
            crate::admission::limits::Limiter::new(config.rate.enabled, &config.cache.key_prefix, redis.clone());
        crate::auth::password::configure(config.rate.hash_concurrency, config.rate.hash_queue);
        let search = crate::search::Search::new(config.search.clone(), db.clone());
        let settings = crate::settings::Settings::new(&config, cache.clone());
        settings.reload(&db).await.context("cannot read system_configs")?;
        let listener =
            TcpListener::bind(config.bind_addr).await.with_context(|| format!("cannot bind {}", config.bind_addr))?;
        let storage = crate::storage::Storage::open(
            &config.storage,
            config.auth.jwt_secret.expose_secret().as_bytes(),
            listener.local_addr()?,
        )
        .context("cannot open the file storage")?;
        let state = AppState {
            db,
            keys,
            config: Arc::new(config),
            statements,
            metrics: crate::telemetry::metrics_handle()?,
            views: Arc::default(),
            events,
            cache,
            limiter,
            redis,
            search,
            settings,
            storage,
        };
        let schema = graphql::build(state.clone(), &state.config.graphql);
        let admission = crate::admission::Admission::new(state.clone(), schema)?;
        let http_state = HttpState { app: state.clone(), admission };
        let router = http::router(http_state.clone());
        let metrics = match state.config.http.metrics_addr {
            Some(addr) => Some((
                TcpListener::bind(addr).await.with_context(|| format!("cannot bind METRICS_ADDR {addr}"))?,
                http::metrics_router(http_state),
            )),
            None => None,
        };
        Ok(Self { listener, router, metrics, state })
    }

    /// Where /metrics listens when `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` resolves; in-flight requests then get `SHUTDOWN_GRACE_SECS` to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let flusher = tokio::spawn(flush_views(self.state.clone(), stopping_rx.clone()));
        tokio::spawn(prune_idempotency_keys(self.state.clone(), stopping_rx.clone()));
        tokio::spawn(sweep_uploads(self.state.clone(), stopping_rx.clone()));
        let indexer = self.state.search.spawn_indexer(stopping_rx.clone());
        self.state.settings.spawn_watcher(self.state.db.clone(), &self.state.events, stopping_rx.clone());
        let mailer = crate::mail::spawn_sender(&self.state.config.mail, self.state.db.clone(), stopping_rx.clone())?;
        if let Some((listener, router)) = self.metrics {
            let mut stopping = stopping_rx.clone();
            tokio::spawn(async move {
                let stop = async move {
                    while !*stopping.borrow() {
                        if stopping.changed().await.is_err() {
                            return;
                        }
                    }
                };
                if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
                    tracing::error!(error = %error, "metrics listener failed");
                }
            });
        }
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        };
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, service).with_graceful_shutdown(signal);
        let mut stopping = stopping_rx;
        // Long-lived connections (WebSocket subscriptions) would hold a graceful stop open forever:
        // after the grace period the server stops regardless.
        let deadline = async move {
            while !*stopping.borrow() {
                if stopping.changed().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(grace).await;
            tracing::warn!("grace period over: closing remaining connections");
        };
        tokio::select! {
            result = server => result.context("server error")?,
            _ = deadline => {}
        }
        // The flusher writes what is still buffered once it sees the stop.
        let _ = flusher.await;
        // The indexer finishes its batch; then the index's writer lock is released for the next
        // process (`reindex`, or the next server on this DATA_DIR).
        let _ = tokio::time::timeout(Duration::from_secs(10), indexer).await;
        self.state.search.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), mailer).await;
        self.state.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Background task: every `UPLOAD_SWEEP_SECS`, deletes uploads left PENDING (or REJECTED) for a
/// day and READY ones nothing used within a day, files and rows (each instance may run it: a row
/// deleted twice is deleted once).
async fn sweep_uploads(state: AppState, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.storage.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the first sweep waits one period instead.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stopping.changed() => if changed.is_err() || *stopping.borrow() { return },
        }
        match crate::domain::uploads::sweep(&state.db, &state.storage).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(swept = n, "stale uploads deleted"),
            Err(error) => tracing::warn!(error = ?error, "upload sweep failed"),
        }
    }
}

/// Background task: writes buffered post views every `VIEW_FLUSH_SECS`, and once more on stop.
async fn flush_views(state: AppState, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.view_flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            changed = stopping.changed() => changed.is_err() || *stopping.borrow(),
        };
        match state.views.flush(&state.db).await {
            Ok(posts) => {
                let keys: Vec<_> = posts.into_iter().map(|id| (crate::cache::Kind::Post, id)).collect();
                state.events.invalidate(&state.cache, keys).await;
            }
            Err(error) => tracing::warn!(error = ?error, "flushing post views failed"),
        }
        if stop {
            return;
        }
    }
}

/// Background task: deletes expired idempotency keys every hour.
async fn prune_idempotency_keys(state: AppState, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(3600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if let Err(error) = crate::admission::idempotency::prune(&state.db).await {
            tracing::warn!(error = %error, "pruning idempotency keys failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
