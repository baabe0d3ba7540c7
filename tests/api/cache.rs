//! The cache, seen from outside: a repeated read costs no SQL (whole query responses, entities,
//! and the first pages of the hot lists), an unknown id is remembered as missing, a write is read
//! back fresh at once (on this instance and, through Redis, on another), even while concurrent
//! readers race it, concurrent readers of a cold key share one load, and Redis down is not an
//! outage.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

const COURSE_PAGE: &str = "query($id: ID!) { course(id: $id) {
    title currentStudents rating reviewCount
    mentor { profile { name } stats { courseCount studentCount } }
    stats { enrolledStudents }
    contents { title locked }
} }";

/// Statements the server ran for one request.
async fn cost(app: &TestApp, query: &str, variables: serde_json::Value) -> (u64, serde_json::Value) {
    let before = app.statements().await;
    let body = app.gql(query, variables).await;
    (app.statements().await - before, body)
}

#[tokio::test]
async fn a_repeated_read_is_served_from_the_cache_and_a_write_is_read_back_fresh() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(10), 2, true).await;

    let (cold, body) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust from zero");
    let (warm, again) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    assert_eq!(body, again, "the cached page is the same page");
    assert!(cold >= 4, "a cold course page loads course, mentor, profile, stats, contents: {cold}");
    assert_eq!(warm, 0, "a warm course page runs no SQL");

    // The owner's edit, read back at once.
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { title } }",
            json!({ "id": course, "i": { "title": "Rust, again" } }),
        )
        .await;
    assert_eq!(data(&body)["updateCourse"]["title"], "Rust, again");
    let (_, body) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust, again");

    // An enrollment moves the course's counter and both stats read models, read back at once.
    let sam = app.register("sam@example.com").await;
    let body =
        app.gql_as(&sam.access, "mutation($c: ID!) { enroll(courseId: $c) { status } }", json!({ "c": course })).await;
    data(&body);
    let (_, body) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    let page = &data(&body)["course"];
    assert_eq!(page["currentStudents"], 1, "{page}");
    assert_eq!(page["stats"]["enrolledStudents"], 1, "{page}");
    assert_eq!(page["mentor"]["stats"]["studentCount"], 1, "{page}");

    // A profile edit reaches the cached mentor.
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name } }",
            json!({ "id": ada.identity, "i": { "name": "Ada L." } }),
        )
        .await;
    data(&body);
    let (_, body) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["mentor"]["profile"]["name"], "Ada L.");

    // A new content item and a reorder reach the cached contents.
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($c: ID!, $i: AddCourseContentInput!) { addCourseContent(courseId: $c, input: $i) { id } }",
            json!({ "c": course, "i": { "title": "Lesson 2", "contentType": "TEXT", "contentText": "..." } }),
        )
        .await;
    data(&body);
    let (_, body) = cost(&app, COURSE_PAGE, json!({ "id": course })).await;
    let titles: Vec<&str> = data(&body)["course"]["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert_eq!(titles, ["Lesson 0", "Lesson 1", "Lesson 2"]);
}

#[tokio::test]
async fn an_unknown_id_is_remembered_as_missing() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let query =
        "query($id: ID!) { course(id: $id) { id } mentor(id: $id) { id } circle(id: $id) { id } post(id: $id) { id } }";
    let (first, body) = cost(&app, query, json!({ "id": id })).await;
    assert_eq!(data(&body), &json!({ "course": null, "mentor": null, "circle": null, "post": null }));
    assert!(first >= 4, "the first lookup asks the database: {first}");
    for _ in 0..5 {
        let (again, body) = cost(&app, query, json!({ "id": id })).await;
        assert_eq!(data(&body)["course"], serde_json::Value::Null);
        assert_eq!(again, 0, "a known-missing id does not reach the database");
    }
}

/// 40 clients read one cold course at once: the database sees one load (or a few batches), not 40.
#[tokio::test]
async fn concurrent_readers_of_a_cold_key_share_one_load() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let before = app.statements().await;
    let reads = (0..40).map(|_| app.gql("query($id: ID!) { course(id: $id) { title } }", json!({ "id": course })));
    for body in futures_util::future::join_all(reads).await {
        assert_eq!(data(&body)["course"]["title"], "Rust from zero");
    }
    let statements = app.statements().await - before;
    assert!(statements <= 3, "40 concurrent cold reads ran {statements} statements");
}

/// Likes and comments change a cached post's counters; each response and the next read agree
/// with the database.
#[tokio::test]
async fn post_counters_read_back_fresh() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }",
            json!({ "i": { "identityId": ada.identity, "name": "Rustaceans", "domain": "software" } }),
        )
        .await;
    let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "circleId": circle, "identityId": ada.identity, "content": "hello", "postType": "TEXT" } }),
        )
        .await;
    let post = data(&body)["createPost"]["id"].as_str().expect("post").to_string();
    let read = "query($id: ID!) { post(id: $id) { likeCount commentCount circle { postCount } } }";
    let body = app.gql_as(&ada.session.access, read, json!({ "id": post })).await;
    assert_eq!(data(&body)["post"], json!({ "likeCount": 0, "commentCount": 0, "circle": { "postCount": 1 } }));

    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($id: ID!) { likePost(postId: $id) { likeCount } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(data(&body)["likePost"]["likeCount"], 1);
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
            json!({ "i": { "postId": post, "identityId": ada.identity, "content": "first" } }),
        )
        .await;
    data(&body);
    let body = app.gql_as(&ada.session.access, read, json!({ "id": post })).await;
    assert_eq!(data(&body)["post"], json!({ "likeCount": 1, "commentCount": 1, "circle": { "postCount": 1 } }));

    let body = app
        .gql_as(&ada.session.access, "mutation($id: ID!) { deletePost(id: $id) { id } }", json!({ "id": post }))
        .await;
    data(&body);
    let body = app.gql_as(&ada.session.access, read, json!({ "id": post })).await;
    assert_eq!(data(&body)["post"], serde_json::Value::Null, "a deleted post is gone at once");
    let body = app.gql("query($id: ID!) { circle(id: $id) { postCount } }", json!({ "id": circle })).await;
    assert_eq!(data(&body)["circle"]["postCount"], 0);
}

