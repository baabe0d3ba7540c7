//! Moderation (posts, comments, reviews, members), re-applications after a rejection, the domain
//! code rule and the live system configs, through the real server; each sensitive change is then
//! found in `auditLogs` by actor, resource and time, and refused calls change nothing.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const AUDIT: &str = "query($f: AuditLogsFilter) { auditLogs(filter: $f, first: 20) {
    totalCount edges { node { action resourceType resourceId actor { id } oldData newData } } } }";
const CREATE_CIRCLE: &str = "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }";
const JOIN: &str = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id role } }";
const REMOVE: &str = "mutation($c: ID!, $u: ID!, $b: Boolean, $r: String) {
    removeMember(circleId: $c, userId: $u, ban: $b, reason: $r) { id isActive isBanned banReason } }";
const UNBAN: &str = "mutation($c: ID!, $u: ID!) { unbanMember(circleId: $c, userId: $u) { id isBanned } }";
const SET_CONFIG: &str = "mutation($k: String!, $v: JSON) { setSystemConfig(key: $k, value: $v) {
    key value defaultValue isOverridden configType } }";
const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }";

/// Someone in a circle: their session and the identity they act through.
struct Person {
    session: Session,
    identity: String,
}

async fn person(app: &TestApp, email: &str) -> Person {
    let session = app.register(email).await;
    let identity = app.apply(&session, "APPRENTICE", "software").await;
    Person { session, identity }
}

