//! Courses and contents: lifecycle, permissions, validation, visibility, lists and their cost.

use crate::helpers::*;
use serde_json::{json, Value};

const UPDATE: &str =
    "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { id title price } }";
const PUBLISH: &str = "mutation($id: ID!) { publishCourse(id: $id) { status } }";
const ARCHIVE: &str = "mutation($id: ID!) { archiveCourse(id: $id) { status } }";
const ADD: &str =
    "mutation($c: ID!, $i: AddCourseContentInput!) { addCourseContent(courseId: $c, input: $i) { id orderIndex } }";
const UPDATE_CONTENT: &str =
    "mutation($id: ID!, $i: UpdateCourseContentInput!) { updateCourseContent(id: $id, input: $i) { id title } }";
const REMOVE: &str = "mutation($id: ID!) { removeCourseContent(id: $id) { id } }";
const REORDER: &str =
    "mutation($c: ID!, $ids: [ID!]!) { reorderCourseContents(courseId: $c, contentIds: $ids) { id orderIndex } }";
const CREATE: &str = "mutation($i: CreateCourseInput!) { createCourse(input: $i) { id status price } }";
const COURSE: &str =
    "query($id: ID!) { course(id: $id) { id status contents { id title orderIndex isFree locked contentUrl } } }";

async fn content_ids(app: &TestApp, token: Option<&str>, course: &str) -> Vec<String> {
    let body = app.gql_with(token, COURSE, json!({ "id": course })).await;
    data(&body)["course"]["contents"]
        .as_array()
        .map(|items| items.iter().filter_map(|c| c["id"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_course_moves_draft_published_archived_and_back() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(10), 0, false).await;
    let token = ada.session.access.as_str();

    let body = app.gql_as(token, PUBLISH, json!({ "id": course })).await;
    assert_eq!(error_code(&body), "CONFLICT", "publishing needs content: {body}");
    let body = app.gql_as(token, ARCHIVE, json!({ "id": course })).await;
    assert_eq!(error_code(&body), "CONFLICT", "a draft is not archived: {body}");

    data(&app.gql_as(token, ADD, json!({ "c": course, "i": { "title": "Intro", "contentType": "TEXT" } })).await);
    for _ in 0..2 {
        let body = app.gql_as(token, PUBLISH, json!({ "id": course })).await;
        assert_eq!(data(&body)["publishCourse"]["status"], "PUBLISHED", "repeat is a no-op success");
    }
    for _ in 0..2 {
        let body = app.gql_as(token, ARCHIVE, json!({ "id": course })).await;
        assert_eq!(data(&body)["archiveCourse"]["status"], "ARCHIVED");
    }
    let body = app.gql_as(token, UPDATE, json!({ "id": course, "i": { "title": "New" } })).await;
    assert_eq!(error_code(&body), "CONFLICT", "archived courses are read-only: {body}");
    let body = app.gql_as(token, PUBLISH, json!({ "id": course })).await;
    assert_eq!(data(&body)["publishCourse"]["status"], "PUBLISHED");
}

#[tokio::test]
async fn contents_stay_densely_ordered_through_add_reorder_and_remove() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 3, true).await;
    let token = ada.session.access.as_str();
    let ids = content_ids(&app, Some(token), &course).await;
    assert_eq!(ids.len(), 3);

    let reversed: Vec<&String> = ids.iter().rev().collect();
    let body = app.gql_as(token, REORDER, json!({ "c": course, "ids": reversed })).await;
    let order: Vec<i64> = data(&body)["reorderCourseContents"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["orderIndex"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(order, vec![0, 1, 2]);
    assert_eq!(content_ids(&app, Some(token), &course).await, ids.iter().rev().cloned().collect::<Vec<_>>());

    // Not a permutation of the course's contents: refused, order unchanged.
    let before = app.snapshot("course_contents").await;
    for bad in [json!([ids[0], ids[1]]), json!([ids[0], ids[0], ids[1]]), json!([ids[0], ids[1], ids[2], ids[2]])] {
        let body = app.gql_as(token, REORDER, json!({ "c": course, "ids": bad })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "contentIds");
    }
    assert_eq!(app.snapshot("course_contents").await, before);

    // Removing the middle item closes the gap.
    let current = content_ids(&app, Some(token), &course).await;
    data(&app.gql_as(token, REMOVE, json!({ "id": current[1] })).await);
    let body = app.gql_as(token, COURSE, json!({ "id": course })).await;
    let contents = data(&body)["course"]["contents"].as_array().expect("contents").clone();
    assert_eq!(contents.len(), 2);
    assert_eq!(contents.iter().map(|c| c["orderIndex"].as_i64().unwrap_or(-1)).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(contents[0]["id"], current[0].as_str());
    assert_eq!(contents[1]["id"], current[2].as_str());

    // A published course keeps at least one item.
    data(&app.gql_as(token, REMOVE, json!({ "id": current[0] })).await);
    let body = app.gql_as(token, REMOVE, json!({ "id": current[2] })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
}

#[tokio::test]
async fn paid_contents_open_to_enrolled_students_and_the_master_only() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 2, true).await;
    let student = app.register("sam@example.com").await;
    let outsider = app.register("eve@example.com").await;

    let view = |body: &Value| -> Vec<(bool, bool)> {
        data(body)["course"]["contents"]
            .as_array()
            .expect("contents")
            .iter()
            .map(|c| (c["locked"].as_bool().unwrap_or(true), c["contentUrl"].is_string()))
            .collect()
    };
    for token in [None, Some(outsider.access.as_str()), Some(student.access.as_str())] {
        let body = app.gql_with(token, COURSE, json!({ "id": course })).await;
        assert_eq!(view(&body), vec![(false, true), (true, false)], "free item open, paid item locked");
    }
    data(
        &app.gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course })).await,
    );
    for token in [&student.access, &ada.session.access, &world.admin.access] {
        let body = app.gql_as(token, COURSE, json!({ "id": course })).await;
        assert_eq!(view(&body), vec![(false, true), (false, true)]);
    }
    // After dropping, the paid item locks again.
    data(
        &app.gql_as(
            &student.access,
            "mutation($c: ID!) { dropCourse(courseId: $c) { status } }",
            json!({ "c": course }),
        )
        .await,
    );
    let body = app.gql_as(&student.access, COURSE, json!({ "id": course })).await;
    assert_eq!(view(&body), vec![(false, true), (true, false)]);
}