/// Two instances over one database and one Redis: the second level serves a row the other
/// instance loaded, and a change made on one is read fresh on the other within a second.
#[tokio::test]
async fn instances_share_the_second_level_and_see_each_others_changes() {
    let Some(redis) = test_redis("shared-cache test") else { return };
    let prefix = format!("mg-test-{}", uuid::Uuid::new_v4());
    let channel = format!("{prefix}:events");
    let settings =
        [("REDIS_URL", redis.as_str()), ("EVENTS_CHANNEL", channel.as_str()), ("CACHE_KEY_PREFIX", prefix.as_str())];
    let a = spawn_app_with(&settings).await;
    let b = spawn_sibling(&a, &settings).await;
    let world = a.world().await;
    let ada = a.master(&world, "ada@example.com", "software").await;
    let course = a.course(&ada, None, 1, true).await;
    let query = "query($id: ID!) { course(id: $id) { title } }";

    let (_, body) = cost(&a, query, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust from zero");
    let (on_b, body) = cost(&b, query, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust from zero");
    assert_eq!(on_b, 0, "instance B read the course A loaded from Redis, not the database");

    let body = b
        .gql_as(
            &ada.session.access,
            "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { title } }",
            json!({ "id": course, "i": { "title": "Changed on B" } }),
        )
        .await;
    data(&body);
    let changed = Instant::now();
    loop {
        let body = a.gql(query, json!({ "id": course })).await;
        if data(&body)["course"]["title"] == "Changed on B" {
            break;
        }
        assert!(changed.elapsed() < Duration::from_secs(1), "instance A still reads the old title");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_down_degrades_to_the_database() {
    // Nothing listens on port 1: start-up and every request fall back to the in-process cache.
    let app = spawn_app_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let body = app.gql("query($id: ID!) { course(id: $id) { title } }", json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust from zero");
}

const CATALOGUE: &str = "{ courses(first: 20, orderBy: {field: RATING, direction: DESC}) {
    edges { node { id title rating reviewCount mentor { profile { name } } } } } }";
const MENTOR_PAGE: &str = "query($id: ID!) { mentor(id: $id) {
    stats { courseCount } courses(first: 10) { id title }
    reviews(first: 5) { edges { node { rating } } } } }";
const COURSE_REVIEWS: &str = "query($id: ID!, $n: Int, $after: String) { course(id: $id) {
    reviewCount reviews(first: $n, after: $after) {
        edges { node { id rating content reviewer { id } } } pageInfo { hasNextPage endCursor } } } }";
const REVIEW: &str = "mutation($i: CreateReviewInput!) { createReview(input: $i) { id } }";

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item.get("node").unwrap_or(item)["id"].as_str().expect("id").to_string())
        .collect()
}

/// Reads `query` three times: the second read (the kept response) and a third with a query text
/// the response cache has not seen (so every field resolves again from the cached entities and
/// lists) must cost no SQL and say what the first did.
async fn warm(app: &TestApp, token: Option<&str>, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let first = app.gql_with(token, query, variables.clone()).await;
    data(&first);
    let before = app.statements().await;
    let again = app.gql_with(token, query, variables.clone()).await;
    assert_eq!(app.statements().await - before, 0, "a warm read of {query} ({variables}) ran SQL");
    assert_eq!(first, again, "the warm read says what the cold one did");
    let unseen = format!("{query}\n# {}", uuid::Uuid::new_v4());
    let before = app.statements().await;
    let resolved = app.gql_with(token, &unseen, variables.clone()).await;
    assert_eq!(app.statements().await - before, 0, "a warm resolve of {query} ({variables}) ran SQL");
    assert_eq!(first, resolved, "the entity-level read says what the cold one did");
    again
}