/// The audit rows matching `filter`, as (action, resource type) pairs.
async fn audit(app: &TestApp, admin: &Session, filter: Value) -> Vec<(String, String)> {
    let body = app.gql_as(&admin.access, AUDIT, json!({ "f": filter })).await;
    data(&body)["auditLogs"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["action"].as_str().unwrap_or_default().into(),
                node["resourceType"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

fn update_of(table: &str, times: usize) -> Vec<(String, String)> {
    vec![("UPDATE".to_string(), table.to_string()); times]
}

#[tokio::test]
async fn moderators_and_admins_hide_unhide_and_remove_members_audited_and_members_cannot() {
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let app = spawn_app().await;
    let world = app.world().await;
    let owner = person(&app, "owner@example.com").await;
    let moderator = person(&app, "moderator@example.com").await;
    let member = person(&app, "member@example.com").await;
    let author = person(&app, "author@example.com").await;
    let body = app
        .gql_as(
            &owner.session.access,
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "Potters", "domain": "software" } }),
        )
        .await;
    let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
    let mut memberships = std::collections::HashMap::new();
    for someone in [&moderator, &member, &author] {
        let body = app.gql_as(&someone.session.access, JOIN, json!({ "c": circle, "i": someone.identity })).await;
        memberships
            .insert(someone.session.user_id.clone(), data(&body)["joinCircle"]["id"].as_str().expect("id").to_string());
    }
    let body = app
        .gql_as(
            &owner.session.access,
            "mutation($c: ID!, $u: ID!) { setMemberRole(circleId: $c, userId: $u, role: MODERATOR) { id role } }",
            json!({ "c": circle, "u": moderator.session.user_id }),
        )
        .await;
    assert_eq!(data(&body)["setMemberRole"]["role"], "MODERATOR");
    let body = app
        .gql_as(
            &author.session.access,
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "circleId": circle, "identityId": author.identity, "content": "buy my pots" } }),
        )
        .await;
    let post = data(&body)["createPost"]["id"].as_str().expect("post").to_string();
    let body = app
        .gql_as(
            &member.session.access,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
            json!({ "i": { "postId": post, "identityId": member.identity, "content": "spam spam" } }),
        )
        .await;
    let comment = data(&body)["addComment"]["id"].as_str().expect("comment").to_string();

    // A member may do none of it, and a refusal changes nothing (no audit row either).
    let tables = ["posts", "comments", "circle_members", "circles", "audit_logs"];
    let before = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
    let refused = [
        ("mutation($id: ID!) { hidePost(id: $id) { status } }", json!({ "id": post })),
        ("mutation($id: ID!) { unhidePost(id: $id) { status } }", json!({ "id": post })),
        ("mutation($id: ID!) { hideComment(id: $id) { status } }", json!({ "id": comment })),
        ("mutation($id: ID!) { unhideComment(id: $id) { status } }", json!({ "id": comment })),
        (REMOVE, json!({ "c": circle, "u": author.session.user_id, "b": true })),
        (UNBAN, json!({ "c": circle, "u": author.session.user_id })),
    ];
    for (query, variables) in &refused {
        let body = app.gql_as(&member.session.access, query, variables.clone()).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
    }
    // A moderator cannot remove the circle's admin (above them).
    let body = app.gql_as(&moderator.session.access, REMOVE, json!({ "c": circle, "u": owner.session.user_id })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let after = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
    assert_eq!(before, after, "a refused moderation changed something");

    // The moderator hides the post: the member no longer sees it, the circle's count drops.
    let counts = "query($c: ID!, $p: ID!) { circle(id: $c) { postCount } post(id: $p) { id commentCount } }";
    let body = app
        .gql_as(&moderator.session.access, "mutation($id: ID!) { hidePost(id: $id) { status } }", json!({ "id": post }))
        .await;
    assert_eq!(data(&body)["hidePost"]["status"], "HIDDEN", "{body}");
    let body = app.gql_as(&member.session.access, counts, json!({ "c": circle, "p": post })).await;
    assert_eq!(data(&body)["circle"]["postCount"], 0, "{body}");
    assert!(data(&body)["post"].is_null(), "a member sees a hidden post: {body}");
    // The platform admin brings it back.
    let body = app
        .gql_as(&world.admin.access, "mutation($id: ID!) { unhidePost(id: $id) { status } }", json!({ "id": post }))
        .await;
    assert_eq!(data(&body)["unhidePost"]["status"], "ACTIVE", "{body}");
    let body = app.gql_as(&member.session.access, counts, json!({ "c": circle, "p": post })).await;
    assert_eq!(data(&body)["circle"]["postCount"], 1, "{body}");
    assert_eq!(data(&body)["post"]["commentCount"], 1, "{body}");

    // Comments: hidden by the moderator (out of the thread and the count), back by the admin.
    let thread = "query($p: ID!) { post(id: $p) { commentCount comments(first: 10) { edges { node { id } } } } }";
    let body = app
        .gql_as(
            &moderator.session.access,
            "mutation($id: ID!) { hideComment(id: $id) { status } }",
            json!({ "id": comment }),
        )
        .await;
    assert_eq!(data(&body)["hideComment"]["status"], "HIDDEN", "{body}");
    let body = app.gql_as(&author.session.access, thread, json!({ "p": post })).await;
    assert_eq!(data(&body)["post"]["commentCount"], 0, "{body}");
    assert_eq!(data(&body)["post"]["comments"]["edges"], json!([]), "{body}");
    let body = app
        .gql_as(
            &world.admin.access,
            "mutation($id: ID!) { unhideComment(id: $id) { status } }",
            json!({ "id": comment }),
        )
        .await;
    assert_eq!(data(&body)["unhideComment"]["status"], "ACTIVE", "{body}");
    let body = app.gql_as(&author.session.access, thread, json!({ "p": post })).await;
    assert_eq!(data(&body)["post"]["commentCount"], 1, "{body}");

    // Members: removed with a ban by the moderator, cannot rejoin until the circle admin lifts it.
    let body = app
        .gql_as(
            &moderator.session.access,
            REMOVE,
            json!({ "c": circle, "u": member.session.user_id, "b": true, "r": "spam" }),
        )
        .await;
    let removed = &data(&body)["removeMember"];
    assert_eq!((removed["isActive"].clone(), removed["isBanned"].clone()), (json!(false), json!(true)), "{body}");
    let body = app.gql_as(&member.session.access, JOIN, json!({ "c": circle, "i": member.identity })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "a banned member rejoined: {body}");
    let body = app.gql("query($c: ID!) { circle(id: $c) { memberCount } }", json!({ "c": circle })).await;
    assert_eq!(data(&body)["circle"]["memberCount"], 3, "owner, moderator, author: {body}");
    let body = app.gql_as(&owner.session.access, UNBAN, json!({ "c": circle, "u": member.session.user_id })).await;
    assert_eq!(data(&body)["unbanMember"]["isBanned"], false, "{body}");
    let body = app.gql_as(&member.session.access, JOIN, json!({ "c": circle, "i": member.identity })).await;
    assert_eq!(data(&body)["joinCircle"]["role"], "MEMBER", "{body}");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM circles c WHERE c.member_count <> (SELECT COUNT(*) FROM circle_members m WHERE m.circle_id = c.id AND m.is_active = TRUE) OR c.post_count <> (SELECT COUNT(*) FROM posts p WHERE p.circle_id = c.id AND p.status = 'active')").await,
        0,
        "the circle's counters match its rows"
    );

    // Reviews: hidden and back by the platform admin; the course's count follows.
    let (course, review) = app.reviewed_course(&world, "ada@example.com", &author.session, 1).await;
    let body = app
        .gql_as(
            &member.session.access,
            "mutation($id: ID!) { unhideReview(id: $id) { status } }",
            json!({ "id": review }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let rating = "query($c: ID!) { course(id: $c) { reviewCount } }";
    for (mutation, count) in [("hideReview", 0), ("unhideReview", 1)] {
        let query = format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ status }} }}");
        data(&app.gql_as(&world.admin.access, &query, json!({ "id": review })).await);
        let body = app.gql(rating, json!({ "c": course })).await;
        assert_eq!(data(&body)["course"]["reviewCount"], count, "after {mutation}: {body}");
    }

    // Every change above is in the audit log once, found by actor and resource; `since` bounds it.
    let moderator_id = moderator.session.user_id.as_str();
    let admin_id = world.admin.user_id.as_str();
    let owner_id = owner.session.user_id.as_str();
    let member_row = memberships[&member.session.user_id].clone();
    let moderator_row = memberships[&moderator.session.user_id].clone();
    let cases = [
        (moderator_id, post.as_str(), update_of("posts", 1)),
        (admin_id, post.as_str(), update_of("posts", 1)),
        (moderator_id, comment.as_str(), update_of("comments", 1)),
        (admin_id, comment.as_str(), update_of("comments", 1)),
        (moderator_id, member_row.as_str(), update_of("circle_members", 1)),
        (owner_id, member_row.as_str(), update_of("circle_members", 1)),
        (owner_id, moderator_row.as_str(), update_of("circle_members", 1)),
        (admin_id, review.as_str(), update_of("reviews", 2)),
    ];
    for (actor, resource, expected) in &cases {
        let found =
            audit(&app, &world.admin, json!({ "actorId": actor, "resourceId": resource, "since": started })).await;
        assert_eq!(&found, expected, "actor {actor} on {resource}");
    }
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    let found = audit(&app, &world.admin, json!({ "resourceId": post, "since": later })).await;
    assert!(found.is_empty(), "nothing after now: {found:?}");
    let found = audit(&app, &world.admin, json!({ "resourceId": post, "until": started })).await;
    assert!(found.is_empty(), "nothing before the test: {found:?}");
    let body = app
        .gql_as(&world.admin.access, AUDIT, json!({ "f": { "resourceId": member_row, "actorId": moderator_id } }))
        .await;
    let entry = &data(&body)["auditLogs"]["edges"][0]["node"];
    assert_eq!((entry["oldData"]["is_active"].clone(), entry["newData"]["banned"].clone()), (json!(true), json!(true)));
    assert_eq!(entry["newData"]["reason"], "spam", "{body}");
}

