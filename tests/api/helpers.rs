//! `spawn_app()` and the typed helpers every test uses.

use master_guide::{config::Config, Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub db_url: String,
    pub data_dir: PathBuf,
    /// PostgreSQL: the admin URL and database name to drop at teardown.
    pg_drop: Option<(String, String)>,
    /// Made its own database (not a sibling or twin): cleans up its search indices.
    owner: bool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Which backend this run uses.
pub fn backend() -> &'static str {
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Creates a fresh, empty database and returns its URL (and, for PostgreSQL, what to drop).
pub async fn fresh_database(data_dir: &std::path::Path) -> (String, Option<(String, String)>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) => {
            let name = format!("mg_test_{}", Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.ok();
            let base = admin_url.rsplit_once('/').map(|(base, _)| base.to_string()).unwrap_or(admin_url.clone());
            (format!("{base}/{name}"), Some((admin_url, name)))
        }
        Err(_) => (format!("sqlite://{}?mode=rwc", data_dir.join("test.db").display()), None),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra settings (e.g. `("GRAPHQL_MAX_ALIASES", "5")`).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn(overrides, None).await
}

/// A second server instance on the same database as `app` (it does not drop it).
pub async fn spawn_sibling(app: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    spawn(overrides, Some(app.db_url.clone())).await
}

/// A second server over `app`'s database and its DATA_DIR (its search index directory too).
pub async fn spawn_twin(app: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    spawn_in(overrides, Some(app.db_url.clone()), Some(app.data_dir.clone())).await
}

/// A server over a DATA_DIR of the test's choosing (and a fresh database).
pub async fn spawn_app_in(dir: &std::path::Path, overrides: &[(&str, &str)]) -> TestApp {
    spawn_in(overrides, None, Some(dir.to_path_buf())).await
}

async fn spawn(overrides: &[(&str, &str)], shared_db: Option<String>) -> TestApp {
    spawn_in(overrides, shared_db, None).await
}

async fn spawn_in(overrides: &[(&str, &str)], shared_db: Option<String>, dir: Option<std::path::PathBuf>) -> TestApp {
    // Server errors show up in a failing test's output (nextest prints only failing tests').
    if std::env::var("RUST_LOG").is_err() {
        std::env::set_var("RUST_LOG", "warn,sqlx=error");
    }
    master_guide::telemetry::init_tracing(master_guide::config::LogFormat::Pretty);
    let data_dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("mg-test-{}", Uuid::new_v4())));
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    let owner = shared_db.is_none();
    let (db_url, pg_drop) = match shared_db {
        Some(url) => (url, None),
        None => fresh_database(&data_dir).await,
    };
    let mut settings: HashMap<String, String> = [
        ("DATA_DIR", data_dir.to_string_lossy().to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("JWT_SECRET", JWT_SECRET.into()),
        ("DB_MAX_CONNECTIONS", "10".into()),
        ("DB_MIN_CONNECTIONS", "1".into()),
        ("SHUTDOWN_GRACE_SECS", "2".into()),
        // A debug build on a busy box can take longer than the default 1 ms to register a list's
        // keys, which would split a batch the statement counts expect whole.
        ("GRAPHQL_BATCH_DELAY_MS", "4".into()),
        // Every test's clients share 127.0.0.1: the per-IP and per-user budgets are wide open
        // here; the rate-limit tests set the rule they test.
        ("RATE_LOGIN_ACCOUNT", "100000/1m".into()),
        ("RATE_LOGIN_IP", "100000/1m".into()),
        ("RATE_RESET_ACCOUNT", "100000/1m".into()),
        ("RATE_RESET_IP", "100000/1m".into()),
        ("RATE_REGISTER_IP", "100000/1m".into()),
        ("RATE_ANONYMOUS_IP", "100000/1m".into()),
        ("RATE_MUTATION_USER", "100000/1m".into()),
        ("RATE_MESSAGE_USER", "100000/1m".into()),
        ("RATE_COST", "100000000/1m".into()),
        ("RATE_WS_MESSAGES", "100000/1m".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (key, value) in search_env(&data_dir) {
        settings.insert(key.to_string(), value);
    }
    for (key, value) in overrides {
        settings.insert(key.to_string(), value.to_string());
    }
    let config = Config::from_source(&settings).expect("test config");
    let app = Application::build(config).await.expect("build application");
    let addr = app.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::builder().build().expect("http client"),
        db_url,
        data_dir,
        pg_drop,
        owner,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL operation; returns the response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_with(None, query, variables).await
    }

    pub async fn gql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.gql_with(Some(token), query, variables).await
    }

    /// The body without `extensions.cost`, which changes from call to call (the cost tests read it
    /// with [`TestApp::gql_full`]).
    pub async fn gql_with(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut body = self.gql_full(token, query, variables).await;
        if let Some(extensions) = body.get_mut("extensions").and_then(Value::as_object_mut) {
            extensions.remove("cost");
            if extensions.is_empty() {
                body.as_object_mut().map(|b| b.remove("extensions"));
            }
        }
        body
    }

    /// POSTs a GraphQL operation; the whole body.
    pub async fn gql_full(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send graphql request");
        assert!(response.status().is_success(), "HTTP {} for {query}", response.status());
        response.json().await.expect("graphql response is JSON")
    }

    /// Registers a user and returns (access token, refresh token, user id).
    pub async fn register(&self, email: &str) -> Session {
        let body = self
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken user { id } } }",
                json!({ "input": { "email": email, "password": PASSWORD } }),
            )
            .await;
        let payload = &body["data"]["register"];
        assert!(payload.is_object(), "register failed: {body}");
        Session {
            access: payload["accessToken"].as_str().unwrap_or_default().to_string(),
            refresh: payload["refreshToken"].as_str().unwrap_or_default().to_string(),
            user_id: payload["user"]["id"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Sends the shutdown signal (as SIGTERM would) and returns the server task to await.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server running")
    }

    /// Holds a write lock on `users` until the returned guard is released: writers block behind it.
    pub async fn lock_users(&self) -> sea_orm::DatabaseTransaction {
        use sea_orm::TransactionTrait;
        let db = self.db().await;
        let txn = db.begin().await.expect("begin");
        let sql = match db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
            // SQLite locks the whole file: a write inside the transaction takes the write lock.
            _ => "UPDATE users SET updated_at = updated_at",
        };
        txn.execute_unprepared(sql).await.expect("lock");
        txn
    }

    /// A direct connection to the test database, to check what a request did (or did not) write.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.db_url).await.expect("connect to the test database")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let db = self.db().await;
        let row = db
            .query_one(Statement::from_string(db.get_database_backend(), format!("SELECT COUNT(*) AS n FROM {table}")))
            .await
            .expect("count query")
            .expect("count row");
        let n: i64 = row.try_get("", "n").expect("count value");
        db.close().await.ok();
        n
    }

    /// The first column of the first row of `sql` (a COUNT, say).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let db = self.db().await;
        let row = db
            .query_one(Statement::from_string(db.get_database_backend(), sql.to_string()))
            .await
            .expect("query")
            .expect("row");
        let value = row.try_get_by_index::<i64>(0).expect("number");
        db.close().await.ok();
        value
    }

    pub async fn exec(&self, sql: &str) {
        let db = self.db().await;
        db.execute_unprepared(sql).await.expect("exec sql");
        db.close().await.ok();
    }

    /// The value of one series of /metrics, e.g. `cache_responses_total{outcome="hit"}` (0 when the
    /// server has not recorded it yet).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map(|value| value.trim().parse().expect("a number"))
            .unwrap_or(0.0)
    }

    /// The server's exact count of SQL statements so far (from /metrics).
    pub async fn statements(&self) -> u64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix("db_statements_executed "))
            .and_then(|n| n.trim().parse().ok())
            .expect("db_statements_executed in /metrics")
    }
}

pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let (true, Some(url)) = (self.owner, elasticsearch_url()) {
            let prefix = search_prefix(&self.data_dir);
            let _ = std::thread::spawn(move || delete_indices(&url, &prefix)).join();
        }
        if let Some((admin_url, name)) = self.pg_drop.take() {
            // Drop is sync; a short-lived runtime on its own thread drops the database.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async move {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        admin.close().await.ok();
                    }
                });
            })
            .join();
        }
    }
}

/// `TEST_REDIS_URL`, or `None` after saying in the run that `what` is skipped (CI always has it:
/// scripts/test starts Redis).
pub fn test_redis(what: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "CI must set TEST_REDIS_URL (scripts/test does)");
            eprintln!("SKIPPED {what}: TEST_REDIS_URL is not set");
            None
        }
    }
}

/// Overrides for instances that share Redis (a cache prefix and an events channel of their own)
/// when `TEST_REDIS_URL` is set; else in-process ones, after saying in the run that `what` (the
/// second-instance half of a test) is skipped. The bool says whether Redis is shared.
pub fn redis_fleet(what: &str) -> (bool, Vec<(&'static str, String)>) {
    let redis = test_redis(what);
    let prefix = format!("mg-test-{}", Uuid::new_v4().simple());
    let mut shared = vec![("EVENTS_CHANNEL", format!("{prefix}:events")), ("CACHE_KEY_PREFIX", prefix)];
    if let Some(url) = &redis {
        shared.push(("REDIS_URL", url.clone()));
    }
    (redis.is_some(), shared)
}

/// `pairs` as `spawn_app_with` takes them.
pub fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A graphql-transport-ws client socket.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket to /graphql/ws offering `protocol` (none: no subprotocol header) and sends
/// nothing.
pub async fn ws_open(app: &TestApp, protocol: Option<&str>) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().expect("request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(request).await.expect("connect").0
}

/// Sends one protocol message.
pub async fn ws_send(socket: &mut Socket, message: Value) {
    use futures_util::SinkExt;
    socket.send(tokio_tungstenite::tungstenite::Message::Text(message.to_string().into())).await.expect("send");
}

/// Opens a graphql-transport-ws socket, sends `connection_init` (with the token, if any) and
/// returns it once the server acknowledged.
pub async fn ws_connect(app: &TestApp, token: Option<&str>) -> Socket {
    let mut socket = ws_open(app, Some("graphql-transport-ws")).await;
    let payload = match token {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    ws_send(&mut socket, json!({ "type": "connection_init", "payload": payload })).await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

/// A signed-in socket subscribed (operation id "1") to `query`, once the server has had a moment
/// to register the stream before events are produced.
pub async fn ws_subscribed(app: &TestApp, token: &str, query: &str) -> Socket {
    let mut socket = ws_connect(app, Some(token)).await;
    ws_send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": query } })).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    socket
}

/// The next protocol message (pings skipped), or `{ "type": "close", "code": .. }` when the server
/// closed the socket (or dropped the connection).
pub async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = next_message(socket).await;
        if message["type"] != "ping" && message["type"] != "pong" {
            return message;
        }
    }
}

/// The next protocol message, pings and pongs included; a close as in [`next_json`].
pub async fn next_message(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await;
        let frame = match next.expect("a frame within 5 s") {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return json!({ "type": "close", "error": error.to_string() }),
            None => return json!({ "type": "close" }),
        };
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Close(frame) => return json!({ "type": "close", "code": frame.map(|f| u16::from(f.code)) }),
            _ => continue,
        }
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no code>")
}

