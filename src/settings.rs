//! Live settings: the design's `system_configs` as a typed registry of known keys. Each key has a
//! type, a validation and a default (the environment's value where the environment sets one, see
//! `config`); a row in `system_configs` overrides the default. Admins change a key with
//! `setSystemConfig`: the row and its audit entry commit together, the instance reloads at once and
//! the event bus tells every other instance to reload (each also reloads every
//! [`RELOAD_EVERY`], in case a message was lost). The server reads [`Settings::live`] on each use.
//!
//! The keys: feature switches to shed non-core work under load (`features.*`), the rate limits
//! (`rate.*`, `N/period`), the page size cap and the cache TTL.

use crate::auth::Viewer;
use crate::config::{Config, RateLimits, RateRule};
use crate::domain::audit;
use crate::domain::write;
use crate::error::{AppError, AppResult};
use crate::events::{Event, EventBus};
use chrono::{DateTime, Utc};
use entity::enums::ConfigType;
use entity::system_configs;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How often every instance re-reads the table even without a bus message.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The values in force on this instance.
#[derive(Debug, Clone)]
pub struct Live {
    /// `features.registration`: new accounts may register.
    pub registration: bool,
    /// `features.search`: the search index answers (off: the database's plain search does).
    pub search: bool,
    /// `features.likes`: posts and comments may be liked and unliked.
    pub likes: bool,
    /// `features.notification_fanout`: likes, comments and replies notify the authors.
    pub notification_fanout: bool,
    /// `pagination.max_page_size`: the largest `first`/`last` a list accepts.
    pub max_page_size: u64,
    /// `cache.ttl_secs`: the base TTL of a cached entity.
    pub cache_ttl: Duration,
    /// `rate.*`.
    pub rate: RateLimits,
}

/// One known key.
struct Spec {
    key: &'static str,
    description: &'static str,
    kind: ConfigType,
    get: fn(&Live) -> Value,
    set: fn(&mut Live, &Value) -> Result<(), String>,
}

fn switch(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| "expected true or false".to_string())
}

fn count(value: &Value, min: u64, max: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn rule(value: &Value) -> Result<RateRule, String> {
    let text = value.as_str().ok_or("expected a string N/period, e.g. \"10/15m\"")?;
    text.parse::<RateRule>()
}

macro_rules! rate_spec {
    ($key:literal, $field:ident, $description:literal) => {
        Spec {
            key: $key,
            description: $description,
            kind: ConfigType::String,
            get: |live| json!(live.rate.$field.to_string()),
            set: |live, value| {
                live.rate.$field = rule(value)?;
                Ok(())
            },
        }
    };
}

const SPECS: &[Spec] = &[
    Spec {
        key: "features.registration",
        description: "New accounts may register (false: `register` answers FEATURE_DISABLED).",
        kind: ConfigType::Boolean,
        get: |live| json!(live.registration),
        set: |live, value| {
            live.registration = switch(value)?;
            Ok(())
        },
    },
    Spec {
        key: "features.search",
        description: "The search index answers searches (false: the database's plain title/name search \
                      does, flagged in `extensions.search.degraded`).",
        kind: ConfigType::Boolean,
        get: |live| json!(live.search),
        set: |live, value| {
            live.search = switch(value)?;
            Ok(())
        },
    },
    Spec {
        key: "features.likes",
        description: "Posts and comments may be liked (false: like and unlike answer FEATURE_DISABLED).",
        kind: ConfigType::Boolean,
        get: |live| json!(live.likes),
        set: |live, value| {
            live.likes = switch(value)?;
            Ok(())
        },
    },
    Spec {
        key: "features.notification_fanout",
        description: "Likes, comments and replies notify their authors (false: those notifications are \
                      skipped; bookings, reviews and decisions still notify).",
        kind: ConfigType::Boolean,
        get: |live| json!(live.notification_fanout),
        set: |live, value| {
            live.notification_fanout = switch(value)?;
            Ok(())
        },
    },
    Spec {
        key: "pagination.max_page_size",
        description: "The largest `first`/`last` a list accepts (20 to 100).",
        kind: ConfigType::Number,
        get: |live| json!(live.max_page_size),
        set: |live, value| {
            live.max_page_size =
                count(value, crate::domain::pagination::DEFAULT_PAGE, crate::domain::pagination::MAX_PAGE)?;
            Ok(())
        },
    },
    Spec {
        key: "cache.ttl_secs",
        description: "Base TTL of a cached entity in seconds (1 to 86400; entries already cached keep theirs).",
        kind: ConfigType::Number,
        get: |live| json!(live.cache_ttl.as_secs()),
        set: |live, value| {
            live.cache_ttl = Duration::from_secs(count(value, 1, 86_400)?);
            Ok(())
        },
    },
    rate_spec!("rate.login_account", login_account, "Sign-in attempts per email (N/period)."),
    rate_spec!("rate.login_ip", login_ip, "Sign-in attempts per client IP (N/period)."),
    rate_spec!("rate.reset_account", reset_account, "Password-reset and verification requests per account."),
    rate_spec!("rate.reset_ip", reset_ip, "Password-reset requests and uses per client IP."),
    rate_spec!("rate.register_ip", register_ip, "Registrations per client IP."),
    rate_spec!("rate.anonymous_ip", anonymous_ip, "Operations of anonymous clients per IP."),
    rate_spec!("rate.mutation_user", mutation_user, "Mutations per signed-in user."),
    rate_spec!("rate.message_user", message_user, "Messages sent per user."),
    rate_spec!("rate.cost", cost, "What one viewer's operations may cost together (units/period)."),
    rate_spec!("rate.ws_messages", ws_messages, "Messages one WebSocket may send."),
    rate_spec!("rate.upload_user", upload_user, "Uploads one user may start (N/period)."),
    rate_spec!("rate.upload_mb_user", upload_mb_user, "Megabytes one user may upload (N/period)."),
];

fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.key == key)
}

