//! The server against public references: the GraphQL-over-HTTP spec's own audit (npm
//! `graphql-http`, every audit), graphql-transport-ws close codes and messages as its protocol
//! document lists them, the official `graphql-ws` client, and the spec's response rules (media
//! types, request errors without `data`, field errors as `null`, selection order, stable bytes).

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::path::Path;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance");

/// Whether the npm references are installed (scripts/test installs them; CI must have them).
fn references(what: &str) -> bool {
    let installed = Path::new(&format!("{CONFORMANCE}/node_modules/graphql-http")).exists()
        && Path::new(&format!("{CONFORMANCE}/node_modules/graphql-ws")).exists();
    if !installed {
        assert!(std::env::var("CI").is_err(), "CI must install tests/conformance (scripts/test does)");
        eprintln!("SKIPPED {what}: run `npm ci --prefix tests/conformance`");
    }
    installed
}

async fn node(script: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("node")
        .arg(format!("{CONFORMANCE}/{script}"))
        .args(args)
        .output()
        .await
        .expect("run node");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn graphql_over_http_audit_passes_every_audit() {
    if !references("graphql-http audit") {
        return;
    }
    let app = spawn_app().await;
    let (ok, output) = node("http-audit.mjs", &[&app.url("/graphql")]).await;
    assert!(ok, "graphql-http audit failed:\n{output}");
    assert!(output.contains("pass"), "{output}");
    eprintln!("{}", output.lines().last().unwrap_or_default());
}

#[tokio::test]
async fn the_official_graphql_ws_client_subscribes_queries_and_mutates() {
    if !references("graphql-ws client") {
        return;
    }
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let ws = format!("ws://{}/graphql/ws", app.addr);
    let (ok, output) = node("graphql-ws-client.mjs", &[&ws, &ann.access, &bob.access, &ann.user_id]).await;
    assert!(ok, "graphql-ws client failed:\n{output}");
    let steps: Vec<Value> = output.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).map(|s| s["value"].clone()).unwrap_or_default();
    assert_eq!(step("query")["data"]["me"]["id"], ann.user_id.as_str(), "{output}");
    assert_eq!(step("mutation")["data"]["sendMessage"]["content"], "over graphql-ws", "{output}");
    assert_eq!(step("event")["data"]["messageReceived"]["content"], "over graphql-ws", "{output}");
    assert_eq!(step("event")["data"]["messageReceived"]["sender"]["id"], bob.user_id.as_str(), "{output}");
    // A validation error arrives as the protocol's `error` message: the client rejects with it.
    assert!(step("invalid")["errors"][0]["message"].is_string(), "{output}");
    assert_eq!(app.count("messages").await, 1);
}

async fn closed_with(socket: &mut Socket) -> Value {
    let message = next_json(socket).await;
    assert_eq!(message["type"], "close", "expected a close, got {message}");
    message["code"].clone()
}

