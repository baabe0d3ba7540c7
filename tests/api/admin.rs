//! The admin console's reads through the real server: the user search, the review queue, the
//! audit log, and every admin field refused to everyone else.

use crate::helpers::*;
use serde_json::{json, Value};

fn ids(body: &Value, field: &str) -> Vec<String> {
    data(body)[field]["edges"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn admin_fields_are_refused_to_everyone_else() {
    let app = spawn_app().await;
    let world = app.world().await;
    let user = app.register("user@example.com").await;
    let some_id = uuid::Uuid::new_v4().to_string();
    let fields = [
        "{ users { totalCount } }".to_string(),
        format!("{{ user(id: \"{some_id}\") {{ id }} }}"),
        "{ identities { totalCount } }".to_string(),
        format!("{{ identity(id: \"{some_id}\") {{ id }} }}"),
        "{ auditLogs { totalCount } }".to_string(),
        format!("mutation {{ suspendIdentity(id: \"{some_id}\", reason: \"x\") {{ id }} }}"),
        format!("mutation {{ reinstateIdentity(id: \"{some_id}\") {{ id }} }}"),
        "{ systemConfigs { key } }".to_string(),
        "mutation { setSystemConfig(key: \"features.likes\", value: false) { key } }".to_string(),
        "{ domains(includeInactive: true) { code } }".to_string(),
        format!("mutation {{ hideReview(id: \"{some_id}\") {{ id }} }}"),
        format!("mutation {{ unhideReview(id: \"{some_id}\") {{ id }} }}"),
    ];
    for query in &fields {
        let body = app.gql_as(&user.access, query, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
        let body = app.gql(query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
    }
    let body = app.gql_as(&world.admin.access, "{ users { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["users"]["totalCount"], 2, "{body}");
}

#[tokio::test]
async fn the_review_queue_lists_pending_masters_oldest_first() {
    let app = spawn_app().await;
    let world = app.world().await;
    let first = app.register("first@example.com").await;
    let second = app.register("second@example.com").await;
    let a = app.apply(&first, "MASTER", "software").await;
    let b = app.apply(&second, "MASTER", "software").await;
    let learner = app.register("learner@example.com").await;
    app.apply(&learner, "APPRENTICE", "software").await;
    let queue = "query($f: IdentitiesFilter, $n: Int, $a: String) {
        identities(filter: $f, first: $n, after: $a) { totalCount pageInfo { hasNextPage endCursor }
          edges { node { id status identityType user { id } } } } }";
    let pending = json!({ "status": "PENDING", "identityType": "MASTER" });
    let body = app.gql_as(&world.admin.access, queue, json!({ "f": pending })).await;
    assert_eq!(ids(&body, "identities"), [a.clone(), b.clone()], "oldest first: {body}");
    assert_eq!(data(&body)["identities"]["totalCount"], 2);
    let body = app.gql_as(&world.admin.access, queue, json!({ "f": pending, "n": 1 })).await;
    assert_eq!(ids(&body, "identities"), vec![a.clone()]);
    let cursor = data(&body)["identities"]["pageInfo"]["endCursor"].clone();
    let body = app.gql_as(&world.admin.access, queue, json!({ "f": pending, "n": 1, "a": cursor })).await;
    assert_eq!(ids(&body, "identities"), vec![b.clone()], "the next page: {body}");
    let body = app
        .gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: APPROVE) { status } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(data(&body)["reviewIdentity"]["status"], "ACTIVE", "{body}");
    let body = app.gql_as(&world.admin.access, queue, json!({ "f": pending })).await;
    assert_eq!(ids(&body, "identities"), vec![b.clone()], "decided identities leave the queue: {body}");
    let body =
        app.gql_as(&world.admin.access, "query($id: ID!) { identity(id: $id) { status } }", json!({ "id": a })).await;
    assert_eq!(data(&body)["identity"]["status"], "ACTIVE", "{body}");
    let body =
        app.gql_as(&world.admin.access, queue, json!({ "f": { "status": "PENDING", "domain": "cooking" } })).await;
    assert_eq!(data(&body)["identities"]["totalCount"], 0, "{body}");
}

#[tokio::test]
async fn users_are_found_and_the_audit_log_finds_a_ban_by_actor_resource_and_time() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.register("ada.lovelace@example.com").await;
    app.register("bob@example.com").await;
    let search = "query($f: UsersFilter) { users(filter: $f) { totalCount edges { node { id email status } } } }";
    let body = app.gql_as(&world.admin.access, search, json!({ "f": { "query": "LOVELACE" } })).await;
    assert_eq!(ids(&body, "users"), vec![ada.user_id.clone()], "{body}");
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let body = app
        .gql_as(
            &world.admin.access,
            "mutation($u: ID!) { setUserStatus(userId: $u, status: BANNED, reason: \"spam\") { status } }",
            json!({ "u": ada.user_id }),
        )
        .await;
    assert_eq!(data(&body)["setUserStatus"]["status"], "BANNED", "{body}");
    let body = app.gql_as(&world.admin.access, search, json!({ "f": { "status": "BANNED" } })).await;
    assert_eq!(ids(&body, "users"), vec![ada.user_id.clone()], "{body}");
    let body = app
        .gql_as(&world.admin.access, "query($id: ID!) { user(id: $id) { email status } }", json!({ "id": ada.user_id }))
        .await;
    assert_eq!(data(&body)["user"]["status"], "BANNED", "{body}");
    let logs = "query($f: AuditLogsFilter) { auditLogs(filter: $f) { totalCount
        edges { node { action resourceType resourceId actor { id } oldData newData createdAt } } } }";
    let filter = json!({ "actorId": world.admin.user_id, "resourceType": "users", "resourceId": ada.user_id,
                         "since": before.to_rfc3339(), "action": "update" });
    let body = app.gql_as(&world.admin.access, logs, json!({ "f": filter })).await;
    assert_eq!(data(&body)["auditLogs"]["totalCount"], 1, "{body}");
    let entry = &data(&body)["auditLogs"]["edges"][0]["node"];
    assert_eq!(entry["oldData"]["status"], "active", "{body}");
    assert_eq!(entry["newData"]["status"], "banned", "{body}");
    assert_eq!(entry["newData"]["reason"], "spam", "{body}");
    assert_eq!(entry["actor"]["id"], world.admin.user_id.as_str());
    let later =
        json!({ "resourceId": ada.user_id, "since": (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339() });
    let body = app.gql_as(&world.admin.access, logs, json!({ "f": later })).await;
    assert_eq!(data(&body)["auditLogs"]["totalCount"], 0, "{body}");
    for (filter, field) in [
        (json!({ "action": "TRUNCATE" }), "filter.action"),
        (json!({ "resourceId": "nope" }), "filter.resourceId"),
        (json!({ "since": chrono::Utc::now().to_rfc3339(), "until": before.to_rfc3339() }), "filter.until"),
    ] {
        let body = app.gql_as(&world.admin.access, logs, json!({ "f": filter })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{filter}: {body}");
        assert_eq!(error_field(&body), field, "{filter}: {body}");
    }
}
