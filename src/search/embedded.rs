//! The embedded backend: one tantivy index per collection, in RAM or under a directory. Text
//! fields hold the server's pre-analysed terms (split on spaces, nothing else done to them), so
//! matching is decided by `analysis` and the queries built here: each word of a reading must
//! match some text field, exactly (scored BM25, weighted by the field), within its typos, or as a
//! prefix for the last word (both constant-scored below an exact match). Searches and commits run
//! on the blocking pool.

use super::analysis::{self, Matcher, QueryWord};
use super::{
    Backend, Collection, Document, FieldKind, Filter, Hit, IndexLocation, Request, Results, FACET_SIZE, PINYIN_WEIGHT,
};
use anyhow::Context;

mod collect;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllQuery, AutomatonWeight, BitSetDocSet, BooleanQuery, BoostQuery, ConstScoreQuery, ConstScorer, DfaWrapper,
    EnableScoring, Explanation, FuzzyTermQuery, Occur, Query, Scorer, TermQuery, Weight,
};
use tantivy::schema::{
    Field as IndexField, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::tokenizer::{TextAnalyzer, WhitespaceTokenizer};
use tantivy::{
    BitSet, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentOrdinal, SegmentReader,
    TantivyDocument, Term, TERMINATED,
};
use uuid::Uuid;

/// The tokenizer of text fields: the terms are already analysed, separated by spaces.
const TERMS: &str = "terms";
/// Indexing memory of each collection's writer (tantivy's minimum per thread is 15 MB).
const WRITER_BYTES: usize = 24_000_000;
/// Stores opened so far by this process ([`Store::serial`]).
static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The id's two halves, as columns.
const ID_HIGH: &str = "id_high";
const ID_LOW: &str = "id_low";
/// Relevance's tie-breaker column ([`tie_break`]).
const TIE_BREAK: &str = "tie_break";
/// Marks a directory index as fully built (absent: build it from the database).
const BUILT_MARK: &str = "built";

pub struct Embedded {
    stores: HashMap<Collection, Arc<Store>>,
    directory: Option<PathBuf>,
    built: AtomicBool,
}

struct Store {
    reader: IndexReader,
    /// None once closed (the directory's lock is released with it).
    writer: Mutex<Option<IndexWriter>>,
    collection: Collection,
    /// This store's number among every one opened by the process: its readers' generations
    /// count from zero, so kept word matches are keyed by both.
    serial: u64,
    id: IndexField,
    id_halves: (IndexField, IndexField),
    tie_break: IndexField,
    /// Text fields: (field, its pinyin field, boost).
    text: Vec<(&'static str, IndexField, IndexField, f32)>,
    other: HashMap<&'static str, IndexField>,
}

fn schema(collection: Collection) -> Schema {
    let mut builder = Schema::builder();
    // The id as a term (to replace or delete a document), and as two 64-bit columns a page's ids
    // are read from (a string column's dictionary decompresses a block for every look-up).
    builder.add_text_field("id", STRING);
    builder.add_u64_field(ID_HIGH, FAST);
    builder.add_u64_field(ID_LOW, FAST);
    // Relevance's tie-breaker (rating, then popularity), worked out when the document is written.
    builder.add_f64_field(TIE_BREAK, FAST);
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(TERMS).set_index_option(IndexRecordOption::WithFreqs),
    );
    for field in collection.fields() {
        match field.kind {
            FieldKind::Text { .. } => {
                builder.add_text_field(field.name, text.clone());
                builder.add_text_field(&format!("{}_py", field.name), text.clone());
            }
            FieldKind::Keyword => {
                builder.add_text_field(field.name, STRING | FAST);
            }
            FieldKind::Number => {
                builder.add_f64_field(field.name, INDEXED | FAST);
            }
        }
    }
    builder.build()
}

impl Embedded {
    pub fn open(location: &IndexLocation) -> anyhow::Result<Self> {
        let mut stores = HashMap::new();
        let directory = match location {
            IndexLocation::Memory => None,
            IndexLocation::Directory(dir) => Some(dir.clone()),
        };
        for collection in Collection::ALL {
            let schema = schema(collection);
            let index = match &directory {
                None => Index::create_in_ram(schema.clone()),
                Some(dir) => open_dir(&dir.join(collection.name()), schema.clone())?,
            };
            index.tokenizers().register(TERMS, TextAnalyzer::from(WhitespaceTokenizer::default()));
            let writer = index.writer_with_num_threads(1, WRITER_BYTES).context("opening the search index writer")?;
            let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
            let field = |name: &str| schema.get_field(name).with_context(|| format!("search field {name}"));
            let mut text = Vec::new();
            let mut other = HashMap::new();
            for f in collection.fields() {
                match f.kind {
                    FieldKind::Text { boost } => {
                        text.push((f.name, field(f.name)?, field(&format!("{}_py", f.name))?, boost))
                    }
                    _ => {
                        other.insert(f.name, field(f.name)?);
                    }
                }
            }
            let store = Store {
                reader,
                writer: Mutex::new(Some(writer)),
                collection,
                serial: STORES.fetch_add(1, Ordering::Relaxed),
                id: field("id")?,
                id_halves: (field(ID_HIGH)?, field(ID_LOW)?),
                tie_break: field(TIE_BREAK)?,
                text,
                other,
            };
            stores.insert(collection, Arc::new(store));
        }
        let built = directory.as_ref().is_some_and(|dir| dir.join(BUILT_MARK).exists());
        Ok(Self { stores, directory, built: AtomicBool::new(built) })
    }

    fn store(&self, collection: Collection) -> anyhow::Result<Arc<Store>> {
        self.stores.get(&collection).cloned().context("no such collection")
    }

    fn mark_built(&self) -> anyhow::Result<()> {
        if let Some(dir) = &self.directory {
            std::fs::write(dir.join(BUILT_MARK), b"1").context("marking the search index built")?;
        }
        self.built.store(true, Ordering::Release);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "tantivy"
    }

    async fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(!self.built.load(Ordering::Acquire))
    }

    async fn search(&self, request: &Request, matcher: &Matcher) -> anyhow::Result<Results> {
        let store = self.store(request.collection)?;
        let (request, matcher) = (request.clone(), matcher.clone());
        tokio::task::spawn_blocking(move || store.search(&request, &matcher)).await?
    }

    async fn apply(
        &self,
        collection: Collection,
        // One writer per index (its lock), so writes cannot race: no versions needed.
        _: i64,
        upserts: Vec<Document>,
        deletes: Vec<Uuid>,
    ) -> anyhow::Result<()> {
        let store = self.store(collection)?;
        tokio::task::spawn_blocking(move || store.write(false, upserts, deletes)).await?
    }

    async fn replace_all(&self, collection: Collection, _: i64, documents: Vec<Document>) -> anyhow::Result<()> {
        let store = self.store(collection)?;
        tokio::task::spawn_blocking(move || store.write(true, documents, Vec::new())).await??;
        if collection == *Collection::ALL.last().unwrap_or(&collection) {
            self.mark_built()?;
        }
        Ok(())
    }

    /// Drops the writers (and with them the directory locks); searches keep working.
    async fn close(&self) {
        let stores: Vec<Arc<Store>> = self.stores.values().cloned().collect();
        let _ = tokio::task::spawn_blocking(move || {
            for store in stores {
                if let Ok(mut writer) = store.writer.lock() {
                    drop(writer.take());
                }
            }
        })
        .await;
    }

    fn rebuilds_beside_writers(&self) -> bool {
        false
    }
}

