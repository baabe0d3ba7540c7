//! Circles end to end: membership, posts, comments, likes, feeds, moderation, counters under
//! concurrency (checked in the database), permissions, bad input, and the cost of a feed page.

use crate::helpers::*;
use serde_json::{json, Value};

const CREATE_CIRCLE: &str = "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id memberCount } }";
const JOIN: &str = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id role } }";
const LEAVE: &str = "mutation($c: ID!) { leaveCircle(circleId: $c) { isActive } }";
const SET_ROLE: &str =
    "mutation($c: ID!, $u: ID!, $r: MemberRole!) { setMemberRole(circleId: $c, userId: $u, role: $r) { role } }";
const CREATE_POST: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";
const UPDATE_POST: &str = "mutation($id: ID!, $i: UpdatePostInput!) { updatePost(id: $id, input: $i) { id } }";
const DELETE_POST: &str = "mutation($id: ID!) { deletePost(id: $id) { id status } }";
const PIN: &str = "mutation($id: ID!) { setPostPinned(id: $id, pinned: true) { isTop } }";
const ESSENCE: &str = "mutation($id: ID!) { setPostEssence(id: $id, essence: true) { isEssence } }";
const HIDE: &str = "mutation($id: ID!) { hidePost(id: $id) { status } }";
const UNHIDE: &str = "mutation($id: ID!) { unhidePost(id: $id) { status } }";
const HIDE_COMMENT: &str = "mutation($id: ID!) { hideComment(id: $id) { status } }";
const UNHIDE_COMMENT: &str = "mutation($id: ID!) { unhideComment(id: $id) { status } }";
const REMOVE_MEMBER: &str = "mutation($c: ID!, $u: ID!) { removeMember(circleId: $c, userId: $u) { isActive } }";
const UNBAN_MEMBER: &str = "mutation($c: ID!, $u: ID!) { unbanMember(circleId: $c, userId: $u) { isBanned } }";
const COMMENT: &str = "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }";
const DELETE_COMMENT: &str = "mutation($id: ID!) { deleteComment(id: $id) { content } }";
const LIKE: &str = "mutation($id: ID!) { likePost(postId: $id) { likeCount viewerHasLiked } }";
const UNLIKE: &str = "mutation($id: ID!) { unlikePost(postId: $id) { likeCount viewerHasLiked } }";
const LIKE_COMMENT: &str = "mutation($id: ID!) { likeComment(commentId: $id) { likeCount } }";
const UNLIKE_COMMENT: &str = "mutation($id: ID!) { unlikeComment(commentId: $id) { likeCount } }";
const UPDATE_CIRCLE: &str = "mutation($id: ID!, $i: UpdateCircleInput!) { updateCircle(id: $id, input: $i) { name } }";
const ARCHIVE_CIRCLE: &str = "mutation($id: ID!) { archiveCircle(id: $id) { status } }";

/// A member: session and the identity they act through.
struct Member {
    session: Session,
    identity: String,
}

impl TestApp {
    async fn person(&self, email: &str) -> Member {
        let session = self.register(email).await;
        let identity = self.apply(&session, "APPRENTICE", "software").await;
        Member { session, identity }
    }

    async fn new_circle(&self, owner: &Member) -> String {
        let body = self
            .gql_as(&owner.session.access, CREATE_CIRCLE, json!({ "i": { "identityId": owner.identity, "name": "Rustaceans", "domain": "software", "tags": ["rust"] } }))
            .await;
        data(&body)["createCircle"]["id"].as_str().expect("circle").to_string()
    }

    async fn join(&self, member: &Member, circle: &str) {
        data(&self.gql_as(&member.session.access, JOIN, json!({ "c": circle, "i": member.identity })).await);
    }

    async fn post(&self, member: &Member, circle: &str, content: &str) -> String {
        let body = self
            .gql_as(
                &member.session.access,
                CREATE_POST,
                json!({ "i": { "circleId": circle, "identityId": member.identity, "content": content } }),
            )
            .await;
        data(&body)["createPost"]["id"].as_str().expect("post").to_string()
    }

    async fn comment(&self, member: &Member, post: &str, parent: Option<&str>) -> String {
        let body = self
            .gql_as(&member.session.access, COMMENT, json!({ "i": { "postId": post, "identityId": member.identity, "content": "nice", "parentId": parent } }))
            .await;
        data(&body)["addComment"]["id"].as_str().expect("comment").to_string()
    }
}

const COUNTERS_OK: &str = "SELECT COUNT(*) FROM circles c WHERE c.member_count <> (SELECT COUNT(*) FROM circle_members m WHERE m.circle_id = c.id AND m.is_active = TRUE) OR c.post_count <> (SELECT COUNT(*) FROM posts p WHERE p.circle_id = c.id AND p.status = 'active')";
const POST_COUNTERS_OK: &str = "SELECT COUNT(*) FROM posts p WHERE p.like_count <> (SELECT COUNT(*) FROM post_likes l WHERE l.post_id = p.id) OR p.comment_count <> (SELECT COUNT(*) FROM comments c WHERE c.post_id = p.id AND c.status = 'active')";
const COMMENT_COUNTERS_OK: &str = "SELECT COUNT(*) FROM comments c WHERE c.like_count <> (SELECT COUNT(*) FROM comment_likes l WHERE l.comment_id = c.id)";

#[tokio::test]
async fn concurrent_likes_and_unlikes_keep_like_count_equal_to_the_rows() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let circle = app.new_circle(&owner).await;
    let post = app.post(&owner, &circle, "like me").await;
    let comment = app.comment(&owner, &post, None).await;
    let mut members = Vec::new();
    for index in 0..20 {
        let member = app.person(&format!("m{index}@example.com")).await;
        app.join(&member, &circle).await;
        members.push(member);
    }
    // 100 calls from 20 users at once: each user likes, unlikes, likes, likes, unlikes... in parallel.
    let calls = (0..100).map(|i| {
        let member = &members[i % 20];
        let query = if (i / 20) % 2 == 0 { LIKE } else { UNLIKE };
        app.gql_as(&member.session.access, query, json!({ "id": post }))
    });
    let results = futures_util::future::join_all(calls).await;
    for body in &results {
        data(body);
    }
    let comment_calls = (0..100).map(|i| {
        let member = &members[i % 20];
        let query = if (i / 20) % 2 == 0 { LIKE_COMMENT } else { UNLIKE_COMMENT };
        app.gql_as(&member.session.access, query, json!({ "id": comment }))
    });
    for body in futures_util::future::join_all(comment_calls).await {
        data(&body);
    }
    assert_eq!(app.scalar(POST_COUNTERS_OK).await, 0, "posts.like_count drifted from post_likes");
    assert_eq!(app.scalar(COMMENT_COUNTERS_OK).await, 0, "comments.like_count drifted from comment_likes");
    let likes = app.count("post_likes").await;
    assert!(likes <= 20);
    // Idempotent: liking twice is one like.
    let body = app.gql_as(&owner.session.access, LIKE, json!({ "id": post })).await;
    let first = data(&body)["likePost"]["likeCount"].as_i64().expect("count");
    let body = app.gql_as(&owner.session.access, LIKE, json!({ "id": post })).await;
    assert_eq!(data(&body)["likePost"]["likeCount"].as_i64(), Some(first));
    assert_eq!(data(&body)["likePost"]["viewerHasLiked"], true);
    assert_eq!(app.count("post_likes").await, likes + 1);
    app.assert_no_drift();
}

