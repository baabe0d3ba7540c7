//! The one way in, tried as a hostile client and as an operator would: documents that would take
//! minutes to validate, list-aware cost and its report, the same checks over WebSocket, sockets
//! closed when their session ends, rate limits (also shared by two instances through Redis),
//! idempotency keys (checked in the database), persisted operations, production defaults, CORS and
//! trusted proxies.

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Frame;

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id content } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";

/// 30 fragments, each spreading the one before twice: 2^30 field selections once expanded, 1 kB.
fn exploding_document() -> String {
    let mut text = String::from("query { ...F29 }\nfragment F0 on Query { __typename }\n");
    for i in 1..30 {
        text.push_str(&format!("fragment F{i} on Query {{ ...F{p} ...F{p} }}\n", p = i - 1));
    }
    text
}

const HUNDRED_CUBED: &str = "{ circles(first: 100) { edges { node { posts(first: 100) { edges { node {
    comments(first: 100) { edges { node { id content } } } } } } } } } }";

async fn socket(app: &TestApp, token: Option<&str>) -> Socket {
    ws_connect(app, token).await
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    ws_send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": query } })).await;
}

/// The first `next` or `error` message for operation `id` (other operations' `complete`s skipped).
async fn answer_for(socket: &mut Socket, id: &str) -> Value {
    loop {
        let message = next_json(socket).await;
        if message["type"] == "close" || (message["id"] == id && message["type"] != "complete") {
            return message;
        }
    }
}

fn ws_error_code(message: &Value) -> &str {
    message["payload"][0]["extensions"]["code"]
        .as_str()
        .or(message["payload"]["errors"][0]["extensions"]["code"].as_str())
        .unwrap_or("<no code>")
}

#[tokio::test]
async fn a_fragment_explosion_is_refused_at_once_while_healthz_keeps_answering() {
    let app = spawn_app().await;
    let document = exploding_document();
    assert!(document.len() < 1500, "the document is about 1 kB");
    let hostile = async {
        let started = Instant::now();
        let body = app.gql(&document, json!({})).await;
        (started.elapsed(), body)
    };
    let health = async {
        // Another connection, sent while the hostile document is being handled.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let answer = reqwest::Client::new().get(app.url("/healthz")).send().await.expect("healthz");
        assert!(answer.status().is_success());
        started.elapsed()
    };
    let ((took, body), health) = tokio::join!(hostile, health);
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("fragments"), "{body}");
    assert!(took < Duration::from_secs(2), "refused in {took:?}");
    assert!(health < Duration::from_secs(1), "/healthz answered in {health:?}");
    // A document within the bound is served as usual.
    let body =
        app.gql("query { ...A } fragment A on Query { ...B ...B } fragment B on Query { __typename }", json!({})).await;
    assert_eq!(data(&body)["__typename"], "Query");
}

#[tokio::test]
async fn lists_multiply_the_cost_and_a_hundred_cubed_query_runs_no_sql() {
    // A budget that refills slowly enough for two calls to show what they spent.
    let app = spawn_app_with(&[("RATE_COST", "10000/1h")]).await;
    let before = app.statements().await;
    let body = app.gql_full(None, HUNDRED_CUBED, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let cost = body["errors"][0]["extensions"]["cost"].as_u64().unwrap_or(0);
    assert!(cost > 1_000_000, "100 x 100 x 100 rows priced at {cost}");
    assert_eq!(body["errors"][0]["extensions"]["maxCost"], 5000, "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(app.statements().await - before, 0, "nothing ran");

    // An ordinary page is priced and reported, and each call spends the viewer's budget.
    let page = "{ courses(first: 10) { edges { node { id title } } } }";
    let first = app.gql_full(None, page, json!({})).await;
    let report = &first["extensions"]["cost"];
    // courses: 10 x (edges 1 + node 1 + id 1 + title 1) + 1.
    assert_eq!(report["requested"], 10 * 4 + 1, "{first}");
    let limit = report["limit"].as_u64().expect("limit");
    let remaining = report["remaining"].as_u64().expect("remaining");
    assert!(remaining < limit, "{report}");
    assert!(chrono::DateTime::parse_from_rfc3339(report["resetAt"].as_str().expect("resetAt")).is_ok());
    let second = app.gql_full(None, page, json!({})).await;
    assert!(second["extensions"]["cost"]["remaining"].as_u64().expect("remaining") < remaining, "{second}");
}

#[tokio::test]
async fn without_rate_limits_the_cost_is_reported_but_no_budget_headers_are_sent() {
    let app = spawn_app_with(&[("RATE_LIMITS", "false")]).await;
    let page = "{ courses(first: 5) { edges { node { id } } } }";
    let response = app.http.post(app.url("/graphql")).json(&json!({ "query": page })).send().await.expect("send");
    for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(response.headers().get(name).is_none(), "{name} sent with rate limits off");
    }
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["extensions"]["cost"]["requested"], 5 * 3 + 1, "{body}");
}

