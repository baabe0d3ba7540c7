//! The one cache facade: hot entities by id, read through two levels in front of the database.
//!
//! - First level: an in-process moka cache, always on; entries hold decoded values, so a hit costs
//!   a hash lookup and a clone.
//! - Second level: Redis when REDIS_URL is set, keys named by entity (`{prefix}:course:{id}`),
//!   values as JSON. When Redis fails the cache degrades to the database (a metric counts it); it
//!   never fails a request.
//! - Penetration: an id that does not exist is cached as a miss for `MISS_TTL`.
//! - Breakdown: concurrent loads of the same missing key wait for the one load in flight (and
//!   concurrent loads of different keys are batched by the DataLoader in front of this).
//! - Avalanche: every TTL gets a random jitter, so keys filled together do not expire together.
//! - Writes: domain code marks what it changed ([`changed`]); when the mutation field finishes the
//!   marks are dropped from both levels before the response is written, and the other instances
//!   drop their first-level copies through the event bus. A fill that raced a change is not stored
//!   (an epoch counter; see [`Cache::fill`]), so a reader never reads a write back stale.
//! - Responses: a read-only query whose every read came through this facade is kept as its
//!   serialized response, keyed by viewer, operation, query text and variables, and tagged with the
//!   keys it read ([`recording`], [`Cache::store_response`]). Dropping any of those keys drops the
//!   response; a query that ran a statement, used an uncached loader or had a side effect is never
//!   kept ([`uncacheable`]).

use crate::domain::pagination::Page;
use crate::redis_link::RedisLink;
use axum::body::Bytes;
use rand::Rng;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// What is cached. The name is the key's middle part (`{prefix}:{kind}:{id}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `courses` row by id
    Course,
    /// a course's contents (all rows, in order) by course id
    CourseContents,
    /// `course_stats` by course id
    CourseStats,
    /// `user_identities` row by id
    Identity,
    /// an identity's profile (`user_profiles` by identity id)
    Profile,
    /// `mentor_stats` by identity id
    MentorStats,
    /// `circles` row by id
    Circle,
    /// `posts` row by id
    Post,
    /// A course's first page of active COURSE reviews, by course id
    CourseReviews,
    /// A master's first page of active MENTOR and APPOINTMENT reviews, by identity id
    MentorReviews,
    /// The first page of published courses in one order (ids only), by [`course_listing`]
    CourseListing,
    /// Ids of a master's newest published courses, by identity id
    MentorCourses,
    /// A circle's first page of active posts, pinned first then newest (ids only), by circle id
    CircleFeed,
    /// A user's like of a post, by [`pair_id`] of (user, post); cached as missing when not liked
    PostLike,
    /// A user's first page of notifications, by user id
    Notifications,
    /// How many of a user's notifications are unread, by user id
    UnreadNotifications,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Course => "course",
            Kind::CourseContents => "course-contents",
            Kind::CourseStats => "course-stats",
            Kind::Identity => "identity",
            Kind::Profile => "profile",
            Kind::MentorStats => "mentor-stats",
            Kind::Circle => "circle",
            Kind::Post => "post",
            Kind::CourseReviews => "course-reviews",
            Kind::MentorReviews => "mentor-reviews",
            Kind::CourseListing => "course-listing",
            Kind::MentorCourses => "mentor-courses",
            Kind::CircleFeed => "circle-feed",
            Kind::PostLike => "post-like",
            Kind::Notifications => "notifications",
            Kind::UnreadNotifications => "unread-notifications",
        }
    }
}

pub type Key = (Kind, Uuid);

/// How many orders of the course listing are cached (see [`course_listing`]).
const COURSE_LISTINGS: u128 = 16;

/// The key id of the unfiltered course listing in order `order` (0..[`COURSE_LISTINGS`]): every
/// course change drops them all, since any change can move a course in any order.
pub fn course_listing(order: u8) -> Option<Uuid> {
    (u128::from(order) < COURSE_LISTINGS).then(|| Uuid::from_u128(u128::from(order)))
}

/// One key id for a pair of ids (a user's like of a post): a name-based (v5) UUID of both.
pub fn pair_id(first: Uuid, second: Uuid) -> Uuid {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(first.as_bytes());
    bytes[16..].copy_from_slice(second.as_bytes());
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &bytes)
}

/// Settings: `CACHE_ENABLED`, `CACHE_TTL_SECS`, `CACHE_LOCAL_CAPACITY`, `CACHE_KEY_PREFIX`,
/// `CACHE_RESPONSES`, `CACHE_RESPONSE_MB`.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Base TTL of a found entity (jitter adds up to a sixth of it).
    pub ttl: Duration,
    /// How many entries the in-process level holds.
    pub local_capacity: u64,
    pub key_prefix: String,
    /// Whether whole query responses are kept too (`CACHE_RESPONSES`, default true).
    pub responses: bool,
    /// How many bytes of serialized responses the in-process level holds (`CACHE_RESPONSE_MB`).
    pub response_bytes: u64,
}

