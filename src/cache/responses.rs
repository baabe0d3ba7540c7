//! The whole-response level: serialized responses of read-only queries, each tagged with the keys
//! it read, dropped with any of them.

use super::recording::Reads;
use super::{Cache, Key};
use axum::body::Bytes;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
impl Cache {
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
        // The two counters' handles, per thread: registering them again on every look-up builds
        // and finds their keys each time.
        thread_local! {
            static OUTCOMES: [metrics::Counter; 2] = [
                metrics::counter!("cache_responses_total", "outcome" => "hit"),
                metrics::counter!("cache_responses_total", "outcome" => "miss"),
            ];
        }
        OUTCOMES.with(|outcomes| outcomes[usize::from(stored.is_none())].increment(1));
        stored
    }

    /// Keeps the response of a query that [`recording`] saw read only through this facade, unless
    /// anything was invalidated since `key` was made (it may have read a value that changed).
    pub fn store_response(&self, key: ResponseKey, body: Bytes, reads: Reads, cost: u64) {
        let Reads { mut keys, uncacheable, query, views } = reads;
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
        let stored = StoredResponse { key: key.text, body, operation, cost, views, tags: keys, serial };
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
pub(super) struct Responses {
    pub(super) entries: moka::sync::Cache<u64, Arc<StoredResponse>>,
    pub(super) index: ResponseIndex,
    serial: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

impl Responses {
    pub(super) fn new(bytes: u64, ttl: Duration) -> Self {
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

    pub(super) fn invalidate(&self, keys: &[Key]) {
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

    pub(super) fn clear(&self) {
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

/// A kept response: the body as sent, the operation label its metrics count under, what it
/// cost when it ran (each answer from it is charged that again) and the post views it counted
/// (each answer counts them again).
pub struct StoredResponse {
    key: String,
    pub body: Bytes,
    pub operation: String,
    pub cost: u64,
    pub views: Vec<Uuid>,
    tags: Vec<Key>,
    serial: u64,
}
