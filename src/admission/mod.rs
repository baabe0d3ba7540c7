//! The one way in: every GraphQL operation, over HTTP or WebSocket, passes here before the schema
//! runs it. In order, all under one time budget (`GRAPHQL_REQUEST_TIMEOUT_SECS`):
//!
//! 1. persisted operations: an APQ hash becomes its text; trusted-documents mode refuses the rest;
//! 2. the text: empty, too long, nested too deep (before parsing); a query the response cache
//!    kept under this exact text, variables and viewer is answered here, its limits charged;
//! 3. parsing (large texts on the blocking pool; a text parsed before is copied from the parsed
//!    documents kept by text), then aliases and the selection's size with every
//!    fragment spread (memoized), so validation's work is bounded before async-graphql starts it;
//! 4. rate limits by caller: mutations per user, everything per IP for anonymous callers;
//! 5. idempotency keys for mutations;
//! 6. the price: the operation's cost (`cost`), refused past the per-operation maximum, else
//!    charged to the viewer's budget;
//! 7. the schema validates and executes it; the response is shaped as the spec says (`shape`), its
//!    errors coded (`graphql::operation`), and the operation counted in the metrics.
//!
//! The transports (`http.rs`, `admission::ws`) only read their input and write the [`Answer`].

pub mod cost;
pub mod document;
pub mod idempotency;
pub mod limits;
pub mod persisted;
pub mod ws;

use crate::app::AppState;
use crate::auth::Viewer;
use crate::cache::{Reads, ResponseKey};
use crate::error::AppError;
use crate::graphql::operation;
use crate::graphql::shape::{Shape, Shapes};
use crate::graphql::AppSchema;
use crate::http::RequestMeta;
use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use cost::{CostMeter, CostReport};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a mutation with an idempotency key may run on after its client was told TIMEOUT (its
/// outcome is stored for the retry).
const IDEMPOTENT_RUN_CAP: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Admission(Arc<Inner>);

struct Inner {
    schema: AppSchema,
    app: AppState,
    persisted: persisted::Persisted,
    documents: document::Parsed,
}

/// Who is asking, as the transport established it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub viewer: Viewer,
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// Whose budgets an operation spends: the signed-in user, else the client's IP.
    fn subject(&self) -> String {
        match self.viewer.user_id() {
            Some(id) => format!("user:{id}"),
            None => format!("ip:{}", limits::ip_key(self.ip)),
        }
    }
}

/// What the transport may add to a request.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// A single query over HTTP: it may be answered from, and kept in, the response cache.
    pub cacheable: bool,
    /// GET: queries only.
    pub queries_only: bool,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// What became of one operation.
pub struct Answer {
    pub outcome: Outcome,
    /// `extensions.cost`, once the operation was priced (or charged from a kept response).
    pub cost: Option<CostReport>,
}

// Answers are moved once per operation, never stored in bulk: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Refused before the schema ran it: a request-level error. `status` suggests an HTTP status.
    Refused { error: AppError, status: Option<u16> },
    /// The schema's response; `keep` when the response cache may store it; `operation` its
    /// metrics label.
    Executed { response: async_graphql::Response, keep: Option<(ResponseKey, Reads, u64)>, operation: String },
    /// A stored body: a kept response or an idempotent replay.
    Stored { body: Bytes, replayed: bool },
}

impl Answer {
    fn refused(error: AppError) -> Self {
        Self { outcome: Outcome::Refused { error, status: None }, cost: None }
    }

    /// Counts the operation in the metrics (by label and outcome, with its latency; a refusal's
    /// error by code) and names it on the request's span.
    pub fn record(&self, elapsed: Duration) {
        let (label, outcome) = match &self.outcome {
            Outcome::Stored { .. } => ("cached", "ok"),
            Outcome::Refused { error, .. } => {
                metrics::counter!("graphql_errors_total", "code" => error.code()).increment(1);
                ("refused", "error")
            }
            Outcome::Executed { response, operation, .. } => {
                (operation.as_str(), if response.errors.is_empty() { "ok" } else { "error" })
            }
        };
        operation::record_request(label, outcome, elapsed);
        if let Outcome::Executed { operation, .. } = &self.outcome {
            tracing::Span::current().record("operation", operation.as_str());
        }
    }