#[tokio::test]
async fn drafts_are_visible_to_their_master_and_admins_only() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let draft = app.course(&ada, None, 1, false).await;
    let other = app.register("eve@example.com").await;
    for token in [None, Some(other.access.as_str())] {
        let body = app.gql_with(token, COURSE, json!({ "id": draft })).await;
        assert!(data(&body)["course"].is_null(), "{body}");
        let body = app
            .gql_with(token, "{ courses(filter: { status: DRAFT }) { totalCount edges { node { id } } } }", json!({}))
            .await;
        assert_eq!(data(&body)["courses"]["totalCount"], 0, "{body}");
    }
    for token in [&ada.session.access, &world.admin.access] {
        let body = app.gql_as(token, COURSE, json!({ "id": draft })).await;
        assert_eq!(data(&body)["course"]["id"], draft.as_str());
        let body = app.gql_as(token, "{ courses(filter: { status: DRAFT }) { totalCount } }", json!({})).await;
        assert_eq!(data(&body)["courses"]["totalCount"], 1);
    }
    let body = app.gql("{ courses { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["courses"]["totalCount"], 0, "drafts are not in the public list");
}

/// Every course mutation, by every kind of caller. A refused call changes nothing.
#[tokio::test]
async fn permission_matrix_for_course_mutations() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let bob = app.master(&world, "bob@example.com", "software").await; // another master
    let apprentice = app.register("sam@example.com").await;
    app.apply(&apprentice, "APPRENTICE", "software").await;
    let other = app.register("eve@example.com").await;
    let course = app.course(&ada, Some(5), 2, true).await;
    let contents = content_ids(&app, Some(&ada.session.access), &course).await;

    // In an order the owner can run them one after another.
    let mutations: Vec<(&str, &str, Value)> = vec![
        ("updateCourse", UPDATE, json!({ "id": course, "i": { "title": "Hijacked" } })),
        ("updateCourseContent", UPDATE_CONTENT, json!({ "id": contents[0], "i": { "title": "Hijacked" } })),
        ("reorderCourseContents", REORDER, json!({ "c": course, "ids": [contents[1], contents[0]] })),
        ("addCourseContent", ADD, json!({ "c": course, "i": { "title": "X", "contentType": "TEXT" } })),
        ("removeCourseContent", REMOVE, json!({ "id": contents[1] })),
        (
            "createCourse",
            CREATE,
            json!({ "i": { "identityId": ada.identity, "title": "X", "price": "1.00", "durationHours": 1 } }),
        ),
        ("archiveCourse", ARCHIVE, json!({ "id": course })),
    ];
    let tables = ["courses", "course_contents"];
    let callers: Vec<(&str, Option<&str>, &str)> = vec![
        ("anonymous", None, "UNAUTHENTICATED"),
        ("another user", Some(&other.access), "FORBIDDEN"),
        ("an apprentice", Some(&apprentice.access), "FORBIDDEN"),
        ("another master", Some(&bob.session.access), "FORBIDDEN"),
        ("an admin", Some(&world.admin.access), "FORBIDDEN"),
    ];
    for (caller, token, code) in &callers {
        for (name, query, variables) in &mutations {
            let before = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
            let body = app.gql_with(*token, query, variables.clone()).await;
            assert_eq!(error_code(&body), *code, "{name} by {caller}: {body}");
            assert!(body["data"].is_null(), "{name} by {caller}");
            let after = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
            assert_eq!(before, after, "{name} by {caller} changed something");
        }
    }
    // The owner may do each of them.
    for (name, query, variables) in &mutations {
        let body = app.gql_as(&ada.session.access, query, variables.clone()).await;
        assert!(body["errors"].is_null(), "{name} by the owner: {body}");
    }
    // A banned owner (token still valid) cannot act any more.
    app.exec("UPDATE users SET status = 'banned' WHERE email = 'bob@example.com'").await;
    let bob_course = json!({ "i": { "identityId": bob.identity, "title": "X", "price": "1.00", "durationHours": 1 } });
    let body = app.gql_as(&bob.session.access, CREATE, bob_course).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn only_a_verified_master_identity_creates_courses() {
    let app = spawn_app().await;
    let world = app.world().await;
    let pending = app.register("pending@example.com").await;
    let pending_identity = app.apply(&pending, "MASTER", "software").await;
    let apprentice_identity = app.apply(&pending, "APPRENTICE", "software").await;
    let input =
        |identity: &str| json!({ "i": { "identityId": identity, "title": "X", "price": "1.00", "durationHours": 1 } });
    for identity in [&pending_identity, &apprentice_identity] {
        let body = app.gql_as(&pending.access, CREATE, input(identity)).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    }
    assert_eq!(app.count("courses").await, 0);
    let _ = world;
}