/// How long an id that does not exist stays cached as missing.
const MISS_TTL: Duration = Duration::from_secs(300);
/// With Redis behind it, the first level keeps entries briefly: another instance's change reaches
/// it through the bus, and this bounds the staleness if that message is lost.
const LOCAL_TTL_WITH_REDIS: Duration = Duration::from_secs(30);
/// A Redis call slower than this counts as a failure and the request goes to the database.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

type Value = Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
struct Entry {
    /// `None`: the id is known not to exist.
    value: Option<Value>,
    ttl: Duration,
}

struct EntryExpiry;

impl moka::Expiry<Key, Entry> for EntryExpiry {
    fn expire_after_create(&self, _key: &Key, entry: &Entry, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &Key,
        entry: &Entry,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A load in flight: its waiters see `Some` when it finished (an empty map if it failed).
type Flight = watch::Receiver<Option<Arc<HashMap<Uuid, Entry>>>>;

struct Inner {
    settings: CacheSettings,
    local: moka::sync::Cache<Key, Entry>,
    redis: Option<RedisLink>,
    /// Redis keys whose DEL could not reach Redis (it was down): deleted when it is back, so a
    /// change made during the outage cannot come back from Redis. Past [`PENDING_DELETES`] keys
    /// the whole prefix is cleared instead.
    pending_deletes: Mutex<(HashSet<String>, bool)>,
    /// Bumped by every invalidation; a fill that started before a bump is not stored.
    epoch: AtomicU64,
    /// Loads in flight, with the epoch each began at.
    in_flight: Mutex<HashMap<Key, (Flight, u64)>>,
    responses: Responses,
    /// Small named texts (persisted query documents): both levels, whether or not entities are
    /// cached.
    texts: moka::sync::Cache<String, Arc<str>>,
}

/// How much memory the in-process level of [`Cache::text`] may use.
const TEXT_BYTES: u64 = 16 * 1024 * 1024;

/// Cheap to clone; every clone is the same cache.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

/// How many undelivered Redis deletes are remembered one by one (see `pending_deletes`).
const PENDING_DELETES: usize = 100_000;

impl Cache {
    /// In-process only.
    pub fn local(settings: CacheSettings) -> Self {
        Self::build(settings, None)
    }

    /// In-process in front of Redis. When the link comes back after an outage, the in-process
    /// level is dropped (other instances' invalidations may have been missed) and the deletes that
    /// could not reach Redis are sent.
    pub fn redis(settings: CacheSettings, link: RedisLink) -> Self {
        let cache = Self::build(settings, Some(link.clone()));
        let weak = Arc::downgrade(&cache.0);
        let mut changes = link.changes();
        tokio::spawn(async move {
            let mut was_up = *changes.borrow_and_update();
            while changes.changed().await.is_ok() {
                let up = *changes.borrow_and_update();
                let Some(inner) = weak.upgrade() else { return };
                if up && !was_up {
                    Cache(inner).recovered().await;
                }
                was_up = up;
            }
        });
        cache
    }

    /// Redis is back: drop what this instance may hold stale, and what Redis may hold stale.
    async fn recovered(&self) {
        self.clear_local();
        let (keys, overflowed) = match self.0.pending_deletes.lock() {
            Ok(mut pending) => (std::mem::take(&mut pending.0), std::mem::replace(&mut pending.1, false)),
            Err(_) => return,
        };
        let Some(link) = &self.0.redis else { return };
        let Some(mut connection) = link.connection() else { return };
        let mut names: Vec<String> = keys.into_iter().collect();
        if overflowed {
            // Too many to remember: every key under the prefix.
            let pattern = format!("{}:*", self.0.settings.key_prefix);
            let mut cursor = 0u64;
            loop {
                let reply: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut connection)
                    .await;
                let Ok((next, found)) = reply else { break };
                names.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        for chunk in names.chunks(1000) {
            if let Err(error) = redis::cmd("DEL").arg(chunk).query_async::<i64>(&mut connection).await {
                self.remember_deletes(chunk.to_vec());
                link.failed(Some(&error));
                return;
            }
        }
        tracing::info!(deleted = names.len(), "cache: Redis is back; in-process level dropped, missed deletes sent");
    }

    fn remember_deletes(&self, names: Vec<String>) {
        if let Ok(mut pending) = self.0.pending_deletes.lock() {
            if pending.0.len() + names.len() > PENDING_DELETES {
                pending.1 = true;
                pending.0.clear();
            } else if !pending.1 {
                pending.0.extend(names);
            }
        }
    }

    /// Drops everything the in-process level holds (entities and responses).
    pub fn clear_local(&self) {
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
        self.0.local.invalidate_all();
        self.0.responses.clear();
    }

    fn build(settings: CacheSettings, redis: Option<RedisLink>) -> Self {
        let local =
            moka::sync::Cache::builder().max_capacity(settings.local_capacity.max(1)).expire_after(EntryExpiry).build();
        let responses = Responses::new(settings.response_bytes, local_ttl(&settings, redis.is_some()));
        Self(Arc::new(Inner {
            settings,
            local,
            redis,
            pending_deletes: Mutex::default(),
            epoch: AtomicU64::new(0),
            in_flight: Mutex::default(),
            responses,
            texts: moka::sync::Cache::builder()
                .max_capacity(TEXT_BYTES)
                .weigher(|key: &String, text: &Arc<str>| u32::try_from(key.len() + text.len()).unwrap_or(u32::MAX))
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
        }))
    }

    /// A text kept under `namespace:key` by [`Cache::put_text`] on this or another instance.
    pub async fn text(&self, namespace: &str, key: &str) -> Option<String> {
        let name = format!("{namespace}:{key}");
        if let Some(text) = self.0.texts.get(&name) {
            return Some(text.to_string());
        }
        let link = self.0.redis.as_ref()?;
        let mut connection = link.connection()?;
        let redis_key = format!("{}:{name}", self.0.settings.key_prefix);
        match tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("GET").arg(&redis_key).query_async::<Option<String>>(&mut connection),
        )
        .await
        {
            Ok(Ok(found)) => {
                let found = found?;
                self.0.texts.insert(name, Arc::from(found.as_str()));
                Some(found)
            }
            Ok(Err(error)) => {
                redis_degraded(link, "get", Some(&error));
                None
            }
            Err(_) => {
                redis_degraded(link, "get", None);
                None
            }
        }
    }

    /// Keeps `text` under `namespace:key` for `ttl` (in Redis; in process while it is used).
    pub async fn put_text(&self, namespace: &str, key: &str, text: &str, ttl: Duration) {
        let name = format!("{namespace}:{key}");
        self.0.texts.insert(name.clone(), Arc::from(text));
        let Some(link) = &self.0.redis else { return };
        let Some(mut connection) = link.connection() else { return };
        let redis_key = format!("{}:{name}", self.0.settings.key_prefix);
        let mut command = redis::cmd("SET");
        command.arg(&redis_key).arg(text).arg("EX").arg(ttl.as_secs().max(1));
        match tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => redis_degraded(link, "set", Some(&error)),
            Err(_) => redis_degraded(link, "set", None),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.0.settings.enabled
    }

    /// What the in-process level knows of `(kind, id)` right now, without waiting on anything:
    /// `Some(Some(value))` cached, `Some(None)` cached as missing, `None` not known here (ask
    /// [`Cache::load_many`]; also for what the running mutation changed, see [`changed_here`]).
    /// Lets a hot read skip the DataLoader's batching delay.
    pub fn peek<T: Clone + Send + Sync + 'static>(&self, kind: Kind, id: Uuid) -> Option<Option<T>> {
        if !self.is_enabled() || changed_here(kind, id) {
            return None;
        }
        read(kind, id);
        let entry = self.0.local.get(&(kind, id))?;
        metrics::counter!("cache_hits_total", "level" => "local").increment(1);
        Some(entry.value.and_then(|v| v.downcast::<T>().ok()).map(|value| (*value).clone()))
    }

    /// The value of `kind` for `id`, as [`Cache::load_many`] does for many: `fetch` runs on a miss
    /// (`Ok(None)`: the id does not exist, and is remembered so).
    pub async fn load_one<T, F, Fut, E>(&self, kind: Kind, id: Uuid, fetch: F) -> Result<Option<T>, E>
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let found = self
            .load_many(kind, &[id], |_| async {
                Ok(fetch().await?.map(|value| HashMap::from([(id, value)])).unwrap_or_default())
            })
            .await?;
        Ok(found.into_values().next())
    }

