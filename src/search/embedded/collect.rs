//! One pass over a search's matches: how many there are, the page (best first), and each facet's
//! counts, together.
//!
//! Every match of a query is visited (the rotating bench queries match 10–20 thousand courses
//! each), so what a match costs is what a search costs. tantivy's own collectors read the
//! tie-breaker and each facet value through its compressed columns per match (bit-unpacking,
//! a value-to-row index for multi-valued columns, a dynamic call per column and per collector):
//! a quarter of a course search's CPU. Here each column a search ranks or counts by is read
//! once per segment into plain arrays ([`Dense`], kept by segment: a segment never changes, and
//! deletes are applied by tantivy before `collect`), so a match costs an array read per facet
//! and a comparison against the page's worst entry.

use super::TIE_BREAK;
use crate::search::Order;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

/// A segment's column read into arrays, by document. (Only arrays: holding the column would keep
/// a merged-away segment's files open.)
enum Dense {
    /// A number per document (`NaN` where it has none).
    Numbers(Vec<f64>),
    /// A keyword column: each document's distinct value ordinals are
    /// `ords[starts[doc]..starts[doc + 1]]`, out of `terms`.
    Keywords { starts: Vec<u32>, ords: Vec<u32>, terms: usize },
}

/// (segment, field, whether it is read as keywords)
type DenseKey = (SegmentId, &'static str, bool);

/// Dense columns by segment and field; bounded by bytes, and a merged-away segment's entries are
/// never asked for again and age out.
static DENSE: std::sync::LazyLock<moka::sync::Cache<DenseKey, Arc<Dense>>> = std::sync::LazyLock::new(|| {
    moka::sync::Cache::builder()
        .weigher(|_, dense: &Arc<Dense>| {
            let bytes = match dense.as_ref() {
                Dense::Numbers(values) => values.len() * 8,
                Dense::Keywords { starts, ords, .. } => (starts.len() + ords.len()) * 4,
            };
            u32::try_from(bytes + 64).unwrap_or(u32::MAX)
        })
        .max_capacity(128 * 1024 * 1024)
        .time_to_idle(std::time::Duration::from_secs(1800))
        .build()
});

/// The dense form of `field` in this segment, built by one search and shared with the others.
fn dense(
    reader: &SegmentReader,
    field: &'static str,
    keywords: bool,
    build: impl FnOnce() -> tantivy::Result<Dense>,
) -> tantivy::Result<Arc<Dense>> {
    DENSE
        .try_get_with((reader.segment_id(), field, keywords), || build().map(Arc::new))
        .map_err(|error| tantivy::TantivyError::InternalError(format!("reading the column {field}: {error}")))
}

fn numbers(reader: &SegmentReader, field: &'static str) -> tantivy::Result<Arc<Dense>> {
    dense(reader, field, false, || {
        let column = reader.fast_fields().f64(field)?;
        Ok(Dense::Numbers((0..reader.max_doc()).map(|doc| column.first(doc).unwrap_or(f64::NAN)).collect()))
    })
}

fn keywords(reader: &SegmentReader, field: &'static str) -> tantivy::Result<Arc<Dense>> {
    dense(reader, field, true, || {
        let column = reader.fast_fields().str(field)?;
        let max_doc = reader.max_doc() as usize;
        let mut starts = Vec::with_capacity(max_doc + 1);
        let mut ords = Vec::with_capacity(max_doc);
        let terms = column.as_ref().map(|c| c.num_terms()).unwrap_or(0);
        starts.push(0);
        let mut values = Vec::new();
        for doc in 0..max_doc as DocId {
            if let Some(column) = &column {
                // Each value once per document (a row's values are not sorted).
                values.clear();
                values.extend(column.term_ords(doc).map(|ord| u32::try_from(ord).unwrap_or(u32::MAX)));
                values.sort_unstable();
                values.dedup();
                ords.extend_from_slice(&values);
            }
            starts.push(u32::try_from(ords.len()).unwrap_or(u32::MAX));
        }
        Ok(Dense::Keywords { starts, ords, terms })
    })
}

/// The count, the page and the facets of a search, in one pass.
pub(super) struct Collect {
    /// Entries each segment keeps: the page's offset plus its size.
    pub keep: usize,
    pub offset: usize,
    pub limit: usize,
    pub order: Order,
    pub facets: Vec<&'static str>,
}

/// What a search found: how many, the page (score, address), and each facet's counts by value.
pub(super) type Found = (u64, Vec<(Score, DocAddress)>, Vec<HashMap<String, u64>>);

/// One page entry: its rank (higher is better) and score, in a heap whose top is the worst kept.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    rank: f64,
    score: Score,
    segment: SegmentOrdinal,
    doc: DocId,
}

