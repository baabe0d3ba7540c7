//! HTTP surface: POST/GET /graphql, the graphql-transport-ws endpoint, the self-hosted GraphiQL
//! page, /healthz, /readyz and /metrics.
//!
//! The GraphQL handler reads the body itself so that an oversized, malformed or hostile request
//! is refused with a GraphQL-shaped error (and a 4xx status), never a 5xx and never a stall.

use crate::app::AppState;
use crate::auth::Viewer;
use crate::error::AppError;
use crate::graphql::AppSchema;
use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{BatchRequest, BatchResponse, Data};
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::Extensions;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Instant;
use tower_http::trace::TraceLayer;

/// Longest query text accepted before parsing.
const MAX_QUERY_CHARS: usize = 100_000;
/// Deepest `{`/`(`/`[` nesting accepted before parsing (the parser recurses on nesting).
const MAX_PRE_PARSE_NESTING: usize = 64;

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/", get(graphiql))
        .route("/assets/graphiql/{file}", get(graphiql_asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<Body>| {
            tracing::info_span!(
                "http",
                method = %request.method(),
                path = %request.uri().path(),
                operation = tracing::field::Empty,
                user_id = tracing::field::Empty,
            )
        }))
        .with_state(state)
}

/// A response holding only request-level GraphQL errors.
fn error_response(status: StatusCode, error: AppError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": error.message(), "extensions": { "code": error.code() } }]
    });
    (status, axum::Json(body)).into_response()
}

fn peer(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
}

fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<std::net::IpAddr> {
    // Behind a proxy the first X-Forwarded-For hop is the client; otherwise the socket peer.
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer.map(|p| p.ip()))
}

async fn graphql_post(
    State(state): State<HttpState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limits = &state.app.config.graphql;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") && !content_type.starts_with("application/graphql-response+json") {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::bad_input("content-type", "POST /graphql takes Content-Type: application/json"),
        );
    }
    let bytes = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                AppError::bad_input("body", format!("request body exceeds {} bytes", limits.max_body_bytes)),
            )
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                AppError::bad_input("body", format!("body is not a GraphQL request: {error}")),
            )
        }
    };
    execute(&state, batch, &headers, peer(&extensions)).await
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
    State(state): State<HttpState>,
    extensions: Extensions,
    headers: HeaderMap,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return error_response(StatusCode::BAD_REQUEST, AppError::bad_input("query", "malformed query string"));
    };
    let Some(query) = params.query else {
        return error_response(StatusCode::BAD_REQUEST, AppError::bad_input("query", "missing the `query` parameter"));
    };
    let mut request = async_graphql::Request::new(query.clone());
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    for (field, raw) in [("variables", params.variables), ("extensions", params.extensions)] {
        let Some(raw) = raw else { continue };
        match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(value) if field == "variables" => request.variables = async_graphql::Variables::from_json(value),
            Ok(_) => {}
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    AppError::bad_input(field, format!("`{field}` is not JSON")),
                )
            }
        }
    }
    if precheck(&query).is_ok() {
        if let Ok(document) = async_graphql::parser::parse_query(&query) {
            let is_mutation = document.operations.iter().any(|(name, op)| {
                op.node.ty != async_graphql::parser::types::OperationType::Query
                    && (request.operation_name.is_none()
                        || request.operation_name.as_deref() == name.map(|n| n.as_str()))
            });
            if is_mutation {
                let mut response = error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    AppError::bad_input("query", "only queries may be sent with GET; POST mutations"),
                );
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                return response;
            }
        }
    }
    execute(&state, BatchRequest::Single(request), &headers, peer(&extensions)).await
}

/// Refuses query texts that are too long or too deeply nested before the parser sees them.
fn precheck(query: &str) -> Result<(), AppError> {
    if query.trim().is_empty() {
        return Err(AppError::bad_input("query", "the query is empty"));
    }
    if query.len() > MAX_QUERY_CHARS {
        return Err(AppError::QueryTooComplex(format!("the query exceeds {MAX_QUERY_CHARS} characters")));
    }
    let (mut depth, mut deepest, mut in_string, mut escaped, mut in_comment) = (0usize, 0usize, false, false, false);
    for c in query.chars() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => in_string = true,
            '{' | '(' | '[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_PRE_PARSE_NESTING {
        return Err(AppError::QueryTooComplex(format!("the query nests deeper than {MAX_PRE_PARSE_NESTING} levels")));
    }
    Ok(())
}

