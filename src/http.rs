//! HTTP surface: POST/GET /graphql, the graphql-transport-ws endpoint, the self-hosted GraphiQL
//! page, /healthz, /readyz and /metrics; CORS, request ids and trace context.
//!
//! The transports stay thin: they read the request (a body that is too large, not JSON or not a
//! GraphQL request is refused with a GraphQL-shaped 4xx, never a 5xx), establish who the caller is,
//! and hand every operation to `admission`, the one way in, then write its answer.

use crate::admission::cost::CostReport;
use crate::admission::{self, Admission, Answer, Caller, Options, Outcome};
use crate::app::AppState;
use crate::auth::Viewer;
use crate::error::AppError;
use async_graphql::BatchRequest;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::Extensions;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use secrecy::ExposeSecret;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub admission: Admission,
}

pub fn router(state: HttpState) -> Router {
    let config = &state.app.config;
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/media/{*key}", get(media_get));
    if state.app.storage.is_local() {
        // Local storage takes the uploads itself (the body is read only once the URL's signature
        // holds, and at most its size); an S3 store takes them at its presigned URLs.
        router = router.route("/media/upload/{*key}", axum::routing::put(media_put));
    }
    if config.graphql.graphiql {
        router = router.route("/", get(graphiql)).route("/assets/graphiql/{file}", get(graphiql_asset));
    }
    if config.http.metrics_addr.is_none() {
        router = router.route("/metrics", get(metrics));
    }
    let cors = (!config.http.cors_origins.is_empty()).then(|| cors(&config.http));
    // One `layer` call with the whole stack: each `Router::layer` call boxes every route again,
    // and each box is cloned (allocated) for every request. Outermost first: CORS answers
    // preflights, then the request id is set (and copied to the response), then the span opens
    // with it.
    let layers = tower::ServiceBuilder::new()
        // Without CORS_ORIGINS there is nothing to allow (browsers stay same-origin): no layer.
        .layer(tower::util::option_layer(cors))
        .layer(SetRequestIdLayer::new(REQUEST_ID, FastRequestId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // The trace layer's body back to axum's (CORS builds empty bodies of its inner type).
        .layer(tower::util::MapResponseLayer::new(|response: Response<_>| response.map(Body::new)))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<Body>| {
            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
            // W3C trace context: the caller's trace id and parent span join our logs and spans.
            let (trace_id, parent_id) = traceparent(header("traceparent")).unwrap_or_default();
            tracing::info_span!(
                "http",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = header("x-request-id"),
                trace_id,
                parent_id,
                operation = tracing::field::Empty,
                user_id = tracing::field::Empty,
            )
        }));
    router
        .fallback(not_found)
        .layer(layers)
        // Behind one Arc: the state is cloned for every request that extracts it.
        .with_state(Arc::new(state))
}

/// A random UUID v4 per request that asks for none, from the thread's RNG (no system call per
/// request, unlike a fresh OS-random UUID).
#[derive(Clone, Copy)]
struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let bytes: [u8; 16] = rand::random();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer())).ok().map(RequestId::new)
    }
}

/// The metrics endpoint alone, for `METRICS_ADDR`.
pub fn metrics_router(state: HttpState) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(Arc::new(state))
}

/// `CORS_ORIGINS`: the listed origins may call the API from a browser, with credentials; `*` lets
/// any origin call it without them. Unset: no CORS headers, so browsers allow same-origin only.
fn cors(settings: &crate::config::HttpSettings) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            RATELIMIT_LIMIT,
            RATELIMIT_REMAINING,
            RATELIMIT_RESET,
            IDEMPOTENT_REPLAYED,
        ])
        .max_age(settings.cors_max_age);
    if settings.cors_origins.iter().any(|origin| origin == "*") {
        return base.allow_origin(AllowOrigin::any());
    }
    let origins: Vec<HeaderValue> =
        settings.cors_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    base.allow_origin(AllowOrigin::list(origins)).allow_credentials(true)
}