/// A key as `systemConfigs` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: &'static str,
    pub description: &'static str,
    pub kind: ConfigType,
    pub value: Value,
    pub default: Value,
    /// When an admin last set it (`None`: the default is in force).
    pub updated_at: Option<DateTime<Utc>>,
}

/// This instance's live settings. Cheap to clone.
#[derive(Clone)]
pub struct Settings(Arc<Inner>);

struct Inner {
    defaults: Live,
    current: RwLock<Arc<Live>>,
    /// Stored overrides in force: key → when set.
    overridden: RwLock<HashMap<String, DateTime<Utc>>>,
    reloading: tokio::sync::Mutex<()>,
    cache: crate::cache::Cache,
}

impl Settings {
    /// The defaults (from the environment); [`Settings::reload`] applies the stored overrides.
    pub fn new(config: &Config, cache: crate::cache::Cache) -> Self {
        let defaults = Live {
            registration: true,
            search: true,
            likes: true,
            notification_fanout: true,
            max_page_size: crate::domain::pagination::MAX_PAGE,
            cache_ttl: config.cache.ttl,
            rate: config.rate.clone(),
        };
        Self(Arc::new(Inner {
            current: RwLock::new(Arc::new(defaults.clone())),
            defaults,
            overridden: RwLock::default(),
            reloading: tokio::sync::Mutex::new(()),
            cache,
        }))
    }

    /// The values in force now.
    pub fn live(&self) -> Arc<Live> {
        self.0.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads `system_configs`. A stored value that no longer validates (or an unknown key) is
    /// ignored with a warning: the default stays in force. Reloads run one at a time, so an older
    /// read never replaces a newer one.
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        let _one_at_a_time = self.0.reloading.lock().await;
        let rows = system_configs::Entity::find().all(db).await?;
        let mut live = self.0.defaults.clone();
        let mut overridden = HashMap::new();
        for row in rows {
            let Some(spec) = spec(&row.config_key) else {
                tracing::warn!(key = %row.config_key, "unknown key in system_configs ignored");
                continue;
            };
            let value = row.config_value.as_deref().map(serde_json::from_str::<Value>);
            match value.map(|v| v.map_err(|e| e.to_string()).and_then(|v| (spec.set)(&mut live, &v))) {
                Some(Ok(())) => {
                    overridden.insert(row.config_key, row.updated_at);
                }
                None => {}
                Some(Err(error)) => {
                    metrics::counter!("system_config_invalid_total").increment(1);
                    tracing::warn!(key = %row.config_key, error, "invalid stored system config ignored");
                }
            }
        }
        self.0.cache.set_ttl(live.cache_ttl);
        *self.0.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        *self.0.overridden.write().unwrap_or_else(|e| e.into_inner()) = overridden;
        Ok(())
    }

    /// Every known key with its value in force.
    pub fn entries(&self) -> Vec<Entry> {
        let live = self.live();
        let overridden = self.0.overridden.read().unwrap_or_else(|e| e.into_inner());
        SPECS
            .iter()
            .map(|spec| Entry {
                key: spec.key,
                description: spec.description,
                kind: spec.kind,
                value: (spec.get)(&live),
                default: (spec.get)(&self.0.defaults),
                updated_at: overridden.get(spec.key).copied(),
            })
            .collect()
    }