/// Opens (or creates) a directory index; one written by another schema is started afresh (the
/// server then builds it from the database).
fn open_dir(path: &std::path::Path, schema: Schema) -> anyhow::Result<Index> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    match Index::open_or_create(MmapDirectory::open(path)?, schema.clone()) {
        Ok(index) => Ok(index),
        Err(tantivy::TantivyError::SchemaError(message)) => {
            tracing::warn!(path = %path.display(), %message, "search index of another schema: rebuilding it");
            std::fs::remove_dir_all(path)?;
            if let Some(parent) = path.parent() {
                let _ = std::fs::remove_file(parent.join(BUILT_MARK));
            }
            std::fs::create_dir_all(path)?;
            Ok(Index::open_or_create(MmapDirectory::open(path)?, schema)?)
        }
        Err(error) => Err(error.into()),
    }
}

impl Store {
    fn to_index(&self, document: &Document) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, document.id.to_string());
        let (high, low) = document.id.as_u64_pair();
        doc.add_u64(self.id_halves.0, high);
        doc.add_u64(self.id_halves.1, low);
        doc.add_f64(self.tie_break, tie_break(self.collection, document));
        for (name, text) in &document.text {
            if let Some((_, field, pinyin, _)) = self.text.iter().find(|(n, ..)| n == name) {
                doc.add_text(*field, analysis::terms(text).join(" "));
                doc.add_text(*pinyin, analysis::pinyin_terms(text).join(" "));
            }
        }
        for (name, values) in &document.keywords {
            if let Some(field) = self.other.get(name) {
                for value in values {
                    doc.add_text(*field, value);
                }
            }
        }
        for (name, value) in &document.numbers {
            if let Some(field) = self.other.get(name) {
                doc.add_f64(*field, *value);
            }
        }
        doc
    }

    fn write(&self, replace: bool, upserts: Vec<Document>, deletes: Vec<Uuid>) -> anyhow::Result<()> {
        let mut guard = self.writer.lock().map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        let writer = guard.as_mut().ok_or_else(|| anyhow::anyhow!("the search index is closed"))?;
        if replace {
            writer.delete_all_documents()?;
        }
        for id in deletes.iter().chain(upserts.iter().map(|d| &d.id)) {
            writer.delete_term(Term::from_field_text(self.id, &id.to_string()));
        }
        for document in &upserts {
            writer.add_document(self.to_index(document))?;
        }
        writer.commit()?;
        if replace {
            // A rebuild leaves a segment per memory budget filled: merged into one, every search
            // walks one term dictionary per field instead of several.
            let segments = writer.index().searchable_segment_ids()?;
            if segments.len() > 1 {
                // The merge policy may be merging some of them already: the data is committed
                // either way, so a refused merge is only a slower index.
                if let Err(error) = writer.merge(&segments).wait() {
                    tracing::debug!(%error, "merging the rebuilt segments was refused");
                }
            }
        }
        drop(guard);
        self.reader.reload()?;
        Ok(())
    }

    fn word_query(&self, word: &QueryWord) -> Box<dyn Query> {
        // A Chinese word has no pinyin form to match (the pinyin fields hold Latin letters only).
        let han = analysis::has_han(&word.text);
        // Each automaton is built once per word, and shared by every field and every search
        // with the same word.
        let fuzzy = if word.typos > 0 { automaton(&word.text, word.typos, false) } else { None };
        let prefix = if word.prefix { automaton(&word.text, word.typos, true) } else { None };
        // Typos in a prefix of pinyin would match nearly every syllable: exact there.
        let pinyin_prefix = if word.prefix && !han { automaton(&word.text, 0, true) } else { None };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut push = |query: Box<dyn Query>, boost: f32| {
            clauses.push((Occur::Should, Box::new(BoostQuery::new(query, boost))));
        };
        for (_, field, pinyin, boost) in &self.text {
            let exact = TermQuery::new(Term::from_field_text(*field, &word.text), IndexRecordOption::WithFreqs);
            push(Box::new(exact), boost * 2.0);
            if let Some(fuzzy) = &fuzzy {
                push(Box::new(SharedAutomaton { field: *field, automaton: fuzzy.clone() }), boost * 0.5);
            }
            if let Some(prefix) = &prefix {
                push(Box::new(SharedAutomaton { field: *field, automaton: prefix.clone() }), boost * 0.5);
            }
            if han {
                continue;
            }
            // Pinyin is matched exactly or as a prefix: typos there would match most syllables.
            let boost = boost * PINYIN_WEIGHT;
            let exact = TermQuery::new(Term::from_field_text(*pinyin, &word.text), IndexRecordOption::WithFreqs);
            push(Box::new(exact), boost * 2.0);
            if let Some(prefix) = &pinyin_prefix {
                push(Box::new(SharedAutomaton { field: *pinyin, automaton: prefix.clone() }), boost * 0.5);
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn filter_query(&self, filter: &Filter) -> anyhow::Result<Box<dyn Query>> {
        let field = |name: &str| self.other.get(name).copied().with_context(|| format!("no field {name}"));
        let query: Box<dyn Query> = match filter {
            Filter::AnyOf(name, values) => {
                let f = field(name)?;
                let any = values
                    .iter()
                    .map(|v| {
                        let term = TermQuery::new(Term::from_field_text(f, v), IndexRecordOption::Basic);
                        (Occur::Should, Box::new(term) as Box<dyn Query>)
                    })
                    .collect();
                Box::new(BooleanQuery::new(any))
            }
            Filter::Range(name, min, max) => {
                let f = field(name)?;
                let bound = |v: &Option<f64>| match v {
                    Some(v) => Bound::Included(Term::from_field_f64(f, *v)),
                    None => Bound::Unbounded,
                };
                Box::new(tantivy::query::RangeQuery::new(bound(min), bound(max)))
            }
        };
        Ok(Box::new(ConstScoreQuery::new(query, 0.0)))
    }

    fn search(self: &Arc<Self>, request: &Request, matcher: &Matcher) -> anyhow::Result<Results> {
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        let text: Box<dyn Query> = if matcher.is_empty() {
            Box::new(AllQuery)
        } else {
            let readings = matcher
                .readings
                .iter()
                .map(|words| {
                    let all = words
                        .iter()
                        .map(|w| {
                            let word = CachedWord {
                                key: (self.serial, generation, w.text.clone(), w.typos, w.prefix),
                                word: w.clone(),
                                store: self.clone(),
                            };
                            (Occur::Must, Box::new(word) as Box<dyn Query>)
                        })
                        .collect();
                    (Occur::Should, Box::new(BooleanQuery::new(all)) as Box<dyn Query>)
                })
                .collect();
            Box::new(BooleanQuery::new(readings))
        };
        let mut clauses = vec![(Occur::Must, text)];
        for filter in &request.filters {
            clauses.push((Occur::Must, self.filter_query(filter)?));
        }
        let query = BooleanQuery::new(clauses);
        // One pass over the matches: the count, the page and every facet together (each search
        // pass would build the fuzzy and prefix automata again).
        let collect = collect::Collect {
            keep: request.offset.saturating_add(request.limit),
            offset: request.offset,
            limit: request.limit,
            order: request.order,
            facets: request.facets.clone(),
        };
        let (total, addresses, counts) = searcher.search(&query, &collect)?;
        let mut hits = Vec::with_capacity(addresses.len());
        if request.limit > 0 {
            let mut columns: HashMap<SegmentOrdinal, (Column<u64>, Column<u64>)> = HashMap::new();
            for (score, address) in addresses {
                let (high, low) = match columns.entry(address.segment_ord) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        let fast = searcher.segment_reader(address.segment_ord).fast_fields();
                        entry.insert((fast.u64(ID_HIGH)?, fast.u64(ID_LOW)?))
                    }
                };
                if let (Some(high), Some(low)) = (high.first(address.doc_id), low.first(address.doc_id)) {
                    hits.push(Hit { id: Uuid::from_u64_pair(high, low), score });
                }
            }
        }
        let facets = request
            .facets
            .iter()
            .zip(counts)
            .map(|(name, counts)| {
                let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
                counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                counts.truncate(FACET_SIZE);
                (*name, counts)
            })
            .collect();
        Ok(Results { hits, total, facets, degraded: false })
    }
}