/// (trace id, parent span id) of a valid `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
fn traceparent(value: &str) -> Option<(String, String)> {
    if value.is_empty() {
        return None;
    }
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && hex(parent, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && parent.bytes().any(|b| b != b'0') =>
        {
            Some((trace.to_ascii_lowercase(), parent.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// The response media types of GraphQL over HTTP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Media {
    /// `application/json`: every well-formed request answers 200, errors or not.
    Json,
    /// `application/graphql-response+json`: a request error (no `data`) answers 4xx.
    GraphqlResponse,
}

impl Media {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::Json => "application/json; charset=utf-8",
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }

    /// The type the client's `Accept` prefers (by `q`; on a tie the GraphQL one, unless it only
    /// came in through a wildcard). No header means `application/json`; `None` means neither is
    /// acceptable (406).
    fn negotiate(headers: &HeaderMap) -> Option<Media> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(Media::Json);
        };
        if accept.trim().is_empty() {
            return Some(Media::Json);
        }
        let mut best: Option<(f32, Media)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let is = |name: &str| media.eq_ignore_ascii_case(name);
            let media = if is("application/graphql-response+json") {
                Media::GraphqlResponse
            } else if is("application/json") || is("application/*") || is("*/*") {
                Media::Json
            } else {
                continue;
            };
            if q <= 0.0 {
                continue;
            }
            let better = match best {
                None => true,
                Some((best_q, best_media)) => {
                    q > best_q || (q == best_q && media == Media::GraphqlResponse && best_media == Media::Json)
                }
            };
            if better {
                best = Some((q, media));
            }
        }
        best.map(|(_, media)| media)
    }

    /// The status of one operation's answer: what admission asked for, else 200 under
    /// `application/json`; under `application/graphql-response+json` a request error's status
    /// follows its code.
    fn status(self, answer: &Answer) -> StatusCode {
        let code = match &answer.outcome {
            Outcome::Refused { status: Some(code), .. } => {
                return StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ if self == Media::Json => return StatusCode::OK,
            Outcome::Refused { error, .. } => error.code(),
            Outcome::Executed { response, .. } if admission::is_request_error(response) => {
                admission::first_code(response).unwrap_or(crate::error::code::BAD_USER_INPUT)
            }
            Outcome::Executed { .. } | Outcome::Stored { .. } => return StatusCode::OK,
        };
        request_error_status(code)
    }
}

/// The HTTP status of a request error with this `extensions.code`.
fn request_error_status(code: &str) -> StatusCode {
    use crate::error::code;
    match code {
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        code::FORBIDDEN => StatusCode::FORBIDDEN,
        code::NOT_FOUND => StatusCode::NOT_FOUND,
        code::CONFLICT => StatusCode::CONFLICT,
        code::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        code::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        code::INTERNAL => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A response holding only a request error (the request never reached GraphQL execution).
fn error_response(status: StatusCode, error: AppError) -> Response {
    error_response_as(Media::Json, status, error)
}

fn error_response_as(media: Media, status: StatusCode, error: AppError) -> Response {
    let body = admission::to_json(&admission::error_response(&error)).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, media.content_type());
    response
}

/// A request body as a GraphQL request, or a BAD_USER_INPUT that says what is wrong with it in
/// the request's own terms (serde's own message for the untagged batch names internal types).
fn read_request(bytes: &[u8]) -> Result<BatchRequest, AppError> {
    // The common case, a single object, without the untagged batch's buffering.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        if let Ok(request) = serde_json::from_slice::<async_graphql::Request>(bytes) {
            return Ok(BatchRequest::Single(request));
        }
    } else if let Ok(batch) = serde_json::from_slice::<BatchRequest>(bytes) {
        return Ok(batch);
    }
    let bad = |message: String| AppError::bad_input("body", message);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the body is empty; send {\"query\": \"...\"}".into()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| bad(format!("the body is not JSON: {error}")))?;
    let explain = |value: serde_json::Value, at: String| {
        serde_json::from_value::<async_graphql::Request>(value).err().map(|error| format!("{at}{error}"))
    };
    let reason = match value {
        serde_json::Value::Object(_) => explain(value, String::new()),
        serde_json::Value::Array(items) => items.into_iter().enumerate().find_map(|(i, item)| {
            if item.is_object() {
                explain(item, format!("operation {i} of the batch: "))
            } else {
                Some(format!("operation {i} of the batch is not a JSON object"))
            }
        }),
        _ => None,
    };
    Err(bad(reason
        .unwrap_or_else(|| "a GraphQL request is a JSON object with `query` (or an array of them for a batch)".into())))
}