#[tokio::test]
async fn bad_course_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(5), 1, false).await;
    let token = ada.session.access.as_str();
    let base = json!({ "identityId": ada.identity, "title": "Rust", "price": "10.00", "durationHours": 3 });
    let with = |key: &str, value: Value| {
        let mut input = base.clone();
        input[key] = value;
        json!({ "i": input })
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("title", json!("")), "BAD_USER_INPUT", "input.title"),
        (with("title", json!("x".repeat(201))), "BAD_USER_INPUT", "input.title"),
        (with("price", json!("-1.00")), "BAD_USER_INPUT", "input.price"),
        (with("price", json!("1.001")), "BAD_USER_INPUT", "input.price"),
        (with("price", json!("100000000.00")), "BAD_USER_INPUT", "input.price"),
        (with("durationHours", json!(0)), "BAD_USER_INPUT", "input.durationHours"),
        (with("maxStudents", json!(0)), "BAD_USER_INPUT", "input.maxStudents"),
        (with("coverImage", json!("javascript:alert(1)")), "BAD_USER_INPUT", "input.coverImage"),
        (with("tags", json!(vec!["t"; 21])), "BAD_USER_INPUT", "input.tags"),
        (with("identityId", json!("not-a-uuid")), "BAD_USER_INPUT", "input.identityId"),
        (with("identityId", json!(uuid::Uuid::new_v4().to_string())), "NOT_FOUND", "<no field>"),
    ];
    let before = app.snapshot("courses").await;
    for (variables, code, field) in &cases {
        let body = app.gql_as(token, CREATE, variables.clone()).await;
        assert_eq!(error_code(&body), *code, "{variables}: {body}");
        assert_eq!(error_field(&body), *field, "{variables}: {body}");
    }
    // An unknown enum value is refused by the schema itself.
    let body = app.gql_as(token, CREATE, with("difficulty", json!("EXTREME"))).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    let updates: Vec<(Value, &str)> = vec![
        (json!({ "id": course, "i": { "title": " " } }), "BAD_USER_INPUT"),
        (json!({ "id": course, "i": { "price": "-5" } }), "BAD_USER_INPUT"),
        (json!({ "id": uuid::Uuid::new_v4().to_string(), "i": { "title": "X" } }), "NOT_FOUND"),
        (json!({ "id": "nope", "i": { "title": "X" } }), "BAD_USER_INPUT"),
    ];
    for (variables, code) in &updates {
        let body = app.gql_as(token, UPDATE, variables.clone()).await;
        assert_eq!(error_code(&body), *code, "{variables}: {body}");
    }
    let content_cases: Vec<(Value, &str)> = vec![
        (json!({ "c": course, "i": { "title": "", "contentType": "TEXT" } }), "input.title"),
        (
            json!({ "c": course, "i": { "title": "x", "contentType": "TEXT", "contentUrl": "not a url" } }),
            "input.contentUrl",
        ),
        (
            json!({ "c": course, "i": { "title": "x", "contentType": "TEXT", "durationMinutes": -1 } }),
            "input.durationMinutes",
        ),
    ];
    for (variables, field) in &content_cases {
        let body = app.gql_as(token, ADD, variables.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{variables}: {body}");
        assert_eq!(error_field(&body), *field);
    }
    let body = app.gql_as(token, ADD, json!({ "c": course, "i": { "title": "x", "contentType": "PODCAST" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(app.snapshot("courses").await, before);
    assert_eq!(app.count("course_contents").await, 1);
}

#[tokio::test]
async fn course_lists_filter_order_and_page_without_gaps() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let dee = app.master(&world, "dee@example.com", "design").await;
    let mut ids = Vec::new();
    for (index, master) in [&ada, &ada, &ada, &dee, &dee].iter().enumerate() {
        let course = app.course(master, None, 1, true).await;
        let price = format!("{}.50", 10 * (index + 1));
        data(&app.gql_as(&master.session.access, UPDATE, json!({ "id": course, "i": { "price": price } })).await);
        ids.push(course);
    }
    let list = |filter: Value, order: Value, first: i64, after: Value| {
        let app = &app;
        async move {
            let body = app
                .gql(
                    "query($f: CourseFilterInput, $o: CourseOrderBy, $n: Int, $a: String) {
                       courses(filter: $f, orderBy: $o, first: $n, after: $a) {
                         totalCount pageInfo { hasNextPage endCursor } edges { node { id price } } } }",
                    json!({ "f": filter, "o": order, "n": first, "a": after }),
                )
                .await;
            data(&body)["courses"].clone()
        }
    };
    let page = list(json!({ "domain": "design" }), json!(null), 10, json!(null)).await;
    assert_eq!(page["totalCount"], 2);
    let page = list(json!({ "minPrice": "20.00", "maxPrice": "40.00" }), json!(null), 10, json!(null)).await;
    assert_eq!(page["totalCount"], 2, "{page}");
    let page = list(json!({ "tag": "rust" }), json!(null), 10, json!(null)).await;
    assert_eq!(page["totalCount"], 5);
    let page = list(json!({ "tag": "cooking" }), json!(null), 10, json!(null)).await;
    assert_eq!(page["totalCount"], 0);
    let page = list(json!({ "mentorId": dee.identity }), json!(null), 10, json!(null)).await;
    assert_eq!(page["totalCount"], 2);

    // Cheapest first, two at a time: every course exactly once, in price order.
    let mut seen = Vec::new();
    let mut after = json!(null);
    loop {
        let page = list(json!(null), json!({ "field": "PRICE", "direction": "ASC" }), 2, after).await;
        for edge in page["edges"].as_array().expect("edges") {
            seen.push(edge["node"]["price"].as_str().expect("price").to_string());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, vec!["10.50", "20.50", "30.50", "40.50", "50.50"]);

    let body = app.gql("{ courses(first: 101) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app.gql(r#"{ courses(after: "garbage") { totalCount } }"#, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "after");
}

/// The N+1 check: a page of 50 courses with mentor, profile, stats, contents count and course stats
/// runs the same number of SQL statements as a page of 5.
#[tokio::test]
async fn listing_courses_runs_a_fixed_number_of_statements() {
    // The database path: with the cache on, a warm first page runs no SQL at all (tests/api/cache.rs).
    // A 25 ms batch window: a debug build on a busy 2-core box can take longer than the default
    // 4 ms to register all 50 items' keys, and split a batch.
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let world = app.world().await;
    let mut masters = Vec::new();
    for index in 0..5 {
        masters.push(app.master(&world, &format!("m{index}@example.com"), "software").await);
    }
    for index in 0..50 {
        app.course(&masters[index % 5], Some(20), 2, true).await;
    }
    let query = "query($n: Int) { courses(first: $n) { edges { node {
        id title price contentsCount
        stats { enrolledStudents averageRating reviewCount }
        mentor { id profile { name hourlyRate skills } stats { courseCount studentCount averageRating } }
        contents { title locked }
        reviews(first: 2) { totalCount edges { node { id rating } } }
    } } } }";
    let mut costs = Vec::new();
    for n in [5, 50] {
        // The fewest of five runs: DataLoader batches by time (a few ms), and a 2-core box running
        // the whole suite can split a batch in two now and then. An N+1 would cost 50+ every time.
        let mut fewest = u64::MAX;
        for _ in 0..5 {
            let before = app.statements().await;
            let body = app.gql(query, json!({ "n": n })).await;
            assert_eq!(data(&body)["courses"]["edges"].as_array().map(Vec::len), Some(n as usize));
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 5 vs 50 courses: {costs:?}");
    // 6 relations plus the course review pages and their counts.
    assert!(costs[1] <= 10, "statements for 50 courses: {}", costs[1]);
    // A master's reviews page and count, batched across mentors too.
    let mentors = "query($n: Int) { mentors(first: $n) { edges { node { id
        reviews(first: 2) { totalCount edges { node { id rating } } } } } } }";
    let mut costs = Vec::new();
    for n in [2, 5] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql(mentors, json!({ "n": n })).await;
            assert_eq!(data(&body)["mentors"]["edges"].as_array().map(Vec::len), Some(n as usize));
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 vs 5 mentors: {costs:?}");
}