impl Entry {
    /// Better first: higher rank, then the lower address (as tantivy orders equal scores).
    fn better(&self, other: &Entry) -> Ordering {
        other.rank.total_cmp(&self.rank).then((self.segment, self.doc).cmp(&(other.segment, other.doc)))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.better(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Greater is worse, so the max-heap's top is the entry to drop.
    fn cmp(&self, other: &Self) -> Ordering {
        self.better(other)
    }
}

pub(super) struct SegmentCollect {
    segment: SegmentOrdinal,
    count: u64,
    keep: usize,
    /// Relevance: the tie-breaker added to each score. A field order: the field's values.
    ranks: Arc<Dense>,
    relevance: bool,
    descending: bool,
    top: BinaryHeap<Entry>,
    facets: Vec<(Option<StrColumn>, Arc<Dense>, Vec<u64>)>,
}

impl Collector for Collect {
    type Fruit = Found;
    type Child = SegmentCollect;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentCollect> {
        let (ranks, relevance, descending) = match self.order {
            // A segment without the tie-breaker ranks by the score alone.
            Order::Relevance => {
                (numbers(reader, TIE_BREAK).unwrap_or_else(|_| Arc::new(Dense::Numbers(Vec::new()))), true, true)
            }
            Order::Field { field, descending } => (numbers(reader, field)?, false, descending),
        };
        let facets = self
            .facets
            .iter()
            .map(|field| {
                let dense = keywords(reader, field)?;
                let terms = match dense.as_ref() {
                    Dense::Keywords { terms, .. } => *terms,
                    Dense::Numbers(_) => 0,
                };
                // The column answers what a counted ordinal's value is, at harvest.
                Ok((reader.fast_fields().str(field)?, dense, vec![0; terms]))
            })
            .collect::<tantivy::Result<_>>()?;
        Ok(SegmentCollect {
            segment,
            count: 0,
            keep: self.keep,
            ranks,
            relevance,
            descending,
            top: BinaryHeap::with_capacity(self.keep.min(reader.num_docs() as usize) + 1),
            facets,
        })
    }

    fn requires_scoring(&self) -> bool {
        matches!(self.order, Order::Relevance)
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Found> {
        let mut total = 0;
        let mut entries = Vec::new();
        let mut facets = vec![HashMap::new(); self.facets.len()];
        for (count, top, counts) in fruits {
            total += count;
            entries.extend(top);
            for (merged, counts) in facets.iter_mut().zip(counts) {
                for (value, count) in counts {
                    *merged.entry(value).or_insert(0) += count;
                }
            }
        }
        entries.sort_by(Entry::better);
        let page = entries
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|entry| (entry.score, DocAddress::new(entry.segment, entry.doc)))
            .collect();
        Ok((total, page, facets))
    }
}

/// One segment's count, kept entries and facet counts by value.
pub(super) type SegmentFruit = (u64, Vec<Entry>, Vec<HashMap<String, u64>>);

impl SegmentCollector for SegmentCollect {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.count += 1;
        for (_, dense, counts) in &mut self.facets {
            if let Dense::Keywords { starts, ords, .. } = dense.as_ref() {
                let at = doc as usize;
                let (Some(&from), Some(&to)) = (starts.get(at), starts.get(at + 1)) else { continue };
                for ord in ords.get(from as usize..to as usize).unwrap_or_default() {
                    if let Some(count) = counts.get_mut(*ord as usize) {
                        *count += 1;
                    }
                }
            }
        }
        if self.keep == 0 {
            return;
        }
        let value = match self.ranks.as_ref() {
            Dense::Numbers(values) => values.get(doc as usize).copied().unwrap_or(f64::NAN),
            Dense::Keywords { .. } => f64::NAN,
        };
        let (rank, score) = if self.relevance {
            // As relevance has always been scored: the tie-breaker added in f32.
            let score = score + if value.is_nan() { 0.0 } else { value as f32 };
            (f64::from(score), score)
        } else if value.is_nan() {
            // Documents without the value come last either way.
            (f64::NEG_INFINITY, 0.0)
        } else {
            (if self.descending { value } else { -value }, 0.0)
        };
        let entry = Entry { rank, score, segment: self.segment, doc };
        if self.top.len() < self.keep {
            self.top.push(entry);
        } else if let Some(mut worst) = self.top.peek_mut() {
            if entry.better(&worst) == Ordering::Less {
                *worst = entry;
            }
        }
    }

    fn harvest(self) -> SegmentFruit {
        let facets = self
            .facets
            .into_iter()
            .map(|(column, _, counts)| {
                let mut out = HashMap::new();
                if let Some(column) = column {
                    // The counted values' texts in one walk of the dictionary (each look-up by
                    // itself would decompress a block).
                    let ords: Vec<u64> =
                        counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(ord, _)| ord as u64).collect();
                    let mut values = Vec::with_capacity(ords.len());
                    let walked = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                        values.push(String::from_utf8_lossy(bytes).into_owned())
                    });
                    if walked.is_ok() {
                        for (ord, value) in ords.into_iter().zip(values) {
                            out.insert(value, counts[ord as usize]);
                        }
                    }
                }
                out
            })
            .collect();
        (self.count, self.top.into_vec(), facets)
    }
}