    /// The error codes of this answer's errors (for `Retry-After` and status codes).
    pub fn retry_after(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Refused { error: AppError::RateLimited { retry_after_secs }, .. } => Some(*retry_after_secs),
            Outcome::Executed { response, .. } => response.errors.iter().find_map(|error| {
                let ext = error.extensions.as_ref()?;
                match ext.get("retryAfter")? {
                    async_graphql::Value::Number(n) => n.as_u64(),
                    _ => None,
                }
            }),
            _ => None,
        }
    }

    /// The GraphQL response as a value (WebSocket; stored bodies are parsed back).
    pub fn into_response(self) -> async_graphql::Response {
        let cost = self.cost;
        let mut response = match self.outcome {
            Outcome::Refused { error, .. } => error_response(&error),
            Outcome::Executed { response, .. } => response,
            Outcome::Stored { body, .. } => serde_json::from_slice::<async_graphql::Response>(&body)
                .unwrap_or_else(|_| error_response(&AppError::Internal(anyhow::anyhow!("unreadable stored response")))),
        };
        if let Some(value) = cost.and_then(|cost| async_graphql::Value::from_json(serde_json::json!(cost)).ok()) {
            response.extensions.insert("cost".into(), value);
        }
        response
    }
}

/// Whether `response` answers a request error (raised before execution: parsing, validation,
/// variables, limits): errors and no data. Such a response has no `data` entry, and GraphQL over
/// HTTP gives it a 4xx status under `application/graphql-response+json`.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The `extensions.code` of a response's first error.
pub fn first_code(response: &async_graphql::Response) -> Option<&str> {
    let extensions = response.errors.first()?.extensions.as_ref()?;
    match extensions.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

/// A response as the spec serializes it: `errors` first when there are any, no `data` entry for a
/// request error (`"data": null` means execution ran and nulled it), `extensions` last.
pub fn to_json(response: &async_graphql::Response) -> serde_json::Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        errors: &'a [async_graphql::ServerError],
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a async_graphql::Value>,
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    }
    let data = (!is_request_error(response)).then_some(&response.data);
    serde_json::to_vec(&Body { errors: &response.errors, data, extensions: &response.extensions })
}

/// A response holding one request-level error.
pub fn error_response(error: &AppError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![error.to_graphql().into_server_error(Default::default())])
}

/// A request that passed the checks before the schema.
pub struct Prepared {
    request: async_graphql::Request,
    kind: Option<OperationType>,
    meter: Arc<CostMeter>,
    /// Where the response cache keeps this query's response (made before it runs, see
    /// [`crate::cache::Cache::response_key`]).
    cache_key: Option<ResponseKey>,
    /// The document's operations' shapes (none when it did not parse: the schema reports that).
    shapes: Option<Arc<Shapes>>,
    /// The operation's metrics label, before [`operation::bounded`].
    label: Option<String>,
    /// The operation's price, when it is still to be charged: a keyed mutation pays only if it
    /// runs (a replay of its first response is free).
    unpaid: Option<u64>,
}

impl Prepared {
    pub fn is_subscription(&self) -> bool {
        self.kind == Some(OperationType::Subscription)
    }

    /// What is done to its responses (see [`Finish`]).
    pub fn finish(&self) -> Finish {
        Finish {
            shapes: self.shapes.clone(),
            label: self.label.clone(),
            operation_name: self.request.operation_name.clone(),
        }
    }

    /// The request with what resolvers read from it (viewer, client IP, cost meter).
    pub fn into_request(self, caller: &Caller) -> async_graphql::Request {
        self.request.data(caller.viewer.clone()).data(RequestMeta { ip: caller.ip }).data(self.meter)
    }
}

/// What becomes of an operation's responses once the schema has run it (each event of a
/// subscription too).
#[derive(Clone)]
pub struct Finish {
    shapes: Option<Arc<Shapes>>,
    label: Option<String>,
    operation_name: Option<String>,
}

impl Finish {
    /// Shapes `response` as the spec says (`shape`) and codes its errors (`graphql::operation`).
    pub fn apply(&self, response: &mut async_graphql::Response) {
        let registry = crate::graphql::registry();
        if let Some(shapes) = &self.shapes {
            crate::graphql::shape::settle(shapes, self.operation_name.as_deref(), response, registry);
        }
        operation::finish_errors(response, registry);
    }

    /// The operation's metrics label: its own only once it validated, so invalid documents cannot
    /// fill the labels' cap.
    fn label(&self, response: &async_graphql::Response) -> String {
        match &self.label {
            Some(label) if !is_request_error(response) => operation::bounded(label.clone()),
            _ => "invalid".to_string(),
        }
    }