#[tokio::test]
async fn member_and_post_counts_hold_under_concurrent_joins_posts_and_leaves() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let circle = app.new_circle(&owner).await;
    let mut people = Vec::new();
    for index in 0..20 {
        people.push(app.person(&format!("p{index}@example.com")).await);
    }
    // Everyone joins twice at once (a double click), then posts twice, and half of them leave.
    let joins = people
        .iter()
        .flat_map(|p| [p, p])
        .map(|p| app.gql_as(&p.session.access, JOIN, json!({ "c": circle, "i": p.identity })));
    for body in futures_util::future::join_all(joins).await {
        data(&body);
    }
    let posts = people.iter().flat_map(|p| [p, p]).map(|p| {
        app.gql_as(
            &p.session.access,
            CREATE_POST,
            json!({ "i": { "circleId": circle, "identityId": p.identity, "content": "hi" } }),
        )
    });
    for body in futures_util::future::join_all(posts).await {
        data(&body);
    }
    let leaves = people.iter().take(10).map(|p| app.gql_as(&p.session.access, LEAVE, json!({ "c": circle })));
    for body in futures_util::future::join_all(leaves).await {
        data(&body);
    }
    assert_eq!(app.scalar(COUNTERS_OK).await, 0, "member_count / post_count drifted");
    let body = app.gql("query($id: ID!) { circle(id: $id) { memberCount postCount } }", json!({ "id": circle })).await;
    assert_eq!(data(&body)["circle"]["memberCount"], 11);
    assert_eq!(data(&body)["circle"]["postCount"], 40);
    app.assert_no_drift();
}

#[tokio::test]
async fn a_feed_paged_while_others_post_returns_every_older_post_once() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let reader = app.person("reader@example.com").await;
    let circle = app.new_circle(&owner).await;
    let second = app.new_circle(&owner).await;
    app.join(&reader, &circle).await;
    app.join(&reader, &second).await;
    let mut older = Vec::new();
    for index in 0..35 {
        let target = if index % 3 == 0 { &second } else { &circle };
        older.push(app.post(&owner, target, &format!("post {index}")).await);
    }
    // A writer keeps posting while the reader pages through the feed.
    let writer = async {
        for index in 0..15 {
            app.post(&owner, &circle, &format!("new {index}")).await;
        }
    };
    let reader_pages = async {
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let body = app
                .gql_as(&reader.session.access, "query($a: String) { feed(first: 10, after: $a) { pageInfo { hasNextPage endCursor } edges { node { id } } } }", json!({ "a": after }))
                .await;
            let feed = &data(&body)["feed"];
            for edge in feed["edges"].as_array().expect("edges") {
                seen.push(edge["node"]["id"].as_str().expect("id").to_string());
            }
            if feed["pageInfo"]["hasNextPage"] != true {
                break seen;
            }
            after = feed["pageInfo"]["endCursor"].clone();
        }
    };
    let ((), seen) = tokio::join!(writer, reader_pages);
    for post in &older {
        assert_eq!(seen.iter().filter(|id| *id == post).count(), 1, "post {post} seen once");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    let body = app.gql("{ feed { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn posts_pinned_first_hidden_for_moderators_deleted_for_nobody() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let member = app.person("member@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&member, &circle).await;
    let first = app.post(&member, &circle, "first").await;
    let second = app.post(&member, &circle, "second").await;
    let third = app.post(&member, &circle, "third").await;
    data(&app.gql_as(&owner.session.access, PIN, json!({ "id": first })).await);
    let list = |token: Option<String>| {
        let app = &app;
        let circle = circle.clone();
        async move {
            let body = app
                .gql_with(
                    token.as_deref(),
                    "query($c: ID!) { circle(id: $c) { postCount posts { totalCount edges { node { id isTop } } } } }",
                    json!({ "c": circle }),
                )
                .await;
            let ids: Vec<String> = data(&body)["circle"]["posts"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_string())
                .collect();
            (ids, data(&body)["circle"]["postCount"].as_i64().unwrap_or(-1))
        }
    };
    assert_eq!(list(None).await, (vec![first.clone(), third.clone(), second.clone()], 3), "pinned first, then newest");

    data(&app.gql_as(&owner.session.access, HIDE, json!({ "id": second })).await);
    data(&app.gql_as(&member.session.access, DELETE_POST, json!({ "id": third })).await);
    assert_eq!(list(None).await, (vec![first.clone()], 1));
    let get = "query($id: ID!) { post(id: $id) { id status } }";
    let body = app.gql_as(&member.session.access, get, json!({ "id": second })).await;
    assert!(data(&body)["post"].is_null(), "hidden from its own author: {body}");
    let body = app.gql_as(&owner.session.access, get, json!({ "id": second })).await;
    assert_eq!(data(&body)["post"]["status"], "HIDDEN", "visible to the circle's moderators");
    for token in [None, Some(owner.session.access.as_str()), Some(member.session.access.as_str())] {
        let body = app.gql_with(token, get, json!({ "id": third })).await;
        assert!(data(&body)["post"].is_null(), "deleted posts are gone for everyone");
    }
    assert_eq!(app.scalar(COUNTERS_OK).await, 0);
}