/// The catalogue, a course's reviews and a master's page keep their first pages in the cache; every
/// write that changes one (a review, a new course) is read back at once, and pages cut from the
/// cached prefix page on correctly with cursors.
#[tokio::test]
async fn hot_course_lists_are_served_warm_and_follow_every_write() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let older = app.course(&ada, None, 1, true).await;
    let newer = app.course(&ada, None, 1, true).await;

    let body = warm(&app, None, CATALOGUE, json!({})).await;
    assert_eq!(ids(&data(&body)["courses"]["edges"]).len(), 2);
    let body = warm(&app, None, MENTOR_PAGE, json!({ "id": ada.identity })).await;
    assert_eq!(ids(&data(&body)["mentor"]["courses"]), [newer.clone(), older.clone()], "newest first");
    let body = warm(&app, None, COURSE_REVIEWS, json!({ "id": older, "n": 5 })).await;
    assert_eq!(data(&body)["course"]["reviews"]["edges"], json!([]));

    // Three students review the older course: its rating moves it to the top of the catalogue and
    // the reviews show at once, newest first.
    let mut reviews = Vec::new();
    for (index, rating) in [3, 5, 4].into_iter().enumerate() {
        let student = app.register(&format!("s{index}@example.com")).await;
        let enroll = "mutation($c: ID!) { enroll(courseId: $c) { id } }";
        data(&app.gql_as(&student.access, enroll, json!({ "c": older })).await);
        let review = json!({ "i": { "reviewType": "COURSE", "courseId": older, "rating": rating, "content": format!("r{index}") } });
        let body = app.gql_as(&student.access, REVIEW, review).await;
        reviews.push(data(&body)["createReview"]["id"].as_str().expect("review").to_string());
    }
    let body = warm(&app, None, CATALOGUE, json!({})).await;
    let top = &data(&body)["courses"]["edges"][0]["node"];
    assert_eq!(
        (top["id"].as_str(), top["rating"].as_str(), top["reviewCount"].as_i64()),
        (Some(older.as_str()), Some("4.00"), Some(3))
    );
    let body = warm(&app, None, COURSE_REVIEWS, json!({ "id": older, "n": 5 })).await;
    let newest_first: Vec<String> = reviews.iter().rev().cloned().collect();
    assert_eq!(ids(&data(&body)["course"]["reviews"]["edges"]), newest_first);
    assert_eq!(data(&body)["course"]["reviews"]["pageInfo"]["hasNextPage"], false);

    // A smaller first page is cut from the cached prefix (no SQL), and its cursor pages on.
    let before = app.statements().await;
    let body = app.gql(COURSE_REVIEWS, json!({ "id": older, "n": 2 })).await;
    assert_eq!(app.statements().await - before, 0, "first: 2 is cut from the cached first page");
    let page = &data(&body)["course"]["reviews"];
    assert_eq!(ids(&page["edges"]), newest_first[..2]);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].clone();
    let body = app.gql(COURSE_REVIEWS, json!({ "id": older, "n": 2, "after": cursor })).await;
    let page = &data(&body)["course"]["reviews"];
    assert_eq!(ids(&page["edges"]), newest_first[2..]);
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    // An edit of a review reaches the cached page; a deleted one leaves it.
    let student = app.register("s9@example.com").await;
    data(
        &app.gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": newer })).await,
    );
    let body = app
        .gql_as(&student.access, REVIEW, json!({ "i": { "reviewType": "COURSE", "courseId": newer, "rating": 2 } }))
        .await;
    let review = data(&body)["createReview"]["id"].as_str().expect("review").to_string();
    let body = warm(&app, None, COURSE_REVIEWS, json!({ "id": newer, "n": 5 })).await;
    assert_eq!(data(&body)["course"]["reviews"]["edges"][0]["node"]["rating"], 2);
    let update = "mutation($id: ID!) { updateReview(id: $id, input: { rating: 5 }) { id } }";
    data(&app.gql_as(&student.access, update, json!({ "id": review })).await);
    let body = app.gql(COURSE_REVIEWS, json!({ "id": newer, "n": 5 })).await;
    assert_eq!(data(&body)["course"]["reviews"]["edges"][0]["node"]["rating"], 5);
    data(
        &app.gql_as(&student.access, "mutation($id: ID!) { deleteReview(id: $id) { id } }", json!({ "id": review }))
            .await,
    );
    let body = app.gql(COURSE_REVIEWS, json!({ "id": newer, "n": 5 })).await;
    assert_eq!(data(&body)["course"]["reviews"]["edges"], json!([]));

    // A newly published course heads the master's page and joins the catalogue at once; an
    // archived one leaves both.
    let newest = app.course(&ada, None, 1, true).await;
    let body = warm(&app, None, MENTOR_PAGE, json!({ "id": ada.identity })).await;
    assert_eq!(ids(&data(&body)["mentor"]["courses"]), [newest.clone(), newer.clone(), older.clone()]);
    assert_eq!(data(&body)["mentor"]["stats"]["courseCount"], 3);
    let body = app.gql(CATALOGUE, json!({})).await;
    assert!(ids(&data(&body)["courses"]["edges"]).contains(&newest));
    let archive = "mutation($id: ID!) { archiveCourse(id: $id) { status } }";
    data(&app.gql_as(&ada.session.access, archive, json!({ "id": newest })).await);
    let body = app.gql(MENTOR_PAGE, json!({ "id": ada.identity })).await;
    assert_eq!(ids(&data(&body)["mentor"]["courses"]), [newer.clone(), older.clone()]);
    let body = app.gql(CATALOGUE, json!({})).await;
    assert!(!ids(&data(&body)["courses"]["edges"]).contains(&newest));
}

/// A circle made by `owner`, which `reader` has joined (both apprentices).
struct Circle {
    owner: Session,
    owner_identity: String,
    reader: Session,
    circle: String,
}

impl Circle {
    async fn new(app: &TestApp) -> Self {
        let _world = app.world().await;
        let owner = app.register("owner@example.com").await;
        let owner_identity = app.apply(&owner, "APPRENTICE", "software").await;
        let reader = app.register("reader@example.com").await;
        let reader_identity = app.apply(&reader, "APPRENTICE", "software").await;
        let body = app
            .gql_as(
                &owner.access,
                "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }",
                json!({ "i": { "identityId": owner_identity, "name": "Rustaceans", "domain": "software" } }),
            )
            .await;
        let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
        let join = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id } }";
        data(&app.gql_as(&reader.access, join, json!({ "c": circle, "i": reader_identity })).await);
        Self { owner, owner_identity, reader, circle }
    }
}