/// Compiled automata by (word, typos, prefix). Building a Levenshtein DFA costs more than
/// walking a term dictionary with it (a 9-letter word with two typos: a fraction of a
/// millisecond), and the words people search for repeat: a built one serves every field, every
/// segment and the next searches. It depends on the word alone, not on the index. Bounded by
/// an estimate of its bytes (a state is 1 kB, a long word with two typos has a thousand).
static AUTOMATA: std::sync::LazyLock<moka::sync::Cache<AutomatonKey, Arc<WordAutomaton>>> =
    std::sync::LazyLock::new(|| {
        moka::sync::Cache::builder()
            .weigher(|(word, typos, _): &AutomatonKey, _| {
                let per_byte: usize = match typos {
                    0 => 1_024,
                    1 => 8 * 1_024,
                    _ => 28 * 1_024,
                };
                u32::try_from(word.len().saturating_add(1).saturating_mul(per_byte)).unwrap_or(u32::MAX)
            })
            .max_capacity(32 * 1024 * 1024)
            .build()
    });

/// (word, typos, prefix)
type AutomatonKey = (String, u8, bool);

/// The documents an automaton's terms hold, per segment and field, as Lucene's query cache
/// keeps its filters: walking a term dictionary with a typo automaton and reading the postings
/// of every term it accepts was a fifth of a search, and a segment never changes (deletes are
/// applied by the collector, not here). Bounded by bytes; a merged-away segment's entries are
/// never asked for again and age out.
static DOCUMENTS: std::sync::LazyLock<moka::sync::Cache<(SegmentId, IndexField, AutomatonKey), Arc<BitSet>>> =
    std::sync::LazyLock::new(|| {
        moka::sync::Cache::builder()
            .weigher(|_, bits: &Arc<BitSet>| (bits.max_value() / 8).saturating_add(64))
            .max_capacity(64 * 1024 * 1024)
            .time_to_idle(std::time::Duration::from_secs(600))
            .build()
    });