#[tokio::test]
async fn threaded_comments_survive_deletion_and_counts_follow() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let ann = app.person("ann@example.com").await;
    let bob = app.person("bob@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&ann, &circle).await;
    app.join(&bob, &circle).await;
    let post = app.post(&owner, &circle, "discuss").await;
    let top = app.comment(&ann, &post, None).await;
    let reply = app.comment(&bob, &post, Some(&top)).await;

    let other_post = app.post(&owner, &circle, "elsewhere").await;
    let body = app
        .gql_as(
            &bob.session.access,
            COMMENT,
            json!({ "i": { "postId": other_post, "identityId": bob.identity, "content": "x", "parentId": top } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.parentId");

    data(&app.gql_as(&ann.session.access, DELETE_COMMENT, json!({ "id": top })).await);
    let body = app
        .gql("query($id: ID!) { post(id: $id) { commentCount comments { edges { node { id content parentId replyToUser { id } } } } } }", json!({ "id": post }))
        .await;
    let node = &data(&body)["post"];
    assert_eq!(node["commentCount"], 1);
    let edges = node["comments"]["edges"].as_array().expect("edges");
    assert_eq!(edges[0]["node"]["content"], "deleted");
    assert_eq!(edges[1]["node"]["id"], reply.as_str());
    assert_eq!(edges[1]["node"]["parentId"], top.as_str());
    assert_eq!(edges[1]["node"]["replyToUser"]["id"], ann.session.user_id.as_str());
    assert_eq!(app.scalar(POST_COUNTERS_OK).await, 0);

    // Notifications: the post's author for both comments, ann for the reply to her comment.
    let notes = app.snapshot("notifications").await.join("\n");
    assert_eq!(notes.matches("post_commented").count(), 2, "{notes}");
    assert_eq!(notes.matches("comment_replied").count(), 1, "{notes}");
}

#[tokio::test]
async fn membership_roles_and_the_last_admin() {
    let app = spawn_app().await;
    let world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let ann = app.person("ann@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&ann, &circle).await;

    let body = app.gql_as(&owner.session.access, LEAVE, json!({ "c": circle })).await;
    assert_eq!(error_code(&body), "CONFLICT", "the last admin stays: {body}");
    let body = app
        .gql_as(&owner.session.access, SET_ROLE, json!({ "c": circle, "u": owner.session.user_id, "r": "MEMBER" }))
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "the last admin is not demoted: {body}");

    let body = app
        .gql_as(&owner.session.access, SET_ROLE, json!({ "c": circle, "u": ann.session.user_id, "r": "ADMIN" }))
        .await;
    assert_eq!(data(&body)["setMemberRole"]["role"], "ADMIN");
    assert!(app.snapshot("notifications").await.join("\n").contains("role_changed"));
    data(&app.gql_as(&owner.session.access, LEAVE, json!({ "c": circle })).await);
    let body = app.gql_as(&owner.session.access, LEAVE, json!({ "c": circle })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "not a member any more: {body}");
    // Rejoining comes back as a plain member.
    let body = app.gql_as(&owner.session.access, JOIN, json!({ "c": circle, "i": owner.identity })).await;
    assert_eq!(data(&body)["joinCircle"]["role"], "MEMBER");
    assert_eq!(app.scalar(COUNTERS_OK).await, 0);

    let body = app.gql(JOIN, json!({ "c": circle, "i": owner.identity })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let body = app.gql_as(&world.admin.access, JOIN, json!({ "c": circle, "i": owner.identity })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "someone else's identity: {body}");
    let body = app
        .gql_as(&ann.session.access, JOIN, json!({ "c": uuid::Uuid::new_v4().to_string(), "i": ann.identity }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    data(&app.gql_as(&ann.session.access, ARCHIVE_CIRCLE, json!({ "id": circle })).await);
    let late = app.person("late@example.com").await;
    let body = app.gql_as(&late.session.access, JOIN, json!({ "c": circle, "i": late.identity })).await;
    assert_eq!(error_code(&body), "CONFLICT", "archived circles take no members: {body}");
    let body = app
        .gql_as(
            &ann.session.access,
            CREATE_POST,
            json!({ "i": { "circleId": circle, "identityId": ann.identity, "content": "x" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "nor posts: {body}");
}

#[tokio::test]
async fn likes_notify_once_an_hour_and_circles_list_by_members() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let big = app.new_circle(&owner).await;
    let small = app.new_circle(&owner).await;
    let post = app.post(&owner, &big, "hello").await;
    for index in 0..3 {
        let fan = app.person(&format!("fan{index}@example.com")).await;
        app.join(&fan, &big).await;
        data(&app.gql_as(&fan.session.access, LIKE, json!({ "id": post })).await);
    }
    let notes = app.snapshot("notifications").await.join("\n");
    assert_eq!(notes.matches("post_liked").count(), 1, "collapsed: {notes}");
    let body =
        app.gql("{ circles(orderBy: MEMBERS) { totalCount edges { node { id memberCount } } } }", json!({})).await;
    let edges = data(&body)["circles"]["edges"].as_array().expect("edges").clone();
    assert_eq!(edges[0]["node"]["id"], big.as_str());
    assert_eq!(edges[1]["node"]["id"], small.as_str());
    let body = app.gql(r#"{ circles(filter: { tag: "rust", domain: "software" }) { totalCount } }"#, json!({})).await;
    assert_eq!(data(&body)["circles"]["totalCount"], 2);
    let body = app.gql(r#"{ circles(filter: { tag: "cooking" }) { totalCount } }"#, json!({})).await;
    assert_eq!(data(&body)["circles"]["totalCount"], 0);
}

#[tokio::test]
async fn views_are_counted_in_batches() {
    let app = spawn_app_with(&[("VIEW_FLUSH_SECS", "1")]).await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let circle = app.new_circle(&owner).await;
    let post = app.post(&owner, &circle, "watch me").await;
    let statements = app.statements().await;
    let hits = app.metric(r#"cache_responses_total{outcome="hit"}"#).await;
    for _ in 0..10 {
        data(&app.gql("query($id: ID!) { post(id: $id) { id } }", json!({ "id": post })).await);
    }
    // Reading writes nothing: the post is read once, then its response is kept (a flush may
    // drop it once: the flush's update, and a read again).
    assert!(app.statements().await - statements <= 4);
    // Answers from the kept response count their views too.
    assert!(app.metric(r#"cache_responses_total{outcome="hit"}"#).await - hits >= 6.0);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(app.scalar("SELECT CAST(view_count AS BIGINT) FROM posts").await, 10);
}

#[tokio::test]
async fn bad_circle_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let circle = app.new_circle(&owner).await;
    let post = app.post(&owner, &circle, "p").await;
    let tables = ["circles", "posts", "comments", "circle_members"];
    let before = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
    let token = owner.session.access.as_str();
    let post_input = |extra: Value| {
        let mut input = json!({ "circleId": circle, "identityId": owner.identity, "content": "hello" });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            input[k] = v;
        }
        json!({ "i": input })
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (CREATE_POST, post_input(json!({ "content": "" })), "BAD_USER_INPUT", "input.content"),
        (CREATE_POST, post_input(json!({ "content": "x".repeat(100 * 1024) })), "BAD_USER_INPUT", "input.content"),
        (
            CREATE_POST,
            post_input(json!({ "mediaUrls": vec!["https://img.example.com/a.png"; 10] })),
            "BAD_USER_INPUT",
            "input.mediaUrls",
        ),
        (
            CREATE_POST,
            post_input(json!({ "mediaUrls": ["file:///etc/passwd"] })),
            "BAD_USER_INPUT",
            "input.mediaUrls[0]",
        ),
        (CREATE_POST, post_input(json!({ "postType": "IMAGE" })), "BAD_USER_INPUT", "input.mediaUrls"),
        (CREATE_POST, post_input(json!({ "circleId": uuid::Uuid::new_v4().to_string() })), "NOT_FOUND", "<no field>"),
        (CREATE_POST, post_input(json!({ "circleId": "x" })), "BAD_USER_INPUT", "input.circleId"),
        (UPDATE_POST, json!({ "id": post, "i": { "content": " " } }), "BAD_USER_INPUT", "input.content"),
        (
            COMMENT,
            json!({ "i": { "postId": post, "identityId": owner.identity, "content": "" } }),
            "BAD_USER_INPUT",
            "input.content",
        ),
        (
            COMMENT,
            json!({ "i": { "postId": post, "identityId": owner.identity, "content": "x".repeat(5001) } }),
            "BAD_USER_INPUT",
            "input.content",
        ),
        (
            COMMENT,
            json!({ "i": { "postId": post, "identityId": owner.identity, "content": "x", "parentId": uuid::Uuid::new_v4().to_string() } }),
            "NOT_FOUND",
            "<no field>",
        ),
        (
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "", "domain": "software" } }),
            "BAD_USER_INPUT",
            "input.name",
        ),
        (
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "x", "domain": "astrology" } }),
            "BAD_USER_INPUT",
            "input.domain",
        ),
        (
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "x", "domain": "software", "tags": vec!["t"; 21] } }),
            "BAD_USER_INPUT",
            "input.tags",
        ),
        (
            CREATE_CIRCLE,
            json!({ "i": { "identityId": owner.identity, "name": "x", "domain": "software", "avatar": "nope" } }),
            "BAD_USER_INPUT",
            "input.avatar",
        ),
        (UPDATE_CIRCLE, json!({ "id": circle, "i": { "name": "x".repeat(101) } }), "BAD_USER_INPUT", "input.name"),
        (
            SET_ROLE,
            json!({ "c": circle, "u": uuid::Uuid::new_v4().to_string(), "r": "ADMIN" }),
            "NOT_FOUND",
            "<no field>",
        ),
    ];
    for (query, variables, code, field) in cases {
        let body = app.gql_as(token, query, variables.clone()).await;
        assert_eq!(
            error_code(&body),
            code,
            "{}: {body}",
            &variables.to_string()[..variables.to_string().len().min(120)]
        );
        assert_eq!(error_field(&body), field, "{body}");
    }
    for (query, variables) in [
        (CREATE_POST, post_input(json!({ "postType": "ESSAY" }))),
        (SET_ROLE, json!({ "c": circle, "u": owner.session.user_id, "r": "OWNER" })),
    ] {
        let body = app.gql_as(token, query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    assert_eq!(futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await, before);
}

/// Every circle mutation by anonymous, non-member, member, author, moderator, circle admin,
/// platform admin and banned callers; each refused call changes nothing.
#[tokio::test]
async fn permission_matrix_for_circle_mutations() {
    let app = spawn_app().await;
    let world = app.world().await;
    let admin = app.person("cadmin@example.com").await; // creates the circle: circle admin
    let circle = app.new_circle(&admin).await;
    let outsider = app.person("outsider@example.com").await;
    let member = app.person("member@example.com").await;
    let author = app.person("author@example.com").await;
    let moderator = app.person("moderator@example.com").await;
    let banned = app.person("banned@example.com").await;
    let target = app.person("target@example.com").await;
    for person in [&member, &author, &moderator, &banned, &target] {
        app.join(person, &circle).await;
    }
    data(
        &app.gql_as(
            &admin.session.access,
            SET_ROLE,
            json!({ "c": circle, "u": moderator.session.user_id, "r": "MODERATOR" }),
        )
        .await,
    );
    let platform_identity = app.apply(&world.admin, "APPRENTICE", "software").await;
    app.exec("UPDATE users SET status = 'banned' WHERE email = 'banned@example.com'").await;

    // (name, token, identity) per caller kind, in the column order of the table below.
    let callers: Vec<(&str, Option<&str>, &str)> = vec![
        ("anonymous", None, member.identity.as_str()),
        ("non-member", Some(&outsider.session.access), outsider.identity.as_str()),
        ("member", Some(&member.session.access), member.identity.as_str()),
        ("author", Some(&author.session.access), author.identity.as_str()),
        ("moderator", Some(&moderator.session.access), moderator.identity.as_str()),
        ("circle admin", Some(&admin.session.access), admin.identity.as_str()),
        ("platform admin", Some(&world.admin.access), platform_identity.as_str()),
        ("banned", Some(&banned.session.access), banned.identity.as_str()),
    ];
    const U: &str = "UNAUTHENTICATED";
    const F: &str = "FORBIDDEN";
    const OK: &str = "ok";
    let table: Vec<(&str, &str, [&str; 8])> = vec![
        ("createPost", CREATE_POST, [U, F, OK, OK, OK, OK, F, F]),
        ("updatePost", UPDATE_POST, [U, F, F, OK, F, F, F, F]),
        ("deletePost", DELETE_POST, [U, F, F, OK, F, F, F, F]),
        ("setPostPinned", PIN, [U, F, F, F, OK, OK, OK, F]),
        ("setPostEssence", ESSENCE, [U, F, F, F, OK, OK, OK, F]),
        ("hidePost", HIDE, [U, F, F, F, OK, OK, OK, F]),
        ("unhidePost", UNHIDE, [U, F, F, F, OK, OK, OK, F]),
        ("hideComment", HIDE_COMMENT, [U, F, F, F, OK, OK, OK, F]),
        ("unhideComment", UNHIDE_COMMENT, [U, F, F, F, OK, OK, OK, F]),
        ("addComment", COMMENT, [U, F, OK, OK, OK, OK, F, F]),
        ("deleteComment", DELETE_COMMENT, [U, F, F, OK, OK, OK, OK, F]),
        ("likePost", LIKE, [U, F, OK, OK, OK, OK, F, F]),
        ("unlikePost", UNLIKE, [U, F, OK, OK, OK, OK, F, F]),
        ("likeComment", LIKE_COMMENT, [U, F, OK, OK, OK, OK, F, F]),
        ("unlikeComment", UNLIKE_COMMENT, [U, F, OK, OK, OK, OK, F, F]),
        ("setMemberRole", SET_ROLE, [U, F, F, F, F, OK, OK, F]),
        ("updateCircle", UPDATE_CIRCLE, [U, F, F, F, F, OK, OK, F]),
        // By now `target` is a moderator: a moderator cannot remove them, a circle admin can (and
        // a second removal is a no-op).
        ("removeMember", REMOVE_MEMBER, [U, F, F, F, F, OK, OK, F]),
        ("unbanMember", UNBAN_MEMBER, [U, F, F, F, F, OK, OK, F]),
        ("archiveCircle", ARCHIVE_CIRCLE, [U, F, F, F, F, OK, OK, F]),
    ];
    let tables = [
        "circles",
        "circle_members",
        "posts",
        "comments",
        "post_likes",
        "comment_likes",
        "notifications",
        "audit_logs",
    ];
    for (name, query, expected) in &table {
        for ((caller, token, identity), expect) in callers.iter().zip(expected.iter()) {
            // A fresh target for each call on a post or comment, authored by `author`.
            let needs_target = !matches!(
                *name,
                "createPost" | "setMemberRole" | "updateCircle" | "archiveCircle" | "removeMember" | "unbanMember"
            );
            let (post, comment) = if needs_target {
                let post = app.post(&author, &circle, "target").await;
                let comment = app.comment(&author, &post, None).await;
                (post, comment)
            } else {
                (String::new(), String::new())
            };
            let variables = match *name {
                "createPost" => json!({ "i": { "circleId": circle, "identityId": identity, "content": "x" } }),
                "updatePost" => json!({ "id": post, "i": { "content": "edited" } }),
                "addComment" => json!({ "i": { "postId": post, "identityId": identity, "content": "x" } }),
                "deleteComment" | "likeComment" | "unlikeComment" | "hideComment" | "unhideComment" => {
                    json!({ "id": comment })
                }
                "setMemberRole" => json!({ "c": circle, "u": target.session.user_id, "r": "MODERATOR" }),
                "removeMember" | "unbanMember" => json!({ "c": circle, "u": target.session.user_id }),
                "updateCircle" => json!({ "id": circle, "i": { "name": "Renamed" } }),
                "archiveCircle" => json!({ "id": circle }),
                _ => json!({ "id": post }),
            };
            let before = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
            let body = app.gql_with(*token, query, variables).await;
            if *expect == OK {
                assert!(body["errors"].is_null(), "{name} by {caller} should pass: {body}");
            } else {
                assert_eq!(error_code(&body), *expect, "{name} by {caller}: {body}");
                let after = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
                assert_eq!(before, after, "{name} by {caller} was refused but changed something");
            }
        }
    }
}

/// A feed page of 20 posts with author profile, circle, counts and viewerHasLiked costs the same
/// number of SQL statements as a page of 2.
#[tokio::test]
async fn a_feed_page_runs_a_fixed_number_of_statements() {
    // The database path (see courses::listing_courses_runs_a_fixed_number_of_statements).
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let _world = app.world().await;
    let reader = app.person("reader@example.com").await;
    let mut circles = Vec::new();
    for index in 0..4 {
        let owner = app.person(&format!("owner{index}@example.com")).await;
        data(
            &app.gql_as(
                &owner.session.access,
                "mutation($id: ID!) { updateProfile(identityId: $id, input: { name: \"Owner\" }) { id } }",
                json!({ "id": owner.identity }),
            )
            .await,
        );
        let circle = app.new_circle(&owner).await;
        app.join(&reader, &circle).await;
        circles.push((owner, circle));
    }
    for index in 0..24 {
        let (owner, circle) = &circles[index % 4];
        let post = app.post(owner, circle, "news").await;
        if index % 2 == 0 {
            data(&app.gql_as(&reader.session.access, LIKE, json!({ "id": post })).await);
        }
    }
    let query = "query($n: Int) { feed(first: $n) { edges { node {
        id content likeCount commentCount viewerHasLiked
        author { id profile { name avatar } }
        circle { id name memberCount }
    } } } }";
    let mut costs = Vec::new();
    for n in [2, 20] {
        // The fewest of three runs (see courses::listing_courses_runs_a_fixed_number_of_statements).
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql_as(&reader.session.access, query, json!({ "n": n })).await;
            assert_eq!(data(&body)["feed"]["edges"].as_array().map(Vec::len), Some(n as usize));
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 vs 20 posts: {costs:?}");
}

/// `master-guide reconcile` (the real binary) finds counters that drifted (here by hand), exits 1,
/// and with `--repair` fixes exactly those rows.
#[tokio::test]
async fn reconcile_reports_and_repairs_drifted_counters() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let circle = app.new_circle(&owner).await;
    let post = app.post(&owner, &circle, "p").await;
    data(&app.gql_as(&owner.session.access, LIKE, json!({ "id": post })).await);
    let reconcile = |repair: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_master-guide"));
        cmd.arg("reconcile").env("DATABASE_URL", &app.db_url).env("DATA_DIR", &app.data_dir).env("RUST_LOG", "error");
        if repair {
            cmd.arg("--repair");
        }
        let out = cmd.output().expect("run master-guide reconcile");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let drifted = |report: &str| -> Vec<String> {
        // Lines read "<counter>  drifted rows: <n>  repaired: <m>".
        report
            .lines()
            .filter(|l| l.contains(" drifted rows: "))
            .filter(|l| l.split_whitespace().nth(3).is_some_and(|n| n != "0"))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let (ok, report) = reconcile(false);
    assert!(ok && drifted(&report).is_empty(), "a fresh database is consistent:\n{report}");
    app.exec("UPDATE posts SET like_count = 7").await;
    app.exec("UPDATE circles SET member_count = 0").await;
    let (ok, report) = reconcile(false);
    assert!(!ok, "drift without --repair exits non-zero:\n{report}");
    assert_eq!(drifted(&report), vec!["posts.like_count", "circles.member_count"], "{report}");
    assert_eq!(app.scalar(POST_COUNTERS_OK).await, 1, "reporting repairs nothing");
    let (ok, report) = reconcile(true);
    assert!(ok, "{report}");
    let repaired: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(" repaired: ") && l.split_whitespace().nth(5).is_some_and(|n| n != "0"))
        .collect();
    assert_eq!(repaired.len(), 2, "the two drifted rows were repaired:\n{report}");
    assert_eq!(app.scalar(COUNTERS_OK).await, 0);
    assert_eq!(app.scalar(POST_COUNTERS_OK).await, 0);
    let (ok, report) = reconcile(false);
    assert!(ok && drifted(&report).is_empty(), "consistent after repair:\n{report}");
}