pub fn error_field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"].as_str().unwrap_or("<no field>")
}

/// The data of a successful response, or a panic showing the errors.
pub fn data(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "unexpected errors: {body}");
    &body["data"]
}

pub struct Master {
    pub session: Session,
    pub identity: String,
}

/// A platform with an admin and the `software` domain, built through the API.
pub struct World {
    pub admin: Session,
}

impl TestApp {
    /// Registers `email` and makes it an admin (as `master-guide grant-admin` does); the returned
    /// session's token carries the admin role.
    pub async fn admin(&self, email: &str) -> Session {
        let mut session = self.register(email).await;
        let db = self.db().await;
        master_guide::domain::accounts::grant_admin(&db, email).await.map_err(|e| e.message()).expect("grant admin");
        db.close().await.ok();
        let body = self
            .gql(
                "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
                json!({ "i": { "email": email, "password": PASSWORD } }),
            )
            .await;
        session.access = data(&body)["login"]["accessToken"].as_str().expect("token").to_string();
        session
    }

    pub async fn world(&self) -> World {
        let admin = self.admin("admin@example.com").await;
        for (code, name) in [("software", "Software"), ("design", "Design")] {
            let body = self
                .gql_as(
                    &admin.access,
                    "mutation($i: CreateDomainInput!) { createDomain(input: $i) { id } }",
                    json!({ "i": { "name": name, "code": code } }),
                )
                .await;
            data(&body);
        }
        World { admin }
    }