fn automaton(word: &str, typos: u8, prefix: bool) -> Option<Arc<WordAutomaton>> {
    let key = (word.to_string(), typos, prefix);
    if let Some(found) = AUTOMATA.get(&key) {
        return Some(found);
    }
    // The field is not part of the automaton: any field builds the same one.
    let term = Term::from_field_text(IndexField::from_field_id(0), word);
    let query =
        if prefix { FuzzyTermQuery::new_prefix(term, typos, true) } else { FuzzyTermQuery::new(term, typos, true) };
    // tantivy refuses distances above 2 (`analysis::typos` allows at most 2): no clause then.
    let built = Arc::new(WordAutomaton { dfa: Arc::new(query.automaton().ok()?), key });
    AUTOMATA.insert(built.key.clone(), built.clone());
    Some(built)
}

/// A word's typo or prefix automaton (it also accepts the word itself, so an exact match scores
/// its constant too and stays above a document that only holds a variant).
struct WordAutomaton {
    dfa: Arc<DfaWrapper>,
    key: AutomatonKey,
}

/// The documents holding a term of `field` that `automaton` accepts, all scored alike (what
/// tantivy's `FuzzyTermQuery` does, with the automaton built once and shared).
#[derive(Clone)]
struct SharedAutomaton {
    field: IndexField,
    automaton: Arc<WordAutomaton>,
}

