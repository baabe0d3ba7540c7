//! The one search facade: published courses, active masters and active circles, found as people
//! type them, in Chinese and English.
//!
//! - Backend ([`Backend`], one trait): an embedded tantivy index (default; under
//!   `DATA_DIR/search`, or in RAM with `SEARCH_INDEX=memory`), or Elasticsearch 8 when
//!   `ELASTICSEARCH_URL` is set ([`elasticsearch`]: versioned indices behind an alias).
//! - Analysis happens here, not in the backend ([`analysis`]): words, Chinese segmentation, pinyin,
//!   typo and prefix rules, highlights. A backend receives pre-analysed terms and the query as
//!   words to match, so every backend matches the same way.
//! - Sync: the write helpers (`domain::write`) put a row in `search_outbox` in the same
//!   transaction as every change a document depends on ([`outbox`]); the indexer drains it in
//!   batches, with retries, so a change committed before a crash is indexed after the restart.
//! - Degraded: while the index is being built or when the backend fails, queries are answered by
//!   a plain database search ([`fallback`]) and say so (`degraded`), never with an error.

pub mod analysis;
pub mod documents;
mod elasticsearch;
mod embedded;
mod fallback;
pub mod outbox;

use crate::error::AppResult;
use analysis::Matcher;
pub use elasticsearch::ElasticSettings;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// What is searched: one index each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Collection {
    Courses,
    Mentors,
    Circles,
}

