//! The WebSocket side of admission: every operation a socket sends goes through the same checks as
//! over HTTP ([`Admission::prepare`]), plus what only a socket needs: a cap on the operations it
//! holds at once (`WS_MAX_OPERATIONS`), a message rate per socket (`RATE_WS_MESSAGES`), and a
//! viewer that is checked again while the socket lives: it closes with 4401 when the access token
//! expires or its user logs out, and with 4403 when the user is banned (through the event bus, so
//! the instance holding the socket acts whichever instance saw the change).

use super::{error_response, Admission, Caller, Options};
use crate::auth::Viewer;
use crate::error::AppError;
use crate::events::Event;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

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
    let viewer = Viewer::User { id: user_id, role: entity::enums::UserRole::User };
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

/// async-graphql's WebSocket protocol runs every operation through this.
#[derive(Clone)]
pub struct SocketExecutor {
    pub admission: Admission,
    pub socket: Arc<Socket>,
}

impl SocketExecutor {
    fn enter(&self) -> Option<Live> {
        let max = self.admission.state().config.graphql.ws_max_operations;
        let previous = self.socket.live.fetch_add(1, Ordering::SeqCst);
        let live = Live(self.socket.clone());
        (previous < max).then_some(live)
    }

    async fn operation(
        self,
        request: async_graphql::Request,
        session: Option<Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let app = self.admission.state();
        let rule = app.config.rate.ws_messages;
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
            let request = prepared.into_request(&caller);
            let stream = self.admission.schema().execute_stream_with_session_data(request, session.unwrap_or_default());
            // The operation counts as live until its stream ends or the client completes it.
            return stream
                .map(move |response| {
                    let _held = &live;
                    response
                })
                .boxed();
        }
        let admission = self.admission.clone();
        stream::once(async move {
            let answer = match tokio::time::timeout(budget, admission.run(prepared, &caller, &Options::default())).await
            {
                Ok(answer) => answer,
                Err(_) => return error_response(&AppError::Timeout),
            };
            drop(live);
            answer.into_response()
        })
        .boxed()
    }
}

impl async_graphql::Executor for SocketExecutor {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        let caller = self.socket.caller();
        self.admission.admit(request, &caller, Options::default()).await.into_response()
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let this = self.clone();
        stream::once(this.operation(request, session_data)).flatten().boxed()
    }
}
