//! What the apps' pages read (issue 21): people's names, my circles, the HOT feed, the unread
//! message badge, and a review or comment opened by id — through the real server.

use crate::helpers::*;
use serde_json::{json, Value};

const PROFILE: &str =
    "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { id } }";
const CREATE_CIRCLE: &str = "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }";
const JOIN: &str = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id } }";
const POST: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";

struct Person {
    session: Session,
    identity: String,
}

async fn person(app: &TestApp, email: &str, name: Option<&str>) -> Person {
    let session = app.register(email).await;
    let identity = app.apply(&session, "APPRENTICE", "software").await;
    if let Some(name) = name {
        let input =
            json!({ "name": name, "avatar": format!("https://img.example.com/{}.png", name.replace(' ', "-")) });
        data(&app.gql_as(&session.access, PROFILE, json!({ "id": identity, "i": input })).await);
    }
    Person { session, identity }
}

async fn circle(app: &TestApp, owner: &Person, name: &str) -> String {
    let input = json!({ "i": { "identityId": owner.identity, "name": name, "domain": "software" } });
    let body = app.gql_as(&owner.session.access, CREATE_CIRCLE, input).await;
    data(&body)["createCircle"]["id"].as_str().expect("circle").to_string()
}

async fn post(app: &TestApp, author: &Person, circle: &str, content: &str) -> String {
    let input = json!({ "i": { "circleId": circle, "identityId": author.identity, "content": content } });
    let body = app.gql_as(&author.session.access, POST, input).await;
    data(&body)["createPost"]["id"].as_str().expect("post").to_string()
}

fn names(body: &Value, path: &[&str]) -> Vec<String> {
    let mut node = data(body);
    for key in path {
        node = &node[*key];
    }
    node["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["content"].as_str().or(e["node"]["name"].as_str()).unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_user_goes_by_their_primary_identitys_name_in_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let world = app.world().await;
    let me = "{ me { displayName avatar } }";
    let nameless = person(&app, "nameless@example.com", None).await;
    let body = app.gql_as(&nameless.session.access, me, json!({})).await;
    assert_eq!(data(&body)["me"], json!({ "displayName": null, "avatar": null }), "no profile yet: {body}");
    let sam = person(&app, "sam@example.com", Some("Sam")).await;
    let body = app.gql_as(&sam.session.access, me, json!({})).await;
    assert_eq!(data(&body)["me"]["displayName"], "Sam", "{body}");
    assert_eq!(data(&body)["me"]["avatar"], "https://img.example.com/Sam.png");
    // A verified master identity comes first.
    app.approved_master(&world, &sam.session, "software", json!({ "name": "Master Sam", "hourlyRate": "100.00" }))
        .await;
    let body = app.gql_as(&sam.session.access, me, json!({})).await;
    assert_eq!(data(&body)["me"]["displayName"], "Master Sam", "{body}");

    // A circle's members with their names: the same statements for 2 members as for 10.
    let owner = person(&app, "owner@example.com", Some("Owner")).await;
    let circle = circle(&app, &owner, "Names").await;
    let members = "query($c: ID!, $n: Int) { circle(id: $c) { members(first: $n) { edges { node {
        user { displayName avatar } } } } } }";
    for index in 0..10 {
        let member = person(&app, &format!("m{index}@example.com"), Some(&format!("Member {index}"))).await;
        data(&app.gql_as(&member.session.access, JOIN, json!({ "c": circle, "i": member.identity })).await);
    }
    let mut costs = Vec::new();
    for n in [2, 10] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql(members, json!({ "c": circle, "n": n })).await;
            let edges = data(&body)["circle"]["members"]["edges"].as_array().expect("edges").clone();
            assert_eq!(edges.len(), n as usize, "{body}");
            assert!(edges.iter().all(|e| e["node"]["user"]["displayName"].as_str().is_some()), "{body}");
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 10 members: {costs:?}");
}