/// A new post of `author` (as `identity`) in `circle`; its id.
async fn post_in(app: &TestApp, author: &Session, identity: &str, circle: &str, content: &str) -> String {
    let body = app
        .gql_as(
            &author.access,
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({ "i": { "circleId": circle, "identityId": identity, "content": content } }),
        )
        .await;
    data(&body)["createPost"]["id"].as_str().expect("post").to_string()
}

const CIRCLE_FEED: &str = "query($id: ID!) { circle(id: $id) { posts(first: 20) {
    edges { node { id content likeCount commentCount viewerHasLiked isTop author { id } } } } } }";
const NOTIFICATIONS: &str =
    "{ unreadNotificationCount notifications(first: 20) { edges { node { title notificationType isRead } } } }";

/// A circle's first page of posts, a viewer's likes and a user's notifications (count and first
/// page) are served warm without SQL, and every write that changes them is read back at once: a
/// like in the like's own response and the next feed read, a new post, a pin, a deletion, a
/// notification and marking it read.
#[tokio::test]
async fn feeds_likes_and_notifications_are_served_warm_and_follow_every_write() {
    let app = spawn_app().await;
    let Circle { owner, owner_identity, reader, circle } = Circle::new(&app).await;
    let post = |content: &'static str| post_in(&app, &owner, &owner_identity, &circle, content);
    let first = post("first").await;
    let second = post("second").await;
    async fn feed(app: &TestApp, token: &str, circle: &str) -> serde_json::Value {
        warm(app, Some(token), CIRCLE_FEED, json!({ "id": circle })).await
    }

    let body = feed(&app, &reader.access, &circle).await;
    assert_eq!(ids(&data(&body)["circle"]["posts"]["edges"]), [second.clone(), first.clone()]);
    let body = warm(&app, Some(&owner.access), NOTIFICATIONS, json!({})).await;
    assert_eq!(data(&body)["unreadNotificationCount"], 0);

    // The reader likes the first post: the like's response, the reader's feed, and the owner's
    // notifications say so at once.
    let like = "mutation($id: ID!) { likePost(postId: $id) { likeCount viewerHasLiked } }";
    let body = app.gql_as(&reader.access, like, json!({ "id": first })).await;
    assert_eq!(data(&body)["likePost"], json!({ "likeCount": 1, "viewerHasLiked": true }));
    let body = feed(&app, &reader.access, &circle).await;
    let edges = &data(&body)["circle"]["posts"]["edges"];
    assert_eq!(
        (edges[1]["node"]["likeCount"].as_i64(), edges[1]["node"]["viewerHasLiked"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(edges[0]["node"]["viewerHasLiked"], false);
    let body = feed(&app, &owner.access, &circle).await;
    assert_eq!(data(&body)["circle"]["posts"]["edges"][1]["node"]["viewerHasLiked"], false, "likes are per viewer");
    let body = warm(&app, Some(&owner.access), NOTIFICATIONS, json!({})).await;
    assert_eq!(data(&body)["unreadNotificationCount"], 1);
    let notifications = &data(&body)["notifications"]["edges"];
    assert_eq!(
        (notifications[0]["node"]["notificationType"].as_str(), notifications[0]["node"]["isRead"].as_bool()),
        (Some("post_liked"), Some(false))
    );

    let body = app.gql_as(&owner.access, "mutation { markAllNotificationsRead }", json!({})).await;
    assert_eq!(data(&body)["markAllNotificationsRead"], 1);
    let body = warm(&app, Some(&owner.access), NOTIFICATIONS, json!({})).await;
    assert_eq!(data(&body)["unreadNotificationCount"], 0);
    assert_eq!(data(&body)["notifications"]["edges"][0]["node"]["isRead"], true);

    let unlike = "mutation($id: ID!) { unlikePost(postId: $id) { likeCount viewerHasLiked } }";
    let body = app.gql_as(&reader.access, unlike, json!({ "id": first })).await;
    assert_eq!(data(&body)["unlikePost"], json!({ "likeCount": 0, "viewerHasLiked": false }));
    let body = feed(&app, &reader.access, &circle).await;
    assert_eq!(data(&body)["circle"]["posts"]["edges"][1]["node"]["viewerHasLiked"], false);

    // A new post heads the page; a pinned one goes above it; a deleted one leaves.
    let third = post("third").await;
    let body = feed(&app, &reader.access, &circle).await;
    assert_eq!(ids(&data(&body)["circle"]["posts"]["edges"]), [third.clone(), second.clone(), first.clone()]);
    let pin = "mutation($id: ID!) { setPostPinned(id: $id, pinned: true) { isTop } }";
    data(&app.gql_as(&owner.access, pin, json!({ "id": first })).await);
    let body = feed(&app, &reader.access, &circle).await;
    assert_eq!(ids(&data(&body)["circle"]["posts"]["edges"]), [first.clone(), third.clone(), second.clone()]);
    data(&app.gql_as(&owner.access, "mutation($id: ID!) { deletePost(id: $id) { id } }", json!({ "id": third })).await);
    let body = feed(&app, &reader.access, &circle).await;
    assert_eq!(ids(&data(&body)["circle"]["posts"]["edges"]), [first, second]);
}

const POST_PAGE: &str = "query($id: ID!) { post(id: $id) { id content comments(first: 20) {
    edges { node { id content likeCount author { profile { name } } } } } } }";