#[tokio::test]
async fn graphql_transport_ws_close_codes_follow_the_protocol() {
    let app = spawn_app_with(&[("WS_INIT_TIMEOUT_SECS", "1")]).await;
    let ann = app.register("ann@example.com").await;

    // 4406: no graphql-transport-ws subprotocol.
    let mut socket = ws_open(&app, None).await;
    assert_eq!(closed_with(&mut socket).await, 4406);
    // Only the legacy protocol offered: the upgrade selects none, and a client fails the handshake.
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-ws".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "no subprotocol selected");

    // 4401: subscribe before connection_ack.
    let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
    ws_send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ domains { code } }" } }))
        .await;
    assert_eq!(closed_with(&mut socket).await, 4401);

    // 4400: not JSON, an unknown type, a message only the server sends, a subscribe without an id.
    for bad in [
        Frame::Text("{not json".into()),
        Frame::Text(json!({ "type": "hello" }).to_string().into()),
        Frame::Text(json!({ "type": "next", "id": "1", "payload": {} }).to_string().into()),
        Frame::Text(json!({ "type": "connection_init", "payload": "token" }).to_string().into()),
    ] {
        let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
        socket.send(bad.clone()).await.expect("send");
        assert_eq!(closed_with(&mut socket).await, 4400, "{bad:?}");
    }
    let mut socket = ws_connect(&app, None).await;
    ws_send(&mut socket, json!({ "type": "subscribe", "payload": { "query": "{ domains { code } }" } })).await;
    assert_eq!(closed_with(&mut socket).await, 4400);

    // 4408: no connection_init within WS_INIT_TIMEOUT_SECS.
    let started = std::time::Instant::now();
    let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
    assert_eq!(closed_with(&mut socket).await, 4408);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());

    // 4429: a second connection_init.
    let mut socket = ws_connect(&app, None).await;
    ws_send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(closed_with(&mut socket).await, 4429);

    // 4409: a second subscribe under a live id.
    let mut socket = ws_connect(&app, Some(&ann.access)).await;
    let subscription =
        json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription { messageReceived { id } }" } });
    ws_send(&mut socket, subscription.clone()).await;
    ws_send(&mut socket, subscription.clone()).await;
    assert_eq!(closed_with(&mut socket).await, 4409);

    // 4401 / 4403 at connection_init: a bad token, a banned user.
    let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
    ws_send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": "Bearer nope" } })).await;
    assert_eq!(closed_with(&mut socket).await, 4401);
    app.exec("UPDATE users SET status = 'banned' WHERE email = 'ann@example.com'").await;
    let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", ann.access) } });
    ws_send(&mut socket, init).await;
    assert_eq!(closed_with(&mut socket).await, 4403);
}