/// Per-parent lists are batched too: circles with their members, posts and each post's comments,
/// with every `totalCount`, cost the same statements for 2 circles as for 6 (the database path).
#[tokio::test]
async fn nested_per_parent_pages_and_counts_run_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let _world = app.world().await;
    let reader = app.person("reader@example.com").await;
    for index in 0..6 {
        let owner = app.person(&format!("owner{index}@example.com")).await;
        let circle = app.new_circle(&owner).await;
        app.join(&reader, &circle).await;
        for n in 0..3 {
            let post = app.post(&owner, &circle, &format!("post {n}")).await;
            for _ in 0..n {
                app.comment(&reader, &post, None).await;
            }
        }
    }
    let query = "query($n: Int, $order: PostOrderBy) { circles(first: $n, orderBy: NEWEST) { edges { node {
        members(first: 3) { totalCount edges { node { role user { id } } } }
        posts(first: 2, orderBy: $order) { totalCount edges { cursor node { id content
            comments(first: 1) { totalCount edges { node { id content } } } } } }
    } } } }";
    for order in ["LATEST", "HOT"] {
        let mut costs = Vec::new();
        for n in [2, 6] {
            let mut fewest = u64::MAX;
            for _ in 0..3 {
                let before = app.statements().await;
                let body = app.gql_as(&reader.session.access, query, json!({ "n": n, "order": order })).await;
                let circles = data(&body)["circles"]["edges"].as_array().cloned().unwrap_or_default();
                assert_eq!(circles.len(), n as usize);
                for circle in &circles {
                    let node = &circle["node"];
                    assert_eq!(node["members"]["totalCount"], 2, "{node}");
                    assert_eq!(node["posts"]["totalCount"], 3, "{node}");
                    let posts = node["posts"]["edges"].as_array().cloned().unwrap_or_default();
                    assert_eq!(posts.len(), 2, "{node}");
                    for post in posts {
                        let content = post["node"]["content"].as_str().unwrap_or_default().to_string();
                        let expected: i64 = content.trim_start_matches("post ").parse().unwrap_or(-1);
                        assert_eq!(post["node"]["comments"]["totalCount"], expected, "{post}");
                        let shown = post["node"]["comments"]["edges"].as_array().map(Vec::len).unwrap_or(0);
                        assert_eq!(shown as i64, expected.min(1), "{post}");
                    }
                }
                fewest = fewest.min(app.statements().await - before);
            }
            costs.push(fewest);
        }
        assert_eq!(costs[0], costs[1], "{order}: statements for 2 vs 6 circles: {costs:?}");
    }
    // Paging one circle's posts on with a cursor still walks every post once.
    let circle = {
        let body = app.gql("{ circles(first: 1) { edges { node { id } } } }", json!({})).await;
        data(&body)["circles"]["edges"][0]["node"]["id"].as_str().expect("circle").to_string()
    };
    let page = "query($c: ID!, $after: String) { circle(id: $c) { posts(first: 2, after: $after) {
        pageInfo { hasNextPage endCursor } edges { node { id } } } } }";
    let first = app.gql(page, json!({ "c": circle })).await;
    let cursor = data(&first)["circle"]["posts"]["pageInfo"]["endCursor"].clone();
    assert_eq!(data(&first)["circle"]["posts"]["pageInfo"]["hasNextPage"], true);
    let second = app.gql(page, json!({ "c": circle, "after": cursor })).await;
    assert_eq!(data(&second)["circle"]["posts"]["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(data(&second)["circle"]["posts"]["pageInfo"]["hasNextPage"], false);
}

/// The posts of the ordering test: index = creation order, pinned, likes.
const ORDERED: [(usize, bool, u32); 7] =
    [(0, false, 0), (1, false, 2), (2, true, 0), (3, false, 1), (4, false, 1), (5, true, 0), (6, false, 0)];

/// The order the server must give, computed from the posts' attributes (later = newer).
fn expected_order(hot: bool, ascending: bool, pinned_first: bool) -> Vec<usize> {
    let mut posts = ORDERED.to_vec();
    posts.sort_by(|a, b| {
        let rest = if hot { (a.2, a.0).cmp(&(b.2, b.0)) } else { a.0.cmp(&b.0) };
        let rest = if ascending { rest } else { rest.reverse() };
        let pinned = if pinned_first { b.1.cmp(&a.1) } else { std::cmp::Ordering::Equal };
        pinned.then(rest)
    });
    posts.into_iter().map(|p| p.0).collect()
}

#[tokio::test]
async fn every_post_order_takes_a_direction_keeps_pinned_first_optional_and_pages_both_ways() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let fans = [app.person("fan0@example.com").await, app.person("fan1@example.com").await];
    let circle = app.new_circle(&owner).await;
    for fan in &fans {
        app.join(fan, &circle).await;
    }
    let mut ids = Vec::new();
    for (index, pinned, likes) in ORDERED {
        let id = app.post(&owner, &circle, &format!("post {index}")).await;
        if pinned {
            data(&app.gql_as(&owner.session.access, PIN, json!({ "id": id })).await);
        }
        for fan in fans.iter().take(likes as usize) {
            data(&app.gql_as(&fan.session.access, LIKE, json!({ "id": id })).await);
        }
        ids.push(id);
    }
    let query = "query($c: ID!, $o: PostOrderBy!, $d: SortDirection!, $p: Boolean!, $f: Int, $a: String, $l: Int, $b: String) {
        circle(id: $c) { posts(orderBy: $o, direction: $d, pinnedFirst: $p, first: $f, after: $a, last: $l, before: $b) {
            edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
    let positions = |body: &Value| -> Vec<usize> {
        data(body)["circle"]["posts"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| ids.iter().position(|id| e["node"]["id"] == id.as_str()).expect("a post of the circle"))
            .collect()
    };
    for hot in [false, true] {
        for ascending in [false, true] {
            for pinned_first in [true, false] {
                let want = expected_order(hot, ascending, pinned_first);
                let vars = |extra: Value| {
                    let mut v = json!({ "c": circle, "o": if hot { "HOT" } else { "LATEST" },
                        "d": if ascending { "ASC" } else { "DESC" }, "p": pinned_first });
                    v.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
                    v
                };
                let label = format!("hot={hot} ascending={ascending} pinnedFirst={pinned_first}");
                let body = app.gql(query, vars(json!({ "f": 20 }))).await;
                assert_eq!(positions(&body), want, "{label}: {body}");
                // Forward two at a time, then backward two at a time: every post once, in order.
                let (mut forward, mut after) = (Vec::new(), Value::Null);
                loop {
                    let body = app.gql(query, vars(json!({ "f": 2, "a": after }))).await;
                    forward.extend(positions(&body));
                    let info = &data(&body)["circle"]["posts"]["pageInfo"];
                    if info["hasNextPage"] != true {
                        break;
                    }
                    after = info["endCursor"].clone();
                }
                assert_eq!(forward, want, "{label}, forward pages");
                let (mut backward, mut before) = (Vec::new(), Value::Null);
                loop {
                    let body = app.gql(query, vars(json!({ "l": 2, "b": before }))).await;
                    let mut page = positions(&body);
                    page.extend(backward);
                    backward = page;
                    let info = &data(&body)["circle"]["posts"]["pageInfo"];
                    if info["hasPreviousPage"] != true {
                        break;
                    }
                    before = info["startCursor"].clone();
                }
                assert_eq!(backward, want, "{label}, backward pages");
            }
        }
    }

    // A cursor of one direction is refused by the other (not misread as a position in it).
    let body = app.gql(query, json!({ "c": circle, "o": "LATEST", "d": "DESC", "p": false, "f": 2 })).await;
    let cursor = data(&body)["circle"]["posts"]["pageInfo"]["endCursor"].clone();
    let body = app.gql(query, json!({ "c": circle, "o": "LATEST", "d": "ASC", "p": false, "f": 2, "a": cursor })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "after"), "{body}");

    // A batch of circles' pages (one statement for all of them) in a mixed order: pinned first,
    // then least liked.
    let other = app.new_circle(&owner).await;
    app.post(&owner, &other, "elsewhere").await;
    let batch = "{ circles(first: 10) { edges { node { id posts(orderBy: HOT, direction: ASC, first: 3) {
        edges { node { id } } pageInfo { hasNextPage } } } } } }";
    let body = app.gql(batch, json!({})).await;
    let edges = data(&body)["circles"]["edges"].as_array().expect("edges").clone();
    let of = |id: &str| edges.iter().find(|e| e["node"]["id"] == id).expect("listed").clone();
    let mine = of(&circle);
    let got: Vec<usize> = mine["node"]["posts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| ids.iter().position(|id| e["node"]["id"] == id.as_str()).expect("its post"))
        .collect();
    assert_eq!(got, expected_order(true, true, true)[..3], "{body}");
    assert_eq!(mine["node"]["posts"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(of(&other)["node"]["posts"]["edges"].as_array().map(Vec::len), Some(1), "{body}");

    // The feed takes a direction and orders pinned posts with the rest.
    let feed = "query($d: SortDirection) { feed(direction: $d, first: 20) { edges { node { id } } } }";
    let body = app.gql_as(&fans[0].session.access, feed, json!({ "d": "ASC" })).await;
    let got: Vec<usize> = data(&body)["feed"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| ids.iter().position(|id| e["node"]["id"] == id.as_str()).expect("its post"))
        .collect();
    assert_eq!(got, expected_order(false, true, false), "{body}");

    // Circles too: oldest first.
    let body = app.gql("{ circles(orderBy: NEWEST, direction: ASC) { edges { node { id } } } }", json!({})).await;
    let order: Vec<&str> = data(&body)["circles"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["id"].as_str())
        .collect();
    assert_eq!(order, [circle.as_str(), other.as_str()], "{body}");
    let body = app.gql("{ circles(direction: SIDEWAYS) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

const THREAD: &str = "query($id: ID!, $n: Int!) { post(id: $id) { comments(topLevel: true, first: $n) { totalCount edges { node {
    id content replies(first: 5) { totalCount edges { node { id replies(first: 5) { totalCount edges { node { id replies(first: 5) { totalCount } } } } } } } } } } } }";

