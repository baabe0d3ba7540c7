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
//! - Writes: the write helpers (`domain::write`) mark what each written row feeds, by the table in
//!   [`rules::Feeds`] ([`changed`]); when the mutation field finishes the
//!   marks are dropped from both levels before the response is written, and the other instances
//!   drop their first-level copies through the event bus. A fill that raced a change is not stored
//!   (an epoch counter; see [`Cache::fill`]), so a reader never reads a write back stale.
//! - Responses: a read-only query whose every read came through this facade is kept as its
//!   serialized response, keyed by viewer, operation, query text and variables, and tagged with the
//!   keys it read ([`recording`], [`Cache::store_response`]). Dropping any of those keys drops the
//!   response; a query that ran a statement, used an uncached loader or had a side effect is never
//!   kept ([`uncacheable`]).

//!
//! One file per part: this one holds the facade, its settings and keys, and the Redis link's
//! comings and goings; `levels` the two levels and single flight; `responses` the whole-response
//! level; `recording` what the running request read and changed (task-locals); `rules` which
//! changes make which entries stale.

mod levels;
mod recording;
mod responses;
pub mod rules;
#[cfg(test)]
mod tests;

pub use recording::{
    changed, changed_here, forget_primed, prime, query_running, recording, take_marks, track, uncacheable, viewed,
    Marks, Reads,
};
pub use responses::{ResponseKey, StoredResponse};
pub use rules::dependents;

use crate::redis_link::RedisLink;
use levels::{local_ttl, redis_degraded};
use responses::Responses;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{HashMap, HashSet};
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
    /// The first page of published courses in one order (ids only), by [`course_listing`]; and
    /// its later pages by [`later_page`] of the listing's [`Kind::ListingGeneration`]
    CourseListing,
    /// A listing's generation (a random id), by the listing's key id: dropped with the listing,
    /// so the later pages kept under the old one are never read again (they age out)
    ListingGeneration,
    /// Ids of a master's newest published courses, by identity id
    MentorCourses,
    /// A circle's first page of active posts, pinned first then newest (ids only), by circle id
    CircleFeed,
    /// A circle's first page of active posts, newest first (ids only), by circle id: a viewer's
    /// feed is merged from these
    CircleNewest,
    /// `comments` row by id
    Comment,
    /// A post's first page of comments in thread order, hidden ones left out (ids only), by post id
    PostComments,
    /// The circles a user is an active member of (ids), by user id: with each circle's
    /// [`Kind::CircleNewest`] it makes the user's feed
    MemberCircles,
    /// A user's like of a post, by [`pair_id`] of (user, post); cached as missing when not liked
    PostLike,
    /// A user's first page of notifications, by user id
    Notifications,
    /// How many of a user's notifications are unread, by user id
    UnreadNotifications,
    /// A user's status (`active`, `inactive`, `banned`), by user id: checked on every signed-in
    /// request, so a ban refuses the next one
    Account,
    /// Whether a session (refresh-token family) is live, by family id: checked on every request
    /// whose token names it, so a logout, a revocation or a password change refuses the next one
    Session,
}

/// The longest a standing check (status, session) is kept: a change made outside the API (a ban
/// written in SQL) holds for at most this long; the API's own changes drop the entry at once.
const STANDING_TTL: Duration = Duration::from_secs(30);

impl Kind {
    /// This kind's TTL when the configured one is `ttl`.
    fn ttl(self, ttl: Duration) -> Duration {
        match self {
            Kind::Account | Kind::Session => ttl.min(STANDING_TTL),
            _ => ttl,
        }
    }

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
            Kind::ListingGeneration => "listing-generation",
            Kind::MentorCourses => "mentor-courses",
            Kind::CircleFeed => "circle-feed",
            Kind::CircleNewest => "circle-newest",
            Kind::Comment => "comment",
            Kind::PostComments => "post-comments",
            Kind::MemberCircles => "member-circles",
            Kind::PostLike => "post-like",
            Kind::Notifications => "notifications",
            Kind::UnreadNotifications => "unread-notifications",
            Kind::Account => "account",
            Kind::Session => "session",
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

/// The key of a list's generation, for the lists whose later pages are kept ([`later_page`]):
/// whatever drops the list drops its generation too ([`rules::dependents`]).
pub fn generation_of((kind, id): Key) -> Option<Key> {
    (kind == Kind::CourseListing && u128::from_be_bytes(*id.as_bytes()) < COURSE_LISTINGS)
        .then_some((Kind::ListingGeneration, id))
}

/// The key id of a later page of a list in one generation: the page after `cursor` (as
/// encoded), `size` long.
pub fn later_page(generation: Uuid, cursor: &str, size: u64) -> Uuid {
    Uuid::new_v5(&generation, format!("{size}\u{1f}{cursor}").as_bytes())
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
    /// The entity TTL in force (`settings.ttl` at start; the `cache.ttl_secs` system config).
    ttl_ms: AtomicU64,
    local: moka::sync::Cache<Key, Entry>,
    redis: Option<RedisLink>,
    /// Redis keys whose DEL could not reach Redis (it was down): deleted when it is back, so a
    /// change made during the outage cannot come back from Redis. Past [`PENDING_DELETES`] keys
    /// the whole prefix is cleared instead.
    pending_deletes: Mutex<(HashSet<String>, bool)>,
    /// Bumped by every invalidation; a fill that started before a bump is not stored.
    epoch: AtomicU64,
    /// Loads in flight, with the epoch each began at.
    /// Loads in flight: what their waiters watch, the epoch each began at, and the serial of the
    /// load that claimed it (its guard removes only its own entries).
    in_flight: Mutex<HashMap<Key, (Flight, u64, u64)>>,
    flights: AtomicU64,
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
                names.extend(found.into_iter().filter(|name| !name.ends_with(":version")));
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        for chunk in names.chunks(1000) {
            if !self.delete_versioned(link, chunk).await {
                self.remember_deletes(chunk.to_vec());
                return;
            }
        }
        tracing::info!(deleted = names.len(), "cache: Redis is back; in-process level dropped, missed deletes sent");
    }

    pub(super) fn remember_deletes(&self, names: Vec<String>) {
        if let Ok(mut pending) = self.0.pending_deletes.lock() {
            if pending.0.len() + names.len() > PENDING_DELETES {
                pending.1 = true;
                pending.0.clear();
            } else if !pending.1 {
                pending.0.extend(names);
            }
        }
    }

    /// The base TTL of a found entity from now on (entries already kept keep theirs; whole
    /// responses keep the TTL they started with).
    pub fn set_ttl(&self, ttl: Duration) {
        self.0.ttl_ms.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.0.ttl_ms.load(Ordering::Relaxed))
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
        let responses = Responses::new(settings.response_bytes, local_ttl(settings.ttl, redis.is_some()));
        Self(Arc::new(Inner {
            ttl_ms: AtomicU64::new(settings.ttl.as_millis() as u64),
            settings,
            local,
            redis,
            pending_deletes: Mutex::default(),
            epoch: AtomicU64::new(0),
            in_flight: Mutex::default(),
            flights: AtomicU64::new(0),
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
}