#[tokio::test]
async fn my_circles_lists_the_circles_i_belong_to() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let ana = person(&app, "ana@example.com", None).await;
    let bo = person(&app, "bo@example.com", None).await;
    let mine = circle(&app, &ana, "Mine").await;
    let joined = circle(&app, &bo, "Joined").await;
    circle(&app, &bo, "Not mine").await;
    data(&app.gql_as(&ana.session.access, JOIN, json!({ "c": joined, "i": ana.identity })).await);
    let query = "{ myCircles(orderBy: NEWEST) { totalCount edges { node { name } } } }";
    let body = app.gql_as(&ana.session.access, query, json!({})).await;
    assert_eq!(names(&body, &["myCircles"]), ["Joined", "Mine"], "{body}");
    assert_eq!(data(&body)["myCircles"]["totalCount"], 2);
    let body = app
        .gql_as(
            &ana.session.access,
            "mutation($c: ID!) { leaveCircle(circleId: $c) { isActive } }",
            json!({ "c": joined }),
        )
        .await;
    assert_eq!(data(&body)["leaveCircle"]["isActive"], false);
    let body = app.gql_as(&ana.session.access, query, json!({})).await;
    assert_eq!(names(&body, &["myCircles"]), ["Mine"], "left: {body}");
    let _ = mine;
    let body = app.gql(query, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn the_feed_orders_by_hot_or_latest() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let ana = person(&app, "ana@example.com", None).await;
    let mut fans = Vec::new();
    for i in 0..3 {
        fans.push(person(&app, &format!("fan{i}@example.com"), None).await);
    }
    let place = circle(&app, &ana, "Hot").await;
    for fan in &fans {
        data(&app.gql_as(&fan.session.access, JOIN, json!({ "c": place, "i": fan.identity })).await);
    }
    let liked = post(&app, &ana, &place, "older but liked").await;
    post(&app, &ana, &place, "newer").await;
    for fan in &fans {
        data(
            &app.gql_as(
                &fan.session.access,
                "mutation($p: ID!) { likePost(postId: $p) { id } }",
                json!({ "p": liked }),
            )
            .await,
        );
    }
    let feed = "query($o: PostOrderBy) { feed(orderBy: $o) { edges { node { content } } } }";
    let body = app.gql_as(&fans[0].session.access, feed, json!({ "o": "HOT" })).await;
    assert_eq!(names(&body, &["feed"]), ["older but liked", "newer"], "{body}");
    let body = app.gql_as(&fans[0].session.access, feed, json!({ "o": "LATEST" })).await;
    assert_eq!(names(&body, &["feed"]), ["newer", "older but liked"], "{body}");
    let body = app.gql_as(&fans[0].session.access, feed, json!({})).await;
    assert_eq!(names(&body, &["feed"]), ["newer", "older but liked"], "LATEST by default: {body}");
}