#[tokio::test]
async fn a_rejected_master_applies_again_with_new_documents_and_the_reason_is_kept() {
    let app = spawn_app().await;
    let world = app.world().await;
    let applicant = app.register("applicant@example.com").await;
    let apply = "mutation($d: [String!]!) { applyIdentity(input: { identityType: MASTER, domain: \"software\", verificationDocuments: $d }) { id status verificationDocuments rejectionReason } }";
    let body = app.gql_as(&applicant.access, apply, json!({ "d": ["https://docs.example.com/old.pdf"] })).await;
    let id = data(&body)["applyIdentity"]["id"].as_str().expect("id").to_string();
    let review = "mutation($id: ID!, $d: IdentityDecision!, $r: String) { reviewIdentity(id: $id, decision: $d, reason: $r) { status rejectionReason } }";
    let body =
        app.gql_as(&world.admin.access, review, json!({ "id": id, "d": "REJECT", "r": "the scan is blurry" })).await;
    assert_eq!(data(&body)["reviewIdentity"]["rejectionReason"], "the scan is blurry", "{body}");
    let mine = "{ me { identities { id status rejectionReason } } }";
    let body = app.gql_as(&applicant.access, mine, json!({})).await;
    assert_eq!(
        data(&body)["me"]["identities"][0]["rejectionReason"],
        "the scan is blurry",
        "the applicant sees why: {body}"
    );
    // Applying again: the same identity, pending, with the new documents; the reason stays for the
    // reviewer until the next decision.
    let body = app.gql_as(&applicant.access, apply, json!({ "d": ["https://docs.example.com/new.pdf"] })).await;
    let again = &data(&body)["applyIdentity"];
    assert_eq!(again["id"], id.as_str(), "{body}");
    assert_eq!(again["status"], "PENDING");
    assert_eq!(again["verificationDocuments"], json!(["https://docs.example.com/new.pdf"]));
    assert_eq!(again["rejectionReason"], "the scan is blurry");
    let body = app.gql_as(&applicant.access, apply, json!({ "d": ["https://docs.example.com/third.pdf"] })).await;
    assert_eq!(error_code(&body), "CONFLICT", "while pending: {body}");
    let held = "SELECT COUNT(*) FROM user_identities WHERE user_id = (SELECT id FROM users WHERE email = 'applicant@example.com')";
    assert_eq!(app.scalar(held).await, 1, "one identity, applied twice");
    let queue = "{ identities(filter: { status: PENDING }) { edges { node { id } } } }";
    let body = app.gql_as(&world.admin.access, queue, json!({})).await;
    assert_eq!(data(&body)["identities"]["edges"][0]["node"]["id"], id.as_str(), "back in the queue: {body}");
    let body = app.gql_as(&world.admin.access, review, json!({ "id": id, "d": "APPROVE" })).await;
    assert_eq!(data(&body)["reviewIdentity"]["status"], "ACTIVE", "{body}");
    assert!(data(&body)["reviewIdentity"]["rejectionReason"].is_null(), "{body}");
    let found = audit(&app, &world.admin, json!({ "resourceId": id })).await;
    assert_eq!(found, update_of("user_identities", 3), "reject, re-apply, approve");
    let found = audit(&app, &world.admin, json!({ "resourceId": id, "actorId": applicant.user_id })).await;
    assert_eq!(found, update_of("user_identities", 1), "the re-application is the applicant's");
}