/// Top-level comments paged, their replies three levels down, one batched statement per level.
#[tokio::test]
async fn a_reply_thread_three_levels_deep_runs_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let ann = app.person("ann@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&ann, &circle).await;
    let post = app.post(&owner, &circle, "discuss").await;
    let mut tops = Vec::new();
    for index in 0..6 {
        let top = app.comment(&ann, &post, None).await;
        let reply = app.comment(&owner, &post, Some(&top)).await;
        let deeper = app.comment(&ann, &post, Some(&reply)).await;
        if index % 2 == 0 {
            app.comment(&owner, &post, Some(&deeper)).await;
        }
        tops.push((top, reply, deeper));
    }
    let body = app.gql(THREAD, json!({ "id": post, "n": 2 })).await;
    let comments = &data(&body)["post"]["comments"];
    assert_eq!(comments["totalCount"], 6, "top level only: {body}");
    let first = &comments["edges"][0]["node"];
    assert_eq!(first["id"], tops[0].0.as_str());
    let reply = &first["replies"]["edges"][0]["node"];
    assert_eq!((first["replies"]["totalCount"].clone(), reply["id"].clone()), (json!(1), json!(tops[0].1)));
    let deeper = &reply["replies"]["edges"][0]["node"];
    assert_eq!((deeper["id"].clone(), deeper["replies"]["totalCount"].clone()), (json!(tops[0].2), json!(1)));
    assert_eq!(
        comments["edges"][1]["node"]["replies"]["edges"][0]["node"]["replies"]["edges"][0]["node"]["replies"]
            ["totalCount"],
        0
    );
    // The flat list still holds every comment.
    let body = app.gql("query($id: ID!) { post(id: $id) { comments { totalCount } } }", json!({ "id": post })).await;
    assert_eq!(data(&body)["post"]["comments"]["totalCount"], 21);

    let mut costs = Vec::new();
    for n in [2, 6] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql(THREAD, json!({ "id": post, "n": n })).await;
            assert_eq!(data(&body)["post"]["comments"]["edges"].as_array().map(Vec::len), Some(n as usize));
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 6 threads: {costs:?}");
}

