//! The WebSocket side of admission, speaking graphql-transport-ws exactly as its protocol document
//! says (github.com/enisdenjo/graphql-ws, PROTOCOL.md): `connection_init` within
//! `WS_INIT_TIMEOUT_SECS` (else 4408), one only (4429), `connection_ack` once the viewer checked out
//! (a bad token 4401, a banned or inactive user 4403); `ping`/`pong`; `subscribe` only after the
//! ack (else 4401) and never twice under a live id (4409); `next`, `error` (a request error, before
//! execution) and `complete` per operation; anything malformed closes with 4400, a server fault
//! with 4500, a socket without the `graphql-transport-ws` subprotocol with 4406.
//!
//! Every operation goes through the same checks as over HTTP ([`Admission::prepare`]), plus what
//! only a socket needs: a cap on the operations it holds at once (`WS_MAX_OPERATIONS`), a message
//! rate per socket (`RATE_WS_MESSAGES`), and a viewer that is checked again while the socket lives:
//! it closes with 4401 when the access token expires or its user logs out, and with 4403 when the
//! user is banned (through the event bus, so the instance holding the socket acts whichever
//! instance saw the change).

use super::{error_response, Admission, Caller, Options};
use crate::auth::Viewer;
use crate::error::AppError;
use crate::events::Event;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{self, BoxStream, StreamExt};
use futures_util::SinkExt;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why the server closes a socket: a WebSocket close code and reason.
pub type Close = (u16, String);