#[tokio::test]
async fn bad_content_edits_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 2, false).await;
    let token = ada.session.access.as_str();
    let ids = content_ids(&app, Some(token), &course).await;
    let before = app.snapshot("course_contents").await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (UPDATE_CONTENT, json!({ "id": ids[0], "i": { "title": "x".repeat(201) } }), "BAD_USER_INPUT", "input.title"),
        (
            UPDATE_CONTENT,
            json!({ "id": ids[0], "i": { "contentUrl": "mailto:x" } }),
            "BAD_USER_INPUT",
            "input.contentUrl",
        ),
        (
            UPDATE_CONTENT,
            json!({ "id": ids[0], "i": { "durationMinutes": 10001 } }),
            "BAD_USER_INPUT",
            "input.durationMinutes",
        ),
        (
            UPDATE_CONTENT,
            json!({ "id": ids[0], "i": { "contentText": "x".repeat(100_001) } }),
            "BAD_USER_INPUT",
            "input.contentText",
        ),
        (
            UPDATE_CONTENT,
            json!({ "id": uuid::Uuid::new_v4().to_string(), "i": { "title": "x" } }),
            "NOT_FOUND",
            "<no field>",
        ),
        (REMOVE, json!({ "id": uuid::Uuid::new_v4().to_string() }), "NOT_FOUND", "<no field>"),
        (REMOVE, json!({ "id": "12" }), "BAD_USER_INPUT", "id"),
        (REORDER, json!({ "c": course, "ids": ["x", ids[1]] }), "BAD_USER_INPUT", "contentIds[0]"),
        (REORDER, json!({ "c": uuid::Uuid::new_v4().to_string(), "ids": [ids[0], ids[1]] }), "NOT_FOUND", "<no field>"),
    ];
    for (query, variables, code, field) in cases {
        let body = app.gql_as(token, query, variables.clone()).await;
        assert_eq!(error_code(&body), code, "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app.gql_as(token, UPDATE_CONTENT, json!({ "id": ids[0], "i": { "contentType": "SLIDES" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.snapshot("course_contents").await, before);
}
