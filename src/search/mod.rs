//! The one search facade: published courses, active masters and active circles, found as people
//! type them, in Chinese and English.
//!
//! - Backend: an embedded tantivy index (default; under `DATA_DIR/search`, or in RAM with
//!   `SEARCH_INDEX=memory`).
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
mod embedded;
mod fallback;
pub mod outbox;

use crate::error::AppResult;
use analysis::Matcher;
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
    pub batch: u64,
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexLocation {
    Memory,
    Directory(PathBuf),
}

enum Backend {
    Embedded(embedded::Embedded),
}

impl Backend {
    async fn search(&self, request: &Request, matcher: &Matcher) -> anyhow::Result<Results> {
        match self {
            Backend::Embedded(index) => index.search(request, matcher).await,
        }
    }

    async fn apply(&self, collection: Collection, upserts: Vec<Document>, deletes: Vec<Uuid>) -> anyhow::Result<()> {
        match self {
            Backend::Embedded(index) => index.apply(collection, upserts, deletes).await,
        }
    }

    async fn is_empty(&self) -> anyhow::Result<bool> {
        match self {
            Backend::Embedded(index) => index.is_empty().await,
        }
    }

    async fn replace_all(&self, collection: Collection, documents: Vec<Document>) -> anyhow::Result<()> {
        match self {
            Backend::Embedded(index) => index.replace_all(collection, documents).await,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "tantivy",
        }
    }
}

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
    backend: std::sync::OnceLock<Backend>,
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
        Self { inner: Arc::new(Inner { backend, db, settings, ready: AtomicBool::new(false) }) }
    }

    fn backend(&self) -> anyhow::Result<&Backend> {
        self.inner.backend.get().ok_or_else(|| anyhow::anyhow!("the search index is not open"))
    }

    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.get().map(Backend::name).unwrap_or("none")
    }

    /// Releases the index for another process (on shutdown, after the indexer stopped).
    pub async fn close(&self) {
        if let Some(Backend::Embedded(index)) = self.inner.backend.get() {
            index.close().await;
        }
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Answers `request`: from the index, or from the database while the index cannot.
    pub async fn search(&self, request: Request) -> AppResult<Results> {
        let matcher = Matcher::parse(&request.query);
        if matcher.is_empty() && !request.query.trim().is_empty() {
            // Typed, but nothing searchable in it (punctuation, emoji): nothing matches.
            let facets = request.facets.iter().map(|f| (*f, Vec::new())).collect();
            return Ok(Results { hits: Vec::new(), total: 0, facets, degraded: false });
        }
        if let (true, Some(backend)) = (self.is_ready(), self.inner.backend.get()) {
            let started = std::time::Instant::now();
            match backend.search(&request, &matcher).await {
                Ok(results) => {
                    metrics::histogram!("search_duration_seconds", "collection" => request.collection.name())
                        .record(started.elapsed().as_secs_f64());
                    return Ok(results);
                }
                Err(error) => {
                    tracing::warn!(error = %error, backend = self.backend_name(), "search failed; answering from the database")
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
                let location = search.inner.settings.index.clone();
                match tokio::task::spawn_blocking(move || embedded::Embedded::open(&location)).await {
                    Ok(Ok(index)) => {
                        let _ = search.inner.backend.set(Backend::Embedded(index));
                        break;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(error = %format!("{error:#}"), "cannot open the search index; answering from the database meanwhile")
                    }
                    Err(error) => tracing::error!(error = %error, "opening the search index panicked"),
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
        for collection in Collection::ALL {
            let documents = documents::all(&self.inner.db, collection, &|n| progress(collection, n)).await?;
            self.backend()?.replace_all(collection, documents).await?;
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
        let location = settings.index.clone();
        let index =
            tokio::task::spawn_blocking(move || embedded::Embedded::open(&location)).await?.map_err(|error| {
                anyhow::anyhow!(
                    "{error:#}; if a server is running, stop it first (a server also builds a missing index itself)"
                )
            })?;
        let search = Self::new(settings, db);
        let _ = search.inner.backend.set(Backend::Embedded(index));
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
            let found = documents::load(&self.inner.db, collection, ids).await?;
            let kept: std::collections::HashSet<Uuid> = found.iter().map(|d| d.id).collect();
            let deletes: Vec<Uuid> = ids.iter().copied().filter(|id| !kept.contains(id)).collect();
            self.backend()?.apply(collection, found, deletes).await?;
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