impl std::fmt::Debug for SharedAutomaton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAutomaton").field("field", &self.field).finish_non_exhaustive()
    }
}

impl Query for SharedAutomaton {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl SharedAutomaton {
    /// The segment's documents holding an accepted term (from [`DOCUMENTS`] when known).
    fn documents(&self, reader: &SegmentReader) -> tantivy::Result<Arc<BitSet>> {
        let key = (reader.segment_id(), self.field, self.automaton.key.clone());
        if let Some(found) = DOCUMENTS.get(&key) {
            return Ok(found);
        }
        let mut scorer =
            AutomatonWeight::<DfaWrapper>::new(self.field, self.automaton.dfa.clone()).scorer(reader, 1.0)?;
        let mut bits = BitSet::with_max_value(reader.max_doc());
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            bits.insert(doc);
            doc = scorer.advance();
        }
        let bits = Arc::new(bits);
        DOCUMENTS.insert(key, bits.clone());
        Ok(bits)
    }
}

impl Weight for SharedAutomaton {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let documents = BitSetDocSet::from(BitSet::clone(self.documents(reader)?.as_ref()));
        Ok(Box::new(ConstScorer::new(documents, boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.documents(reader)?.contains(doc) {
            Ok(Explanation::new("SharedAutomaton", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!("document {doc} does not match")))
        }
    }
}

/// A word's matches in one segment, scored: every document holding it in some text field
/// (exactly, within its typos, or as a prefix), in document order, with what the word adds to
/// its score.
struct WordHits {
    docs: Vec<DocId>,
    scores: Vec<Score>,
}

/// (store's serial, searcher generation, word, typos, prefix)
type WordKey = (u64, u64, String, u8, bool);

/// Scored matches of the words searched for, per segment: a query is its words' matches
/// intersected, so a word met again (in another query too: `python`, `python 数据`) is not
/// matched again over every text field and its pinyin (a union of up to 20 clauses scored
/// document by document was most of a search). Keyed by the searcher's generation as well:
/// relevance's statistics are the whole index's, so the next commit starts afresh. Bounded by
/// bytes.
static WORD_HITS: std::sync::LazyLock<moka::sync::Cache<(WordKey, SegmentId), Arc<WordHits>>> =
    std::sync::LazyLock::new(|| {
        moka::sync::Cache::builder()
            .weigher(|_, hits: &Arc<WordHits>| u32::try_from(hits.docs.len() * 8 + 64).unwrap_or(u32::MAX))
            .max_capacity(128 * 1024 * 1024)
            .time_to_idle(std::time::Duration::from_secs(300))
            .build()
    });

/// One word of a search: answered from [`WORD_HITS`] when that segment's matches are known,
/// otherwise by its clauses over every text field ([`Store::word_query`], built only then).
#[derive(Clone)]
struct CachedWord {
    key: WordKey,
    word: QueryWord,
    store: Arc<Store>,
}

impl std::fmt::Debug for CachedWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedWord").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Query for CachedWord {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let Some(searcher) = scoring.searcher().filter(|_| scoring.is_scoring_enabled()) else {
            // Unscored (a sort by field): the clauses themselves, nothing kept.
            return self.store.word_query(&self.word).weight(scoring);
        };
        let known: Vec<(SegmentId, Arc<WordHits>)> = searcher
            .segment_readers()
            .iter()
            .filter_map(|segment| {
                let id = segment.segment_id();
                WORD_HITS.get(&(self.key.clone(), id)).map(|hits| (id, hits))
            })
            .collect();
        // The clauses' weight (relevance statistics read from the index) only when some
        // segment's matches must be worked out.
        let clauses = if known.len() == searcher.segment_readers().len() {
            None
        } else {
            Some(self.store.word_query(&self.word).weight(scoring)?)
        };
        Ok(Box::new(CachedWordWeight { key: self.key.clone(), known, clauses }))
    }
}