    /// Applies for an identity; returns its id.
    pub async fn apply(&self, session: &Session, kind: &str, domain: &str) -> String {
        let body = self
            .gql_as(
                &session.access,
                "mutation($i: ApplyIdentityInput!) { applyIdentity(input: $i) { id } }",
                json!({ "i": { "identityType": kind, "domain": domain, "verificationDocuments": ["https://docs.example.com/cv.pdf"] } }),
            )
            .await;
        data(&body)["applyIdentity"]["id"].as_str().expect("identity id").to_string()
    }

    /// A verified master with a profile (hourly rate 100.00).
    pub async fn master(&self, world: &World, email: &str, domain: &str) -> Master {
        let session = self.register(email).await;
        let profile =
            json!({ "name": email.split('@').next().unwrap_or("m"), "hourlyRate": "100.00", "skills": ["rust"] });
        let identity = self.approved_master(world, &session, domain, profile).await;
        Master { session, identity }
    }

    /// A course of `master` with `contents` items (the first free), published when `publish`.
    pub async fn course(&self, master: &Master, max_students: Option<i32>, contents: usize, publish: bool) -> String {
        let input = json!({
            "title": "Rust from zero", "price": "199.00", "durationHours": 10, "difficulty": "BEGINNER",
            "maxStudents": max_students, "tags": ["rust", "systems"]
        });
        self.course_with(master, input, contents, publish).await
    }

    /// A course of `master` from `input` (CreateCourseInput without identityId), with `contents`
    /// items (the first free), published when `publish`.
    pub async fn course_with(&self, master: &Master, mut input: Value, contents: usize, publish: bool) -> String {
        input["identityId"] = json!(master.identity);
        let body = self
            .gql_as(
                &master.session.access,
                "mutation($i: CreateCourseInput!) { createCourse(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await;
        let course = data(&body)["createCourse"]["id"].as_str().expect("course id").to_string();
        for index in 0..contents {
            let body = self
                .gql_as(
                    &master.session.access,
                    "mutation($c: ID!, $i: AddCourseContentInput!) { addCourseContent(courseId: $c, input: $i) { id } }",
                    json!({ "c": course, "i": {
                        "title": format!("Lesson {index}"), "contentType": "VIDEO",
                        "contentUrl": format!("https://media.example.com/{index}.mp4"), "isFree": index == 0, "durationMinutes": 10
                    } }),
                )
                .await;
            data(&body);
        }
        if publish {
            let body = self
                .gql_as(
                    &master.session.access,
                    "mutation($id: ID!) { publishCourse(id: $id) { status } }",
                    json!({ "id": course }),
                )
                .await;
            assert_eq!(data(&body)["publishCourse"]["status"], "PUBLISHED");
        }
        course
    }

    /// Every row of a table as JSON text, in a stable order: "nothing changed" is an equality.
    pub async fn snapshot(&self, table: &str) -> Vec<String> {
        let db = self.db().await;
        let backend = db.get_database_backend();
        use sea_orm::FromQueryResult;
        let rows = sea_orm::JsonValue::find_by_statement(Statement::from_string(
            backend,
            format!("SELECT * FROM {table} ORDER BY id"),
        ))
        .all(&db)
        .await
        .expect("snapshot");
        let out = rows.iter().map(|row| row.to_string()).collect();
        db.close().await.ok();
        out
    }
}

impl TestApp {
    /// Runs `master-guide reconcile` (the real binary, without `--repair`) over this server's
    /// database and fails the test unless every counter equals what the detail tables say.
    pub fn assert_no_drift(&self) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_master-guide"))
            .arg("reconcile")
            .env("DATABASE_URL", &self.db_url)
            .env("DATA_DIR", &self.data_dir)
            .env("RUST_LOG", "error")
            .output()
            .expect("run master-guide reconcile");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "reconcile found drift:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    }

    /// A second master identity of `master`'s user, in `domain`, approved and with an hourly rate.
    pub async fn second_identity(&self, world: &World, master: &Master, domain: &str) -> String {
        let profile = json!({ "name": "second", "hourlyRate": "80.00" });
        self.approved_master(world, &master.session, domain, profile).await
    }