    /// Runs `request` (a query or mutation) on `schema` and finishes its response: see [`apply`].
    async fn execute(&self, schema: &AppSchema, request: async_graphql::Request) -> (async_graphql::Response, String) {
        let mut response = operation::flag_degraded_search(schema.execute(request)).await;
        self.apply(&mut response);
        let label = self.label(&response);
        if label.starts_with("query") {
            // Inside the recording scope: a kept response names its operation (and only a query
            // with a label of its own is kept).
            crate::cache::query_running(&label);
        }
        (response, label)
    }
}

impl Admission {
    pub fn new(app: AppState, schema: AppSchema) -> anyhow::Result<Self> {
        let manifest = match (&app.config.graphql.persisted_manifest, app.config.graphql.persisted_only) {
            (Some(path), true) => Some(
                persisted::load_manifest(path)
                    .map_err(|error| anyhow::anyhow!("PERSISTED_MANIFEST {}: {error}", path.display()))?,
            ),
            _ => None,
        };
        let persisted = persisted::Persisted::new(app.cache.clone(), manifest);
        operation::cap_labels(app.config.http.metrics_max_operations);
        // Built now rather than by the first request (every type's fields registered).
        let _ = crate::graphql::registry();
        Ok(Self(Arc::new(Inner { schema, app, persisted, documents: document::Parsed::new() })))
    }

    pub fn schema(&self) -> &AppSchema {
        &self.0.schema
    }

    pub fn state(&self) -> &AppState {
        &self.0.app
    }

    fn meter(&self, caller: &Caller) -> Arc<CostMeter> {
        let app = &self.0.app;
        let subject = if app.limiter.is_enabled() { caller.subject() } else { String::new() };
        Arc::new(CostMeter::new(app.limiter.clone(), app.settings.live().rate.cost, subject))
    }

    /// One operation, start to end, within the request time budget.
    pub async fn admit(&self, request: async_graphql::Request, caller: &Caller, options: Options) -> Answer {
        let started = Instant::now();
        let budget = self.0.app.config.graphql.request_timeout;
        let answer = match tokio::time::timeout(budget, async {
            match self.prepare(request, caller, &options).await {
                // Boxed: the schema's execution is a large future, and every layer around it
                // (this one, the transport's handler) would otherwise carry it and copy it on
                // each move, also for the requests answered before it (a kept response, a refusal).
                Ok(prepared) => Box::pin(self.run(prepared, caller, &options)).await,
                Err(answer) => answer,
            }
        })
        .await
        {
            Ok(answer) => answer,
            Err(_) => {
                metrics::counter!("graphql_timeouts_total").increment(1);
                Answer::refused(AppError::Timeout)
            }
        };
        answer.record(started.elapsed());
        answer
    }