struct CachedWordWeight {
    key: WordKey,
    known: Vec<(SegmentId, Arc<WordHits>)>,
    clauses: Option<Box<dyn Weight>>,
}

impl CachedWordWeight {
    fn hits(&self, reader: &SegmentReader) -> tantivy::Result<Arc<WordHits>> {
        let id = reader.segment_id();
        if let Some((_, hits)) = self.known.iter().find(|(known, _)| *known == id) {
            return Ok(hits.clone());
        }
        let clauses = self
            .clauses
            .as_ref()
            .ok_or_else(|| tantivy::TantivyError::InternalError("a search word's clauses are missing".into()))?;
        let mut scorer = clauses.scorer(reader, 1.0)?;
        let (mut docs, mut scores) = (Vec::new(), Vec::new());
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            docs.push(doc);
            scores.push(scorer.score());
            doc = scorer.advance();
        }
        let hits = Arc::new(WordHits { docs, scores });
        WORD_HITS.insert((self.key.clone(), id), hits.clone());
        Ok(hits)
    }
}

impl Weight for CachedWordWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(HitsScorer { hits: self.hits(reader)?, at: 0, boost }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let hits = self.hits(reader)?;
        match hits.docs.binary_search(&doc) {
            Ok(at) => Ok(Explanation::new("CachedWord", hits.scores.get(at).copied().unwrap_or_default())),
            Err(_) => Err(tantivy::TantivyError::InvalidArgument(format!("document {doc} does not match"))),
        }
    }
}

/// Walks a [`WordHits`].
struct HitsScorer {
    hits: Arc<WordHits>,
    at: usize,
    boost: Score,
}

impl DocSet for HitsScorer {
    fn advance(&mut self) -> DocId {
        self.at += 1;
        self.doc()
    }

    /// Gallops: intersections seek mostly a little ahead of where the scorer stands.
    fn seek(&mut self, target: DocId) -> DocId {
        let docs = &self.hits.docs;
        let mut step = 1;
        let mut low = self.at;
        while docs.get(low).is_some_and(|doc| *doc < target) {
            let high = low.saturating_add(step);
            if docs.get(high).is_none_or(|doc| *doc >= target) {
                let window = docs.get(low..high.min(docs.len())).unwrap_or_default();
                low += window.partition_point(|doc| *doc < target);
                break;
            }
            low = high;
            step *= 2;
        }
        self.at = low;
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.hits.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        u32::try_from(self.hits.docs.len().saturating_sub(self.at)).unwrap_or(u32::MAX)
    }
}