#[tokio::test]
async fn a_domain_code_in_use_is_not_renamed_and_inactive_domains_can_be_found_and_reactivated() {
    let app = spawn_app().await;
    let world = app.world().await;
    let admin = &world.admin;
    let body = app
        .gql_as(
            &admin.access,
            "mutation { createDomain(input: { name: \"Pottery\", code: \"pottery\" }) { id code } }",
            json!({}),
        )
        .await;
    let id = data(&body)["createDomain"]["id"].as_str().expect("id").to_string();
    let update = "mutation($id: ID!, $i: UpdateDomainInput!) { updateDomain(id: $id, input: $i) { code isActive } }";
    // Unused: the code may change.
    let body = app.gql_as(&admin.access, update, json!({ "id": id, "i": { "code": "ceramics" } })).await;
    assert_eq!(data(&body)["updateDomain"]["code"], "ceramics", "{body}");
    let potter = app.register("potter@example.com").await;
    app.apply(&potter, "APPRENTICE", "ceramics").await;
    // In use: refused, nothing changed.
    let before = app.snapshot("domains").await;
    let body = app.gql_as(&admin.access, update, json!({ "id": id, "i": { "code": "clay" } })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "input.code", "{body}");
    assert_eq!(app.snapshot("domains").await, before);
    // Deactivated: gone from `domains`, listed for admins with includeInactive, and back.
    data(&app.gql_as(&admin.access, update, json!({ "id": id, "i": { "isActive": false } })).await);
    let codes = |body: &Value, field: &str| -> Vec<(String, bool)> {
        data(body)[field]
            .as_array()
            .expect("domains")
            .iter()
            .map(|d| (d["code"].as_str().unwrap_or_default().to_string(), d["isActive"].as_bool().unwrap_or(true)))
            .collect()
    };
    let body = app.gql("{ domains { code isActive } }", json!({})).await;
    assert!(!codes(&body, "domains").iter().any(|(code, _)| code == "ceramics"), "{body}");
    let all = "{ domains(includeInactive: true) { code isActive } }";
    let body = app.gql_as(&potter.access, all, json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app.gql_as(&admin.access, all, json!({})).await;
    assert!(codes(&body, "domains").contains(&("ceramics".to_string(), false)), "{body}");
    data(&app.gql_as(&admin.access, update, json!({ "id": id, "i": { "isActive": true } })).await);
    let body = app.gql("{ domains { code isActive } }", json!({})).await;
    assert!(codes(&body, "domains").contains(&("ceramics".to_string(), true)), "reactivated: {body}");
    // Created, renamed, deactivated, reactivated: four rows; the refused rename wrote none.
    let found = audit(&app, admin, json!({ "resourceId": id, "actorId": admin.user_id })).await;
    let mut expected = update_of("domains", 3);
    expected.push(("INSERT".into(), "domains".into()));
    assert_eq!(found, expected, "newest first");
}

#[tokio::test]
async fn system_configs_are_validated_audited_and_live_on_every_instance() {
    let (redis, fleet) = redis_fleet("the second-instance half of the system config test");
    let shared = borrowed(&fleet);
    let app = spawn_app_with(&shared).await;
    let admin = app.admin("admin@example.com").await;
    let user = app.register("user@example.com").await;
    let other = if redis { Some(spawn_sibling(&app, &shared).await) } else { None };
    let list = "{ systemConfigs { key value defaultValue isOverridden configType description } }";
    let body = app.gql_as(&admin.access, list, json!({})).await;
    let entries = data(&body)["systemConfigs"].as_array().expect("configs").clone();
    let likes = entries.iter().find(|e| e["key"] == "features.likes").expect("features.likes");
    assert_eq!((likes["value"].clone(), likes["isOverridden"].clone()), (json!(true), json!(false)), "{body}");
    assert_eq!(likes["configType"], "BOOLEAN");
    let login = entries.iter().find(|e| e["key"] == "rate.login_account").expect("rate.login_account");
    assert_eq!(login["value"], login["defaultValue"], "the environment's value: {body}");
    assert!(login["value"].as_str().is_some_and(|rule| rule.contains('/')), "N/period: {body}");
    assert!(entries.iter().all(|e| e["description"].as_str().is_some_and(|d| !d.is_empty())));

    // Unknown keys and values of the wrong type are refused on their field and store nothing.
    for (key, value, field) in [
        ("features.nope", json!(true), "key"),
        ("features.likes", json!("yes"), "value"),
        ("rate.login_ip", json!("many"), "value"),
        ("rate.login_ip", json!(30), "value"),
        ("pagination.max_page_size", json!(5), "value"),
        ("cache.ttl_secs", json!(-1), "value"),
    ] {
        let body = app.gql_as(&admin.access, SET_CONFIG, json!({ "k": key, "v": value })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{key} = {value}: {body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app.gql_as(&user.access, SET_CONFIG, json!({ "k": "features.likes", "v": false })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    assert_eq!(app.count("system_configs").await, 0);
    assert!(audit(&app, &admin, json!({ "resourceType": "system_configs" })).await.is_empty());

    // New registrations off: refused here at once and on the other instance within a second.
    let body = app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "features.registration", "v": false })).await;
    let set = &data(&body)["setSystemConfig"];
    assert_eq!((set["value"].clone(), set["isOverridden"].clone()), (json!(false), json!(true)), "{body}");
    let signup = |n: u32| json!({ "i": { "email": format!("new{n}@example.com"), "password": PASSWORD } });
    let body = app.gql(REGISTER, signup(1)).await;
    assert_eq!(error_code(&body), "FEATURE_DISABLED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["feature"], "features.registration");
    if let Some(other) = &other {
        let started = Instant::now();
        let mut n = 100;
        loop {
            n += 1;
            let body = other.gql(REGISTER, signup(n)).await;
            if error_code(&body) == "FEATURE_DISABLED" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "the other instance still registers: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Likes off; the page size cap lowered; a rate limit tightened: each applies at once.
    data(&app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "features.likes", "v": false })).await);
    let body = app
        .gql_as(&user.access, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(error_code(&body), "FEATURE_DISABLED", "{body}");
    data(&app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "pagination.max_page_size", "v": 20 })).await);
    let body = app.gql_as(&admin.access, "{ users(first: 21) { totalCount } }", json!({})).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "first"), "{body}");
    data(&app.gql_as(&admin.access, "{ users(first: 20) { totalCount } }", json!({})).await);
    data(&app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "rate.login_account", "v": "2/1h" })).await);
    let wrong = json!({ "i": { "email": "user@example.com", "password": "not-the-password" } });
    let sign_in = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
    for _ in 0..2 {
        assert_eq!(error_code(&app.gql(sign_in, wrong.clone()).await), "UNAUTHENTICATED");
    }
    assert_eq!(error_code(&app.gql(sign_in, wrong.clone()).await), "RATE_LIMITED", "the tightened limit");
    // Search off: answered by the database, flagged.
    data(&app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "features.search", "v": false })).await);
    let body = app.gql("{ searchCourses(query: \"rust\") { totalCount degraded } }", json!({})).await;
    assert_eq!(data(&body)["searchCourses"]["degraded"], true, "{body}");

    // null returns a key to its default (and deletes its row); registrations work again.
    let body = app.gql_as(&admin.access, SET_CONFIG, json!({ "k": "features.registration", "v": null })).await;
    let reset = &data(&body)["setSystemConfig"];
    assert_eq!((reset["value"].clone(), reset["isOverridden"].clone()), (json!(true), json!(false)), "{body}");
    data(&app.gql(REGISTER, signup(2)).await);
    if let Some(other) = &other {
        let started = Instant::now();
        let mut n = 200;
        loop {
            n += 1;
            let body = other.gql(REGISTER, signup(n)).await;
            if body["errors"].is_null() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "the other instance still refuses: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Six changes, six audit rows (INSERT ×5 then DELETE), all by the admin.
    let found = audit(&app, &admin, json!({ "resourceType": "system_configs", "actorId": admin.user_id })).await;
    let actions: Vec<&str> = found.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(actions, ["DELETE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT"], "newest first");
    // A restart keeps what is stored.
    let restarted = spawn_sibling(&app, &shared).await;
    let body = restarted.gql_as(&admin.access, list, json!({})).await;
    let likes = data(&body)["systemConfigs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|e| e["key"] == "features.likes")
        .cloned();
    assert_eq!(likes.map(|e| e["value"].clone()), Some(json!(false)), "{body}");
}

#[tokio::test]
async fn a_deleted_hidden_comment_stays_deleted_and_a_circle_keeps_its_last_admin() {
    let app = spawn_app().await;
    let world = app.world().await;
    let owner = person(&app, "owner@example.com").await;
    let author = person(&app, "author@example.com").await;
    let body = app
        .gql_as(
            &owner.session.access,
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "Knitters", "domain": "software" } }),
        )
        .await;
    let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
    data(&app.gql_as(&author.session.access, JOIN, json!({ "c": circle, "i": author.identity })).await);
    let body = app
        .gql_as(
            &author.session.access,
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "circleId": circle, "identityId": author.identity, "content": "hello" } }),
        )
        .await;
    let post = data(&body)["createPost"]["id"].as_str().expect("post").to_string();
    let body = app
        .gql_as(
            &author.session.access,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
            json!({ "i": { "postId": post, "identityId": author.identity, "content": "oops" } }),
        )
        .await;
    let comment = data(&body)["addComment"]["id"].as_str().expect("comment").to_string();
    data(
        &app.gql_as(
            &owner.session.access,
            "mutation($id: ID!) { hideComment(id: $id) { id } }",
            json!({ "id": comment }),
        )
        .await,
    );
    // The author deletes it while hidden: an unhide cannot bring it back.
    let body = app
        .gql_as(
            &author.session.access,
            "mutation($id: ID!) { deleteComment(id: $id) { status } }",
            json!({ "id": comment }),
        )
        .await;
    assert_eq!(data(&body)["deleteComment"]["status"], "DELETED", "{body}");
    let body = app
        .gql_as(
            &owner.session.access,
            "mutation($id: ID!) { unhideComment(id: $id) { status } }",
            json!({ "id": comment }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app.gql("query($p: ID!) { post(id: $p) { commentCount } }", json!({ "p": post })).await;
    assert_eq!(data(&body)["post"]["commentCount"], 0, "{body}");
    // Not even a platform admin removes a circle's only admin.
    let before = app.snapshot("circle_members").await;
    let body = app.gql_as(&world.admin.access, REMOVE, json!({ "c": circle, "u": owner.session.user_id })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(app.snapshot("circle_members").await, before);
}

/// Applications racing a rename of their domain's code: whichever wins, no identity or circle is
/// left under a code that no longer exists (checked in the database).
#[tokio::test]
async fn a_rename_racing_applications_never_orphans_an_identity() {
    let app = spawn_app().await;
    let world = app.world().await;
    let mut applicants = Vec::new();
    for index in 0..12 {
        applicants.push(app.register(&format!("racer{index}@example.com")).await);
    }
    for round in 0..3 {
        let code = format!("race{round}");
        let body = app
            .gql_as(
                &world.admin.access,
                "mutation($c: String!) { createDomain(input: { name: $c, code: $c }) { id } }",
                json!({ "c": code }),
            )
            .await;
        let id = data(&body)["createDomain"]["id"].as_str().expect("domain").to_string();
        let apply = "mutation($d: String!) { applyIdentity(input: { identityType: APPRENTICE, domain: $d }) { id } }";
        let rename = "mutation($id: ID!, $c: String!) { updateDomain(id: $id, input: { code: $c }) { code } }";
        let applications = applicants.iter().map(|a| app.gql_as(&a.access, apply, json!({ "d": code })));
        let renamed = app.gql_as(&world.admin.access, rename, json!({ "id": id, "c": format!("{code}-renamed") }));
        let (bodies, renamed) = tokio::join!(futures_util::future::join_all(applications), renamed);
        for body in &bodies {
            let code = error_code(body);
            assert!(body["errors"].is_null() || code == "BAD_USER_INPUT", "{body}");
        }
        assert!(renamed["errors"].is_null() || error_code(&renamed) == "CONFLICT", "{renamed}");
        let orphans =
            app.scalar("SELECT COUNT(*) FROM user_identities WHERE domain NOT IN (SELECT code FROM domains)").await;
        if orphans != 0 {
            let rows = app.snapshot("user_identities").await;
            let domains = app.snapshot("domains").await;
            panic!("round {round}: {orphans} orphans; renamed: {renamed}; bodies: {bodies:?}\n{rows:#?}\n{domains:#?}");
        }
    }
}