/// The same text is parsed once and its document kept: each request still gets its own
/// `@include`/`@skip` outcome and its own operation, whatever an earlier request selected.
#[tokio::test]
async fn a_kept_document_serves_each_requests_variables_and_operation() {
    // Without whole responses, so that every request below reaches the kept document.
    let app = spawn_app_with(&[("CACHE_RESPONSES", "false")]).await;
    let text = "query A($full: Boolean!) { courses(first: 1) { totalCount @include(if: $full) edges { node { id } } } }
        query B { __typename }";
    for (operation, full) in [("A", true), ("A", false), ("B", false), ("A", true)] {
        let body = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({ "query": text, "operationName": operation, "variables": { "full": full } }))
            .send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json");
        assert!(body.get("errors").is_none(), "{body}");
        match operation {
            "B" => assert_eq!(body["data"], json!({ "__typename": "Query" }), "{body}"),
            _ => assert_eq!(body["data"]["courses"].get("totalCount").is_some(), full, "{body}"),
        }
    }
}

#[tokio::test]
async fn a_spent_cost_budget_is_rate_limited_with_retry_after() {
    let app = spawn_app_with(&[("RATE_COST", "100/1m")]).await;
    let page = "{ courses(first: 20) { edges { node { id } } } }"; // 20 x 3 + 1 = 61
    let body = app.gql_full(None, page, json!({})).await;
    assert_eq!(body["extensions"]["cost"]["remaining"], 39, "{body}");
    let response = app.http.post(app.url("/graphql")).json(&json!({ "query": page })).send().await.expect("send");
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!(response.headers().get("ratelimit-limit").and_then(|v| v.to_str().ok()), Some("100"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
    let after = body["errors"][0]["extensions"]["retryAfter"].as_u64().expect("retryAfter");
    assert!((1..=60).contains(&after), "{body}");
    assert_eq!(retry, Some(after.to_string()));
    // Another viewer has a budget of its own.
    let session = app.register("other@example.com").await;
    data(&app.gql_as(&session.access, page, json!({})).await);
}

#[tokio::test]
async fn websocket_operations_pass_the_same_checks_as_http() {
    let app = spawn_app_with(&[("WS_MAX_OPERATIONS", "2")]).await;
    let user = app.register("ws@example.com").await;
    let mut ws = socket(&app, Some(&user.access)).await;
    // Nested too deep, before parsing.
    let deep = format!("{}{}", "{ me ".repeat(100), "}".repeat(100));
    subscribe(&mut ws, "deep", &deep).await;
    let answer = answer_for(&mut ws, "deep").await;
    assert_eq!(ws_error_code(&answer), "QUERY_TOO_COMPLEX", "{answer}");
    // The fragment explosion, and the 100 x 100 x 100 query.
    for (id, query) in [("boom", exploding_document()), ("cubed", HUNDRED_CUBED.to_string())] {
        subscribe(&mut ws, id, &query).await;
        let answer = answer_for(&mut ws, id).await;
        assert_eq!(ws_error_code(&answer), "QUERY_TOO_COMPLEX", "{id}: {answer}");
    }
    // Queries still work over the socket, with their cost reported, and count in the metrics
    // under their label as over HTTP.
    subscribe(&mut ws, "me", "query OverTheSocket { me { id } }").await;
    let answer = answer_for(&mut ws, "me").await;
    assert_eq!(answer["payload"]["data"]["me"]["id"], user.user_id.as_str(), "{answer}");
    assert!(answer["payload"]["extensions"]["cost"]["requested"].as_u64().is_some(), "{answer}");
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"graphql_requests_total{operation="query OverTheSocket",outcome="ok"}"#), "{metrics}");
    // Two live subscriptions fill the cap; the third operation is refused.
    subscribe(&mut ws, "s1", "subscription { messageReceived { content } }").await;
    subscribe(&mut ws, "s2", "subscription { notificationReceived { id } }").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    subscribe(&mut ws, "s3", "subscription { messageReceived { id } }").await;
    let answer = answer_for(&mut ws, "s3").await;
    assert_eq!(ws_error_code(&answer), "RATE_LIMITED", "{answer}");
    // Completing one frees its place.
    ws.send(Frame::Text(json!({ "id": "s1", "type": "complete" }).to_string().into())).await.expect("complete");
    tokio::time::sleep(Duration::from_millis(200)).await;
    subscribe(&mut ws, "me2", "{ me { id } }").await;
    let answer = answer_for(&mut ws, "me2").await;
    assert_eq!(answer["payload"]["data"]["me"]["id"], user.user_id.as_str(), "{answer}");

    // A message over the size cap (as a body over 1 MiB is over HTTP) ends the socket.
    let mut big = socket(&app, None).await;
    let padding = "x".repeat(2 * 1024 * 1024);
    subscribe(&mut big, "big", &format!("{{ __typename }} # {padding}")).await;
    let answer = next_json(&mut big).await;
    assert_eq!(answer["type"], "close", "{answer}");
}

async fn ban(app: &TestApp, admin: &Session, user: &Session) {
    let body = app
        .gql_as(
            &admin.access,
            "mutation($u: ID!) { setUserStatus(userId: $u, status: BANNED, reason: \"spam\") { status } }",
            json!({ "u": user.user_id }),
        )
        .await;
    assert_eq!(data(&body)["setUserStatus"]["status"], "BANNED");
}

#[tokio::test]
async fn a_ban_or_a_logout_closes_the_users_sockets_within_a_second() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.com").await;
    let user = app.register("banned@example.com").await;
    let bystander = app.register("bystander@example.com").await;
    let mut theirs = socket(&app, Some(&user.access)).await;
    subscribe(&mut theirs, "1", "subscription { messageReceived { content } }").await;
    let mut other = socket(&app, Some(&bystander.access)).await;
    subscribe(&mut other, "1", "subscription { messageReceived { content } }").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    ban(&app, &admin, &user).await;
    let closed = next_json(&mut theirs).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(started.elapsed() < Duration::from_secs(1), "closed after {:?}", started.elapsed());
    // The ban revoked the refresh token, and the audit log has the row.
    let refreshed = app
        .gql("mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }", json!({ "t": user.refresh }))
        .await;
    assert_eq!(error_code(&refreshed), "UNAUTHENTICATED", "{refreshed}");
    assert!(app.count("audit_logs").await >= 1);
    // Nobody else's socket closed: a message still reaches the bystander.
    let sender = app.register("sender@example.com").await;
    data(
        &app.gql_as(&sender.access, SEND, json!({ "i": { "toUserId": bystander.user_id, "content": "still here" } }))
            .await,
    );
    assert_eq!(next_json(&mut other).await["payload"]["data"]["messageReceived"]["content"], "still here");
    // Logging out closes that session's sockets with 4401.
    let body = app.gql("mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": bystander.refresh })).await;
    assert_eq!(data(&body)["logout"], true);
    assert_eq!(next_json(&mut other).await["code"], 4401);
    // The logged-out session's access token (still within its 15 minutes) opens no new socket.
    let mut again = ws_open(&app, Some("graphql-transport-ws")).await;
    let init =
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", bystander.access) } });
    again.send(Frame::Text(init.to_string().into())).await.expect("init");
    assert_eq!(next_json(&mut again).await["code"], 4401);
    // Non-admins cannot ban.
    let body = app
        .gql_as(
            &sender.access,
            "mutation($u: ID!) { setUserStatus(userId: $u, status: BANNED, reason: \"x\") { id } }",
            json!({ "u": admin.user_id }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_ban_on_one_instance_closes_the_socket_held_by_another() {
    let Some(redis) = test_redis("cross-instance ban test") else { return };
    let channel = format!("mg-test-{}", uuid::Uuid::new_v4());
    let settings = [("REDIS_URL", redis.as_str()), ("EVENTS_CHANNEL", channel.as_str())];
    let a = spawn_app_with(&settings).await;
    let b = spawn_sibling(&a, &settings).await;
    let admin = a.admin("admin@example.com").await;
    let user = a.register("banned@example.com").await;
    let mut on_b = socket(&b, Some(&user.access)).await;
    subscribe(&mut on_b, "1", "subscription { messageReceived { content } }").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    ban(&a, &admin, &user).await;
    let closed = next_json(&mut on_b).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(started.elapsed() < Duration::from_secs(1), "closed after {:?}", started.elapsed());
}

async fn login(app: &TestApp, email: &str, password: &str) -> (Option<String>, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": LOGIN, "variables": { "i": { "email": email, "password": password } } }))
        .send()
        .await
        .expect("send");
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    (retry, response.json().await.expect("json"))
}

#[tokio::test]
async fn wrong_passwords_on_one_account_are_rate_limited() {
    let app = spawn_app_with(&[("RATE_LOGIN_ACCOUNT", "10/15m")]).await;
    app.register("victim@example.com").await;
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (retry, body) = login(&app, "victim@example.com", "wrong password").await;
        let code = error_code(&body).to_string();
        if code == "RATE_LIMITED" {
            let after = body["errors"][0]["extensions"]["retryAfter"].as_u64().expect("retryAfter");
            assert!((1..=15 * 60).contains(&after), "{body}");
            assert_eq!(retry, Some(after.to_string()));
        }
        codes.push(code);
    }
    assert!(codes[..10].iter().all(|c| c == "UNAUTHENTICATED"), "{codes:?}");
    assert!(codes[10..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");
    // The same email in other letters is the same account; another account is not limited.
    let (_, body) = login(&app, "VICTIM@example.com", PASSWORD).await;
    assert_eq!(error_code(&body), "RATE_LIMITED");
    app.register("other@example.com").await;
    let (_, body) = login(&app, "other@example.com", PASSWORD).await;
    data(&body);

    // In parallel: exactly the budget gets through.
    let app = spawn_app_with(&[("RATE_LOGIN_ACCOUNT", "10/15m")]).await;
    app.register("victim@example.com").await;
    let answers =
        futures_util::future::join_all((0..20).map(|_| login(&app, "victim@example.com", "wrong password"))).await;
    let limited = answers.iter().filter(|(_, body)| error_code(body) == "RATE_LIMITED").count();
    assert_eq!(limited, 10, "{:?}", answers.iter().map(|(_, b)| error_code(b).to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn two_instances_sharing_redis_share_the_login_budget() {
    let Some(redis) = test_redis("shared rate-limit test") else { return };
    let prefix = format!("mg-test-{}", uuid::Uuid::new_v4().simple());
    let settings =
        [("REDIS_URL", redis.as_str()), ("CACHE_KEY_PREFIX", prefix.as_str()), ("RATE_LOGIN_ACCOUNT", "6/15m")];
    let a = spawn_app_with(&settings).await;
    let b = spawn_sibling(&a, &settings).await;
    a.register("shared@example.com").await;
    for app in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(error_code(&login(app, "shared@example.com", "wrong password").await.1), "UNAUTHENTICATED");
    }
    for app in [&a, &b] {
        assert_eq!(error_code(&login(app, "shared@example.com", "wrong password").await.1), "RATE_LIMITED");
    }
}

/// The peak resident memory of this process (the server runs in it; nextest gives every test its
/// own process).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn two_hundred_concurrent_logins_queue_for_the_hashing_slots() {
    let app = spawn_app().await;
    app.register("busy@example.com").await;
    let flood = futures_util::future::join_all((0..200).map(|i| {
        let password = if i % 2 == 0 { PASSWORD } else { "wrong password" };
        login(&app, "busy@example.com", password)
    }));
    let health = async {
        let client = reqwest::Client::new();
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            assert!(client.get(app.url("/healthz")).send().await.expect("healthz").status().is_success());
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (answers, slowest) = tokio::join!(flood, health);
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} during the flood");
    for (_, body) in &answers {
        let code = error_code(body);
        // Answered, wrongly signed in, or told to come back when the slots stayed busy.
        assert!(body["errors"].is_null() || code == "UNAUTHENTICATED" || code == "RATE_LIMITED", "{body}");
    }
    let peak = peak_rss_mb();
    eprintln!("peak RSS during 200 concurrent logins: {peak:.0} MB");
    assert!(peak < 500.0, "peak RSS {peak:.0} MB");
}

async fn post_with_key(app: &TestApp, token: &str, key: &str, content: &str, to: &str) -> (bool, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "query": SEND, "variables": { "i": { "toUserId": to, "content": content } } }))
        .send()
        .await
        .expect("send");
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (replayed, response.json().await.expect("json"))
}

#[tokio::test]
async fn an_idempotent_replay_spends_no_budget() {
    // A budget that refills slowly enough (0.1 a second) for each charge to show.
    let app = spawn_app_with(&[("RATE_COST", "10000/1d")]).await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let remaining = |body: &Value| body["extensions"]["cost"]["remaining"].as_u64().expect("remaining");
    let (_, first) = post_with_key(&app, &ann.access, "pay-once", "hello", &bob.user_id).await;
    data(&first);
    let spent = remaining(&first);
    assert!(spent < 10_000, "{first}");
    for _ in 0..3 {
        let (replayed, again) = post_with_key(&app, &ann.access, "pay-once", "hello", &bob.user_id).await;
        assert!(replayed, "{again}");
        // The budget only refills (slowly) while replays answer.
        assert!(remaining(&again) >= spent, "{again}");
    }
    // A new key runs, and pays.
    let (replayed, second) = post_with_key(&app, &ann.access, "pay-twice", "hello", &bob.user_id).await;
    assert!(!replayed);
    assert!(remaining(&second) < spent, "{second}");
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_mutation_happen_once() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let (replayed, first) = post_with_key(&app, &ann.access, "key-1", "hello once", &bob.user_id).await;
    assert!(!replayed);
    let id = data(&first)["sendMessage"]["id"].as_str().expect("id").to_string();
    let (replayed, again) = post_with_key(&app, &ann.access, "key-1", "hello once", &bob.user_id).await;
    assert!(replayed, "{again}");
    assert_eq!(data(&again)["sendMessage"]["id"], id.as_str());
    assert_eq!(app.count("messages").await, 1);
    // The same key with another body is refused and writes nothing.
    let (_, other) = post_with_key(&app, &ann.access, "key-1", "something else", &bob.user_id).await;
    assert_eq!(error_code(&other), "BAD_USER_INPUT", "{other}");
    assert_eq!(error_field(&other), "Idempotency-Key");
    assert_eq!(app.count("messages").await, 1);
    // Keys are per viewer: Bob's "key-1" is his own.
    let (replayed, bobs) = post_with_key(&app, &bob.access, "key-1", "hello once", &ann.user_id).await;
    assert!(!replayed);
    data(&bobs);
    assert_eq!(app.count("messages").await, 2);
    // Two concurrent duplicates: one runs; the other gets its response (or "in progress").
    let (a, b) = tokio::join!(
        post_with_key(&app, &ann.access, "key-2", "raced", &bob.user_id),
        post_with_key(&app, &ann.access, "key-2", "raced", &bob.user_id)
    );
    assert_eq!(app.count("messages").await, 3, "{a:?} {b:?}");
    let ids: Vec<&Value> = [&a.1, &b.1]
        .into_iter()
        .filter(|body| body["errors"].is_null())
        .map(|b| &b["data"]["sendMessage"]["id"])
        .collect();
    assert!(!ids.is_empty());
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{a:?} {b:?}");
    for (_, body) in [&a, &b] {
        assert!(body["errors"].is_null() || error_code(body) == "CONFLICT", "{body}");
    }
    // A bad key is refused before anything runs.
    let (_, bad) = post_with_key(&app, &ann.access, &"k".repeat(300), "x", &bob.user_id).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
    assert_eq!(app.count("messages").await, 3);
    assert_eq!(app.count("idempotency_keys").await, 3);
    // The keys live in the database: another instance (or this one after a restart) replays them.
    let other = spawn_sibling(&app, &[]).await;
    let (replayed, again) = post_with_key(&other, &ann.access, "key-1", "hello once", &bob.user_id).await;
    assert!(replayed, "{again}");
    assert_eq!(data(&again)["sendMessage"]["id"], id.as_str());
    assert_eq!(app.count("messages").await, 3);
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

async fn persisted(app: &TestApp, query: Option<&str>, hash: &str) -> Value {
    let mut body = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    if let Some(query) = query {
        body["query"] = json!(query);
    }
    app.http.post(app.url("/graphql")).json(&body).send().await.expect("send").json().await.expect("json")
}

#[tokio::test]
async fn automatic_persisted_queries_and_trusted_documents() {
    let app = spawn_app().await;
    let query = "query Domains { domains { code } }";
    let hash = sha256(query);
    let body = persisted(&app, None, &hash).await;
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(persisted(&app, Some(query), &hash).await["data"]["domains"].is_array());
    assert!(persisted(&app, None, &hash).await["data"]["domains"].is_array());
    // As Apollo clients send it with GET.
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();
    let get: Value = app
        .http
        .get(app.url("/graphql"))
        .query(&[("extensions", extensions.as_str())])
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(get["data"]["domains"].is_array(), "{get}");
    // A text under someone else's hash is refused and not kept.
    let body = persisted(&app, Some("{ me { id } }"), &hash).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(persisted(&app, None, &hash).await["data"]["domains"].is_array());

    // Trusted documents: only the manifest's operations run.
    let dir = std::env::temp_dir().join(format!("mg-manifest-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, json!({ hash.clone(): query }).to_string()).expect("write");
    let manifest = manifest.to_string_lossy().to_string();
    let strict = spawn_app_with(&[("PERSISTED_ONLY", "true"), ("PERSISTED_MANIFEST", manifest.as_str())]).await;
    assert!(persisted(&strict, None, &hash).await["data"]["domains"].is_array());
    let body = strict.gql("{ domains { code } }", json!({})).await;
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_IN_LIST", "{body}");
    let other = "{ me { id } }";
    let body = persisted(&strict, Some(other), &sha256(other)).await;
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_IN_LIST", "{body}");
}

const STRONG_SECRET: &str = "Zq8vN2xL5rT9wK3mB7cF1hJ4pD6gS0yA";

#[tokio::test]
async fn production_mode_hides_the_playground_and_the_schema() {
    let app =
        spawn_app_with(&[("APP_ENV", "production"), ("JWT_SECRET", STRONG_SECRET), ("METRICS_ADDR", "127.0.0.1:0")])
            .await;
    let page = app.http.get(app.url("/")).send().await.expect("get /");
    assert_eq!(page.status().as_u16(), 404);
    let body = app.gql("{ __schema { types { name } } __type(name: \"User\") { name } }", json!({})).await;
    assert!(body["data"]["__schema"].is_null() && body["data"]["__type"].is_null(), "{body}");
    // The API itself works.
    assert!(data(&app.gql("{ domains { code } }", json!({})).await)["domains"].is_array());
    // A development secret is refused at start-up.
    let settings: std::collections::HashMap<String, String> = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "local-compose-secret-change-me-0123456789"),
        ("DATA_DIR", app.data_dir.to_str().unwrap_or(".")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let refused = master_guide::Config::from_source(&settings).err().map(|e| e.var);
    assert_eq!(refused, Some("JWT_SECRET"));
}

#[tokio::test]
async fn cors_preflight_answers_allowed_origins_only() {
    let app = spawn_app_with(&[("CORS_ORIGINS", "https://app.example.com, https://admin.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let header =
        |r: &reqwest::Response, name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert_eq!(header(&allowed, "access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(header(&allowed, "access-control-max-age").as_deref(), Some("600"));
    assert!(header(&allowed, "access-control-allow-headers").unwrap_or_default().contains("idempotency-key"));
    let denied = preflight("https://evil.example.com").await.expect("preflight");
    assert_eq!(header(&denied, "access-control-allow-origin"), None);
    // A simple request from an allowed origin sees its answer.
    let post = app
        .http
        .post(app.url("/graphql"))
        .header("Origin", "https://admin.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("post");
    assert_eq!(header(&post, "access-control-allow-origin").as_deref(), Some("https://admin.example.com"));
}

/// The IP `reviewIdentity`'s audit row records for a request that claims `forwarded`.
async fn audited_ip(app: &TestApp, forwarded: &str) -> String {
    let world = app.world().await;
    let master = app.register(&format!("m{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let identity = app.apply(&master, "MASTER", "software").await;
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&world.admin.access)
        .header("X-Forwarded-For", forwarded)
        .json(&json!({ "query": "mutation($id: ID!) { reviewIdentity(id: $id, decision: APPROVE) { status } }", "variables": { "id": identity } }))
        .send()
        .await
        .expect("send");
    data(&response.json::<Value>().await.expect("json"));
    let rows = app.snapshot("audit_logs").await;
    let row = rows.iter().find(|row| row.contains(&identity)).expect("the audit row");
    let row: Value = serde_json::from_str(row).expect("json");
    row["ip_address"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let app = spawn_app().await;
    assert_eq!(audited_ip(&app, "203.0.113.9").await, "127.0.0.1", "a forged header is ignored");
    drop(app);
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    assert_eq!(audited_ip(&app, "198.51.100.7, 203.0.113.9").await, "203.0.113.9", "the nearest untrusted hop");
}

#[tokio::test]
async fn request_ids_trace_context_and_a_protected_metrics_endpoint() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "metrics-token-for-tests")]).await;
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("X-Request-Id", "client-chosen-id")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("client-chosen-id"));
    let response =
        app.http.post(app.url("/graphql")).json(&json!({ "query": "{ __typename }" })).send().await.expect("send");
    let generated = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "a fresh id: {generated}");
    let open = app.http.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(open.status().as_u16(), 401);
    let metrics =
        app.http.get(app.url("/metrics")).bearer_auth("metrics-token-for-tests").send().await.expect("metrics");
    assert!(metrics.status().is_success());
    // Named operations label the metrics by name.
    let _ = app.gql("query LandingPage { __typename }", json!({})).await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-for-tests")
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(text.contains(r#"operation="query LandingPage""#), "{text}");
}

#[tokio::test]
async fn a_socket_closes_when_its_access_token_expires() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL_SECS", "1")]).await;
    let user = app.register("brief@example.com").await;
    let mut ws = socket(&app, Some(&user.access)).await;
    subscribe(&mut ws, "1", "subscription { messageReceived { content } }").await;
    let started = Instant::now();
    let closed = next_json(&mut ws).await;
    assert_eq!(closed["code"], 4401, "{closed}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn bad_status_changes_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.com").await;
    let user = app.register("user@example.com").await;
    let before = app.snapshot("users").await;
    let audit = app.count("audit_logs").await;
    let set = "mutation($u: ID!, $s: UserStatus!, $r: String) { setUserStatus(userId: $u, status: $s, reason: $r) { status } }";
    let cases = [
        (json!({ "u": user.user_id, "s": "BANNED" }), "BAD_USER_INPUT", Some("reason")),
        (json!({ "u": user.user_id, "s": "BANNED", "r": "   " }), "BAD_USER_INPUT", Some("reason")),
        (json!({ "u": user.user_id, "s": "INACTIVE", "r": "x".repeat(501) }), "BAD_USER_INPUT", Some("reason")),
        (json!({ "u": admin.user_id, "s": "BANNED", "r": "oops" }), "BAD_USER_INPUT", Some("userId")),
        (json!({ "u": "not-a-uuid", "s": "BANNED", "r": "spam" }), "BAD_USER_INPUT", Some("userId")),
        (json!({ "u": uuid::Uuid::new_v4().to_string(), "s": "BANNED", "r": "spam" }), "NOT_FOUND", None),
        (json!({ "u": user.user_id, "s": "DELETED", "r": "spam" }), "BAD_USER_INPUT", None),
    ];
    for (variables, code, field) in cases {
        let body = app.gql_as(&admin.access, set, variables.clone()).await;
        assert_eq!(error_code(&body), code, "{variables}: {body}");
        if let Some(field) = field {
            assert_eq!(error_field(&body), field, "{variables}: {body}");
        }
    }
    // Signed out, and as a non-admin.
    let anonymous = app.gql(set, json!({ "u": user.user_id, "s": "BANNED", "r": "spam" })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    let by_user = app.gql_as(&user.access, set, json!({ "u": admin.user_id, "s": "BANNED", "r": "spam" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    assert_eq!(app.snapshot("users").await, before, "nothing changed");
    assert_eq!(app.count("audit_logs").await, audit);
    // Setting the status a user already has is a no-op success that writes no audit row.
    let body = app.gql_as(&admin.access, set, json!({ "u": user.user_id, "s": "ACTIVE" })).await;
    assert_eq!(data(&body)["setUserStatus"]["status"], "ACTIVE");
    assert_eq!(app.count("audit_logs").await, audit);
}