/// A post with its first page of comments is served warm (its whole response kept, though every
/// read counts a view), and every comment write is read back at once: a new comment, an edit, a
/// like (which reads only the liked comment again), a comment hidden by a moderator and one
/// deleted.
#[tokio::test]
async fn a_post_and_its_comments_are_served_warm_and_follow_every_comment_write() {
    // Views are written at the end only: a flush changes the post, which drops what read it.
    let app = spawn_app_with(&[("VIEW_FLUSH_SECS", "3600")]).await;
    let Circle { owner, owner_identity, reader, circle } = Circle::new(&app).await;
    let post = post_in(&app, &owner, &owner_identity, &circle, "a post to discuss").await;
    let comment = |content: &'static str| {
        let (app, owner, identity, post) = (&app, &owner, &owner_identity, &post);
        async move {
            let add = "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }";
            let input = json!({ "i": { "postId": post, "identityId": identity, "content": content } });
            data(&app.gql_as(&owner.access, add, input).await)["addComment"]["id"].as_str().expect("id").to_string()
        }
    };
    let thread = |body: &serde_json::Value| -> Vec<(String, String)> {
        let edges = data(body)["post"]["comments"]["edges"].as_array().expect("edges").clone();
        edges
            .iter()
            .map(|e| {
                (e["node"]["id"].as_str().unwrap_or("").into(), e["node"]["content"].as_str().unwrap_or("").into())
            })
            .collect()
    };
    let pair = |id: &str, content: &str| (id.to_string(), content.to_string());
    let vars = json!({ "id": post });
    let first = comment("first").await;
    let second = comment("second").await;
    let body = warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;
    assert_eq!(thread(&body), [pair(&first, "first"), pair(&second, "second")]);

    let third = comment("third").await;
    let body = warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;
    assert_eq!(thread(&body), [pair(&first, "first"), pair(&second, "second"), pair(&third, "third")]);

    let edit = "mutation($id: ID!, $c: String!) { updateComment(id: $id, content: $c) { id } }";
    data(&app.gql_as(&owner.access, edit, json!({ "id": first, "c": "first, edited" })).await);
    let body = warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;
    assert_eq!(thread(&body)[0], pair(&first, "first, edited"));

    // A like changes the comment, not the page of ids: only the liked comment is read again. (A
    // comment hidden behind the API's back shows whether the page was read again: it was not.)
    let sneak = |status: &'static str| {
        let (app, second) = (&app, &second);
        async move {
            use entity::comments::{Column, Entity};
            use sea_orm::sea_query::{Expr, Query};
            use sea_orm::ConnectionTrait;
            let id: uuid::Uuid = second.parse().expect("comment id");
            let db = app.db().await;
            let update = Query::update()
                .table(Entity)
                .value(Column::Status, status)
                .and_where(Expr::col(Column::Id).eq(id))
                .to_owned();
            let done = db.execute(db.get_database_backend().build(&update)).await.expect("update");
            assert_eq!(done.rows_affected(), 1);
        }
    };
    sneak("hidden").await;
    let like = "mutation($id: ID!) { likeComment(commentId: $id) { likeCount } }";
    data(&app.gql_as(&reader.access, like, json!({ "id": first })).await);
    let before = app.statements().await;
    let body = app.gql_as(&reader.access, POST_PAGE, vars.clone()).await;
    assert_eq!(app.statements().await - before, 1, "the liked comment's row, not the page: {body}");
    assert_eq!(data(&body)["post"]["comments"]["edges"][0]["node"]["likeCount"], 1);
    assert_eq!(thread(&body)[1], pair(&second, "second"), "the page of ids stayed kept");
    sneak("active").await;
    warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;

    let hide = "mutation($id: ID!) { hideComment(id: $id) { id } }";
    data(&app.gql_as(&owner.access, hide, json!({ "id": second })).await);
    let body = warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;
    assert_eq!(thread(&body), [pair(&first, "first, edited"), pair(&third, "third")]);

    let delete = "mutation($id: ID!) { deleteComment(id: $id) { id } }";
    data(&app.gql_as(&owner.access, delete, json!({ "id": third })).await);
    let body = warm(&app, Some(&reader.access), POST_PAGE, vars.clone()).await;
    assert_eq!(thread(&body), [pair(&first, "first, edited"), pair(&third, "deleted")]);
}

/// A new circle of `owner` (as `identity`); its id.
async fn circle_of(app: &TestApp, owner: &Session, identity: &str, name: &str) -> String {
    let create = "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }";
    let input = json!({ "i": { "identityId": identity, "name": name, "domain": "software" } });
    data(&app.gql_as(&owner.access, create, input).await)["createCircle"]["id"].as_str().expect("circle").to_string()
}

/// The viewer's feed, newest first, paged to its end: `(ids, hasNextPage of the first page)`.
async fn whole_feed(app: &TestApp, token: &str, size: usize) -> (Vec<String>, bool) {
    let query = "query($n: Int!, $a: String) { feed(first: $n, after: $a) {
        pageInfo { hasNextPage endCursor } edges { node { id } } } }";
    let (mut all, mut after, mut first_has_next) = (Vec::new(), serde_json::Value::Null, None);
    loop {
        let body = app.gql_as(token, query, json!({ "n": size, "a": after })).await;
        let feed = &data(&body)["feed"];
        all.extend(ids(&feed["edges"]));
        let more = feed["pageInfo"]["hasNextPage"] == true;
        first_has_next.get_or_insert(more);
        if !more {
            return (all, first_has_next.unwrap_or(false));
        }
        after = feed["pageInfo"]["endCursor"].clone();
    }
}

/// The active posts of `circles`, newest first, as the database orders them.
async fn newest_posts(app: &TestApp, circles: &[&str]) -> Vec<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let circles: Vec<uuid::Uuid> = circles.iter().map(|c| c.parse().expect("circle id")).collect();
    entity::posts::Entity::find()
        .filter(entity::posts::Column::CircleId.is_in(circles))
        .filter(entity::posts::Column::Status.eq("active"))
        .order_by_desc(entity::posts::Column::CreatedAt)
        .order_by_desc(entity::posts::Column::Id)
        .all(&app.db().await)
        .await
        .expect("posts")
        .into_iter()
        .map(|post| post.id.to_string())
        .collect()
}

