//! The two levels: in-process entries (decoded values) in front of Redis (JSON), read through with
//! single flight, filled unless an invalidation raced the load, invalidated on both.

use super::recording::{changed_here, primed, read};
use super::{Cache, Entry, Key, Kind, Value, LOCAL_TTL_WITH_REDIS, MISS_TTL, REDIS_TIMEOUT};
use crate::domain::pagination::Page;
use crate::redis_link::RedisLink;
use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;
impl Cache {
    /// What the in-process level knows of `(kind, id)` right now, without waiting on anything:
    /// `Some(Some(value))` cached, `Some(None)` cached as missing, `None` not known here (ask
    /// [`Cache::load_many`]; also for what the running mutation changed, see [`changed_here`]).
    /// Lets a hot read skip the DataLoader's batching delay. What the request primed
    /// ([`super::prime`]: rows its page's statement joined) answers first, with the cache on or off.
    pub fn peek<T: Clone + Send + Sync + 'static>(&self, kind: Kind, id: Uuid) -> Option<Option<T>> {
        if changed_here(kind, id) {
            return None;
        }
        if let Some(value) = primed(kind, id) {
            read(kind, id);
            return Some(value);
        }
        if !self.is_enabled() {
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
        let (missing, versions) = self.read_redis(kind, missing, &mut found).await;
        if missing.is_empty() {
            return Ok(found);
        }
        metrics::counter!("cache_misses_total").increment(missing.len() as u64);

        // Single flight: take the keys nobody is loading; wait for the others, unless their load
        // began before an invalidation (it may have read what has changed since): those are
        // loaded again.
        let (sender, receiver) = watch::channel(None);
        let epoch = self.0.epoch.load(Ordering::SeqCst);
        let serial = self.0.flights.fetch_add(1, Ordering::Relaxed);
        let mut mine = Vec::new();
        let mut waits = Vec::new();
        let mut retry = Vec::new();
        if let Ok(mut in_flight) = self.0.in_flight.lock() {
            for id in missing {
                match in_flight.get(&(kind, id)) {
                    Some((flight, began, _)) if *began == epoch => waits.push((id, flight.clone())),
                    Some(_) => retry.push(id),
                    None => {
                        in_flight.insert((kind, id), (receiver.clone(), epoch, serial));
                        mine.push(id);
                    }
                }
            }
        } else {
            mine = missing;
        }
        // However this load ends (done, failed, or its future dropped by a cancelled request), its
        // entries leave the map; waiters of a dropped load see the sender gone and load themselves.
        let claimed = Claimed { cache: self, kind, ids: mine.clone(), serial };
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
                        entries.insert(*id, self.entry(kind, value));
                    }
                    self.fill(kind, &entries, epoch, &versions).await;
                }
                Err(error) => outcome = Err(error),
            }
            drop(claimed);
            let _ = sender.send(Some(Arc::new(entries)));
        } else {
            drop(claimed);
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

    fn entry<T: Send + Sync + 'static>(&self, kind: Kind, value: Option<T>) -> Entry {
        let ttl = match value {
            Some(_) => jittered(kind.ttl(self.local_ttl())),
            None => MISS_TTL.min(kind.ttl(self.local_ttl())),
        };
        Entry { value: value.map(|v| Arc::new(v) as Value), ttl }
    }

    fn local_ttl(&self) -> Duration {
        local_ttl(self.ttl(), self.0.redis.is_some())
    }

    fn key(&self, (kind, id): Key) -> String {
        format!("{}:{}:{}", self.0.settings.key_prefix, kind.name(), id)
    }

    /// Looks `ids` up in Redis; what it finds goes into `found` and the first level. Returns the
    /// ids still missing, and the version Redis holds for each (read in the same round trip, so
    /// the fill can tell whether another instance invalidated the key since; `None` when Redis
    /// was not asked).
    async fn read_redis<T>(
        &self,
        kind: Kind,
        ids: Vec<Uuid>,
        found: &mut HashMap<Uuid, T>,
    ) -> (Vec<Uuid>, Option<Versions>)
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let Some(link) = &self.0.redis else { return (ids, None) };
        let Some(mut connection) = link.connection() else { return (ids, None) };
        let mut keys: Vec<String> = ids.iter().map(|id| self.key((kind, *id))).collect();
        keys.extend(ids.iter().map(|id| version_key(&self.key((kind, *id)))));
        let epoch = self.0.epoch.load(Ordering::SeqCst);
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<String>>>(&mut connection),
        )
        .await;
        let mut values = match reply {
            Ok(Ok(values)) if values.len() == 2 * ids.len() => values,
            Ok(Err(error)) => {
                redis_degraded(link, "get", Some(&error));
                return (ids, None);
            }
            Ok(Ok(_)) => return (ids, None),
            Err(_) => {
                redis_degraded(link, "get", None);
                return (ids, None);
            }
        };
        let versions_read = values.split_off(ids.len());
        let mut versions = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        let mut hits = 0;
        for ((id, value), version) in ids.into_iter().zip(values).zip(versions_read) {
            let decoded =
                value.map(|raw| if raw.is_empty() { Ok(None) } else { serde_json::from_str::<T>(&raw).map(Some) });
            match decoded {
                Some(Ok(value)) => {
                    hits += 1;
                    if let Some(value) = &value {
                        found.insert(id, value.clone());
                    }
                    if self.0.epoch.load(Ordering::SeqCst) == epoch {
                        self.0.local.insert((kind, id), self.entry(kind, value));
                    }
                }
                Some(Err(_)) | None => {
                    versions.insert(id, version.unwrap_or_default());
                    missing.push(id);
                }
            }
        }
        metrics::counter!("cache_hits_total", "level" => "redis").increment(hits);
        (missing, Some(versions))
    }

    /// Stores freshly loaded entries unless an invalidation happened since the load began (the
    /// load may have read the row before the change committed): in process by this instance's
    /// epoch; in Redis by each key's version, compared and set in one script, so an invalidation
    /// on another instance between our read and our write (it bumps the version, then deletes)
    /// cannot be undone by our older value. Without versions (Redis was not asked) Redis is not
    /// written.
    async fn fill(&self, kind: Kind, entries: &HashMap<Uuid, Entry>, epoch: u64, versions: &Option<Versions>) {
        if self.0.epoch.load(Ordering::SeqCst) != epoch {
            metrics::counter!("cache_fills_skipped_total").increment(1);
            return;
        }
        for (id, entry) in entries {
            self.0.local.insert((kind, *id), entry.clone());
        }
        let (Some(link), Some(versions)) = (&self.0.redis, versions) else { return };
        let Some(mut connection) = link.connection() else { return };
        let mut invocation = FILL_SCRIPT.prepare_invoke();
        let mut any = false;
        for (id, entry) in entries {
            let Some(version) = versions.get(id) else { continue };
            let (payload, ttl) = match &entry.value {
                Some(_) => match self.encode(kind, *id, entries) {
                    Some(json) => (json, jittered(kind.ttl(self.ttl()))),
                    None => continue,
                },
                None => (String::new(), kind.ttl(MISS_TTL)),
            };
            let key = self.key((kind, *id));
            invocation.key(version_key(&key)).key(key).arg(version).arg(payload).arg(ttl.as_secs().max(1));
            any = true;
        }
        if !any {
            return;
        }
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(stored)) => {
                let skipped = entries.len() as i64 - stored;
                if skipped > 0 {
                    metrics::counter!("cache_fills_skipped_total").increment(skipped as u64);
                }
            }
            Ok(Err(error)) => redis_degraded(link, "set", Some(&error)),
            Err(_) => redis_degraded(link, "set", None),
        }
    }

    /// Deletes `names` from Redis, bumping each one's version first (see [`Cache::fill`]). `false`
    /// when Redis could not be reached.
    pub(super) async fn delete_versioned(&self, link: &RedisLink, names: &[String]) -> bool {
        let Some(mut connection) = link.connection() else { return false };
        let mut pipe = redis::pipe();
        let keep = (self.ttl().max(MISS_TTL) * 2).as_secs() + 60;
        for name in names {
            let version = version_key(name);
            pipe.cmd("INCR").arg(&version).ignore().cmd("EXPIRE").arg(&version).arg(keep).ignore();
        }
        pipe.cmd("DEL").arg(names).ignore();
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                redis_degraded(link, "del", Some(&error));
                false
            }
            Err(_) => {
                redis_degraded(link, "del", None);
                false
            }
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
        if !self.delete_versioned(link, &names).await {
            self.remember_deletes(names);
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
}