#[tokio::test]
async fn graphql_transport_ws_messages_follow_the_protocol() {
    let app = spawn_app().await;
    let mut socket = ws_open(&app, Some("graphql-transport-ws")).await;
    // ping is answered with pong, before and after the ack, echoing its payload.
    ws_send(&mut socket, json!({ "type": "ping", "payload": { "n": 1 } })).await;
    let pong = next_message(&mut socket).await;
    assert_eq!(pong, json!({ "type": "pong", "payload": { "n": 1 } }));
    ws_send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(next_message(&mut socket).await, json!({ "type": "connection_ack" }));
    ws_send(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(next_message(&mut socket).await, json!({ "type": "pong" }));

    // A query: one next, then complete.
    ws_send(&mut socket, json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    let next = next_message(&mut socket).await;
    assert_eq!(next["type"], "next");
    assert_eq!(next["id"], "q");
    assert_eq!(next["payload"]["data"]["__typename"], "Query");
    assert_eq!(next_message(&mut socket).await, json!({ "id": "q", "type": "complete" }));

    // A request error: one error message with the errors, no next, no complete.
    ws_send(&mut socket, json!({ "id": "v", "type": "subscribe", "payload": { "query": "{ nope }" } })).await;
    let error = next_message(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "v");
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    // A missing required variable is a request error too.
    let query = "query($id: ID!) { mentor(id: $id) { id } }";
    ws_send(&mut socket, json!({ "id": "m", "type": "subscribe", "payload": { "query": query } })).await;
    let error = next_message(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"][0]["extensions"]["field"], "variables.id", "{error}");

    // The id of a finished operation may be used again; a client's complete ends a subscription
    // (no messages for it afterwards), and its id is free again.
    ws_send(&mut socket, json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ __typename }" } })).await;
    assert_eq!(next_message(&mut socket).await["type"], "next");
    assert_eq!(next_message(&mut socket).await["type"], "complete");
    let ann = app.register("ann@example.com").await;
    let mut socket = ws_connect(&app, Some(&ann.access)).await;
    let subscription =
        json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription { messageReceived { id } }" } });
    ws_send(&mut socket, subscription.clone()).await;
    ws_send(&mut socket, json!({ "id": "s", "type": "complete" })).await;
    ws_send(&mut socket, subscription).await;
    ws_send(&mut socket, json!({ "id": "t", "type": "subscribe", "payload": { "query": "{ me { id } }" } })).await;
    let next = next_message(&mut socket).await;
    assert_eq!(next["id"], "t", "nothing for the completed subscription: {next}");
    assert_eq!(next["payload"]["data"]["me"]["id"], ann.user_id.as_str());
}

async fn post(app: &TestApp, accept: Option<&str>, body: &str) -> (u16, String, String) {
    let mut request =
        app.http.post(app.url("/graphql")).header("content-type", "application/json").body(body.to_string());
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn media_types_and_status_codes_follow_graphql_over_http() {
    let app = spawn_app().await;
    let graphql_response = Some("application/graphql-response+json");
    let ok = r#"{"query":"{ __typename }"}"#;
    let (status, content_type, _) = post(&app, None, ok).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json; charset=utf-8"));
    let (status, content_type, _) = post(&app, graphql_response, ok).await;
    assert_eq!((status, content_type.as_str()), (200, "application/graphql-response+json; charset=utf-8"));
    let (_, content_type, _) = post(&app, Some("application/json;q=0.5, application/graphql-response+json"), ok).await;
    assert!(content_type.starts_with("application/graphql-response+json"));
    let (_, content_type, _) = post(&app, Some("*/*"), ok).await;
    assert!(content_type.starts_with("application/json"));
    let (status, _, _) = post(&app, Some("text/html"), ok).await;
    assert_eq!(status, 406);

    // Parse, validation and variable failures: 200 under application/json, 400 under the GraphQL
    // media type; either way no `data` entry (nothing executed) and a code.
    let requests = [
        (r#"{"query":"{"}"#, "BAD_USER_INPUT"),
        (r#"{"query":"{ nope }"}"#, "BAD_USER_INPUT"),
        (r#"{"query":"query($id: ID!) { mentor(id: $id) { id } }"}"#, "BAD_USER_INPUT"),
        (r#"{"query":"query($id: ID!) { mentor(id: $id) { id } }","variables":{"id":{"no":1}}}"#, "BAD_USER_INPUT"),
    ];
    for (body, code) in requests {
        for (accept, expected) in [(None, 200), (graphql_response, 400)] {
            let (status, _, text) = post(&app, accept, body).await;
            assert_eq!(status, expected, "{body} with {accept:?}: {text}");
            let value: Value = serde_json::from_str(&text).expect("json");
            assert!(value.get("data").is_none(), "no data entry for a request error: {text}");
            assert_eq!(error_code(&value), code, "{text}");
        }
    }
    // The missing variable says which one, as a client error (not INTERNAL).
    let (_, _, text) = post(&app, None, requests[2].0).await;
    let value: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(error_field(&value), "variables.id", "{text}");

    // A malformed body says what is wrong in the request's terms, never an internal type.
    for body in [r#"{"query": 0}"#, "[1]", "\"text\"", "{not json"] {
        let (status, _, text) = post(&app, None, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(!text.contains("untagged") && !text.contains("BatchRequest"), "{body}: {text}");
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error_code(&value), "BAD_USER_INPUT", "{text}");
        assert_eq!(error_field(&value), "body", "{text}");
    }
}

#[tokio::test]
async fn errored_nullable_fields_are_null_and_keys_keep_the_selection_order() {
    let app = spawn_app().await;
    // An errored nullable field is null next to its error; its siblings are answered.
    let body = app.gql(r#"{ mentor(id: "nope") { id } domains { code } }"#, json!({})).await;
    let data = body["data"].as_object().expect("data object");
    assert!(data.contains_key("mentor"), "mentor is present as null: {body}");
    assert!(data["mentor"].is_null());
    assert!(data["domains"].is_array());
    assert_eq!(body["errors"][0]["path"], json!(["mentor"]));
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // The same with only errored fields: data is an object of nulls, not null.
    let body = app.gql(r#"{ a: mentor(id: "nope") { id } b: course(id: "nope") { id } }"#, json!({})).await;
    assert_eq!(body["data"], json!({ "a": null, "b": null }), "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));
    // A bad token errs `me` (nullable): null, not missing.
    let body = app.gql_as("not-a-token", "{ me { id } domains { code } }", json!({})).await;
    assert!(body["data"].as_object().is_some_and(|d| d.contains_key("me") && d["me"].is_null()), "{body}");

    // Keys in selection order, byte for byte the same each time (cached or not).
    let query = "{ z: domains { code } me { email id } a: domains { name code } __typename m: courses(first: 1) { totalCount } }";
    for overrides in [&[][..], &[("CACHE_RESPONSES", "false")][..]] {
        let app = spawn_app_with(overrides).await;
        let ann = app.register("ann@example.com").await;
        let mut bodies = std::collections::HashSet::new();
        for _ in 0..30 {
            let response = app
                .http
                .post(app.url("/graphql"))
                .bearer_auth(&ann.access)
                .json(&json!({ "query": query }))
                .send()
                .await
                .expect("send");
            let text = response.text().await.expect("body");
            // The cost report's remaining budget changes per request; the rest must not.
            let text = text.split(",\"extensions\"").next().unwrap_or_default().to_string();
            bodies.insert(text);
        }
        assert_eq!(bodies.len(), 1, "identical requests, identical bytes: {bodies:?}");
        let text = bodies.into_iter().next().unwrap_or_default();
        let positions: Vec<usize> =
            ["\"z\"", "\"me\"", "\"a\"", "\"__typename\"", "\"m\""].iter().filter_map(|k| text.find(k)).collect();
        assert_eq!(positions.len(), 5, "{text}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "selection order: {text}");
        let email_then_id = text.find("\"email\"").zip(text.find("\"id\"")).is_some_and(|(e, i)| e < i);
        assert!(email_then_id, "{text}");
    }
}

/// Client mistakes are client errors, never INTERNAL: a cursor edited by hand (valid base64 and
/// JSON, keys of another type than the order's column) and a profile name set to null.
#[tokio::test]
async fn tampered_cursors_and_a_null_name_are_client_errors() {
    use base64::Engine;
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    app.course(&ada, None, 1, true).await;
    let encode = |cursor: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor.to_string());
    let id = uuid::Uuid::new_v4();
    let cursors = [
        encode(json!({ "k": [{ "Time": "2026-01-01T00:00:00Z" }], "id": id })),
        encode(json!({ "k": [{ "Bool": true }], "id": id })),
        encode(json!({ "k": [{ "Int": 3 }, { "Int": 4 }], "id": id })),
    ];
    let pages = [
        "query($a: String) { courses(orderBy: { field: RATING }, after: $a) { totalCount } }",
        "query($a: String) { courses(orderBy: { field: PRICE }, after: $a) { totalCount } }",
        "query($a: String) { mentors(orderBy: { field: RATING }, after: $a) { totalCount } }",
        "query($a: String) { mentors(orderBy: { field: STUDENTS }, before: $a, last: 2) { totalCount } }",
    ];
    for page in pages {
        for cursor in &cursors {
            let body = app.gql(page, json!({ "a": cursor })).await;
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{page} {cursor}: {body}");
        }
        // A cursor the API issued still pages.
        let first = page.replace("after: $a", "first: 1").replace("before: $a, last: 2", "last: 1");
        let body = app.gql(&first.replace("query($a: String) ", ""), json!({})).await;
        data(&body);
    }
    let update = "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name skills experienceYears } }";
    let body = app.gql_as(&ada.session.access, update, json!({ "id": ada.identity, "i": { "name": null } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.name", "{body}");
    let body = app
        .gql_as(
            &ada.session.access,
            update,
            json!({ "id": ada.identity, "i": { "skills": null, "experienceYears": null } }),
        )
        .await;
    assert_eq!(data(&body)["updateProfile"], json!({ "name": "ada", "skills": [], "experienceYears": 0 }), "{body}");
}
