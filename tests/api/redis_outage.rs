//! Redis comes and goes: a Redis this test starts itself is killed mid-test and started again.
//! While it is away no request fails (the link's breaker sends every call to its fallback at once);
//! when it is back, both instances pick it up by themselves and a subscriber on each gets the next
//! message across instances.

use crate::helpers::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id content } }";
const MESSAGES: &str = "subscription { messageReceived { content } }";

/// A redis-server of this test's own on `port`, killed (by its pid) when dropped.
struct OwnRedis(Child);

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self(child));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether redis-server can be started here; says in the run that `what` is skipped when not (CI
/// always has it: scripts/test installs it).
fn redis_server(what: &str) -> bool {
    if Command::new("redis-server").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "CI must have redis-server (scripts/test installs it)");
    eprintln!("SKIPPED {what}: redis-server is not installed");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn readiness(app: &TestApp) -> Value {
    app.http.get(app.url("/readyz")).send().await.expect("readyz").json().await.expect("json")
}

/// Waits until `/readyz` of `app` says `key` is `value`.
async fn until_ready(app: &TestApp, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = readiness(app).await;
        if ready[key] == value {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never said {key} = {value}: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn no_request_fails_while_redis_is_away_and_both_instances_pick_it_up_again() {
    if !redis_server("Redis outage test") {
        return;
    }
    let port = free_port();
    let redis = OwnRedis::start(port).expect("start redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let settings = [("REDIS_URL", url.as_str()), ("CACHE_TTL_SECS", "600")];
    let a = spawn_app_with(&settings).await;
    let b = spawn_sibling(&a, &settings).await;
    let ann = a.register("ann@example.com").await;
    let bob = a.register("bob@example.com").await;
    let cat = a.register("cat@example.com").await;
    let world = a.world().await;
    let master = a.master(&world, "mia@example.com", "software").await;
    let mentor = "query($id: ID!) { mentor(id: $id) { profile { name } } }";
    for app in [&a, &b] {
        // Warm both levels on both instances.
        let body = app.gql(mentor, json!({ "id": master.identity })).await;
        assert_eq!(data(&body)["mentor"]["profile"]["name"], "mia");
    }
    for app in [&a, &b] {
        until_ready(app, "redis", "up").await;
        until_ready(app, "events", "redis").await;
    }
    let mut ann_on_a = ws_subscribed(&a, &ann.access, MESSAGES).await;
    let mut bob_on_b = ws_subscribed(&b, &bob.access, MESSAGES).await;

    redis.kill();
    // Every kind of call while Redis is away: cached reads, a mutation, rate-limited sign-ins, a
    // message (local delivery). None may fail, and none waits on Redis once the breaker is open.
    let mut failed = Vec::new();
    let started = Instant::now();
    for round in 0..40 {
        let app = if round % 2 == 0 { &a } else { &b };
        let bodies = [
            app.gql_with(Some(&ann.access), "{ me { id email } domains { code } }", json!({})).await,
            app.gql("{ courses(first: 5) { totalCount } }", json!({})).await,
            app.gql_with(
                Some(&master.session.access),
                "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name } }",
                json!({ "id": master.identity, "i": { "name": format!("Mia {round}") } }),
            )
            .await,
            app.gql(mentor, json!({ "id": master.identity })).await,
        ];
        for body in bodies {
            if body.get("errors").is_some() {
                failed.push(body);
            }
        }
    }
    let outage = started.elapsed();
    assert!(failed.is_empty(), "{} requests failed while Redis was away: {:?}", failed.len(), failed.first());
    for app in [&a, &b] {
        assert_eq!(readiness(app).await["status"], "degraded");
    }
    // A message while Redis is away reaches a subscriber on the same instance.
    data(&a.gql_as(&cat.access, SEND, json!({ "i": { "toUserId": ann.user_id, "content": "during" } })).await);
    let event = next_json(&mut ann_on_a).await;
    assert_eq!(event["payload"]["data"]["messageReceived"]["content"], "during", "{event}");
    eprintln!("160 requests during the outage in {outage:?}");

    let _redis = OwnRedis::start(port).expect("restart redis-server");
    for app in [&a, &b] {
        until_ready(app, "redis", "up").await;
        until_ready(app, "events", "redis").await;
        assert_eq!(readiness(app).await["status"], "ready");
    }
    // Across instances again, both ways.
    data(&b.gql_as(&cat.access, SEND, json!({ "i": { "toUserId": ann.user_id, "content": "to ann on a" } })).await);
    data(&a.gql_as(&cat.access, SEND, json!({ "i": { "toUserId": bob.user_id, "content": "to bob on b" } })).await);
    let event = next_json(&mut ann_on_a).await;
    assert_eq!(event["payload"]["data"]["messageReceived"]["content"], "to ann on a", "{event}");
    let event = next_json(&mut bob_on_b).await;
    assert_eq!(event["payload"]["data"]["messageReceived"]["content"], "to bob on b", "{event}");
    // The profile written during the outage reads back fresh on both instances: neither level
    // kept a copy from before the outage (the deletes that missed Redis were sent when it came
    // back, and the in-process levels were dropped).
    for app in [&a, &b] {
        let body = app.gql(mentor, json!({ "id": master.identity })).await;
        assert_eq!(data(&body)["mentor"]["profile"]["name"], "Mia 39", "{body}");
    }
}

/// A Redis that is down when the server starts is picked up when it comes: start-up does not fail
/// or wait for it, and the link and the event relay connect by themselves.
#[tokio::test]
async fn a_redis_down_at_start_up_is_picked_up_when_it_comes() {
    if !redis_server("Redis start-up test") {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let app = spawn_app_with(&[("REDIS_URL", url.as_str())]).await;
    let ready = readiness(&app).await;
    assert_eq!((ready["status"].as_str(), ready["redis"].as_str()), (Some("degraded"), Some("down")), "{ready}");
    let ann = app.register("ann@example.com").await;
    data(&app.gql_as(&ann.access, "{ me { id } }", json!({})).await);
    let _redis = OwnRedis::start(port).expect("start redis-server");
    until_ready(&app, "redis", "up").await;
    until_ready(&app, "events", "redis").await;
    assert_eq!(readiness(&app).await["status"], "ready");
    data(&app.gql_as(&ann.access, "{ me { id } }", json!({})).await);
}
