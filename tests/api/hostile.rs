//! Hostile requests are refused cheaply with a clear error while normal traffic still answers.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn post_raw(app: &TestApp, body: String) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn nested_introspection(levels: usize) -> String {
    // __Type.fields.type recurses, so introspection nests as deep as we like with real fields.
    let mut query = String::from("{ __schema { types { ");
    for _ in 0..levels {
        query.push_str("fields { type { ");
    }
    query.push_str("name ");
    for _ in 0..levels {
        query.push_str("} } ");
    }
    query.push_str("} } }");
    query
}

#[tokio::test]
async fn a_deeply_nested_query_is_refused() {
    let app = spawn_app().await;
    // 20 levels of real fields: parsed, then refused by the depth limit.
    let body = app.gql(&nested_introspection(10), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["data"].is_null());
    // 100 levels: refused before parsing.
    let deep = format!("{}{}", "{ me ".repeat(100), "}".repeat(100));
    let body = app.gql(&deep, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // A sane introspection query still works.
    let body = app.gql(&nested_introspection(1), json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn thousands_of_aliases_are_refused() {
    let app = spawn_app().await;
    let fields: String = (0..5000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let body = app.gql(&format!("{{ {fields} }}"), json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{}", &body.to_string()[..200.min(body.to_string().len())]);
    // A handful of aliases is normal client behaviour.
    let body = app.gql("{ a: me { id } b: me { id } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_fragment_cycle_is_refused() {
    let app = spawn_app().await;
    let query = "query { ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }";
    let body = app.gql(query, json!({})).await;
    // async-graphql stops following the cycle at the recursion limit, before it can recurse forever.
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["data"].is_null(), "{body}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let (status, body) =
        post_raw(&app, json!({ "query": "{ me { id } }", "variables": { "pad": padding } }).to_string()).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn batches_are_capped() {
    let app = spawn_app().await;
    let one = json!({ "query": "{ me { id } }" });
    let (status, body) = post_raw(&app, Value::Array(vec![one.clone(); 11]).to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let (status, body) = post_raw(&app, Value::Array(vec![one; 3]).to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");
    let (status, _) = post_raw(&app, "[]".into()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn hostile_requests_do_not_stall_normal_ones() {
    let app = spawn_app().await;
    let fields: String = (0..5000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let aliases = format!("{{ {fields} }}");
    let deep = nested_introspection(10);
    let padding = json!({ "query": "{ me { id } }", "variables": { "pad": "x".repeat(2 * 1024 * 1024) } }).to_string();
    let hostile = (0..6).map(|i| {
        let app = &app;
        let (aliases, deep, padding) = (aliases.clone(), deep.clone(), padding.clone());
        async move {
            match i % 3 {
                0 => app.gql(&aliases, json!({})).await,
                1 => app.gql(&deep, json!({})).await,
                _ => post_raw(app, padding).await.1,
            }
        }
    });
    let normal = async {
        let other = reqwest::Client::new();
        other
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .expect("send")
            .json::<Value>()
            .await
            .expect("json")
    };
    // Generous bound: this guards against a stall, not a speed target (those live in bench/).
    let (hostile, normal) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(futures_util::future::join_all(hostile), normal)
    })
    .await
    .expect("hostile requests stalled the server");
    assert!(normal["data"]["me"].is_null() && normal["errors"].is_null(), "{normal}");
    for body in hostile {
        let code = error_code(&body).to_string();
        assert!(code == "QUERY_TOO_COMPLEX" || code == "BAD_USER_INPUT", "{code}");
    }
}