    /// Values of `kind` for `ids`: from the cache where present, the rest from `fetch` (with the
    /// ids no other load has in flight), which the cache then keeps. An id `fetch` does not return
    /// is cached as missing. `T` must be the one type stored for `kind` (see `ENCODERS`). Inside a
    /// mutation, ids it changed ([`changed_here`]) are fetched and not stored.
    pub async fn load_many<T, F, Fut, E>(&self, kind: Kind, ids: &[Uuid], fetch: F) -> Result<HashMap<Uuid, T>, E>
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Vec<Uuid>) -> Fut,
        Fut: Future<Output = Result<HashMap<Uuid, T>, E>>,
    {
        if !self.is_enabled() || ids.iter().any(|id| changed_here(kind, *id)) {
            return fetch(ids.to_vec()).await;
        }
        for id in ids {
            read(kind, *id);
        }
        let mut found: HashMap<Uuid, T> = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.0.local.get(&(kind, *id)) {
                Some(entry) => {
                    if let Some(value) = entry.value.and_then(|v| v.downcast::<T>().ok()) {
                        found.insert(*id, (*value).clone());
                    }
                }
                None => missing.push(*id),
            }
        }
        metrics::counter!("cache_hits_total", "level" => "local").increment((ids.len() - missing.len()) as u64);
        if missing.is_empty() {
            return Ok(found);
        }
        let missing = self.read_redis(kind, missing, &mut found).await;
        if missing.is_empty() {
            return Ok(found);
        }
        metrics::counter!("cache_misses_total").increment(missing.len() as u64);

        // Single flight: take the keys nobody is loading; wait for the others, unless their load
        // began before an invalidation (it may have read what has changed since): those are
        // loaded again.
        let (sender, receiver) = watch::channel(None);
        let epoch = self.0.epoch.load(Ordering::SeqCst);
        let mut mine = Vec::new();
        let mut waits = Vec::new();
        let mut retry = Vec::new();
        if let Ok(mut in_flight) = self.0.in_flight.lock() {
            for id in missing {
                match in_flight.get(&(kind, id)) {
                    Some((flight, began)) if *began == epoch => waits.push((id, flight.clone())),
                    Some(_) => retry.push(id),
                    None => {
                        in_flight.insert((kind, id), (receiver.clone(), epoch));
                        mine.push(id);
                    }
                }
            }
        } else {
            mine = missing;
        }
        let mut outcome = Ok(());
        if !mine.is_empty() {
            let fetched = fetch(mine.clone()).await;
            let mut entries = HashMap::with_capacity(mine.len());
            match fetched {
                Ok(mut rows) => {
                    for id in &mine {
                        let value = rows.remove(id);
                        if let Some(value) = &value {
                            found.insert(*id, value.clone());
                        }
                        entries.insert(*id, self.entry(value));
                    }
                    self.fill(kind, &entries, epoch).await;
                }
                Err(error) => outcome = Err(error),
            }
            if let Ok(mut in_flight) = self.0.in_flight.lock() {
                for id in &mine {
                    in_flight.remove(&(kind, *id));
                }
            }
            let _ = sender.send(Some(Arc::new(entries)));
        }
        outcome?;
        for (id, mut flight) in waits {
            let done = flight.wait_for(|result| result.is_some()).await.ok().and_then(|r| r.clone());
            match done.as_ref().and_then(|entries| entries.get(&id)) {
                Some(entry) => {
                    metrics::counter!("cache_single_flight_waits_total").increment(1);
                    if let Some(value) = entry.value.clone().and_then(|v| v.downcast::<T>().ok()) {
                        found.insert(id, (*value).clone());
                    }
                }
                // The load we waited for failed: load it ourselves.
                None => retry.push(id),
            }
        }
        if !retry.is_empty() {
            found.extend(fetch(retry).await?);
        }
        Ok(found)
    }

    fn entry<T: Send + Sync + 'static>(&self, value: Option<T>) -> Entry {
        let ttl = match value {
            Some(_) => jittered(self.local_ttl()),
            None => MISS_TTL.min(self.local_ttl()),
        };
        Entry { value: value.map(|v| Arc::new(v) as Value), ttl }
    }

    fn local_ttl(&self) -> Duration {
        local_ttl(&self.0.settings, self.0.redis.is_some())
    }

    fn key(&self, (kind, id): Key) -> String {
        format!("{}:{}:{}", self.0.settings.key_prefix, kind.name(), id)
    }

    /// Looks `ids` up in Redis; what it finds goes into `found` and the first level. Returns the
    /// ids still missing.
    async fn read_redis<T>(&self, kind: Kind, ids: Vec<Uuid>, found: &mut HashMap<Uuid, T>) -> Vec<Uuid>
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let Some(link) = &self.0.redis else { return ids };
        let Some(mut connection) = link.connection() else { return ids };
        let keys: Vec<String> = ids.iter().map(|id| self.key((kind, *id))).collect();
        let epoch = self.0.epoch.load(Ordering::SeqCst);
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<String>>>(&mut connection),
        )
        .await;
        let values = match reply {
            Ok(Ok(values)) if values.len() == ids.len() => values,
            Ok(Err(error)) => {
                redis_degraded(link, "get", Some(&error));
                return ids;
            }
            Ok(Ok(_)) => return ids,
            Err(_) => {
                redis_degraded(link, "get", None);
                return ids;
            }
        };
        let mut missing = Vec::new();
        let mut hits = 0;
        for (id, value) in ids.into_iter().zip(values) {
            let decoded =
                value.map(|raw| if raw.is_empty() { Ok(None) } else { serde_json::from_str::<T>(&raw).map(Some) });
            match decoded {
                Some(Ok(value)) => {
                    hits += 1;
                    if let Some(value) = &value {
                        found.insert(id, value.clone());
                    }
                    if self.0.epoch.load(Ordering::SeqCst) == epoch {
                        self.0.local.insert((kind, id), self.entry(value));
                    }
                }
                Some(Err(_)) | None => missing.push(id),
            }
        }
        metrics::counter!("cache_hits_total", "level" => "redis").increment(hits);
        missing
    }

    /// Stores freshly loaded entries unless an invalidation happened since the load began (the
    /// load may have read the row before the change committed).
    async fn fill(&self, kind: Kind, entries: &HashMap<Uuid, Entry>, epoch: u64) {
        if self.0.epoch.load(Ordering::SeqCst) != epoch {
            metrics::counter!("cache_fills_skipped_total").increment(1);
            return;
        }
        for (id, entry) in entries {
            self.0.local.insert((kind, *id), entry.clone());
        }
        let Some(link) = &self.0.redis else { return };
        let Some(mut connection) = link.connection() else { return };
        let mut pipe = redis::pipe();
        for (id, entry) in entries {
            let (payload, ttl) = match &entry.value {
                Some(_) => match self.encode(kind, *id, entries) {
                    Some(json) => (json, jittered(self.0.settings.ttl)),
                    None => continue,
                },
                None => (String::new(), MISS_TTL),
            };
            pipe.cmd("SET").arg(self.key((kind, *id))).arg(payload).arg("EX").arg(ttl.as_secs().max(1)).ignore();
        }
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => redis_degraded(link, "set", Some(&error)),
            Err(_) => redis_degraded(link, "set", None),
        }
    }

    fn encode(&self, kind: Kind, id: Uuid, entries: &HashMap<Uuid, Entry>) -> Option<String> {
        let value = entries.get(&id)?.value.as_ref()?;
        let encoder = ENCODERS.iter().find(|(k, _)| *k == kind).map(|(_, encode)| encode)?;
        encoder(value.as_ref())
    }

    /// Drops `keys` from both levels (this instance). The event bus carries them to the others.
    pub async fn invalidate(&self, keys: &[Key]) {
        if keys.is_empty() || !self.is_enabled() {
            return;
        }
        self.invalidate_local(keys);
        let Some(link) = &self.0.redis else { return };
        let names: Vec<String> = keys.iter().map(|key| self.key(*key)).collect();
        let Some(mut connection) = link.connection() else {
            self.remember_deletes(names);
            return;
        };
        match tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("DEL").arg(&names).query_async::<i64>(&mut connection))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                redis_degraded(link, "del", Some(&error));
                self.remember_deletes(names);
            }
            Err(_) => {
                redis_degraded(link, "del", None);
                self.remember_deletes(names);
            }
        }
    }

    /// Drops `keys` from the first level only (a change another instance made), and every
    /// response that read one of them.
    pub fn invalidate_local(&self, keys: &[Key]) {
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            self.0.local.invalidate(key);
        }
        self.0.responses.invalidate(keys);
        metrics::counter!("cache_invalidations_total").increment(keys.len() as u64);
    }

    /// The response cache's key of a request: `None` when the cache or its response level is off.
    /// `parts` must name everything the response depends on besides what it reads (viewer,
    /// operation, query text, variables).
    pub fn response_key(&self, parts: &[&str]) -> Option<ResponseKey> {
        if !self.is_enabled() || !self.0.settings.responses {
            return None;
        }
        let text = parts.join("\u{1f}");
        Some(ResponseKey {
            id: self.0.responses.hasher.hash_one(&text),
            text,
            epoch: self.0.epoch.load(Ordering::SeqCst),
        })
    }

    /// The stored response of `key`, if any.
    pub fn response(&self, key: &ResponseKey) -> Option<Arc<StoredResponse>> {
        let stored = self.0.responses.entries.get(&key.id).filter(|stored| stored.key == key.text);
        let outcome = if stored.is_some() { "hit" } else { "miss" };
        metrics::counter!("cache_responses_total", "outcome" => outcome).increment(1);
        stored
    }

    /// Keeps the response of a query that [`recording`] saw read only through this facade, unless
    /// anything was invalidated since `key` was made (it may have read a value that changed).
    pub fn store_response(&self, key: ResponseKey, body: Bytes, reads: Reads, cost: u64) {
        let Reads { mut keys, uncacheable, query } = reads;
        let Some(operation) = query else { return };
        if uncacheable || body.len() > MAX_RESPONSE_BYTES {
            return;
        }
        let epoch = key.epoch;
        if self.0.epoch.load(Ordering::SeqCst) != epoch {
            metrics::counter!("cache_fills_skipped_total").increment(1);
            return;
        }
        keys.sort_by_key(|(kind, id)| (kind.name(), *id));
        keys.dedup();
        let responses = &self.0.responses;
        let serial = responses.serial.fetch_add(1, Ordering::Relaxed);
        // Indexed before it is visible, and checked against the epoch after: an invalidation
        // either finds it in the index or is seen here.
        if let Ok(mut index) = responses.index.lock() {
            for tag in &keys {
                index.entry(*tag).or_default().insert(serial, key.id);
            }
        } else {
            return;
        }
        let stored = StoredResponse { key: key.text, body, operation, cost, tags: keys, serial };
        responses.entries.insert(key.id, Arc::new(stored));
        if self.0.epoch.load(Ordering::SeqCst) != epoch {
            responses.entries.invalidate(&key.id);
        }
    }
}