    fn entry(&self, key: &str) -> Option<Entry> {
        self.entries().into_iter().find(|entry| entry.key == key)
    }

    /// Reloads whenever another instance (or this one) announces a change, and every
    /// [`RELOAD_EVERY`], until `stopping`.
    pub fn spawn_watcher(
        &self,
        db: DatabaseConnection,
        bus: &EventBus,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let settings = self.clone();
        let mut events = bus.subscribe_all();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RELOAD_EVERY, RELOAD_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    event = events.recv() => match event {
                        Ok(event) if matches!(*event, Event::SettingsChanged) => {}
                        Ok(_) => continue,
                        // Missed messages may have been a change.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = stopping.changed() => return,
                }
                if let Err(error) = settings.reload(&db).await {
                    tracing::warn!(error = %error, "reloading system configs failed");
                }
            }
        })
    }
}

/// Admins: every known key with its value, default and description.
pub async fn list(db: &DatabaseConnection, settings: &Settings, viewer: &Viewer) -> AppResult<Vec<Entry>> {
    crate::domain::admin(db, viewer).await?;
    Ok(settings.entries())
}

/// Admins set a known key (`null` returns it to its default). The value is validated against the
/// key's type first; the row and its audit entry commit together; every instance applies it within
/// a second (the event bus).
#[tracing::instrument(name = "settings.set", skip_all, fields(key = %key))]
pub async fn set(
    db: &DatabaseConnection,
    settings: &Settings,
    viewer: &Viewer,
    key: &str,
    value: Value,
    ip: Option<IpAddr>,
) -> AppResult<Entry> {
    let admin = crate::domain::admin(db, viewer).await?;
    let key = key.trim();
    let spec = spec(key).ok_or_else(|| {
        let known: Vec<_> = SPECS.iter().map(|s| s.key).collect();
        AppError::bad_input("key", format!("unknown key; the known keys are {}", known.join(", ")))
    })?;
    if !value.is_null() {
        let mut probe = settings.0.defaults.clone();
        (spec.set)(&mut probe, &value).map_err(|message| AppError::bad_input("value", message))?;
    }
    let txn = db.begin().await?;
    // A write first (SQLite keeps its snapshot; PostgreSQL locks the row if it exists).
    write::update_many(
        &txn,
        system_configs::Entity::update_many()
            .col_expr(
                system_configs::Column::UpdatedAt,
                sea_orm::sea_query::Expr::col(system_configs::Column::UpdatedAt).into(),
            )
            .filter(system_configs::Column::ConfigKey.eq(key)),
    )
    .await?;
    let existing = system_configs::Entity::find().filter(system_configs::Column::ConfigKey.eq(key)).one(&txn).await?;
    let stored = |row: &system_configs::Model| {
        let value = row.config_value.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok());
        json!({ "id": row.id, "key": row.config_key, "value": value })
    };
    let old = existing.as_ref().map(stored);
    let now = Utc::now();
    let new = match (existing, value.is_null()) {
        (None, true) => None,
        (Some(row), true) => {
            write::delete_many(
                &txn,
                system_configs::Entity::delete_many().filter(system_configs::Column::Id.eq(row.id)),
            )
            .await?;
            None
        }
        (Some(row), false) => {
            let mut active: system_configs::ActiveModel = row.into();
            active.config_value = Set(Some(value.to_string()));
            active.updated_at = Set(now);
            Some(write::update(&txn, active).await?)
        }
        (None, false) => Some(
            write::insert(
                &txn,
                system_configs::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    config_key: Set(key.to_string()),
                    config_value: Set(Some(value.to_string())),
                    config_type: Set(spec.kind),
                    description: Set(Some(spec.description.to_string())),
                    created_at: Set(now),
                    updated_at: Set(now),
                },
            )
            .await
            .map_err(AppError::on_unique("key", "the key was set meanwhile; try again"))?,
        ),
    };
    let new = new.as_ref().map(stored);
    if old != new {
        let operation = match (&old, &new) {
            (None, _) => "INSERT",
            (_, None) => "DELETE",
            _ => "UPDATE",
        };
        let entry = audit::AuditEntry { table: "system_configs", operation, old, new, user_id: Some(admin.id), ip };
        audit::record(&txn, entry).await?;
    }
    txn.commit().await?;
    // Announced whatever follows: the change is stored, every instance must apply it.
    crate::events::emit(Event::SettingsChanged);
    if let Err(error) = settings.reload(db).await {
        tracing::warn!(error = %error, "reloading system configs after a change failed (the watcher retries)");
    }
    settings.entry(key).ok_or_else(|| AppError::not_found("system config"))
}
