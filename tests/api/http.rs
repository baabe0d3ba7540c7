//! The HTTP surface: malformed requests, GET semantics, health, readiness, metrics, GraphiQL.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn malformed_requests_get_a_4xx_with_a_graphql_error_never_a_500() {
    let app = spawn_app().await;
    let cases: Vec<(&str, &str, String)> = vec![
        ("invalid json", "application/json", "{not json".into()),
        ("missing query", "application/json", json!({ "variables": {} }).to_string()),
        ("query not a string", "application/json", json!({ "query": 42 }).to_string()),
        ("wrong content type", "text/plain", "{ me { id } }".into()),
        ("empty body", "application/json", String::new()),
        ("empty query", "application/json", json!({ "query": "" }).to_string()),
        ("empty array", "application/json", "[]".into()),
    ];
    for (name, content_type, body) in cases {
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON error body");
        assert!((400..500).contains(&status), "{name}: HTTP {status}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{name}: {body}");
    }
    // Well-formed JSON with a bad document: a GraphQL error with a code.
    for (name, query) in [("syntax error", "{ me { id "), ("unknown field", "{ nope }")] {
        let body = app.gql(query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{name}: {body}");
    }
    // An operation name that is not in the document.
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": "query A { me { id } }", "operationName": "B" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn get_runs_queries_but_not_mutations() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/graphql")).query(&[("query", "{ me { id } }")]).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["data"]["me"].is_null() && body["errors"].is_null(), "{body}");

    let mutation =
        r#"mutation { register(input: { email: "get@example.com", password: "password123" }) { accessToken } }"#;
    let response = app.http.get(app.url("/graphql")).query(&[("query", mutation)]).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(app.count("users").await, 0);

    let response = app.http.get(app.url("/graphql")).send().await.expect("send");
    assert_eq!(response.status().as_u16(), 400);
    let response = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "query($n: Int) { me { id } }"), ("variables", "{oops")])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);

    app.register("metrics@example.com").await;
    app.gql("{ nope }", json!({})).await;
    let text = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(text.contains(r#"graphql_requests_total{operation="mutation:register",outcome="ok"}"#), "{text}");
    assert!(text.contains("graphql_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"graphql_errors_total{code="BAD_USER_INPUT"}"#), "{text}");
    assert!(app.statements().await > 0);

    let missing = app.http.get(app.url("/nowhere")).send().await.expect("404");
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn the_graphiql_page_and_its_assets_are_served_by_the_binary() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external URLs in the page");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphql-ws.min.js",
        "init.js",
    ] {
        assert!(html.contains(asset), "{asset} referenced");
        let response = app.http.get(app.url(&format!("/assets/graphiql/{asset}"))).send().await.expect("asset");
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        assert!(response.bytes().await.expect("bytes").len() > 100, "{asset}");
    }
    let missing = app.http.get(app.url("/assets/graphiql/../Cargo.toml")).send().await.expect("asset");
    assert_eq!(missing.status().as_u16(), 404);
}

const REGISTER: &str =
    "mutation($e: String!) { register(input: { email: $e, password: \"password123\" }) { user { id } } }";

#[tokio::test]
async fn a_request_over_the_time_limit_is_stopped_with_timeout_and_writes_nothing() {
    let app = spawn_app_with(&[("GRAPHQL_REQUEST_TIMEOUT_SECS", "1")]).await;
    let lock = app.lock_users().await;
    // The insert waits behind the lock longer than the 1 s limit.
    let body = app.gql(REGISTER, json!({ "e": "slow@example.com" })).await;
    assert_eq!(error_code(&body), "TIMEOUT", "{body}");
    lock.rollback().await.expect("release");
    assert_eq!(app.count("users").await, 0, "the stopped request rolled back");
    // The server is fine afterwards.
    let body = app.gql(REGISTER, json!({ "e": "fast@example.com" })).await;
    assert!(body["data"]["register"].is_object(), "{body}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app_with(&[("SHUTDOWN_GRACE_SECS", "20")]).await;
    let lock = app.lock_users().await;
    let in_flight = {
        let http = app.http.clone();
        let url = app.url("/graphql");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({ "query": REGISTER, "variables": { "e": "inflight@example.com" } }))
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let server = app.stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // New connections are refused once shutdown began...
    let refused = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(refused.is_err(), "new connections are not accepted during shutdown");
    // ...while the request that was already running completes once the lock goes away.
    lock.rollback().await.expect("release");
    let body = in_flight.await.expect("in-flight task");
    assert!(body["data"]["register"]["user"]["id"].is_string(), "{body}");
    server.await.expect("join").expect("server stopped cleanly");
    assert_eq!(app.count("users").await, 1);
}