#[tokio::test]
async fn authors_edit_their_comments_and_shares_are_counted() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let ann = app.person("ann@example.com").await;
    let outsider = app.register("out@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&ann, &circle).await;
    let post = app.post(&owner, &circle, "discuss").await;
    let comment = app.comment(&ann, &post, None).await;
    const EDIT: &str = "mutation($id: ID!, $c: String!) { updateComment(id: $id, content: $c) { content } }";

    let body = app.gql_as(&ann.session.access, EDIT, json!({ "id": comment, "c": "better words" })).await;
    assert_eq!(data(&body)["updateComment"]["content"], "better words");
    let before = app.snapshot("comments").await;
    for (token, content, code) in [
        (Some(owner.session.access.as_str()), "mine now", "FORBIDDEN"),
        (Some(ann.session.access.as_str()), "", "BAD_USER_INPUT"),
        (Some(ann.session.access.as_str()), &"x".repeat(5001), "BAD_USER_INPUT"),
        (None, "anonymous", "UNAUTHENTICATED"),
    ] {
        let body = app.gql_with(token, EDIT, json!({ "id": comment, "c": content })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let body = app.gql_as(&ann.session.access, EDIT, json!({ "id": uuid::Uuid::new_v4().to_string(), "c": "x" })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert_eq!(app.snapshot("comments").await, before, "refusals change nothing");
    // A member who left (or was removed) no longer edits what they wrote there.
    let leaver = app.person("leaver@example.com").await;
    app.join(&leaver, &circle).await;
    let old = app.comment(&leaver, &post, None).await;
    data(&app.gql_as(&leaver.session.access, LEAVE, json!({ "c": circle })).await);
    let body = app.gql_as(&leaver.session.access, EDIT, json!({ "id": old, "c": "rewritten" })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    data(&app.gql_as(&ann.session.access, DELETE_COMMENT, json!({ "id": comment })).await);
    let body = app.gql_as(&ann.session.access, EDIT, json!({ "id": comment, "c": "again" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "a deleted comment stays deleted: {body}");

    // Shares: anyone signed in who can see the post; concurrent shares all count.
    const SHARE: &str = "mutation($id: ID!) { sharePost(id: $id) { shareCount } }";
    let shares = (0..10).map(|_| app.gql_as(&outsider.access, SHARE, json!({ "id": post })));
    for body in futures_util::future::join_all(shares).await {
        data(&body);
    }
    let body = app.gql("query($id: ID!) { post(id: $id) { shareCount } }", json!({ "id": post })).await;
    assert_eq!(data(&body)["post"]["shareCount"], 10);
    let body = app.gql(SHARE, json!({ "id": post })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    data(&app.gql_as(&owner.session.access, DELETE_POST, json!({ "id": post })).await);
    let body = app.gql_as(&outsider.access, SHARE, json!({ "id": post })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

const VOTE: &str = "mutation($p: ID!, $o: ID!) { votePoll(postId: $p, optionId: $o) { id } }";
const POLL: &str =
    "query($id: ID!) { post(id: $id) { poll { totalVotes viewerVote options { id label voteCount } } } }";
const VOTES_OK: &str = "SELECT COUNT(*) FROM poll_options o WHERE o.vote_count <> (SELECT COUNT(*) FROM poll_votes v WHERE v.option_id = o.id)";

#[tokio::test]
async fn a_member_votes_once_however_many_times_at_once_and_counts_are_exact() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.person("owner@example.com").await;
    let ann = app.person("ann@example.com").await;
    let outsider = app.person("out@example.com").await;
    let circle = app.new_circle(&owner).await;
    app.join(&ann, &circle).await;
    let create = |options: Value, post_type: &str| json!({ "i": { "circleId": circle, "identityId": owner.identity, "content": "Which editor?", "postType": post_type, "pollOptions": options } });
    // Bad polls are refused on their field and write nothing.
    let before = (app.count("posts").await, app.count("poll_options").await);
    for (options, post_type, field) in [
        (json!(["only one"]), "POLL", "input.pollOptions"),
        (json!((0..11).map(|i| format!("o{i}")).collect::<Vec<_>>()), "POLL", "input.pollOptions"),
        (json!(["vim", ""]), "POLL", "input.pollOptions.1"),
        (json!(["vim", "x".repeat(101)]), "POLL", "input.pollOptions.1"),
        (json!(["Vim", "vim"]), "POLL", "input.pollOptions.1"),
        (json!(["vim", "emacs"]), "TEXT", "input.pollOptions"),
    ] {
        let body = app.gql_as(&owner.session.access, CREATE_POST, create(options, post_type)).await;
        assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", field), "{body}");
    }
    assert_eq!((app.count("posts").await, app.count("poll_options").await), before, "nothing written");

    let body = app.gql_as(&owner.session.access, CREATE_POST, create(json!(["vim", "emacs", "helix"]), "POLL")).await;
    let post = data(&body)["createPost"]["id"].as_str().expect("post").to_string();
    let body = app.gql_as(&ann.session.access, POLL, json!({ "id": post })).await;
    let poll = &data(&body)["post"]["poll"];
    assert_eq!((poll["totalVotes"].clone(), poll["viewerVote"].clone()), (json!(0), Value::Null));
    let options: Vec<String> = poll["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        poll["options"].as_array().map(|o| o.iter().map(|o| o["label"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("vim"), json!("emacs"), json!("helix")])
    );

    // 50 votes of one member at once, some for each option: one vote stands.
    let votes = (0..50).map(|i| app.gql_as(&ann.session.access, VOTE, json!({ "p": post, "o": options[i % 3] })));
    let results = futures_util::future::join_all(votes).await;
    let ok = results.iter().filter(|b| b["errors"].is_null()).count();
    let conflicts = results.iter().filter(|b| error_code(b) == "CONFLICT").count();
    assert_eq!(ok + conflicts, 50, "{results:?}");
    assert_eq!(app.count("poll_votes").await, 1);
    assert_eq!(app.scalar(VOTES_OK).await, 0, "vote_count equals the rows");
    let body = app.gql_as(&ann.session.access, POLL, json!({ "id": post })).await;
    let poll = &data(&body)["post"]["poll"];
    assert_eq!(poll["totalVotes"], 1);
    let chosen = poll["viewerVote"].as_str().expect("a vote").to_string();
    let other = options.iter().find(|o| **o != chosen).expect("other");
    let body = app.gql_as(&ann.session.access, VOTE, json!({ "p": post, "o": chosen })).await;
    data(&body);
    let body = app.gql_as(&ann.session.access, VOTE, json!({ "p": post, "o": other })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("CONFLICT", "optionId"), "{body}");

    // Outsiders, anonymous callers, options of another poll, non-polls: refused, nothing written.
    let text_post = app.post(&owner, &circle, "not a poll").await;
    for (token, p, o, code) in [
        (Some(outsider.session.access.as_str()), post.as_str(), options[0].as_str(), "FORBIDDEN"),
        (None, post.as_str(), options[0].as_str(), "UNAUTHENTICATED"),
        (Some(owner.session.access.as_str()), text_post.as_str(), options[0].as_str(), "BAD_USER_INPUT"),
        (Some(owner.session.access.as_str()), post.as_str(), text_post.as_str(), "BAD_USER_INPUT"),
    ] {
        let body = app.gql_with(token, VOTE, json!({ "p": p, "o": o })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    assert_eq!(app.count("poll_votes").await, 1);
    let body = app.gql("query($id: ID!) { post(id: $id) { poll { totalVotes } } }", json!({ "id": text_post })).await;
    assert!(data(&body)["post"]["poll"].is_null());
    app.assert_no_drift();
}