/// One socket's state, shared by its executor and its serving loop.
pub struct Socket {
    id: uuid::Uuid,
    ip: Option<IpAddr>,
    viewer: Mutex<Viewer>,
    live: AtomicUsize,
    closer: watch::Sender<Option<Close>>,
    /// Held while the socket lives; its session watcher ends when this drops.
    ended: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Socket {
    pub fn new(ip: Option<IpAddr>) -> Arc<Self> {
        let (closer, _) = watch::channel(None);
        Arc::new(Self {
            id: uuid::Uuid::new_v4(),
            ip,
            viewer: Mutex::new(Viewer::Anonymous),
            live: AtomicUsize::new(0),
            closer,
            ended: Mutex::new(None),
        })
    }

    /// Resolves when the server decided to close the socket.
    pub fn closing(&self) -> watch::Receiver<Option<Close>> {
        self.closer.subscribe()
    }

    fn caller(&self) -> Caller {
        let viewer = self.viewer.lock().map(|v| v.clone()).unwrap_or(Viewer::Anonymous);
        Caller { viewer, ip: self.ip }
    }

    /// The viewer `connection_init` established; watches its session from then on. `events` was
    /// subscribed before the viewer was checked, so a ban landing in between is not missed.
    pub fn signed_in(
        self: &Arc<Self>,
        admission: &Admission,
        viewer: Viewer,
        claims: Option<crate::auth::tokens::Claims>,
        mut events: tokio::sync::broadcast::Receiver<Arc<Event>>,
    ) {
        if let Ok(mut slot) = self.viewer.lock() {
            *slot = viewer.clone();
        }
        let Some(user_id) = viewer.user_id() else { return };
        let expires_at = claims.as_ref().map(|c| c.exp);
        let own_session = claims.and_then(|c| c.sid);
        // Dropped with the socket: the watcher ends with it.
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        if let Ok(mut slot) = self.ended.lock() {
            *slot = Some(ended_tx);
        }
        let socket = Arc::downgrade(self);
        let db = admission.state().db.clone();
        tokio::spawn(async move {
            let expiry = async {
                let left = expires_at.map(|exp| exp - chrono::Utc::now().timestamp()).unwrap_or(i64::MAX / 4);
                tokio::time::sleep(std::time::Duration::from_secs(left.max(0) as u64)).await;
            };
            let ended = async {
                loop {
                    match events.recv().await {
                        Ok(event) => {
                            if let Event::SessionsEnded { user_id: ended, session, banned } = event.as_ref() {
                                if *ended == user_id && (session.is_none() || *session == own_session) {
                                    return Some(*banned);
                                }
                            }
                        }
                        // Events were missed: ask the database what they could have said.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if let Some(banned) = still_signed_in(&db, user_id, own_session).await {
                                return Some(banned);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            };
            let close = tokio::select! {
                _ = ended_rx => None,
                _ = expiry => Some((4401, "Unauthorized: the access token expired".to_string())),
                ended = ended => ended.map(|banned| if banned {
                    (4403, "Forbidden: the account is banned".to_string())
                } else {
                    (4401, "Unauthorized: the session ended".to_string())
                }),
            };
            if let (Some(close), Some(socket)) = (close, socket.upgrade()) {
                let _ = socket.closer.send(Some(close));
            }
        });
    }
}

/// `None` while the user is active and the session live; else whether the user is banned.
async fn still_signed_in(
    db: &sea_orm::DatabaseConnection,
    user_id: uuid::Uuid,
    session: Option<uuid::Uuid>,
) -> Option<bool> {
    let viewer = Viewer::User { id: user_id, role: entity::enums::UserRole::User, session: None };
    match crate::domain::active_user(db, &viewer).await {
        Ok(_) => {}
        Err(AppError::Forbidden(message)) => return Some(message.contains("banned")),
        Err(_) => return Some(false),
    }
    match session {
        Some(session) => match crate::domain::accounts::session_is_live(db, session).await {
            Ok(true) => None,
            Ok(false) => Some(false),
            // The database is unreachable: keep the socket rather than guess.
            Err(_) => None,
        },
        None => None,
    }
}

/// Counts one live operation of a socket while it is held.
struct Live(Arc<Socket>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The subprotocol spoken here.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// How often the server pings an idle socket (WebSocket ping frames keep proxies from closing it).
const KEEPALIVE: Duration = Duration::from_secs(30);

/// graphql-transport-ws close codes.
mod close {
    pub const INTERNAL: u16 = 4500;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const SUBPROTOCOL: u16 = 4406;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// What an operation's task sends back to the socket's loop.
enum Out {
    /// A message of operation `id` (generation `generation`); `last` ends the operation.
    Message { id: String, generation: u64, text: String, last: bool },
}

/// Serves one upgraded socket until either side closes it. `subprotocol`: the client asked for
/// graphql-transport-ws (the upgrade selected it).
pub async fn serve(ws: WebSocket, admission: Admission, ip: Option<IpAddr>, subprotocol: bool) {
    let (mut sink, mut input) = ws.split();
    let send_close = |code: u16, reason: String| Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    if !subprotocol {
        let _ = sink.send(send_close(close::SUBPROTOCOL, "Subprotocol not acceptable".into())).await;
        return;
    }
    let socket = Socket::new(ip);
    let mut closing = socket.closing();
    let executor = SocketExecutor { admission: admission.clone(), socket: socket.clone() };
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    // Live operations by id: their generation (an id may be reused once its operation ended) and task.
    let mut live: HashMap<String, (u64, tokio::task::AbortHandle)> = HashMap::new();
    let mut generation = 0u64;
    let mut init_received = false;
    let mut acknowledged = false;
    let init_deadline = tokio::time::sleep(admission.state().config.graphql.ws_init_timeout);
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let close: Option<(u16, String)> = loop {
        let message = tokio::select! {
            _ = &mut init_deadline, if !init_received => {
                break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
            }
            changed = closing.changed() => {
                let close = if changed.is_ok() { closing.borrow().clone() } else { None };
                match close {
                    Some(close) => break Some(close),
                    None => continue,
                }
            }
            Some(Out::Message { id, generation, text, last }) = out_rx.recv() => {
                if live.get(&id).map(|(g, _)| *g) != Some(generation) {
                    continue; // the client completed it meanwhile
                }
                if last {
                    live.remove(&id);
                }
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break None;
                }
                continue;
            }
            _ = keepalive.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
                continue;
            }
            message = input.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            Some(Ok(Message::Binary(bytes))) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => text,
                Err(_) => break Some((close::BAD_REQUEST, "Invalid message received: not UTF-8".into())),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
        };
        let message = match ClientMessage::parse(&text) {
            Ok(message) => message,
            Err(reason) => break Some((close::BAD_REQUEST, reason)),
        };
        match message {
            ClientMessage::Init(payload) => {
                if init_received {
                    break Some((close::TOO_MANY_INITS, "Too many initialisation requests".into()));
                }
                init_received = true;
                match connection_init(&admission, &socket, payload).await {
                    Ok(()) => {
                        acknowledged = true;
                        let ack = r#"{"type":"connection_ack"}"#.to_string();
                        if sink.send(Message::Text(ack.into())).await.is_err() {
                            break None;
                        }
                    }
                    Err(close) => break Some(close),
                }
            }
            ClientMessage::Ping(payload) => {
                let pong = match payload {
                    Some(payload) => serde_json::json!({ "type": "pong", "payload": payload }),
                    None => serde_json::json!({ "type": "pong" }),
                };
                if sink.send(Message::Text(pong.to_string().into())).await.is_err() {
                    break None;
                }
            }
            ClientMessage::Pong => {}
            ClientMessage::Subscribe { id, request } => {
                if !acknowledged {
                    break Some((close::UNAUTHORIZED, "Unauthorized".into()));
                }
                if live.contains_key(&id) {
                    break Some((close::DUPLICATE, format!("Subscriber for {id} already exists")));
                }
                generation += 1;
                let task =
                    tokio::spawn(run_operation(executor.clone(), id.clone(), generation, *request, out_tx.clone()));
                live.insert(id, (generation, task.abort_handle()));
            }
            ClientMessage::Complete { id } => {
                if let Some((_, task)) = live.remove(&id) {
                    task.abort();
                }
            }
        }
    };
    for (_, (_, task)) in live.drain() {
        task.abort();
    }
    if let Some((code, reason)) = close {
        let _ = sink.send(send_close(code, reason)).await;
    }
    let _ = sink.close().await;
}

/// Runs one operation and sends its messages: `next` for each result and `complete` at its end, or
/// one `error` for a request error (nothing ran).
async fn run_operation(
    executor: SocketExecutor,
    id: String,
    generation: u64,
    request: async_graphql::Request,
    out: mpsc::Sender<Out>,
) {
    let mut responses = executor.operation(request).await;
    let mut first = true;
    while let Some(response) = responses.next().await {
        let message = if first && super::is_request_error(&response) {
            let errors = serde_json::to_value(&response.errors).unwrap_or(Json::Array(Vec::new()));
            let text = serde_json::json!({ "id": id, "type": "error", "payload": errors }).to_string();
            let _ = out.send(Out::Message { id, generation, text, last: true }).await;
            return;
        } else {
            let payload = super::to_json(&response).ok().and_then(|body| serde_json::from_slice::<Json>(&body).ok());
            serde_json::json!({ "id": id, "type": "next", "payload": payload.unwrap_or(Json::Null) }).to_string()
        };
        first = false;
        if out.send(Out::Message { id: id.clone(), generation, text: message, last: false }).await.is_err() {
            return;
        }
    }
    let text = serde_json::json!({ "id": id, "type": "complete" }).to_string();
    let _ = out.send(Out::Message { id, generation, text, last: true }).await;
}

/// A message a client may send.
enum ClientMessage {
    Init(Option<serde_json::Map<String, Json>>),
    Ping(Option<Json>),
    Pong,
    Subscribe { id: String, request: Box<async_graphql::Request> },
    Complete { id: String },
}

impl ClientMessage {
    /// A message as the protocol defines it, or the reason it is not one (the socket closes 4400).
    fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("Invalid message received: {why}");
        let value: Json = serde_json::from_str(text).map_err(|_| invalid("not JSON"))?;
        let Json::Object(mut message) = value else { return Err(invalid("not a JSON object")) };
        let payload = message.remove("payload").filter(|p| !p.is_null());
        let object_payload = |payload: Option<Json>| match payload {
            None => Ok(None),
            Some(Json::Object(map)) => Ok(Some(map)),
            Some(_) => Err(invalid("payload must be an object")),
        };
        let id = |message: &serde_json::Map<String, Json>| match message.get("id") {
            Some(Json::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(invalid("id must be a non-empty string")),
        };
        match message.get("type").and_then(Json::as_str) {
            Some("connection_init") => Ok(Self::Init(object_payload(payload)?)),
            Some("ping") => Ok(Self::Ping(object_payload(payload)?.map(Json::Object))),
            Some("pong") => object_payload(payload).map(|_| Self::Pong),
            Some("complete") => Ok(Self::Complete { id: id(&message)? }),
            Some("subscribe") => {
                let id = id(&message)?;
                let Some(mut payload) = object_payload(payload)? else {
                    return Err(invalid("subscribe needs a payload"));
                };
                let Some(Json::String(query)) = payload.remove("query") else {
                    return Err(invalid("subscribe's payload needs a query string"));
                };
                let mut request = async_graphql::Request::new(query);
                match payload.remove("operationName") {
                    None | Some(Json::Null) => {}
                    Some(Json::String(name)) => request = request.operation_name(name),
                    Some(_) => return Err(invalid("operationName must be a string")),
                }
                match payload.remove("variables") {
                    None | Some(Json::Null) => {}
                    Some(variables @ Json::Object(_)) => {
                        request.variables = async_graphql::Variables::from_json(variables)
                    }
                    Some(_) => return Err(invalid("variables must be an object")),
                }
                match payload.remove("extensions") {
                    None | Some(Json::Null) => {}
                    Some(extensions @ Json::Object(_)) => {
                        request.extensions =
                            serde_json::from_value(extensions).map_err(|_| invalid("extensions must be an object"))?;
                    }
                    Some(_) => return Err(invalid("extensions must be an object")),
                }
                Ok(Self::Subscribe { id, request: Box::new(request) })
            }
            Some(other) => Err(invalid(&format!("unexpected message type {other:?}"))),
            None => Err(invalid("missing type")),
        }
    }
}

/// `connection_init`: the viewer from the payload's `Authorization`, checked as over HTTP and then
/// some (an ended session or a banned user opens no socket); the socket watches it from then on.
async fn connection_init(
    admission: &Admission,
    socket: &Arc<Socket>,
    payload: Option<serde_json::Map<String, Json>>,
) -> Result<(), (u16, String)> {
    let header = payload
        .as_ref()
        .and_then(|p| p.get("Authorization").or_else(|| p.get("authorization")))
        .and_then(Json::as_str)
        .map(String::from);
    let app = admission.state();
    // Before the checks, so a ban landing while they run still reaches the watcher.
    let events = app.events.subscribe_all();
    let viewer = Viewer::from_authorization(header.as_deref(), &app.keys);
    if let Viewer::Invalid(reason) = &viewer {
        return Err((close::UNAUTHORIZED, format!("Unauthorized: {reason}")));
    }
    let claims = header
        .as_deref()
        .and_then(|h| h.trim().strip_prefix("Bearer ").or_else(|| h.trim().strip_prefix("bearer ")))
        .and_then(|token| app.keys.verify_access(token.trim()).ok());
    if viewer.user_id().is_some() {
        match crate::domain::active_user(&app.db, &viewer).await {
            Ok(_) => {}
            Err(error @ (AppError::Forbidden(_) | AppError::Unauthenticated(_) | AppError::NotFound { .. })) => {
                return Err((close::FORBIDDEN, format!("Forbidden: {}", error.message())))
            }
            Err(error) => return Err((close::INTERNAL, format!("Internal error: {}", error.code()))),
        }
    }
    // A token of a session that logged out opens no socket.
    if let Some(session) = claims.as_ref().and_then(|c| c.sid) {
        match crate::domain::accounts::session_is_live(&app.db, session).await {
            Ok(true) => {}
            Ok(false) => return Err((close::UNAUTHORIZED, "Unauthorized: the session ended".into())),
            Err(error) => return Err((close::INTERNAL, format!("Internal error: {}", error.code()))),
        }
    }
    socket.signed_in(admission, viewer, claims, events);
    Ok(())
}

/// Runs a socket's operations through admission.
#[derive(Clone)]
struct SocketExecutor {
    admission: Admission,
    socket: Arc<Socket>,
}

impl SocketExecutor {
    fn enter(&self) -> Option<Live> {
        let max = self.admission.state().config.graphql.ws_max_operations;
        let previous = self.socket.live.fetch_add(1, Ordering::SeqCst);
        let live = Live(self.socket.clone());
        (previous < max).then_some(live)
    }

    /// The results of one operation: one for a query or mutation, one per event for a
    /// subscription.
    async fn operation(self, request: async_graphql::Request) -> BoxStream<'static, async_graphql::Response> {
        let app = self.admission.state();
        let rule = app.settings.live().rate.ws_messages;
        let decision = app.limiter.check("ws", &rule, &self.socket.id.to_string(), 1).await;
        if let Err(error) = decision.into_result() {
            return stream::once(async move { error_response(&error) }).boxed();
        }
        let Some(live) = self.enter() else {
            let max = app.config.graphql.ws_max_operations;
            let error = AppError::RateLimited { retry_after_secs: 1 };
            tracing::debug!(max, "socket at its operation cap");
            return stream::once(async move {
                let mut response = error_response(&error);
                if let Some(first) = response.errors.first_mut() {
                    first.message = format!("a socket may hold at most {max} operations at once; complete one first");
                }
                response
            })
            .boxed();
        };
        let caller = self.socket.caller();
        let budget = app.config.graphql.request_timeout;
        let prepared =
            match tokio::time::timeout(budget, self.admission.prepare(request, &caller, &Options::default())).await {
                Ok(Ok(prepared)) => prepared,
                Ok(Err(answer)) => return stream::once(async move { answer.into_response() }).boxed(),
                Err(_) => return stream::once(async { error_response(&AppError::Timeout) }).boxed(),
            };
        if prepared.is_subscription() {
            let finish = prepared.finish();
            let request = prepared.into_request(&caller);
            let stream = self.admission.schema().execute_stream(request);
            // The operation counts as live until its stream ends or the client completes it.
            return stream
                .map(move |mut response| {
                    let _held = &live;
                    finish.apply(&mut response);
                    response
                })
                .boxed();
        }
        let admission = self.admission.clone();
        stream::once(async move {
            let started = std::time::Instant::now();
            let answer = match tokio::time::timeout(budget, admission.run(prepared, &caller, &Options::default())).await
            {
                Ok(answer) => answer,
                Err(_) => return error_response(&AppError::Timeout),
            };
            answer.record(started.elapsed());
            drop(live);
            answer.into_response()
        })
        .boxed()
    }
}