async fn execute(state: &HttpState, batch: BatchRequest, headers: &HeaderMap, peer: Option<SocketAddr>) -> Response {
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
    let viewer =
        Viewer::from_authorization(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()), &state.app.keys);
    if let Some(id) = viewer.user_id() {
        tracing::Span::current().record("user_id", tracing::field::display(id));
    }
    let ip = client_ip(headers, peer);
    let started = Instant::now();
    let mut responses = Vec::with_capacity(requests.len());
    // A single query's response to offer the response cache, with what it read.
    let mut keep = None;
    for request in requests {
        if let Err(error) = precheck(&request.query) {
            // A single request without a usable query is malformed: 400 (GraphQL over HTTP).
            if !is_batch && matches!(error, AppError::BadInput { .. }) {
                return error_response(StatusCode::BAD_REQUEST, error);
            }
            responses.push(async_graphql::Response::from_errors(vec![error
                .to_graphql()
                .into_server_error(Default::default())]));
            continue;
        }
        // A single query may be answered from, or kept in, the response cache.
        let cache_key = if is_batch { None } else { response_key(&state.app.cache, &viewer, &request) };
        if let Some(stored) = cache_key.as_ref().and_then(|key| state.app.cache.response(key)) {
            crate::graphql::extension::record_request(&stored.operation, "ok", started.elapsed());
            tracing::Span::current().record("operation", stored.operation.as_str());
            tracing::info!(duration_ms = started.elapsed().as_millis() as u64, cached = true, "graphql request");
            return json_response(stored.body.clone());
        }
        let request = request.data(viewer.clone()).data(RequestMeta { ip });
        let run = tokio::time::timeout(limits.request_timeout, state.schema.execute(request));
        let (outcome, reads) = crate::cache::recording(run).await;
        let response = match outcome {
            Ok(response) => response,
            Err(_) => {
                metrics::counter!("graphql_timeouts_total").increment(1);
                async_graphql::Response::from_errors(vec![AppError::Timeout
                    .to_graphql()
                    .into_server_error(Default::default())])
            }
        };
        if let Some(key) = cache_key.filter(|_| response.errors.is_empty() && response.extensions.is_empty()) {
            keep = Some((key, reads));
        }
        responses.push(response);
    }
    tracing::info!(
        duration_ms = started.elapsed().as_millis() as u64,
        errors = responses.iter().map(|r| r.errors.len()).sum::<usize>(),
        "graphql request"
    );
    let body = match (is_batch, responses.pop()) {
        (false, Some(response)) => BatchResponse::Single(response),
        (_, last) => BatchResponse::Batch(responses.into_iter().chain(last).collect()),
    };
    let body = match serde_json::to_vec(&body) {
        Ok(body) => Bytes::from(body),
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, AppError::Internal(error.into())),
    };
    if let Some((key, reads)) = keep {
        state.app.cache.store_response(key, body.clone(), reads);
    }
    json_response(body)
}

/// The response cache's key of a single request: who asks (a verified user by id and role, or
/// anonymous), the operation, the query text and the variables. `None` when it must not be cached:
/// the cache is off, the credential did not verify, or the request carries extensions or uploads.
fn response_key(
    cache: &crate::cache::Cache,
    viewer: &Viewer,
    request: &async_graphql::Request,
) -> Option<crate::cache::ResponseKey> {
    if !request.extensions.is_empty() || !request.uploads.is_empty() {
        return None;
    }
    let who = match viewer {
        Viewer::Anonymous => "anonymous".to_string(),
        Viewer::User { id, role } => format!("{id}/{role:?}"),
        Viewer::Invalid(_) => return None,
    };
    let variables = serde_json::to_string(&request.variables).ok()?;
    cache.response_key(&[&who, request.operation_name.as_deref().unwrap_or(""), &request.query, &variables])
}