/// The viewer's feed's first page is merged from the circles' kept first pages, so it is served
/// warm; it pages on from there by cursor in the database's order, and follows new posts, a pin,
/// a deletion, joining and leaving at once.
#[tokio::test]
async fn the_feed_is_merged_from_kept_circle_pages_and_follows_posts_and_memberships() {
    let app = spawn_app().await;
    let Circle { owner, owner_identity, reader, circle: rust } = Circle::new(&app).await;
    let go = circle_of(&app, &owner, &owner_identity, "Gophers").await;
    let reader_identity = {
        let body = app.gql_as(&reader.access, "{ me { identities { id } } }", json!({})).await;
        data(&body)["me"]["identities"][0]["id"].as_str().expect("identity").to_string()
    };
    let join = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id } }";
    data(&app.gql_as(&reader.access, join, json!({ "c": go, "i": reader_identity })).await);
    // More posts than a circle keeps (20) in each, interleaved in time.
    let mut posted = Vec::new();
    for n in 0..24 {
        posted.push(post_in(&app, &owner, &owner_identity, &rust, &format!("rust {n}")).await);
        post_in(&app, &owner, &owner_identity, &go, &format!("go {n}")).await;
    }
    let first_page = "{ feed(first: 20) { pageInfo { hasNextPage } edges { node { id content } } } }";
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    let expected = newest_posts(&app, &[&rust, &go]).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), expected[..20]);
    for size in [5, 20] {
        assert_eq!(whole_feed(&app, &reader.access, size).await, (expected.clone(), true), "pages of {size}");
    }

    // The oldest rust post pinned: its circle keeps it first, the feed still orders it by time.
    let pin = "mutation($id: ID!) { setPostPinned(id: $id, pinned: true) { isTop } }";
    data(&app.gql_as(&owner.access, pin, json!({ "id": posted[0] })).await);
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), expected[..20]);
    assert_eq!(whole_feed(&app, &reader.access, 20).await, (expected.clone(), true));

    // A new post heads it; a deleted one leaves it.
    let newest = post_in(&app, &owner, &owner_identity, &go, "go, newest").await;
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"])[0], newest);
    let delete = "mutation($id: ID!) { deletePost(id: $id) { id } }";
    data(&app.gql_as(&owner.access, delete, json!({ "id": newest })).await);
    let second = expected[1].clone();
    data(&app.gql_as(&owner.access, delete, json!({ "id": second })).await);
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    let expected = newest_posts(&app, &[&rust, &go]).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), expected[..20]);
    assert!(!expected.contains(&second));

    // Leaving a circle takes its posts out of the feed; a circle with fewer posts than a page
    // ends it.
    data(
        &app.gql_as(&reader.access, "mutation($c: ID!) { leaveCircle(circleId: $c) { id } }", json!({ "c": rust }))
            .await,
    );
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    let go_only = newest_posts(&app, &[&go]).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), go_only[..20]);
    let small = circle_of(&app, &owner, &owner_identity, "Crabs").await;
    let crab = post_in(&app, &owner, &owner_identity, &small, "a crab").await;
    data(
        &app.gql_as(&reader.access, "mutation($c: ID!) { leaveCircle(circleId: $c) { id } }", json!({ "c": go })).await,
    );
    data(&app.gql_as(&reader.access, join, json!({ "c": small, "i": reader_identity })).await);
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    assert_eq!(data(&body)["feed"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(ids(&data(&body)["feed"]["edges"]), [crab]);
}

/// The merged feed is exact past a circle's kept page (its 21st post), and a pinned post, which
/// heads its circle's page, takes its place by time in the feed; both served warm.
#[tokio::test]
async fn the_merged_feed_is_exact_past_a_kept_page_and_with_pinned_posts() {
    let app = spawn_app().await;
    let Circle { owner, owner_identity, reader, circle } = Circle::new(&app).await;
    // One more post than a circle keeps.
    let mut posted = Vec::new();
    for n in 0..21 {
        posted.push(post_in(&app, &owner, &owner_identity, &circle, &format!("post {n}")).await);
    }
    let first_page = "{ feed(first: 20) { pageInfo { hasNextPage } edges { node { id } } } }";
    let expected = newest_posts(&app, &[&circle]).await;
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), expected[..20]);
    assert_eq!(data(&body)["feed"]["pageInfo"]["hasNextPage"], true, "the 21st post is past the kept page");

    // The oldest post pinned: the circle's own page puts it first; the feed still by time.
    let pin = "mutation($id: ID!) { setPostPinned(id: $id, pinned: true) { isTop } }";
    data(&app.gql_as(&owner.access, pin, json!({ "id": posted[0] })).await);
    let circle_page = "query($id: ID!) { circle(id: $id) { posts(first: 2) { edges { node { id } } } } }";
    let body = app.gql_as(&reader.access, circle_page, json!({ "id": circle })).await;
    assert_eq!(ids(&data(&body)["circle"]["posts"]["edges"]), [posted[0].clone(), expected[0].clone()]);
    let body = warm(&app, Some(&reader.access), first_page, json!({})).await;
    assert_eq!(ids(&data(&body)["feed"]["edges"]), expected[..20]);
    assert_eq!(data(&body)["feed"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(whole_feed(&app, &reader.access, 20).await, (expected, true));
}

/// How many requests the response cache answered so far.
async fn response_hits(app: &TestApp) -> f64 {
    app.metric(r#"cache_responses_total{outcome="hit"}"#).await
}

/// A query's whole response is kept for the viewer who asked: the same query from the same viewer
/// is answered from it; another viewer, other variables or another query text are not; a write to
/// anything it read drops it, a write to anything else does not.
#[tokio::test]
async fn whole_responses_are_kept_per_viewer_and_dropped_by_the_writes_they_read() {
    let app = spawn_app().await;
    let Circle { owner, owner_identity, reader, circle } = Circle::new(&app).await;
    let post = post_in(&app, &owner, &owner_identity, &circle, "hello").await;
    let vars = json!({ "id": circle });
    let liked = |body: &serde_json::Value| {
        let node = &data(body)["circle"]["posts"]["edges"][0]["node"];
        (node["likeCount"].as_i64(), node["viewerHasLiked"].as_bool())
    };

    // The reader's feed. The first read loads the cache (it ran statements, so its response is
    // not kept); the second is answered by the cache's entries and lists, and kept; the third is
    // that kept response.
    let body = app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await;
    assert_eq!(liked(&body), (Some(0), Some(false)));
    let hits = response_hits(&app).await;
    assert_eq!(app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await, body);
    assert_eq!(response_hits(&app).await - hits, 0.0, "a response computed with statements is not kept");
    let before = app.statements().await;
    let again = app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await;
    assert_eq!(app.statements().await - before, 0);
    assert_eq!(body, again);
    assert_eq!(response_hits(&app).await - hits, 1.0, "the repeat was answered from the kept response");

    // The reader likes the post. Nobody is answered with a response from before the like: the
    // reader sees their like, the owner and an anonymous visitor see the count only.
    let like = "mutation($id: ID!) { likePost(postId: $id) { likeCount } }";
    data(&app.gql_as(&reader.access, like, json!({ "id": post })).await);
    let hits = response_hits(&app).await;
    let body = app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await;
    assert_eq!(liked(&body), (Some(1), Some(true)));
    let body = app.gql_as(&owner.access, CIRCLE_FEED, vars.clone()).await;
    assert_eq!(liked(&body), (Some(1), Some(false)), "another viewer gets their own response");
    let body = app.gql(CIRCLE_FEED, vars.clone()).await;
    assert_eq!(liked(&body), (Some(1), Some(false)));
    assert_eq!(response_hits(&app).await - hits, 0.0, "a like drops the responses that read the post");

    // Kept per viewer: once the cache holds what the feed reads, each viewer's repeat is a hit and
    // says what that viewer was told.
    let mut hits = 0.0;
    for _ in 0..2 {
        hits = response_hits(&app).await;
        assert_eq!(liked(&app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await), (Some(1), Some(true)));
        assert_eq!(liked(&app.gql_as(&owner.access, CIRCLE_FEED, vars.clone()).await), (Some(1), Some(false)));
        assert_eq!(liked(&app.gql(CIRCLE_FEED, vars.clone()).await), (Some(1), Some(false)));
    }
    assert_eq!(response_hits(&app).await - hits, 3.0);

    // Other variables are another response.
    let other = json!({ "id": uuid::Uuid::new_v4() });
    let hits = response_hits(&app).await;
    assert_eq!(data(&app.gql(CIRCLE_FEED, other).await)["circle"], serde_json::Value::Null);
    assert_eq!(response_hits(&app).await - hits, 0.0);

    // A write to something the feed did not read leaves its responses kept.
    let kim = app.register("kim@example.com").await;
    let kim_identity = app.apply(&kim, "APPRENTICE", "software").await;
    let body = app
        .gql_as(
            &kim.access,
            "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name } }",
            json!({ "id": kim_identity, "i": { "name": "Kim" } }),
        )
        .await;
    data(&body);
    let hits = response_hits(&app).await;
    assert_eq!(liked(&app.gql_as(&reader.access, CIRCLE_FEED, vars.clone()).await), (Some(1), Some(true)));
    assert_eq!(response_hits(&app).await - hits, 1.0, "an unrelated write does not drop the feed");

    // The owner edits the post's author profile: the feed shows the author, so it is dropped.
    let feed_with_name = "query($id: ID!) { circle(id: $id) { posts(first: 20) {
        edges { node { id author { profile { name } } } } } } }";
    let body = app.gql(feed_with_name, vars.clone()).await;
    let name = |body: &serde_json::Value| {
        data(body)["circle"]["posts"]["edges"][0]["node"]["author"]["profile"]["name"].as_str().map(String::from)
    };
    let before = name(&body);
    assert_eq!(name(&app.gql(feed_with_name, vars.clone()).await), before);
    let body = app
        .gql_as(
            &owner.access,
            "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name } }",
            json!({ "id": owner_identity, "i": { "name": "Owner, renamed" } }),
        )
        .await;
    data(&body);
    assert_eq!(name(&app.gql(feed_with_name, vars.clone()).await).as_deref(), Some("Owner, renamed"));
}