#[tokio::test]
async fn the_inbox_badge_counts_unread_private_messages() {
    let app = spawn_app().await;
    let ana = app.register("ana@example.com").await;
    let bo = app.register("bo@example.com").await;
    let count = "{ unreadMessageCount }";
    assert_eq!(data(&app.gql_as(&bo.access, count, json!({})).await)["unreadMessageCount"], 0);
    let send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }";
    for text in ["hi", "are you there?"] {
        data(&app.gql_as(&ana.access, send, json!({ "i": { "toUserId": bo.user_id, "content": text } })).await);
    }
    assert_eq!(data(&app.gql_as(&bo.access, count, json!({})).await)["unreadMessageCount"], 2);
    assert_eq!(data(&app.gql_as(&ana.access, count, json!({})).await)["unreadMessageCount"], 0, "sent, not received");
    let body = app
        .gql_as(&bo.access, "mutation($u: ID!) { markMessagesRead(withUserId: $u) }", json!({ "u": ana.user_id }))
        .await;
    assert_eq!(data(&body)["markMessagesRead"], 2);
    assert_eq!(data(&app.gql_as(&bo.access, count, json!({})).await)["unreadMessageCount"], 0);
    assert_eq!(error_code(&app.gql(count, json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_review_or_a_comment_opens_by_id_for_whoever_may_see_it() {
    let app = spawn_app().await;
    let world = app.world().await;
    let owner = person(&app, "owner@example.com", None).await;
    let member = person(&app, "member@example.com", None).await;
    let place = circle(&app, &owner, "Open").await;
    data(&app.gql_as(&member.session.access, JOIN, json!({ "c": place, "i": member.identity })).await);
    let on = post(&app, &owner, &place, "hello").await;
    let body = app
        .gql_as(
            &member.session.access,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
            json!({ "i": { "postId": on, "identityId": member.identity, "content": "first!" } }),
        )
        .await;
    let comment = data(&body)["addComment"]["id"].as_str().expect("comment").to_string();
    let open = "query($id: ID!) { comment(id: $id) { id content post { id } } }";
    let body = app.gql(open, json!({ "id": comment })).await;
    assert_eq!(data(&body)["comment"]["post"]["id"], on.as_str(), "{body}");
    data(
        &app.gql_as(
            &owner.session.access,
            "mutation($id: ID!) { hideComment(id: $id) { id } }",
            json!({ "id": comment }),
        )
        .await,
    );
    assert!(data(&app.gql_as(&member.session.access, open, json!({ "id": comment })).await)["comment"].is_null());
    let body = app.gql_as(&owner.session.access, open, json!({ "id": comment })).await;
    assert_eq!(data(&body)["comment"]["content"], "first!", "moderators open a hidden comment: {body}");
    assert!(data(&app.gql(open, json!({ "id": uuid::Uuid::new_v4() })).await)["comment"].is_null());

    let (_, review) = app.reviewed_course(&world, "ada@example.com", &member.session, 5).await;
    let open = "query($id: ID!) { review(id: $id) { id rating } }";
    assert_eq!(data(&app.gql(open, json!({ "id": review })).await)["review"]["rating"], 5);
    data(
        &app.gql_as(&world.admin.access, "mutation($id: ID!) { hideReview(id: $id) { id } }", json!({ "id": review }))
            .await,
    );
    assert!(data(&app.gql(open, json!({ "id": review })).await)["review"].is_null(), "hidden: admins only");
    assert_eq!(
        data(&app.gql_as(&world.admin.access, open, json!({ "id": review })).await)["review"]["id"],
        review.as_str()
    );
}

/// Issue 18: with the cache off, a page of posts, comments or courses reads its authors' (or
/// mentors') identities and profiles in the page's own statement, as the selection asks, and
/// answers exactly what the loaders answer (a sibling server with the cache on, same database).
#[tokio::test]
async fn with_the_cache_off_a_page_reads_its_authors_in_its_own_statement() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let cached = spawn_sibling(&app, &[]).await;
    let world = app.world().await;
    let owner = person(&app, "owner@example.com", Some("Owner")).await;
    let circle = circle(&app, &owner, "Authors").await;
    let ada = person(&app, "ada@example.com", Some("Ada")).await;
    let nameless = person(&app, "nameless@example.com", None).await;
    for member in [&ada, &nameless] {
        data(&app.gql_as(&member.session.access, JOIN, json!({ "c": circle, "i": member.identity })).await);
    }
    let mut posts = Vec::new();
    for (index, author) in [&owner, &ada, &nameless, &ada].into_iter().enumerate() {
        posts.push(post(&app, author, &circle, &format!("post {index}")).await);
    }
    let add = "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }";
    for (index, author) in [&ada, &nameless, &owner].into_iter().enumerate() {
        let input = json!({ "i": { "postId": posts[3], "identityId": author.identity, "content": format!("comment {index}") } });
        data(&app.gql_as(&author.session.access, add, input).await);
    }
    let master = app.master(&world, "teacher@example.com", "software").await;
    app.course(&master, None, 1, true).await;

    // (document, variables, as whom, statements with the cache off)
    let feed_of = |selection: &str| {
        format!("query($c: ID!) {{ circle(id: $c) {{ posts(first: 10) {{ edges {{ node {{ content {selection} }} }} }} }} }}")
    };
    let both = feed_of("author { id identityType profile { name avatar } }");
    let identity_only = feed_of("author { id domain }");
    let threads = feed_of("comments(first: 2) { edges { node { content author { profile { name } } } } }");
    let backward = both.replace("posts(first: 10)", "posts(last: 3)");
    let catalogue = "{ courses(first: 5, orderBy: {field: RATING, direction: DESC}) { edges { node { title
        mentor { id profile { name hourlyRate } } } } } }";
    let feed = "{ feed(first: 10) { edges { node { content author { profile { name } } } } } }";
    let cases: [(&str, Value, Option<&str>, u64); 6] = [
        (&both, json!({ "c": circle }), None, 2),
        (&backward, json!({ "c": circle }), None, 2),
        (&identity_only, json!({ "c": circle }), None, 2),
        (&threads, json!({ "c": circle }), None, 3),
        (catalogue, json!({}), None, 1),
        // the viewer's standing, then the feed's page
        (feed, json!({}), Some(&ada.session.access), 2),
    ];
    for (query, variables, token, expected) in cases {
        let before = app.statements().await;
        let body = app.gql_with(token, query, variables.clone()).await;
        let statements = app.statements().await - before;
        data(&body);
        assert_eq!(statements, expected, "{query}: {body}");
        let loaded = cached.gql_with(token, query, variables).await;
        assert_eq!(body, loaded, "{query}: the joined page answers what the loaders answer");
    }
    // What the answers hold: every author's name (none for the author without a profile).
    let body = app.gql(&both, json!({ "c": circle })).await;
    let authors: Vec<(String, Value)> = data(&body)["circle"]["posts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["content"].as_str().unwrap_or_default().to_string(),
                e["node"]["author"]["profile"]["name"].clone(),
            )
        })
        .collect();
    let expected =
        [("post 3", json!("Ada")), ("post 2", Value::Null), ("post 1", json!("Ada")), ("post 0", json!("Owner"))];
    assert_eq!(authors, expected.map(|(c, n)| (c.to_string(), n)).to_vec(), "{body}");
    let body = app.gql(&threads, json!({ "c": circle })).await;
    let first = &data(&body)["circle"]["posts"]["edges"][0]["node"]["comments"]["edges"];
    assert_eq!(first[0]["node"]["author"]["profile"]["name"], "Ada", "{body}");
    assert_eq!(first[1]["node"]["author"]["profile"], Value::Null, "{body}");
    let body = app.gql(catalogue, json!({})).await;
    assert_eq!(data(&body)["courses"]["edges"][0]["node"]["mentor"]["profile"]["name"], "teacher", "{body}");

    // What one root field of a mutation read with a page is not served to a later field after a
    // field between them changed it.
    let renamed = "mutation($p: ID!, $i: ID!, $profile: UpdateProfileInput!) {
        a: addComment(input: {postId: $p, identityId: $i, content: \"before\"}) {
            post { comments(first: 10) { edges { node { author { profile { name } } } } } } }
        b: updateProfile(identityId: $i, input: $profile) { name }
        c: addComment(input: {postId: $p, identityId: $i, content: \"after\"}) { author { profile { name } } } }";
    let variables = json!({ "p": posts[3], "i": ada.identity, "profile": { "name": "Ada Lovelace" } });
    let body = app.gql_as(&ada.session.access, renamed, variables).await;
    let before = &data(&body)["a"]["post"]["comments"]["edges"][0]["node"]["author"]["profile"]["name"];
    assert_eq!(before, "Ada", "{body}");
    assert_eq!(data(&body)["c"]["author"]["profile"]["name"], "Ada Lovelace", "{body}");
}