    /// Steps 1–4: persisted operations, the text, the parsed document, rate limits.
    pub async fn prepare(
        &self,
        mut request: async_graphql::Request,
        caller: &Caller,
        options: &Options,
    ) -> Result<Prepared, Answer> {
        let config = &self.0.app.config;
        let new_text = self.0.persisted.resolve(&mut request).await.map_err(Answer::refused)?;
        document::precheck(&request.query).map_err(|error| {
            let malformed = matches!(error, AppError::BadInput { .. });
            Answer { outcome: Outcome::Refused { error, status: malformed.then_some(400) }, cost: None }
        })?;
        // A banned user's or an ended session's token is refused before anything is answered, kept
        // responses included.
        crate::domain::accounts::check_standing(&self.0.app.cache, &self.0.app.db, &caller.viewer)
            .await
            .map_err(Answer::refused)?;
        // A kept response answers before parsing: only a query that passed every check below was
        // kept, under its exact text, variables and viewer. Its caller's limits still apply.
        let cache_key = if options.cacheable && new_text.is_none() {
            response_key(&self.0.app.cache, &caller.viewer, &request)
        } else {
            None
        };
        if let Some(stored) = cache_key.as_ref().and_then(|key| self.0.app.cache.response(key)) {
            self.limit(caller, Some(OperationType::Query)).await.map_err(Answer::refused)?;
            let meter = self.meter(caller);
            let charged = meter.charge(stored.cost).await;
            let cost = meter.report();
            tracing::Span::current().record("operation", stored.operation.as_str());
            if charged.is_ok() {
                // Its one repeatable side effect: the views of the posts it shows.
                for post in &stored.views {
                    self.0.app.views.record(*post);
                }
            }
            return Err(match charged {
                Ok(()) => Answer { outcome: Outcome::Stored { body: stored.body.clone(), replayed: false }, cost },
                Err(error) => Answer { outcome: Outcome::Refused { error, status: None }, cost },
            });
        }
        // A text kept before passed the checks below then; the limits are fixed for the process.
        let (document, shapes) = match self.0.documents.get(&request.query) {
            Some(kept) => kept,
            None => {
                let parsed = if request.query.len() > document::PARSE_INLINE_BYTES {
                    let text = request.query.clone();
                    tokio::task::spawn_blocking(move || document::parse(&text))
                        .await
                        .map_err(|error| Answer::refused(AppError::Internal(anyhow::anyhow!(error))))?
                } else {
                    document::parse(&request.query)
                };
                // A syntax error is the schema's to report (with its position), like every
                // validation error.
                let Ok(document) = parsed else {
                    self.limit(caller, None).await.map_err(Answer::refused)?;
                    let meter = self.meter(caller);
                    let (shapes, label, unpaid) = (None, None, None);
                    return Ok(Prepared { kind: None, meter, request, cache_key: None, shapes, label, unpaid });
                };
                let bounds =
                    document::Bounds { max_aliases: config.graphql.max_aliases, max_fields: config.graphql.max_fields };
                let counts = document::check(&document, bounds).map_err(Answer::refused)?;
                let shapes = Arc::new(Shape::of(&document));
                self.0.documents.keep(&request.query, &document, counts, shapes.clone());
                (document, shapes)
            }
        };
        let kind = document::operation_type(&document, request.operation_name.as_deref());
        document::check_variables(&document, request.operation_name.as_deref(), &request.variables)
            .map_err(Answer::refused)?;
        if options.queries_only && matches!(kind, Some(OperationType::Mutation | OperationType::Subscription)) {
            let error = AppError::bad_input("query", "only queries may be sent with GET; POST mutations");
            return Err(Answer { outcome: Outcome::Refused { error, status: Some(405) }, cost: None });
        }
        self.limit(caller, kind).await.map_err(Answer::refused)?;
        let meter = self.meter(caller);
        let cost =
            cost::price(crate::graphql::registry(), &document, request.operation_name.as_deref(), &request.variables);
        let max = config.graphql.max_complexity as u64;
        if cost > max {
            return Err(Answer::refused(AppError::TooCostly { cost, max }));
        }
        let unpaid = idempotent(kind, caller, options).then_some(cost);
        if unpaid.is_none() {
            if let Err(error) = meter.charge(cost).await {
                return Err(Answer { outcome: Outcome::Refused { error, status: None }, cost: meter.report() });
            }
        }
        if let Some(hash) = new_text {
            Box::pin(self.0.persisted.register(&hash, &request.query)).await;
        }
        let label = operation::raw_label_of(&document, request.operation_name.as_deref());
        request.set_parsed_query(document);
        let cache_key = cache_key.filter(|_| kind == Some(OperationType::Query));
        Ok(Prepared { request, kind, meter, cache_key, shapes: Some(shapes), label, unpaid })
    }

    /// Mutations per signed-in user; every operation of an anonymous caller per IP.
    async fn limit(&self, caller: &Caller, kind: Option<OperationType>) -> Result<(), AppError> {
        let app = &self.0.app;
        if !app.limiter.is_enabled() {
            return Ok(());
        }
        let live = app.settings.live();
        let rules = &live.rate;
        match (caller.viewer.user_id(), kind) {
            (Some(user), Some(OperationType::Mutation)) => {
                app.limiter.check("mutation", &rules.mutation_user, &user.to_string(), 1).await.into_result()?;
            }
            (Some(_), _) => {}
            (None, _) => {
                let ip = limits::ip_key(caller.ip);
                app.limiter.check("anonymous", &rules.anonymous_ip, &ip, 1).await.into_result()?;
            }
        }
        Ok(())
    }