/// A query that reads what the cache does not hold (the viewer's own account), one that fails and
/// a batch are computed every time.
#[tokio::test]
async fn responses_that_read_outside_the_cache_or_do_something_are_never_kept() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let sam = app.register("sam@example.com").await;
    let hits = response_hits(&app).await;
    for _ in 0..3 {
        let before = app.statements().await;
        let body = app.gql_as(&sam.access, "{ me { email } }", json!({})).await;
        assert_eq!(data(&body)["me"]["email"], "sam@example.com");
        assert!(app.statements().await > before, "`me` reads the users table every time");
    }
    for _ in 0..3 {
        let body = app.gql("query($id: ID!) { course(id: $id) { id } }", json!({ "id": "not-an-id" })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
    }
    let batch = json!([{ "query": "{ domains { name } }" }, { "query": "{ domains { name } }" }]);
    for _ in 0..3 {
        let response = app.http.post(app.url("/graphql")).json(&batch).send().await.expect("batch");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body.as_array().map(Vec::len), Some(2));
    }
    assert_eq!(response_hits(&app).await - hits, 0.0, "none of these was answered from a kept response");

    // A public query read twice is kept (the test above is not vacuous).
    for _ in 0..2 {
        data(&app.gql("{ __typename }", json!({})).await);
    }
    assert_eq!(response_hits(&app).await - hits, 1.0);
}