impl Collection {
    pub const ALL: [Collection; 3] = [Collection::Courses, Collection::Mentors, Collection::Circles];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Courses => "courses",
            Collection::Mentors => "mentors",
            Collection::Circles => "circles",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The fields of its documents (the one table both the schema and the queries come from).
    pub fn fields(self) -> &'static [Field] {
        use FieldKind::*;
        match self {
            Collection::Courses => &[
                Field { name: "title", kind: Text { boost: 4.0 } },
                Field { name: "tags_text", kind: Text { boost: 2.0 } },
                Field { name: "mentor", kind: Text { boost: 1.5 } },
                Field { name: "body", kind: Text { boost: 1.0 } },
                Field { name: "difficulty", kind: Keyword },
                Field { name: "domain", kind: Keyword },
                Field { name: "tags", kind: Keyword },
                Field { name: "price", kind: Number },
                Field { name: "rating", kind: Number },
                Field { name: "reviews", kind: Number },
                Field { name: "students", kind: Number },
                Field { name: "created", kind: Number },
            ],
            Collection::Mentors => &[
                Field { name: "name", kind: Text { boost: 4.0 } },
                Field { name: "skills_text", kind: Text { boost: 2.0 } },
                Field { name: "bio", kind: Text { boost: 1.0 } },
                Field { name: "domain", kind: Keyword },
                Field { name: "skills", kind: Keyword },
                Field { name: "location", kind: Keyword },
                Field { name: "rate", kind: Number },
                Field { name: "experience", kind: Number },
                Field { name: "rating", kind: Number },
                Field { name: "reviews", kind: Number },
                Field { name: "students", kind: Number },
                Field { name: "created", kind: Number },
            ],
            Collection::Circles => &[
                Field { name: "name", kind: Text { boost: 4.0 } },
                Field { name: "tags_text", kind: Text { boost: 2.0 } },
                Field { name: "description", kind: Text { boost: 1.0 } },
                Field { name: "domain", kind: Keyword },
                Field { name: "tags", kind: Keyword },
                Field { name: "members", kind: Number },
                Field { name: "rating", kind: Number },
                Field { name: "created", kind: Number },
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldKind {
    /// Analysed text, matched by words; also indexed as pinyin (`{name}_py`) at 0.8 of `boost`.
    Text { boost: f32 },
    /// Exact values (lower-cased), for filters and facets.
    Keyword,
    /// A number, for ranges, sorts and the tie-breaker.
    Number,
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
}

/// Weight of the pinyin form of a text field, relative to the field.
pub const PINYIN_WEIGHT: f32 = 0.8;

/// One document as the backends receive it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub id: Uuid,
    /// Original text by field (analysed by the backend with [`analysis::terms`] and
    /// [`analysis::pinyin_terms`]).
    pub text: Vec<(&'static str, String)>,
    pub keywords: Vec<(&'static str, Vec<String>)>,
    pub numbers: Vec<(&'static str, f64)>,
}

impl Document {
    pub fn number(&self, field: &str) -> f64 {
        self.numbers.iter().find(|(name, _)| *name == field).map(|(_, v)| *v).unwrap_or(0.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// The keyword field holds one of these values.
    AnyOf(&'static str, Vec<String>),
    /// The number field lies in `[min, max]`.
    Range(&'static str, Option<f64>, Option<f64>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Order {
    /// Best match first; rating and popularity break ties.
    Relevance,
    Field {
        field: &'static str,
        descending: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Request {
    pub collection: Collection,
    pub query: String,
    pub filters: Vec<Filter>,
    pub order: Order,
    pub offset: usize,
    pub limit: usize,
    /// Keyword fields to count values of over every match.
    pub facets: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub id: Uuid,
    pub score: f32,
}

#[derive(Clone, Debug, Default)]
pub struct Results {
    pub hits: Vec<Hit>,
    pub total: u64,
    /// Per requested facet: (value, count), most frequent first.
    pub facets: Vec<(&'static str, Vec<(String, u64)>)>,
    /// Answered by the database fallback (index building or backend failing).
    pub degraded: bool,
}

/// Most values a facet lists.
pub const FACET_SIZE: usize = 20;

/// Settings: `SEARCH_INDEX` (`memory`, or a directory; default `DATA_DIR/search`),
/// `SEARCH_BATCH` (outbox rows per indexing batch, default 500), `SEARCH_INDEXER_PAUSED` (tests:
/// leave the outbox undrained).
#[derive(Clone, Debug)]
pub struct SearchSettings {
    pub index: IndexLocation,
    /// Elasticsearch instead of the embedded index.
    pub elasticsearch: Option<ElasticSettings>,
    pub batch: u64,
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexLocation {
    Memory,
    Directory(PathBuf),
}

/// What a search backend does; the facade holds one (tantivy or Elasticsearch), chosen by the
/// settings, and owns everything else (analysis, fallback, sync).
#[async_trait::async_trait]
trait Backend: Send + Sync {
    fn name(&self) -> &'static str;

    async fn search(&self, request: &Request, matcher: &Matcher) -> anyhow::Result<Results>;

    /// Writes `upserts` and removes `deletes`, read from the database at `version` (microseconds
    /// since the epoch; a backend that can keeps the newest read of each document).
    async fn apply(
        &self,
        collection: Collection,
        version: i64,
        upserts: Vec<Document>,
        deletes: Vec<Uuid>,
    ) -> anyhow::Result<()>;

    /// No complete build exists yet.
    async fn is_empty(&self) -> anyhow::Result<bool>;

    /// Replaces a collection's documents with these.
    async fn replace_all(&self, collection: Collection, version: i64, documents: Vec<Document>) -> anyhow::Result<()>;

    /// Writers keep writing while a rebuild runs (Elasticsearch: the rebuild goes to a new index
    /// behind the alias), so a rebuild reads everything once more after its swap.
    fn rebuilds_beside_writers(&self) -> bool;

    /// Releases what another process needs to open the index.
    async fn close(&self);
}

/// Opens the backend the settings choose.
async fn open_backend(settings: &SearchSettings) -> anyhow::Result<Box<dyn Backend>> {
    match &settings.elasticsearch {
        Some(elastic) => Ok(Box::new(elasticsearch::Elastic::open(elastic).await?)),
        None => {
            let location = settings.index.clone();
            let index = tokio::task::spawn_blocking(move || embedded::Embedded::open(&location)).await??;
            Ok(Box::new(index))
        }
    }
}

/// Now, as a document version: microseconds since the epoch.
fn version_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// After a backend error, searches go to the database for this long before trying it again.
const BREAKER: Duration = Duration::from_secs(5);

/// Rows were queued in the outbox (indexers also poll, for other instances' writes).
static QUEUED: Notify = Notify::const_new();

pub(crate) fn queued() {
    QUEUED.notify_waiters();
}

/// The facade (cheap to clone).
#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set once the index is open (it may be held by another process for a while).
    backend: std::sync::OnceLock<Box<dyn Backend>>,
    /// Searches skip the backend until then (it just failed).
    failing_until: std::sync::Mutex<Option<std::time::Instant>>,
    db: DatabaseConnection,
    settings: SearchSettings,
    /// The index holds every document (the first build finished).
    ready: AtomicBool,
}

impl Search {
    /// The facade; the index is opened by [`Search::spawn_indexer`] (until then, and while it
    /// cannot be, searches are answered from the database).
    pub fn new(settings: SearchSettings, db: DatabaseConnection) -> Self {
        let backend = std::sync::OnceLock::new();
        let failing_until = std::sync::Mutex::new(None);
        Self { inner: Arc::new(Inner { backend, db, settings, ready: AtomicBool::new(false), failing_until }) }
    }

    fn backend(&self) -> anyhow::Result<&dyn Backend> {
        self.inner.backend.get().map(|b| b.as_ref()).ok_or_else(|| anyhow::anyhow!("the search index is not open"))
    }

    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.get().map(|b| b.name()).unwrap_or("none")
    }

    /// The backend failed a moment ago: leave it alone for a while.
    fn failing(&self) -> bool {
        let mut until = self.inner.failing_until.lock().unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if t > std::time::Instant::now() => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self) {
        let mut until = self.inner.failing_until.lock().unwrap_or_else(|e| e.into_inner());
        *until = Some(std::time::Instant::now() + BREAKER);
    }

    /// Releases the index for another process (on shutdown, after the indexer stopped).
    pub async fn close(&self) {
        if let Some(backend) = self.inner.backend.get() {
            backend.close().await;
        }
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Answers `request`: from the index, or from the database while the index cannot or while
    /// `use_index` is false (the `features.search` switch).
    pub async fn search(&self, request: Request, use_index: bool) -> AppResult<Results> {
        let matcher = Matcher::parse(&request.query);
        if matcher.is_empty() && !request.query.trim().is_empty() {
            // Typed, but nothing searchable in it (punctuation, emoji): nothing matches.
            let facets = request.facets.iter().map(|f| (*f, Vec::new())).collect();
            return Ok(Results { hits: Vec::new(), total: 0, facets, degraded: false });
        }
        if let (true, true, false, Some(backend)) =
            (use_index, self.is_ready(), self.failing(), self.inner.backend.get())
        {
            let started = std::time::Instant::now();
            match backend.search(&request, &matcher).await {
                Ok(results) => {
                    metrics::histogram!("search_duration_seconds", "collection" => request.collection.name())
                        .record(started.elapsed().as_secs_f64());
                    return Ok(results);
                }
                Err(error) => {
                    self.failed();
                    metrics::counter!("search_backend_errors_total", "backend" => backend.name()).increment(1);
                    tracing::warn!(error = %format!("{error:#}"), backend = backend.name(), "search failed; answering from the database for a while")
                }
            }
        }
        metrics::counter!("search_fallbacks_total", "collection" => request.collection.name()).increment(1);
        let mut results = fallback::search(&self.inner.db, &request, &matcher).await?;
        results.degraded = true;
        Ok(results)
    }

    /// Opens the index (retrying while another process holds it), builds it from the database
    /// when it is empty (first start, or `SEARCH_INDEX=memory`), then drains the outbox until
    /// `stopping`.
    pub fn spawn_indexer(&self, mut stopping: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let search = self.clone();
        tokio::spawn(async move {
            analysis::warm_up();
            let mut delay = Duration::from_millis(100);
            loop {
                match open_backend(&search.inner.settings).await {
                    Ok(backend) => {
                        let _ = search.inner.backend.set(backend);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "cannot open the search index; answering from the database meanwhile")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopping.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            let mut delay = Duration::from_millis(100);
            loop {
                match crate::db::background(search.build_if_empty()).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::error!(error = %error, "cannot build the search index; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = stopping.changed() => return,
                        }
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
            search.inner.ready.store(true, Ordering::Release);
            if search.inner.settings.paused {
                let _ = stopping.changed().await;
                return;
            }
            outbox::drain_forever(search, stopping).await;
        })
    }

    async fn build_if_empty(&self) -> anyhow::Result<()> {
        if !self.backend()?.is_empty().await? {
            return Ok(());
        }
        self.rebuild(&|_, _| {}).await
    }

    /// Rebuilds every collection from the database; `progress(collection, documents read)`.
    pub async fn rebuild(&self, progress: &(dyn Fn(Collection, usize) + Sync)) -> anyhow::Result<()> {
        let backend = self.backend()?;
        for collection in Collection::ALL {
            let version = version_now();
            let documents = documents::all(&self.inner.db, collection, &|n| progress(collection, n)).await?;
            let first: std::collections::HashSet<Uuid> = documents.iter().map(|d| d.id).collect();
            backend.replace_all(collection, version, documents).await?;
            if backend.rebuilds_beside_writers() {
                // What changed between this read and the swap was written by the servers to the
                // old index: read it all once more into the new one (versions keep newer writes),
                // and remove what stopped being searchable meanwhile.
                let version = version_now();
                let documents = documents::all(&self.inner.db, collection, &|_| {}).await?;
                let second: std::collections::HashSet<Uuid> = documents.iter().map(|d| d.id).collect();
                let gone: Vec<Uuid> = first.difference(&second).copied().collect();
                for chunk in gone.chunks(1_000) {
                    backend.apply(collection, version, Vec::new(), chunk.to_vec()).await?;
                }
                for chunk in documents.chunks(1_000) {
                    backend.apply(collection, version, chunk.to_vec(), Vec::new()).await?;
                }
            }
        }
        Ok(())
    }

    /// `master-guide reindex`: opens the index now (refused while a server holds it) and rebuilds
    /// it from the database.
    pub async fn reindex(
        settings: SearchSettings,
        db: DatabaseConnection,
        progress: &(dyn Fn(Collection, usize) + Sync),
    ) -> anyhow::Result<()> {
        let backend = open_backend(&settings).await.map_err(|error| match settings.elasticsearch {
            Some(_) => error,
            None => anyhow::anyhow!(
                "{error:#}; if a server is running, stop it first (a server also builds a missing index itself)"
            ),
        })?;
        let search = Self::new(settings, db);
        let _ = search.inner.backend.set(backend);
        // Outbox rows stay: the next server drains them (a document indexed twice is harmless; one
        // dropped because its transaction committed after the rebuild read would not be).
        search.rebuild(progress).await?;
        Ok(())
    }

    /// Re-reads these documents from the database and writes them (or removes those no longer
    /// searchable).
    pub(crate) async fn refresh(&self, collection: Collection, ids: &[Uuid]) -> anyhow::Result<()> {
        // In chunks: a master's courses can be many, and a statement's parameters are bounded.
        for ids in ids.chunks(1_000) {
            let version = version_now();
            let found = documents::load(&self.inner.db, collection, ids).await?;
            let kept: std::collections::HashSet<Uuid> = found.iter().map(|d| d.id).collect();
            let deletes: Vec<Uuid> = ids.iter().copied().filter(|id| !kept.contains(id)).collect();
            self.backend()?.apply(collection, version, found, deletes).await?;
        }
        Ok(())
    }

    fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    fn settings(&self) -> &SearchSettings {
        &self.inner.settings
    }
}

/// Deepest hit a search pages to (past it, refine the query).
pub const MAX_OFFSET: usize = 10_000;