/// Responses bigger than this are not kept.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Which responses read a key: key -> (serial of a stored response -> its id). By serial, not id:
/// concurrent requests for one id each store (the last one stays), and each one's entries leave
/// with it alone.
type ResponseIndex = Arc<Mutex<HashMap<Key, HashMap<u64, u64>>>>;

/// Serialized responses of read-only queries, and which keys each one read.
struct Responses {
    entries: moka::sync::Cache<u64, Arc<StoredResponse>>,
    index: ResponseIndex,
    serial: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

impl Responses {
    fn new(bytes: u64, ttl: Duration) -> Self {
        let index: ResponseIndex = Arc::default();
        let listener_index = index.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(bytes.max(1))
            .weigher(|_, stored: &Arc<StoredResponse>| {
                u32::try_from(stored.body.len() + stored.key.len() + 64 * (stored.tags.len() + 1)).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            // A response leaving (dropped, replaced, expired, evicted) leaves the index.
            .eviction_listener(move |_id: Arc<u64>, stored: Arc<StoredResponse>, _cause| {
                let Ok(mut index) = listener_index.lock() else { return };
                for tag in &stored.tags {
                    if let Some(serials) = index.get_mut(tag) {
                        serials.remove(&stored.serial);
                        if serials.is_empty() {
                            index.remove(tag);
                        }
                    }
                }
            })
            .build();
        Self { entries, index, serial: AtomicU64::new(0), hasher: Default::default() }
    }

    fn invalidate(&self, keys: &[Key]) {
        let ids: Vec<u64> = match self.index.lock() {
            Ok(mut index) => {
                keys.iter().filter_map(|key| index.remove(key)).flat_map(|ids| ids.into_values()).collect()
            }
            Err(_) => return,
        };
        for id in ids {
            self.entries.invalidate(&id);
        }
    }

    fn clear(&self) {
        self.entries.invalidate_all();
    }
}

/// A request as the response cache knows it (see [`Cache::response_key`]).
pub struct ResponseKey {
    id: u64,
    text: String,
    /// The invalidation epoch when the request began.
    epoch: u64,
}

/// A kept response: the body as sent, the operation label its metrics count under, and what it
/// cost when it ran (each answer from it is charged that again).
pub struct StoredResponse {
    key: String,
    pub body: Bytes,
    pub operation: String,
    pub cost: u64,
    tags: Vec<Key>,
    serial: u64,
}

/// How long the in-process level keeps what it holds (entries and responses).
fn local_ttl(settings: &CacheSettings, with_redis: bool) -> Duration {
    if with_redis {
        LOCAL_TTL_WITH_REDIS.min(settings.ttl)
    } else {
        settings.ttl
    }
}

fn jittered(ttl: Duration) -> Duration {
    let spread = ttl.as_millis() as u64 / 6;
    ttl + Duration::from_millis(if spread == 0 { 0 } else { rand::thread_rng().gen_range(0..spread) })
}

fn redis_degraded(link: &RedisLink, operation: &'static str, error: Option<&redis::RedisError>) {
    metrics::counter!("cache_redis_errors_total", "operation" => operation).increment(1);
    tracing::debug!(operation, error = ?error.map(|e| e.to_string()), "Redis cache call failed; using the database");
    link.failed(error);
}

type Encoder = fn(&(dyn Any + Send + Sync)) -> Option<String>;

fn encoder<T: Serialize + 'static>(value: &(dyn Any + Send + Sync)) -> Option<String> {
    serde_json::to_string(value.downcast_ref::<T>()?).ok()
}

/// The one type stored under each kind (the loaders in `graphql::loaders` store exactly these).
const ENCODERS: &[(Kind, Encoder)] = &[
    (Kind::Course, encoder::<entity::courses::Model>),
    (Kind::CourseContents, encoder::<Vec<entity::course_contents::Model>>),
    (Kind::CourseStats, encoder::<entity::course_stats::Model>),
    (Kind::Identity, encoder::<entity::user_identities::Model>),
    (Kind::Profile, encoder::<Vec<entity::user_profiles::Model>>),
    (Kind::MentorStats, encoder::<entity::mentor_stats::Model>),
    (Kind::Circle, encoder::<entity::circles::Model>),
    (Kind::Post, encoder::<entity::posts::Model>),
    (Kind::CourseReviews, encoder::<Page<entity::reviews::Model>>),
    (Kind::MentorReviews, encoder::<Page<entity::reviews::Model>>),
    (Kind::CourseListing, encoder::<Page<Uuid>>),
    (Kind::MentorCourses, encoder::<Vec<Uuid>>),
    (Kind::CircleFeed, encoder::<Page<Uuid>>),
    (Kind::PostLike, encoder::<entity::post_likes::Model>),
    (Kind::Notifications, encoder::<Page<entity::notifications::Model>>),
    (Kind::UnreadNotifications, encoder::<u64>),
];

/// What a set of changes makes stale: the marks themselves, plus what is derived from them. A
/// course (its row, enrollments or reviews) feeds its `course_stats`, its mentor's `mentor_stats`
/// and course list, and every cached course listing; an identity feeds its `mentor_stats`; a
/// user's notifications feed their unread count.
pub async fn dependents(db: &sea_orm::DatabaseConnection, changed: Vec<Key>) -> Vec<Key> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let mut keys = changed.clone();
    let courses: Vec<Uuid> = changed.iter().filter(|(kind, _)| *kind == Kind::Course).map(|(_, id)| *id).collect();
    for (kind, id) in &changed {
        match kind {
            Kind::Course => keys.push((Kind::CourseStats, *id)),
            Kind::Identity => keys.push((Kind::MentorStats, *id)),
            Kind::Notifications => keys.push((Kind::UnreadNotifications, *id)),
            _ => {}
        }
    }
    if !courses.is_empty() {
        keys.extend((0..COURSE_LISTINGS).map(|order| (Kind::CourseListing, Uuid::from_u128(order))));
    }
    if !courses.is_empty() {
        let mentors = entity::courses::Entity::find()
            .select_only()
            .column(entity::courses::Column::MentorId)
            .filter(entity::courses::Column::Id.is_in(courses))
            .into_tuple::<Uuid>()
            .all(db)
            .await;
        match mentors {
            Ok(mentors) => {
                keys.extend(mentors.into_iter().flat_map(|id| [(Kind::MentorStats, id), (Kind::MentorCourses, id)]))
            }
            // Without the mentor ids the stats entries expire on their own; say so.
            Err(error) => tracing::warn!(error = %error, "cannot resolve mentors of changed courses"),
        }
    }
    keys.sort_by_key(|(kind, id)| (kind.name(), *id));
    keys.dedup();
    keys
}

tokio::task_local! {
    static CHANGED: Mutex<Vec<Key>>;
    static READS: RefCell<Reads>;
}

/// What the request running on this task read, for the response cache.
#[derive(Debug, Default)]
pub struct Reads {
    /// Every cache key it read (hit or miss).
    keys: Vec<Key>,
    /// It read something outside this facade (a statement on its task, an uncached loader) or
    /// had a side effect: its response must not be kept.
    uncacheable: bool,
    /// The operation's metrics label, set when it is a query (only queries are kept).
    query: Option<String>,
}

/// Runs `work` (one GraphQL request), recording what it reads ([`read`], [`uncacheable`],
/// [`query_running`]).
pub async fn recording<T>(work: impl Future<Output = T>) -> (T, Reads) {
    READS
        .scope(RefCell::new(Reads::default()), async {
            let result = work.await;
            (result, READS.with(|reads| reads.take()))
        })
        .await
}

fn read(kind: Kind, id: Uuid) {
    let _ = READS.try_with(|reads| reads.borrow_mut().keys.push((kind, id)));
}

/// The request on this task read something the cache does not know of, or changed something:
/// its response must not be kept. (The database's statement callback calls this for every
/// statement, so only the DataLoader batches, which run on their own tasks, escape it; uncached
/// loaders call it themselves.)
pub fn uncacheable() {
    let _ = READS.try_with(|reads| reads.borrow_mut().uncacheable = true);
}

/// The request on this task is the query labelled `operation`.
pub fn query_running(operation: &str) {
    let _ = READS.try_with(|reads| reads.borrow_mut().query = Some(operation.to_string()));
}

/// Marks an entity the current mutation changed (a no-op outside [`track`], e.g. in the CLI,
/// which has no cache).
pub fn changed(kind: Kind, id: Uuid) {
    let _ = CHANGED.try_with(|changed| {
        if let Ok(mut changed) = changed.lock() {
            changed.push((kind, id));
        }
    });
}

/// Whether the mutation running on this task changed `(kind, id)` or what it is derived from. Its
/// own response (the selection under the mutation field) must read such keys fresh: the cache
/// drops them only once that whole field has resolved.
pub fn changed_here(kind: Kind, id: Uuid) -> bool {
    CHANGED
        .try_with(|changed| {
            changed.lock().map(|marks| marks.iter().any(|mark| affects(*mark, (kind, id)))).unwrap_or(true)
        })
        .unwrap_or(false)
}

/// Whether a change to `mark` makes `key` stale (the rules of [`dependents`], without its lookups).
fn affects(mark: Key, key: Key) -> bool {
    mark == key
        || match (mark.0, key.0) {
            (Kind::Course, Kind::CourseStats)
            | (Kind::Identity, Kind::MentorStats)
            | (Kind::Notifications, Kind::UnreadNotifications) => mark.1 == key.1,
            // Which mentor a course belongs to takes a lookup: any of them may be stale.
            (Kind::Course, Kind::CourseListing | Kind::MentorStats | Kind::MentorCourses) => true,
            _ => false,
        }
}

/// Runs `work`, collecting what it marks [`changed`]; returns its result and the marks.
pub async fn track<T>(work: impl Future<Output = T>) -> (T, Vec<Key>) {
    CHANGED
        .scope(Mutex::new(Vec::new()), async {
            let result = work.await;
            let mut keys = CHANGED.with(|c| c.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default());
            keys.sort_by_key(|(kind, id)| (kind.name(), *id));
            keys.dedup();
            (result, keys)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Cache {
        Cache::local(CacheSettings {
            enabled: true,
            ttl: Duration::from_secs(60),
            local_capacity: 100,
            key_prefix: "test".into(),
            responses: true,
            response_bytes: 1 << 20,
        })
    }

    /// Runs a "query" named `text` that reads `tags` (and does whatever `also` does), then offers
    /// its response to the cache.
    async fn run(cache: &Cache, text: &str, tags: &[Key], also: impl FnOnce()) {
        let Some(key) = cache.response_key(&[text]) else { panic!("responses are on") };
        let ((), reads) = recording(async {
            query_running("query:test");
            for (kind, id) in tags {
                read(*kind, *id);
            }
            also();
        })
        .await;
        cache.store_response(key, Bytes::from(text.to_string()), reads, 1);
    }

    fn kept(cache: &Cache, text: &str) -> bool {
        cache.response_key(&[text]).and_then(|key| cache.response(&key)).is_some()
    }

    fn indexed(cache: &Cache) -> usize {
        cache.0.responses.entries.run_pending_tasks();
        cache.0.responses.index.lock().map(|index| index.values().map(HashMap::len).sum()).unwrap_or(usize::MAX)
    }

    #[tokio::test]
    async fn a_response_leaves_with_any_key_it_read_and_takes_its_index_entries_along() {
        let cache = cache();
        let (course, post) = ((Kind::Course, Uuid::new_v4()), (Kind::Post, Uuid::new_v4()));
        run(&cache, "both", &[course, post], || {}).await;
        run(&cache, "course", &[course], || {}).await;
        assert!(kept(&cache, "both") && kept(&cache, "course"));
        assert_eq!(indexed(&cache), 3);

        cache.invalidate_local(&[post]);
        assert!(!kept(&cache, "both"), "dropped with the post it read");
        assert!(kept(&cache, "course"), "the other response did not read the post");
        assert_eq!(indexed(&cache), 1, "the dropped response's course entry left the index too");

        cache.invalidate_local(&[course]);
        assert!(!kept(&cache, "course"));
        assert_eq!(indexed(&cache), 0);
    }

    #[tokio::test]
    async fn a_replaced_response_leaves_the_index_of_the_one_that_stays() {
        let cache = cache();
        let (first, second) = ((Kind::Course, Uuid::new_v4()), (Kind::Course, Uuid::new_v4()));
        run(&cache, "same", &[first], || {}).await;
        run(&cache, "same", &[second], || {}).await;
        assert_eq!(indexed(&cache), 1, "only the response that stays is indexed");
        cache.invalidate_local(&[second]);
        assert!(!kept(&cache, "same"));
        assert_eq!(indexed(&cache), 0);
    }

    #[tokio::test]
    async fn responses_are_not_kept_when_they_read_outside_the_cache_or_raced_a_change() {
        let cache = cache();
        let course = (Kind::Course, Uuid::new_v4());
        run(&cache, "statement", &[course], uncacheable).await;
        assert!(!kept(&cache, "statement"));

        let Some(key) = cache.response_key(&["mutation"]) else { panic!("responses are on") };
        let ((), reads) = recording(async { read(course.0, course.1) }).await;
        cache.store_response(key, Bytes::from_static(b"{}"), reads, 1);
        assert!(!kept(&cache, "mutation"), "only queries are kept");

        let Some(key) = cache.response_key(&["raced"]) else { panic!("responses are on") };
        let ((), reads) = recording(async {
            query_running("query:test");
            read(course.0, course.1);
        })
        .await;
        cache.invalidate_local(&[(Kind::Post, Uuid::new_v4())]);
        cache.store_response(key, Bytes::from_static(b"{}"), reads, 1);
        assert!(!kept(&cache, "raced"), "an invalidation ran while it executed");
        assert_eq!(indexed(&cache), 0);
    }
}