    /// Steps 5–6: an idempotent mutation, or the schema (a kept response answered in `prepare`).
    pub async fn run(&self, mut prepared: Prepared, caller: &Caller, options: &Options) -> Answer {
        // Keys belong to a signed-in viewer: an anonymous "viewer" is only an IP, shared by strangers,
        // and its mutations (sign-up, sign-in) answer with tokens that must not be stored.
        if let (true, Some(key)) = (idempotent(prepared.kind, caller, options), &options.idempotency_key) {
            // Boxed: its state would otherwise make every operation's future as large as its own.
            return Box::pin(self.run_idempotent(prepared, caller, key)).await;
        }
        let cache_key = prepared.cache_key.take();
        let meter = prepared.meter.clone();
        let finish = prepared.finish();
        let request = prepared.into_request(caller);
        let ((response, operation), reads) = crate::cache::recording(finish.execute(&self.0.schema, request)).await;
        let cost = meter.report();
        let keep = cache_key
            .filter(|_| response.errors.is_empty() && response.extensions.is_empty())
            .map(|key| (key, reads, cost.map(|c| c.requested).unwrap_or(0)));
        Answer { outcome: Outcome::Executed { response, keep, operation }, cost }
    }

    async fn run_idempotent(&self, prepared: Prepared, caller: &Caller, key: &str) -> Answer {
        let app = &self.0.app;
        let fingerprint = persisted::sha256_hex(&format!(
            "{}\u{1f}{}\u{1f}{}",
            prepared.request.operation_name.as_deref().unwrap_or(""),
            prepared.request.query,
            serde_json::to_string(&prepared.request.variables).unwrap_or_default()
        ));
        let wait = app.config.graphql.request_timeout.min(Duration::from_secs(10)) / 2;
        let ticket = match idempotency::claim(&app.db, &caller.subject(), key, &fingerprint, wait).await {
            Ok(idempotency::Claim::Run(ticket)) => {
                if let Err(error) = prepared.meter.charge(prepared.unpaid.unwrap_or(0)).await {
                    // Refused before it ran: the key is released for the retry.
                    idempotency::finish(&app.db, ticket, None).await;
                    return Answer { outcome: Outcome::Refused { error, status: None }, cost: prepared.meter.report() };
                }
                ticket
            }
            Ok(idempotency::Claim::Replay(body)) => {
                let cost = match prepared.meter.charge(0).await {
                    Ok(()) => prepared.meter.report(),
                    Err(_) => None,
                };
                return Answer { outcome: Outcome::Stored { body, replayed: true }, cost };
            }
            Err(error) => return Answer::refused(error),
        };
        let meter = prepared.meter.clone();
        let finish = prepared.finish();
        let request = prepared.into_request(caller);
        let schema = self.0.schema.clone();
        let db = app.db.clone();
        // On its own task: if the client's time budget runs out, the mutation still finishes and
        // its outcome is stored for the retry.
        let task = tokio::spawn(async move {
            let (response, operation) =
                match tokio::time::timeout(IDEMPOTENT_RUN_CAP, finish.execute(&schema, request)).await {
                    Ok(done) => done,
                    Err(_) => (error_response(&AppError::Timeout), "refused".to_string()),
                };
            let body =
                if idempotency::is_transient(&response) { None } else { to_json(&response).ok().map(Bytes::from) };
            idempotency::finish(&db, ticket, body.as_ref()).await;
            (response, operation)
        });
        match task.await {
            Ok((response, operation)) => {
                Answer { outcome: Outcome::Executed { response, keep: None, operation }, cost: meter.report() }
            }
            Err(error) => Answer::refused(AppError::Internal(anyhow::anyhow!("mutation task failed: {error}"))),
        }
    }
}

/// Whether an operation runs under its idempotency key: a mutation with a key, from a signed-in
/// viewer (an anonymous "viewer" is only an IP, shared by strangers, and its mutations, sign-up and
/// sign-in, answer with tokens that must not be stored).
fn idempotent(kind: Option<OperationType>, caller: &Caller, options: &Options) -> bool {
    kind == Some(OperationType::Mutation) && options.idempotency_key.is_some() && caller.viewer.user_id().is_some()
}

/// The response cache's key of a single request: who asks (a verified user by id and role, or
/// anonymous), the operation, the query text and the variables. `None` when it must not be cached:
/// the cache is off, the credential did not verify, or the request carries extensions or uploads.
fn response_key(cache: &crate::cache::Cache, viewer: &Viewer, request: &async_graphql::Request) -> Option<ResponseKey> {
    if !request.extensions.0.is_empty() || !request.uploads.is_empty() {
        return None;
    }
    let who = match viewer {
        Viewer::Anonymous => "anonymous".to_string(),
        Viewer::User { id, role, .. } => format!("{id}/{role:?}"),
        Viewer::Invalid(_) => return None,
    };
    let variables = serde_json::to_string(&request.variables).ok()?;
    cache.response_key(&[&who, request.operation_name.as_deref().unwrap_or(""), &request.query, &variables])
}