impl Scorer for HitsScorer {
    fn score(&mut self) -> Score {
        self.hits.scores.get(self.at).copied().unwrap_or_default() * self.boost
    }
}

/// What breaks ties between equally relevant documents (and orders a search with no words):
/// the rating first, then popularity (students, or a circle's members), both far below what a
/// matched word scores.
fn tie_break(collection: Collection, document: &Document) -> f64 {
    let popularity = match collection {
        Collection::Circles => document.number("members"),
        _ => document.number("students"),
    };
    0.01 * document.number("rating") + 0.001 * popularity.max(0.0).ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Order;

    fn course(title: &str, price: f64) -> Document {
        Document {
            id: Uuid::new_v4(),
            text: vec![("title", title.to_string()), ("body", "about databases".to_string())],
            keywords: vec![("domain", vec!["software".into()]), ("tags", vec!["db".into()])],
            numbers: vec![("price", price), ("rating", 4.0), ("students", 3.0), ("created", 1.0)],
        }
    }

    fn request(query: &str) -> Request {
        Request {
            collection: Collection::Courses,
            query: query.into(),
            filters: vec![],
            order: Order::Relevance,
            offset: 0,
            limit: 10,
            facets: vec!["domain"],
        }
    }

    #[tokio::test]
    async fn documents_written_are_found() {
        let dir = std::env::temp_dir().join(format!("mg-search-{}", Uuid::new_v4()));
        let index = Embedded::open(&IndexLocation::Directory(dir.clone())).expect("open");
        let docs = vec![course("PostgreSQL 数据库设计", 99.0), course("Rust from zero", 199.0)];
        index.apply(Collection::Courses, 0, docs, vec![]).await.expect("apply");
        let all = index.search(&request(""), &Matcher::parse("")).await.expect("search");
        assert_eq!(all.total, 2, "{all:?}");
        let found = index.search(&request("shujuku"), &Matcher::parse("shujuku")).await.expect("search");
        assert_eq!(found.total, 1, "{found:?}");
        assert_eq!(found.facets, vec![("domain", vec![("software".to_string(), 1)])]);
        index.apply(Collection::Courses, 0, vec![], vec![Uuid::new_v4()]).await.expect("delete");
        let all = index.search(&request(""), &Matcher::parse("")).await.expect("search");
        assert_eq!(all.total, 2, "deleting another id keeps both: {all:?}");
        drop(index);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn one_pass_pages_sorts_and_counts_facets_across_segments() {
        let dir = std::env::temp_dir().join(format!("mg-search-{}", Uuid::new_v4()));
        let index = Embedded::open(&IndexLocation::Directory(dir.clone())).expect("open");
        let mut prices = HashMap::new();
        // Two writes, two segments; one document lists a tag twice.
        for batch in [[10.0, 30.0, 50.0], [20.0, 40.0, 60.0]] {
            let docs: Vec<Document> = batch
                .iter()
                .map(|price| {
                    let mut doc = course("Rust", *price);
                    if *price == 60.0 {
                        doc.keywords = vec![
                            ("domain", vec!["software".into()]),
                            ("tags", vec!["a".into(), "b".into(), "a".into()]),
                        ];
                    }
                    prices.insert(doc.id, *price);
                    doc
                })
                .collect();
            index.apply(Collection::Courses, 0, docs, vec![]).await.expect("apply");
        }
        let page = |offset: usize, descending: bool| {
            let mut request = request("");
            request.order = Order::Field { field: "price", descending };
            request.offset = offset;
            request.limit = 2;
            request.facets = vec!["tags"];
            request
        };
        let mut ascending = Vec::new();
        for offset in [0, 2, 4] {
            let found = index.search(&page(offset, false), &Matcher::parse("")).await.expect("search");
            assert_eq!(found.total, 6);
            ascending.extend(found.hits.iter().map(|hit| prices[&hit.id]));
            let mut tags = found.facets[0].1.clone();
            tags.sort();
            assert_eq!(tags, vec![("a".to_string(), 1), ("b".to_string(), 1), ("db".to_string(), 5)]);
        }
        assert_eq!(ascending, vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        let found = index.search(&page(1, true), &Matcher::parse("")).await.expect("search");
        assert_eq!(found.hits.iter().map(|hit| prices[&hit.id]).collect::<Vec<_>>(), vec![50.0, 40.0]);
        // Relevance: the best match first, the rest by the tie-breaker, every match counted.
        let found = index.search(&request("rust"), &Matcher::parse("rust")).await.expect("search");
        assert_eq!(found.total, 6);
        assert_eq!(found.hits.len(), 6);
        drop(index);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn kept_matches_seek_like_a_scan() {
        let docs: Vec<DocId> = (0..5_000u32).filter(|d| d % 3 == 0 || d % 7 == 0).collect();
        let scores = docs.iter().map(|d| *d as f32).collect();
        let hits = Arc::new(WordHits { docs: docs.clone(), scores });
        for stride in [1u32, 2, 5, 40, 999] {
            let mut scorer = HitsScorer { hits: hits.clone(), at: 0, boost: 2.0 };
            let mut target = 0;
            while target < 5_100 {
                let want = docs.iter().copied().find(|d| *d >= target).unwrap_or(TERMINATED);
                assert_eq!(scorer.seek(target), want, "seek({target}) by {stride}");
                if want != TERMINATED {
                    assert_eq!(scorer.score(), want as f32 * 2.0);
                }
                target += stride;
            }
        }
    }

    /// A document holding the word itself ranks above one that only holds a variant of it.
    #[tokio::test]
    async fn an_exact_word_ranks_above_its_typos_and_prefixes() {
        let index = Embedded::open(&IndexLocation::Memory).expect("open");
        let exact = course("Postgres tuning guide for teams", 10.0);
        let docs = vec![course("Postgrest api", 10.0), exact.clone(), course("Postgres", 10.0)];
        index.apply(Collection::Courses, 0, docs, vec![]).await.expect("apply");
        for q in ["postgres", "postgres "] {
            let found = index.search(&request(q), &Matcher::parse(q)).await.expect("search");
            let last = found.hits.last().map(|hit| hit.id);
            assert_eq!(found.total, 3, "{q}: {found:?}");
            assert!(last.is_some_and(|id| id != exact.id), "{q}: the variant comes last: {found:?}");
        }
    }

    /// A word met again is answered from its kept matches with the same hits and scores, and a
    /// write (the next generation) is seen at once.
    #[tokio::test]
    async fn kept_word_matches_agree_with_the_index_and_follow_writes() {
        let index = Embedded::open(&IndexLocation::Memory).expect("open");
        let docs = vec![course("PostgreSQL 数据库设计", 99.0), course("Postgres tuning", 19.0), course("Rust", 9.0)];
        index.apply(Collection::Courses, 0, docs, vec![]).await.expect("apply");
        for q in ["postgresql", "postgre sql", "postg", "databse", "shujuku 设计"] {
            let first = index.search(&request(q), &Matcher::parse(q)).await.expect("search");
            let again = index.search(&request(q), &Matcher::parse(q)).await.expect("search");
            assert_eq!(first.hits, again.hits, "{q}");
            assert_eq!(first.total, again.total, "{q}");
        }
        let before = index.search(&request("postg"), &Matcher::parse("postg")).await.expect("search");
        assert_eq!(before.total, 2, "{before:?}");
        index.apply(Collection::Courses, 0, vec![course("Postgis maps", 5.0)], vec![]).await.expect("apply");
        let after = index.search(&request("postg"), &Matcher::parse("postg")).await.expect("search");
        assert_eq!(after.total, 3, "the new document is found: {after:?}");
        let gone = before.hits[0].id;
        index.apply(Collection::Courses, 0, vec![], vec![gone]).await.expect("delete");
        let after = index.search(&request("postg"), &Matcher::parse("postg")).await.expect("search");
        assert_eq!(after.total, 2, "{after:?}");
        assert!(after.hits.iter().all(|hit| hit.id != gone), "a deleted document is not found: {after:?}");
    }
}