/// A GraphQL response body as sent: JSON, never stored by HTTP caches (it may be per viewer).
fn json_response(body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Per-request facts resolvers may need (audit logs record the client IP).
#[derive(Clone, Copy, Debug)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
}

/// graphql-transport-ws (and the legacy subscriptions-transport-ws). The viewer comes from the
/// `connection_init` payload; a bad token closes the socket with 4401 (invalid) / 4403 (forbidden).
async fn graphql_ws(State(state): State<HttpState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|p| p.trim().parse::<WebSocketProtocols>().ok()))
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    upgrade
        .protocols(["graphql-transport-ws", "graphql-ws"])
        .on_upgrade(move |socket| serve_ws(socket, state, protocol))
}

const WS_UNAUTHORIZED_PREFIX: &str = "Unauthorized: ";
const WS_FORBIDDEN_PREFIX: &str = "Forbidden: ";

async fn serve_ws(socket: WebSocket, state: HttpState, protocol: WebSocketProtocols) {
    let (mut sink, stream) = socket.split();
    let keys = state.app.keys.clone();
    let db = state.app.db.clone();
    let input =
        stream.take_while(|message| futures_util::future::ready(message.is_ok())).filter_map(|message| async move {
            match message {
                Ok(Message::Text(text)) => Some(Bytes::from(text.as_str().to_owned())),
                Ok(Message::Binary(bytes)) => Some(bytes),
                _ => None,
            }
        });
    let stream = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(move |payload| {
            let keys = keys.clone();
            let db = db.clone();
            async move {
                let header = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .and_then(|v| v.as_str())
                    .map(String::from);
                let viewer = Viewer::from_authorization(header.as_deref(), &keys);
                if let Viewer::Invalid(reason) = &viewer {
                    return Err(async_graphql::Error::new(format!("{WS_UNAUTHORIZED_PREFIX}{reason}")));
                }
                if viewer.user_id().is_some() {
                    if let Err(error) = crate::domain::active_user(&db, &viewer).await {
                        return Err(async_graphql::Error::new(format!("{WS_FORBIDDEN_PREFIX}{}", error.message())));
                    }
                }
                let mut data = Data::default();
                data.insert(viewer);
                Ok(data)
            }
        })
        .keepalive_timeout(std::time::Duration::from_secs(60));
    let mut stream = std::pin::pin!(stream);
    while let Some(message) = stream.next().await {
        let outgoing = match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => {
                let code = match code {
                    1002 if reason.starts_with(WS_UNAUTHORIZED_PREFIX) => 4401,
                    1002 if reason.starts_with(WS_FORBIDDEN_PREFIX) => 4403,
                    _ => code,
                };
                Message::Close(Some(CloseFrame { code, reason: reason.into() }))
            }
        };
        if sink.send(outgoing).await.is_err() {
            break;
        }
    }
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

async fn readyz(State(state): State<HttpState>) -> Response {
    if crate::db::ping(&state.app.db).await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let mut text = state.app.metrics.render();
    // Exact statement count of this process (the benchmark and tests divide it by requests).
    text.push_str(&format!(
        "# TYPE db_statements_executed counter\ndb_statements_executed {}\n",
        state.app.statements.get()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, AppError::not_found("route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precheck_refuses_deep_and_long_queries() {
        assert!(precheck("{ me { id } }").is_ok());
        assert!(precheck(&format!("{}{}", "{a".repeat(100), "}".repeat(100))).is_err());
        assert!(precheck(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        // Braces inside strings and comments do not count.
        assert!(precheck(&format!("{{ f(x: \"{}\") }} # {}", "{".repeat(100), "{".repeat(100))).is_ok());
        assert!(precheck("   ").is_err());
    }

    #[test]
    fn error_codes_are_set() {
        let error = AppError::bad_input("input.email", "bad");
        assert_eq!(error.code(), crate::error::code::BAD_USER_INPUT);
    }
}