/// How long the in-process level keeps what it holds (entries and responses).
pub(super) fn local_ttl(ttl: Duration, with_redis: bool) -> Duration {
    if with_redis {
        LOCAL_TTL_WITH_REDIS.min(ttl)
    } else {
        ttl
    }
}

pub(super) fn jittered(ttl: Duration) -> Duration {
    let spread = ttl.as_millis() as u64 / 6;
    ttl + Duration::from_millis(if spread == 0 { 0 } else { rand::thread_rng().gen_range(0..spread) })
}

pub(super) fn redis_degraded(link: &RedisLink, operation: &'static str, error: Option<&redis::RedisError>) {
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
    (Kind::ListingGeneration, encoder::<Uuid>),
    (Kind::MentorCourses, encoder::<Vec<Uuid>>),
    (Kind::CircleFeed, encoder::<Page<Uuid>>),
    (Kind::CircleNewest, encoder::<Page<Uuid>>),
    (Kind::Comment, encoder::<entity::comments::Model>),
    (Kind::PostComments, encoder::<Page<Uuid>>),
    (Kind::MemberCircles, encoder::<Vec<Uuid>>),
    (Kind::PostLike, encoder::<entity::post_likes::Model>),
    (Kind::Notifications, encoder::<Page<entity::notifications::Model>>),
    (Kind::UnreadNotifications, encoder::<u64>),
    (Kind::Account, encoder::<String>),
    (Kind::Session, encoder::<bool>),
];

/// The versions Redis held for keys a load is about to fill (`""`: none yet).
pub(super) type Versions = HashMap<Uuid, String>;

/// The version counter of a Redis key: bumped by every invalidation of the key.
fn version_key(key: &str) -> String {
    format!("{key}:version")
}

/// For each (version key, value key) pair: `SET value EX ttl` only while the version is still the
/// one read before the load (ARGV: version, payload, ttl seconds per pair). Returns how many were
/// stored.
static FILL_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local stored = 0
for i = 1, #KEYS, 2 do
  local a = (i - 1) / 2 * 3
  local version = redis.call('GET', KEYS[i]) or ''
  if version == ARGV[a + 1] then
    redis.call('SET', KEYS[i + 1], ARGV[a + 2], 'EX', tonumber(ARGV[a + 3]))
    stored = stored + 1
  end
end
return stored
",
    )
});

/// One load's claim on single-flight entries; removes them (only its own) when dropped.
struct Claimed<'a> {
    cache: &'a Cache,
    kind: Kind,
    ids: Vec<Uuid>,
    serial: u64,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        if let Ok(mut in_flight) = self.cache.0.in_flight.lock() {
            for id in &self.ids {
                if in_flight.get(&(self.kind, *id)).is_some_and(|(_, _, serial)| *serial == self.serial) {
                    in_flight.remove(&(self.kind, *id));
                }
            }
        }
    }
}