fn peer(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
}

/// The client's address: the socket's peer, unless the peer is a trusted proxy (`TRUSTED_PROXIES`);
/// then the nearest `X-Forwarded-For` hop that is not one. A forged header from anyone else is
/// ignored.
fn client_ip(state: &HttpState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let peer = peer.map(|p| p.ip());
    let proxies = &state.app.config.http.trusted_proxies;
    let trusted = |ip: IpAddr| proxies.iter().any(|net| net.contains(ip));
    let Some(peer_ip) = peer.filter(|ip| trusted(*ip)) else { return peer };
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the nearest hop back: trusted proxies are skipped; the first other hop is the client. A
    // hop that cannot be read ends the walk at the last address a trusted proxy vouched for.
    let mut client = peer_ip;
    for hop in hops.iter().rev() {
        let Some(ip) = forwarded_ip(hop) else { return Some(client) };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` hop: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn forwarded_ip(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).and_then(|v6| v6.parse().ok())
}

async fn graphql_post(State(state): State<Arc<HttpState>>, request: axum::extract::Request) -> Response {
    // Taken apart, not extracted piecewise: the header and extension extractors clone their maps.
    let (parts, body) = request.into_parts();
    let (headers, extensions) = (&parts.headers, &parts.extensions);
    let Some(media) = Media::negotiate(headers) else { return not_acceptable() };
    let limits = &state.app.config.graphql;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return error_response_as(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::bad_input("content-type", "POST /graphql takes Content-Type: application/json"),
        );
    }
    let bytes = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response_as(
                media,
                StatusCode::PAYLOAD_TOO_LARGE,
                AppError::bad_input("body", format!("request body exceeds {} bytes", limits.max_body_bytes)),
            )
        }
    };
    match read_request(&bytes) {
        Ok(batch) => execute(&state, batch, headers, peer(extensions), false, media).await,
        Err(error) => error_response_as(media, StatusCode::BAD_REQUEST, error),
    }
}

/// 406: the client accepts neither GraphQL response type.
fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        AppError::bad_input(
            "accept",
            "this endpoint answers application/graphql-response+json or application/json; accept one of them",
        ),
    )
}

#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// GET /graphql: queries only (GraphQL over HTTP); mutations must be POSTed.
async fn graphql_get(
    State(state): State<Arc<HttpState>>,
    extensions: Extensions,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(media) = Media::negotiate(&headers) else { return not_acceptable() };
    let error_response = |status, error| error_response_as(media, status, error);
    let Ok(Query(params)) = params else {
        return error_response(StatusCode::BAD_REQUEST, AppError::bad_input("query", "malformed query string"));
    };
    // An APQ hash alone (extensions, no query) is a GET as Apollo clients send it.
    if params.query.is_none() && params.extensions.is_none() {
        return error_response(StatusCode::BAD_REQUEST, AppError::bad_input("query", "missing the `query` parameter"));
    }
    let mut request = async_graphql::Request::new(params.query.unwrap_or_default());
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    for (field, raw) in [("variables", params.variables), ("extensions", params.extensions)] {
        let Some(raw) = raw else { continue };
        let parsed = serde_json::from_str::<serde_json::Value>(&raw).ok();
        match (field, parsed) {
            ("variables", Some(value)) => request.variables = async_graphql::Variables::from_json(value),
            (_, Some(value)) => match serde_json::from_value(value) {
                Ok(extensions) => request.extensions = extensions,
                Err(_) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        AppError::bad_input(field, "`extensions` is not an object"),
                    )
                }
            },
            (_, None) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    AppError::bad_input(field, format!("`{field}` is not JSON")),
                )
            }
        }
    }
    execute(&state, BatchRequest::Single(request), &headers, peer(&extensions), true, media).await
}

async fn execute(
    state: &HttpState,
    batch: BatchRequest,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    queries_only: bool,
    media: Media,
) -> Response {
    let error_response = |status, error| error_response_as(media, status, error);
    let limits = &state.app.config.graphql;
    let is_batch = matches!(batch, BatchRequest::Batch(_));
    let requests = match batch {
        BatchRequest::Single(request) => vec![request],
        BatchRequest::Batch(requests) => {
            if requests.is_empty() || requests.len() > limits.max_batch {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    AppError::QueryTooComplex(format!("a batch holds 1 to {} operations", limits.max_batch)),
                );
            }
            requests
        }
    };
    let idempotency_key = match headers.get(admission::idempotency::HEADER).map(|v| v.to_str().unwrap_or("\u{0}")) {
        None => None,
        Some(_) if is_batch => {
            return error_response(
                StatusCode::BAD_REQUEST,
                AppError::bad_input("Idempotency-Key", "applies to one operation; send batched mutations one by one"),
            )
        }
        Some(raw) => match admission::idempotency::parse_key(raw) {
            Ok(key) => Some(key),
            Err(error) => return error_response(StatusCode::BAD_REQUEST, error),
        },
    };
    let viewer =
        Viewer::from_authorization(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()), &state.app.keys);
    if let Some(id) = viewer.user_id() {
        tracing::Span::current().record("user_id", tracing::field::display(id));
    }
    let caller = Caller { viewer, ip: client_ip(state, headers, peer) };
    let options = Options { cacheable: !is_batch, queries_only, idempotency_key };
    // The clock is read for the request's log line only when that line is written.
    let started = tracing::enabled!(tracing::Level::INFO).then(Instant::now);
    let mut bodies = Vec::with_capacity(requests.len());
    let (mut status, mut retry_after, mut cost, mut replayed, mut errors) = (StatusCode::OK, None, None, false, 0);
    for request in requests {
        let answer = state.admission.admit(request, &caller, options.clone()).await;
        retry_after = retry_after.or(answer.retry_after());
        cost = answer.cost.or(cost);
        if !is_batch {
            status = media.status(&answer);
        }
        match &answer.outcome {
            Outcome::Refused { .. } => errors += 1,
            Outcome::Executed { response, .. } => errors += response.errors.len(),
            Outcome::Stored { replayed: true, .. } => replayed = true,
            Outcome::Stored { .. } => {}
        }
        match body_of(state, answer) {
            Ok(body) => bodies.push(body),
            Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, error),
        }
    }
    if let Some(started) = started {
        tracing::info!(duration_ms = started.elapsed().as_millis() as u64, errors, "graphql request");
    }
    let body = match (is_batch, bodies.pop()) {
        (false, Some(body)) => body,
        (_, last) => {
            let mut joined = Vec::from(&b"["[..]);
            for (i, body) in bodies.iter().chain(last.as_ref()).enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(body);
            }
            joined.push(b']');
            Bytes::from(joined)
        }
    };
    let mut response = json_response(media, body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    // The budget's headers only where a budget applies: with RATE_LIMITS=false nothing is
    // enforced, and a quota policy that is not one would mislead clients that pace themselves.
    if let Some(cost) = cost.filter(|_| state.app.limiter.is_enabled()) {
        rate_limit_headers(headers, &cost);
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (draft-ietf-httpapi-ratelimit-headers) for the
/// viewer's cost budget, which every operation draws on.
fn rate_limit_headers(headers: &mut HeaderMap, cost: &CostReport) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(cost.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(cost.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(cost.reset_after));
}

/// The JSON of one operation's answer, with `extensions.cost`; a response the cache may keep is
/// kept (without the cost, which is the viewer's, not the page's).
fn body_of(state: &HttpState, answer: Answer) -> Result<Bytes, AppError> {
    let cost = answer.cost;
    let serialize = |response: &async_graphql::Response| {
        admission::to_json(response).map(Bytes::from).map_err(|error| AppError::Internal(error.into()))
    };
    let body = match answer.outcome {
        Outcome::Refused { error, .. } => serialize(&admission::error_response(&error))?,
        Outcome::Executed { mut response, keep, .. } => {
            if !response.extensions.is_empty() {
                if let Some(value) = cost.and_then(|c| async_graphql::Value::from_json(serde_json::json!(c)).ok()) {
                    response.extensions.insert("cost".into(), value);
                }
                return serialize(&response);
            }
            let body = serialize(&response)?;
            if let Some((key, reads, cost)) = keep {
                state.app.cache.store_response(key, body.clone(), reads, cost);
            }
            body
        }
        Outcome::Stored { body, .. } => body,
    };
    Ok(with_cost(body, cost))
}

/// Adds `"extensions":{"cost":...}` to a serialized response that has no extensions (it always
/// begins with `{"data":` or `{"errors":`).
fn with_cost(body: Bytes, cost: Option<CostReport>) -> Bytes {
    let Some(cost) = cost else { return body };
    if body.len() < 2 || body.last() != Some(&b'}') {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(&body[..body.len() - 1]);
    out.extend_from_slice(b",\"extensions\":{\"cost\":");
    if serde_json::to_writer(&mut out, &cost).is_err() {
        return body;
    }
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// A GraphQL response body as sent: never stored by HTTP caches (it may be per viewer).
fn json_response(media: Media, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    // Room for every header a GraphQL response carries (these two, the request id, `RateLimit-*`,
    // `Retry-After`...): growing the map re-hashes it.
    let headers = response.headers_mut();
    *headers = HeaderMap::with_capacity(12);
    headers.insert(header::CONTENT_TYPE, media.content_type());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Per-request facts resolvers may need (audit logs record the client IP).
#[derive(Clone, Copy, Debug)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
}

/// graphql-transport-ws ([`admission::ws`] speaks the protocol). The viewer comes from the
/// `connection_init` payload; messages are capped at the HTTP body limit.
async fn graphql_ws(
    State(state): State<Arc<HttpState>>,
    extensions: Extensions,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let subprotocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == admission::ws::PROTOCOL);
    let ip = client_ip(&state, &headers, peer(&extensions));
    let max = state.app.config.graphql.max_body_bytes;
    let admission = state.admission.clone();
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .protocols([admission::ws::PROTOCOL])
        .on_upgrade(move |socket| admission::ws::serve(socket, admission, ip, subprotocol))
}

async fn graphiql(method: Method) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let mut response = Html(include_str!("../assets/graphiql/index.html")).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self' data:; connect-src 'self' ws: wss:; worker-src 'self' blob:",
        ),
    );
    response
}

async fn graphiql_asset(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (include_bytes!("../assets/graphiql/graphiql.min.js"), "text/javascript"),
        "graphiql.min.css" => (include_bytes!("../assets/graphiql/graphiql.min.css"), "text/css"),
        "react.production.min.js" => (include_bytes!("../assets/graphiql/react.production.min.js"), "text/javascript"),
        "react-dom.production.min.js" => {
            (include_bytes!("../assets/graphiql/react-dom.production.min.js"), "text/javascript")
        }
        "graphql-ws.min.js" => (include_bytes!("../assets/graphiql/graphql-ws.min.js"), "text/javascript"),
        "init.js" => (include_bytes!("../assets/graphiql/init.js"), "text/javascript"),
        "page.css" => (include_bytes!("../assets/graphiql/page.css"), "text/css"),
        _ => return not_found().await,
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the database answers. Without Redis (configured but unreachable) the instance
/// still serves, degraded: 200 with `degraded`, so a Redis outage does not take every instance
/// out of the load balancer.
async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let redis = match &state.app.redis {
        None => "off",
        Some(link) if link.is_up() => "up",
        Some(_) => "down",
    };
    let database = crate::db::ping(&state.app.db).await;
    let (status, text) = match (database, redis) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, "down") => (StatusCode::OK, "degraded"),
        (true, _) => (StatusCode::OK, "ready"),
    };
    let events = match state.app.events.is_relaying() {
        None => "local",
        Some(true) => "redis",
        Some(false) => "local (relay resubscribing)",
    };
    let body = serde_json::json!({
        "status": text,
        "database": if database { "up" } else { "down" },
        "redis": redis,
        "events": events,
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    // On the API's own address `METRICS_TOKEN`, when set, is asked for as a bearer token.
    if let (Some(token), None) = (&state.app.config.http.metrics_token, state.app.config.http.metrics_addr) {
        let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let expected = format!("Bearer {}", token.expose_secret());
        if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "metrics need a token")
                .into_response();
        }
    }
    let mut text = state.app.metrics.render();
    // Exact statement count of this process (the benchmark and tests divide it by requests).
    text.push_str(&format!(
        "# TYPE db_statements_executed counter\ndb_statements_executed {}\n",
        state.app.statements.get()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct Signed {
    expires: Option<u64>,
    size: Option<u64>,
    sig: Option<String>,
    /// A free course content whose media this is (its stable URL, see `uploads::free_media_url`).
    free: Option<String>,
}

fn media_error(status: StatusCode, message: &str) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// A stored file: public keys to anyone (cacheable for a year: a key is never rewritten with other
/// content once READY), private keys only with a valid, unexpired signature, or as the media of a
/// free course content while it is free (`?free=<content id>`). One `Range` of bytes
/// is answered 206 (players seek in videos, downloads resume); several, or a `Range` under
/// `If-Range`, get the whole file (RFC 9110 lets a server ignore them); none of it exists: 416.
async fn media_get(
    State(state): State<Arc<HttpState>>,
    Path(key): Path<String>,
    Query(signed): Query<Signed>,
    headers: HeaderMap,
) -> Response {
    use crate::storage::ByteRange;
    let storage = &state.app.storage;
    if !crate::storage::valid_key(&key) {
        return media_error(StatusCode::NOT_FOUND, "no such file");
    }
    let private = key.starts_with("private/");
    let mut cache = if private { "private, no-store" } else { "public, max-age=31536000, immutable" };
    if private {
        let ok = match (signed.expires, signed.sig.as_deref(), signed.free.as_deref()) {
            (Some(expires), Some(sig), _) => storage.verify_read(&key, expires, sig),
            (_, _, Some(content)) => {
                // Cacheable, but not for long: the content may stop being free.
                cache = "public, max-age=600";
                match crate::domain::uploads::is_free_media(&state.app.db, storage, content, &key).await {
                    Ok(free) => free,
                    Err(error) => {
                        tracing::error!(error = ?error, "free media check failed");
                        return media_error(StatusCode::INTERNAL_SERVER_ERROR, "the check failed");
                    }
                }
            }
            _ => false,
        };
        if !ok {
            return media_error(StatusCode::FORBIDDEN, "a valid, unexpired signature is required");
        }
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if !headers.contains_key(header::IF_RANGE) => ByteRange::parse(value),
        _ => None,
    };
    let read = match range {
        None => storage.stream(&key).await.map(|found| found.map(|object| (object, None))),
        Some(range) => match storage.size(&key).await {
            Ok(Some(size)) => match range.within(size) {
                None => {
                    let mut response =
                        media_error(StatusCode::RANGE_NOT_SATISFIABLE, "the range is past the file's end");
                    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                        response.headers_mut().insert(header::CONTENT_RANGE, value);
                    }
                    return response;
                }
                Some(offsets) => storage
                    .stream_range(&key, offsets.clone())
                    .await
                    .map(|found| found.map(|object| (object, Some((offsets, size))))),
            },
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        },
    };
    match read {
        Ok(Some((object, part))) => {
            // The type the key's extension names (keys are ours: `completeUpload` refuses bytes
            // of another type), never one a client sent; anything else is a download, not a page.
            let content_type = crate::domain::uploads::type_of_key(&key).unwrap_or("application/octet-stream");
            // Streamed: a large file is never held in memory.
            let mut response = Body::from_stream(object.chunks).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
            if let Some((offsets, size)) = part {
                let value = format!("bytes {}-{}/{size}", offsets.start, offsets.end - 1);
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            response
        }
        Ok(None) => media_error(StatusCode::NOT_FOUND, "no such file"),
        Err(error) => {
            tracing::error!(error = ?error, "media read failed");
            media_error(StatusCode::INTERNAL_SERVER_ERROR, "the file store failed")
        }
    }
}

/// A local upload: the bytes of a `createUpload` ticket, at most the declared size, before the
/// URL expires. `completeUpload` then checks what arrived.
async fn media_put(
    State(state): State<Arc<HttpState>>,
    Path(key): Path<String>,
    Query(signed): Query<Signed>,
    body: Body,
) -> Response {
    let storage = &state.app.storage;
    let (Some(expires), Some(size), Some(sig)) = (signed.expires, signed.size, signed.sig.as_deref()) else {
        return media_error(StatusCode::FORBIDDEN, "a signed upload URL is required");
    };
    if !crate::storage::valid_key(&key) || !storage.verify_upload(&key, expires, size, sig) {
        return media_error(StatusCode::FORBIDDEN, "the upload URL is not valid or has expired");
    }
    // Streamed to the store (never whole in memory), at most the declared size; stored untyped:
    // `completeUpload` writes the type it finds in the bytes, never the declared one.
    match storage.put_stream(&key, body.into_data_stream(), size).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => media_error(StatusCode::PAYLOAD_TOO_LARGE, "more bytes than the upload declared"),
        Err(AppError::BadInput { message, .. }) => media_error(StatusCode::BAD_REQUEST, &message),
        Err(error) => {
            tracing::error!(error = ?error, "media write failed");
            media_error(StatusCode::INTERNAL_SERVER_ERROR, "the file store failed")
        }
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, AppError::not_found("route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_is_read_only_when_valid() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(valid), Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "00f067aa0ba902b7".into())));
        assert_eq!(traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(traceparent("garbage"), None);
    }

    #[test]
    fn forwarded_hops_are_read_in_their_usual_forms() {
        assert_eq!(forwarded_ip("203.0.113.9"), "203.0.113.9".parse().ok());
        assert_eq!(forwarded_ip("203.0.113.9:4711"), "203.0.113.9".parse().ok());
        assert_eq!(forwarded_ip("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(forwarded_ip("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(forwarded_ip("unknown"), None);
    }

    #[test]
    fn cost_is_spliced_into_a_serialized_response() {
        let cost = CostReport { requested: 3, limit: 100, remaining: 97, reset_at: chrono::Utc::now(), reset_after: 0 };
        let body = with_cost(Bytes::from_static(br#"{"data":{"a":1}}"#), Some(cost));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(value["data"]["a"], 1);
        assert_eq!(value["extensions"]["cost"]["requested"], 3);
        assert_eq!(value["extensions"]["cost"]["remaining"], 97);
    }

    #[test]
    fn error_codes_are_set() {
        let error = AppError::bad_input("input.email", "bad");
        assert_eq!(error.code(), crate::error::code::BAD_USER_INPUT);
    }
}
