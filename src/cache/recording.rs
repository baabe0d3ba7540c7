//! What the request running on this task read (for the response level) and changed (for
//! invalidation), kept in task-locals.

use super::rules::affects;
use super::{Key, Kind};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

tokio::task_local! {
    static CHANGED: Arc<Mutex<Vec<Key>>>;
    static READS: RefCell<Reads>;
    static PRIMED: RefCell<Primed>;
}

/// Values the request running on this task read alongside something else (the identities and
/// profiles a page's statement joined to its rows, [`prime`]): its fields find them here instead of
/// asking their loaders, so they cost no statement and no batch. Gone when the request ends.
type Primed = HashMap<Key, Option<Arc<dyn Any + Send + Sync>>>;

/// What the request running on this task read, for the response cache.
#[derive(Debug, Default)]
pub struct Reads {
    /// Every cache key it read (hit or miss).
    pub(super) keys: Vec<Key>,
    /// It read something outside this facade (a statement on its task, an uncached loader) or
    /// had a side effect: its response must not be kept.
    pub(super) uncacheable: bool,
    /// The operation's metrics label, set when it is a query (only queries are kept).
    pub(super) query: Option<String>,
    /// The posts whose views it counted: a kept response counts them again on every answer.
    pub(super) views: Vec<Uuid>,
}

/// Runs `work` (one GraphQL request), recording what it reads ([`read`], [`uncacheable`],
/// [`query_running`]).
pub async fn recording<T>(work: impl Future<Output = T>) -> (T, Reads) {
    let recorded = READS.scope(RefCell::new(Reads::default()), async {
        let result = work.await;
        (result, READS.with(|reads| reads.take()))
    });
    PRIMED.scope(RefCell::default(), recorded).await
}

/// The request on this task read `value` of `(kind, id)` (`None`: it does not exist) with
/// something else: its fields take it from here ([`primed`]) for the rest of the request.
pub fn prime<T: Send + Sync + 'static>(kind: Kind, id: Uuid, value: Option<T>) {
    let value = value.map(|value| Arc::new(value) as Arc<dyn Any + Send + Sync>);
    let _ = PRIMED.try_with(|primed| primed.borrow_mut().insert((kind, id), value));
}

/// Forgets what this request primed: a root mutation field may change any of it, and the marks
/// that [`changed_here`] checks are only the running field's.
pub fn forget_primed() {
    let _ = PRIMED.try_with(|primed| primed.borrow_mut().clear());
}

/// What this request primed for `(kind, id)`, as [`super::Cache::peek`] answers (`Some(None)`:
/// primed as missing; `None`: not primed, or primed as another type).
pub(super) fn primed<T: Clone + 'static>(kind: Kind, id: Uuid) -> Option<Option<T>> {
    PRIMED
        .try_with(|primed| match primed.borrow().get(&(kind, id))? {
            Some(value) => value.downcast_ref::<T>().map(|value| Some(value.clone())),
            None => Some(None),
        })
        .ok()
        .flatten()
}

pub(super) fn read(kind: Kind, id: Uuid) {
    let _ = READS.try_with(|reads| reads.borrow_mut().keys.push((kind, id)));
}

/// The request on this task read something the cache does not know of, or changed something:
/// its response must not be kept. (The database's statement callback calls this for every
/// statement, so only the DataLoader batches, which run on their own tasks, escape it; uncached
/// loaders call it themselves.)
pub fn uncacheable() {
    let _ = READS.try_with(|reads| reads.borrow_mut().uncacheable = true);
}

/// The request on this task counted a view of `post` (its one side effect a kept response can
/// repeat): every answer from its kept response counts the view again ([`StoredResponse::views`]).
///
/// [`StoredResponse::views`]: super::StoredResponse::views
pub fn viewed(post: Uuid) {
    let _ = READS.try_with(|reads| reads.borrow_mut().views.push(post));
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

/// The marks a tracked mutation made so far (shared with [`track`], so a caller still holds them if
/// the work is dropped half-way).
pub type Marks = Arc<Mutex<Vec<Key>>>;

/// Runs `work`, collecting what it marks [`changed`] into `marks`.
pub async fn track<T>(marks: Marks, work: impl Future<Output = T>) -> T {
    CHANGED.scope(marks, work).await
}

/// The marks, sorted and without repeats (and emptied).
pub fn take_marks(marks: &Marks) -> Vec<Key> {
    let mut keys = marks.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default();
    keys.sort_by_key(|(kind, id)| (kind.name(), *id));
    keys.dedup();
    keys
}