    /// A MASTER identity of `session` in `domain`, approved by the admin, with `profile`.
    pub async fn approved_master(&self, world: &World, session: &Session, domain: &str, profile: Value) -> String {
        let identity = self.apply(session, "MASTER", domain).await;
        let body = self
            .gql_as(
                &world.admin.access,
                "mutation($id: ID!) { reviewIdentity(id: $id, decision: APPROVE) { status } }",
                json!({ "id": identity }),
            )
            .await;
        assert_eq!(data(&body)["reviewIdentity"]["status"], "ACTIVE");
        let body = self
            .gql_as(
                &session.access,
                "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { id } }",
                json!({ "id": identity, "i": profile }),
            )
            .await;
        data(&body);
        identity
    }
}

impl TestApp {
    /// A published course of a new master (`master_email`), which `student` enrolls in and
    /// reviews with `rating`: (course id, review id).
    pub async fn reviewed_course(
        &self,
        world: &World,
        master_email: &str,
        student: &Session,
        rating: i32,
    ) -> (String, String) {
        let master = self.master(world, master_email, "software").await;
        let course = self.course(&master, None, 1, true).await;
        data(
            &self
                .gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course }))
                .await,
        );
        let body = self
            .gql_as(
                &student.access,
                "mutation($i: CreateReviewInput!) { createReview(input: $i) { id } }",
                json!({ "i": { "reviewType": "COURSE", "courseId": course, "rating": rating, "content": "a review" } }),
            )
            .await;
        let review = data(&body)["createReview"]["id"].as_str().expect("review").to_string();
        (course, review)
    }
}

/// `TEST_ELASTICSEARCH_URL`: the search suite then runs on Elasticsearch (scripts/test runs it
/// once more with it set, and says when it is skipped).
pub fn elasticsearch_url() -> Option<String> {
    std::env::var("TEST_ELASTICSEARCH_URL").ok().filter(|url| !url.trim().is_empty())
}

/// `TEST_S3_URL`: an S3-protocol server (scripts/test starts moto); the uploads suite then runs
/// on it, each test in a bucket of its own.
pub fn s3_url() -> Option<String> {
    std::env::var("TEST_S3_URL").ok().filter(|url| !url.trim().is_empty())
}

/// The storage settings of a test server: a fresh bucket on `TEST_S3_URL` when set, else none
/// (the local store under the test's DATA_DIR).
pub async fn storage_env() -> Vec<(&'static str, String)> {
    let Some(url) = s3_url() else { return Vec::new() };
    let endpoint = url.trim_end_matches('/').to_string();
    let bucket = format!("test-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("S3 server");
    assert!(created.status().is_success(), "create bucket {bucket}: {}", created.status());
    vec![
        ("STORAGE_URL", format!("s3://{bucket}")),
        ("S3_ENDPOINT", endpoint),
        ("S3_REGION", "us-east-1".into()),
        ("S3_ACCESS_KEY_ID", "test".into()),
        ("S3_SECRET_ACCESS_KEY", "test".into()),
    ]
}

/// A server's index names: one prefix per DATA_DIR, so a twin shares its original's indices.
pub fn search_prefix(data_dir: &std::path::Path) -> String {
    let name = data_dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    format!("test-{name}")
}

/// The search settings of a server over `data_dir` (for child processes too).
pub fn search_env(data_dir: &std::path::Path) -> Vec<(&'static str, String)> {
    match elasticsearch_url() {
        Some(url) => vec![("ELASTICSEARCH_URL", url), ("SEARCH_PREFIX", search_prefix(data_dir))],
        None => Vec::new(),
    }
}

/// Deletes a test's Elasticsearch indices (by name: wildcard deletes are refused by default).
fn delete_indices(url: &str, prefix: &str) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let base = url.trim_end_matches('/');
        let Ok(response) = http.get(format!("{base}/{prefix}-*/_alias")).send().await else { return };
        let Ok(indices) = response.json::<Value>().await else { return };
        let names: Vec<String> = indices.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        if !names.is_empty() {
            let _ = http.delete(format!("{base}/{}", names.join(","))).send().await;
        }
    });
}

/// A TCP proxy the test can cut: accepted connections are forwarded to `target` while up, and
/// dropped (live ones too) while down or without a target.
pub struct Proxy {
    pub addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: Option<String>, up: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (tx, rx) = tokio::sync::watch::channel(up);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (target, mut state) = (target.clone(), rx.clone());
                tokio::spawn(async move {
                    let Some(target) = target.filter(|_| *state.borrow()) else { return };
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up: tx }
    }

    pub fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
    }
}