/// Readers hammer a course while its owner renames it: after each rename returns, every read
/// started after it says the new title; no response kept from before the rename is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_racing_concurrent_readers_is_never_hidden_by_a_kept_response() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let read = "query($id: ID!) { course(id: $id) { title mentor { profile { name } } } }";
    let rename = "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { title } }";
    let done = std::sync::atomic::AtomicBool::new(false);
    let reader = || async {
        let mut reads = 0u32;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let body = app.gql(read, json!({ "id": course })).await;
            assert!(data(&body)["course"]["title"].is_string());
            reads += 1;
        }
        reads
    };
    let writer = async {
        for round in 0..25 {
            let title = format!("Rust, take {round}");
            let body = app.gql_as(&ada.session.access, rename, json!({ "id": course, "i": { "title": title } })).await;
            assert_eq!(data(&body)["updateCourse"]["title"], title.as_str());
            for _ in 0..3 {
                let body = app.gql(read, json!({ "id": course })).await;
                assert_eq!(data(&body)["course"]["title"], title.as_str(), "round {round}: a read after the write");
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (reads, ()) = tokio::join!(futures_util::future::join_all((0..8).map(|_| reader())), writer);
    assert!(reads.iter().sum::<u32>() > 100, "the readers ran alongside the writer: {reads:?}");
    let title = {
        use sea_orm::EntityTrait;
        let id: uuid::Uuid = course.parse().expect("course id");
        let row = entity::courses::Entity::find_by_id(id).one(&app.db().await).await.expect("query").expect("row");
        row.title
    };
    assert_eq!(title, "Rust, take 24");
    let body = app.gql(read, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["title"], "Rust, take 24");
}

/// The catalogue's later pages are kept as well, under the listing's generation: paging on by
/// cursor runs no SQL when a page is read again, and a course change (archived, renamed) is read
/// back at once on the pages kept before it.
#[tokio::test]
async fn later_catalogue_pages_are_kept_and_follow_every_write() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let mut cheapest_first = Vec::new();
    for price in 1..=5 {
        let input = json!({ "title": format!("Rust {price}"), "price": format!("{price}0.00"), "durationHours": 10,
            "difficulty": "BEGINNER", "tags": ["rust"] });
        cheapest_first.push(app.course_with(&ada, input, 1, true).await);
    }
    const PAGED: &str =
        "query($after: String) { courses(first: 2, after: $after, orderBy: {field: PRICE, direction: ASC}) {
        edges { node { id title } } pageInfo { hasNextPage endCursor } } }";
    let body = warm(&app, None, PAGED, json!({})).await;
    assert_eq!(ids(&data(&body)["courses"]["edges"]), cheapest_first[..2]);
    let cursor = data(&body)["courses"]["pageInfo"]["endCursor"].clone();
    let body = warm(&app, None, PAGED, json!({ "after": cursor })).await;
    assert_eq!(ids(&data(&body)["courses"]["edges"]), cheapest_first[2..4]);
    let next = data(&body)["courses"]["pageInfo"]["endCursor"].clone();
    let body = warm(&app, None, PAGED, json!({ "after": next })).await;
    assert_eq!(ids(&data(&body)["courses"]["edges"]), cheapest_first[4..]);
    assert_eq!(data(&body)["courses"]["pageInfo"]["hasNextPage"], false);

    // A cursor a client made up (well-formed, but not the values of its row) is answered from the
    // database every time and never kept: what is kept is bounded by the catalogue's rows.
    use base64::Engine;
    let made_up = json!({ "k": [{ "Num": "15.00" }], "id": cheapest_first[1], "o": "a" });
    let made_up = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(made_up.to_string());
    for _ in 0..2 {
        let before = app.statements().await;
        let body = app.gql(PAGED, json!({ "after": made_up })).await;
        assert_eq!(ids(&data(&body)["courses"]["edges"]), cheapest_first[1..3], "{body}");
        assert!(app.statements().await > before, "a made-up cursor's page is read from the database");
    }

    // The third course is archived and the fourth renamed: the kept second page shows both at once.
    let archive = "mutation($id: ID!) { archiveCourse(id: $id) { status } }";
    data(&app.gql_as(&ada.session.access, archive, json!({ "id": cheapest_first[2] })).await);
    let rename = "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { title } }";
    let body = app
        .gql_as(&ada.session.access, rename, json!({ "id": cheapest_first[3], "i": { "title": "Rust, renamed" } }))
        .await;
    data(&body);
    let body = warm(&app, None, PAGED, json!({ "after": cursor })).await;
    let edges = &data(&body)["courses"]["edges"];
    assert_eq!(ids(edges), [cheapest_first[3].clone(), cheapest_first[4].clone()]);
    assert_eq!(edges[0]["node"]["title"], "Rust, renamed");
}
