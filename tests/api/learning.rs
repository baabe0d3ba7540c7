//! Enrollment (no oversell under concurrency) and learning progress.

use crate::helpers::*;
use serde_json::{json, Value};

const ENROLL: &str = "mutation($c: ID!) { enroll(courseId: $c) { id status } }";
const DROP: &str = "mutation($c: ID!) { dropCourse(courseId: $c) { id status } }";
const PROGRESS: &str = "mutation($id: ID!, $p: Float!, $m: Int = 0) { recordProgress(contentId: $id, progressPercentage: $p, studyMinutes: $m) { progressPercentage isCompleted studyTime learningRecord { status progressPercentage totalStudyTime completedAt } } }";

async fn current_students(app: &TestApp, course: &str) -> i64 {
    let body = app.gql("query($id: ID!) { course(id: $id) { currentStudents } }", json!({ "id": course })).await;
    data(&body)["course"]["currentStudents"].as_i64().expect("currentStudents")
}

#[tokio::test]
async fn fifty_concurrent_students_never_oversell_ten_seats() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(10), 1, true).await;
    let mut students = Vec::new();
    for index in 0..50 {
        students.push(app.register(&format!("student{index}@example.com")).await);
    }
    let attempts = students.iter().map(|s| app.gql_as(&s.access, ENROLL, json!({ "c": course })));
    let results = futures_util::future::join_all(attempts).await;
    let enrolled = results.iter().filter(|b| b["data"]["enroll"]["id"].is_string()).count();
    let full = results.iter().filter(|b| error_code(b) == "CONFLICT").count();
    assert_eq!(
        enrolled,
        10,
        "{:?}",
        results.iter().filter(|b| b["errors"].is_array() && error_code(b) != "CONFLICT").collect::<Vec<_>>()
    );
    assert_eq!(full, 40);
    assert_eq!(app.count("learning_records").await, 10);
    assert_eq!(current_students(&app, &course).await, 10);
    app.assert_no_drift();
}

#[tokio::test]
async fn enrolling_twice_returns_the_same_record_and_dropping_frees_the_seat() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(1), 1, true).await;
    let sam = app.register("sam@example.com").await;
    let kim = app.register("kim@example.com").await;

    let first = app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await;
    // The same student at once from several clients: still one record, one seat.
    let again =
        futures_util::future::join_all((0..5).map(|_| app.gql_as(&sam.access, ENROLL, json!({ "c": course })))).await;
    for body in &again {
        assert_eq!(data(body)["enroll"]["id"], data(&first)["enroll"]["id"]);
    }
    assert_eq!(current_students(&app, &course).await, 1);
    let body = app.gql_as(&kim.access, ENROLL, json!({ "c": course })).await;
    assert_eq!(error_code(&body), "CONFLICT", "full: {body}");

    let body = app.gql_as(&sam.access, DROP, json!({ "c": course })).await;
    assert_eq!(data(&body)["dropCourse"]["status"], "DROPPED");
    let body = app.gql_as(&sam.access, DROP, json!({ "c": course })).await;
    assert_eq!(data(&body)["dropCourse"]["status"], "DROPPED", "repeat is a no-op");
    assert_eq!(current_students(&app, &course).await, 0);
    let body = app.gql_as(&kim.access, ENROLL, json!({ "c": course })).await;
    assert_eq!(data(&body)["enroll"]["status"], "ENROLLED");
    assert_eq!(current_students(&app, &course).await, 1);
    let body = app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await;
    assert_eq!(error_code(&body), "CONFLICT", "sam's seat went to kim: {body}");
}

#[tokio::test]
async fn enrollment_is_refused_where_it_makes_no_sense() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let draft = app.course(&ada, None, 1, false).await;
    let open = app.course(&ada, None, 1, true).await;
    let sam = app.register("sam@example.com").await;
    let cases = [
        (None, open.clone(), "UNAUTHENTICATED"),
        (Some(sam.access.as_str()), draft.clone(), "NOT_FOUND"),
        (Some(ada.session.access.as_str()), open.clone(), "FORBIDDEN"),
        (Some(ada.session.access.as_str()), draft.clone(), "CONFLICT"),
        (Some(sam.access.as_str()), uuid::Uuid::new_v4().to_string(), "NOT_FOUND"),
        (Some(sam.access.as_str()), "nope".to_string(), "BAD_USER_INPUT"),
    ];
    for (token, course, code) in cases {
        let body = app.gql_with(token, ENROLL, json!({ "c": course })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let body = app.gql_as(&sam.access, DROP, json!({ "c": open })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "nothing to drop: {body}");
    assert_eq!(app.count("learning_records").await, 0);
    assert_eq!(current_students(&app, &open).await, 0);
}

#[tokio::test]
async fn progress_only_moves_forward_and_completes_the_course() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 2, true).await;
    let sam = app.register("sam@example.com").await;
    let body = app
        .gql_as(&sam.access, "query($id: ID!) { course(id: $id) { contents { id } } }", json!({ "id": course }))
        .await;
    let contents: Vec<String> = data(&body)["course"]["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect();

    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": 50.0, "m": 10 })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "not enrolled: {body}");
    data(&app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await);

    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": 50.0, "m": 10 })).await;
    let saved = &data(&body)["recordProgress"];
    assert_eq!(saved["progressPercentage"], 50.0);
    assert_eq!(saved["learningRecord"]["status"], "LEARNING");
    assert_eq!(saved["learningRecord"]["progressPercentage"], 25.0);

    // A lower value does not undo progress; minutes add up.
    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": 20.0, "m": 5 })).await;
    let saved = &data(&body)["recordProgress"];
    assert_eq!(saved["progressPercentage"], 50.0);
    assert_eq!(saved["studyTime"], 15);
    assert_eq!(saved["learningRecord"]["totalStudyTime"], 15);

    data(&app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": 100.0 })).await);
    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[1], "p": 100.0, "m": 30 })).await;
    let record = &data(&body)["recordProgress"]["learningRecord"];
    assert_eq!(record["status"], "COMPLETED");
    assert_eq!(record["progressPercentage"], 100.0);
    let completed_at = record["completedAt"].clone();
    assert!(completed_at.is_string());
    // completed_at is set once.
    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[1], "p": 100.0, "m": 1 })).await;
    assert_eq!(data(&body)["recordProgress"]["learningRecord"]["completedAt"], completed_at);

    let before = app.snapshot("content_progress").await;
    for (p, m, field) in [
        (-1.0, 0, "progressPercentage"),
        (100.5, 0, "progressPercentage"),
        (10.0, -1, "studyMinutes"),
        (10.0, 1441, "studyMinutes"),
    ] {
        let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": p, "m": m })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field);
    }
    let body = app.gql_as(&sam.access, PROGRESS, json!({ "id": uuid::Uuid::new_v4().to_string(), "p": 1.0 })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(app.snapshot("content_progress").await, before);

    let body = app
        .gql_as(&sam.access, "{ myLearning { totalCount edges { node { status course { id } } } } }", json!({}))
        .await;
    assert_eq!(data(&body)["myLearning"]["totalCount"], 1);
    assert_eq!(data(&body)["myLearning"]["edges"][0]["node"]["course"]["id"], course.as_str());
    let body = app.gql_as(&sam.access, "{ myLearning(status: LEARNING) { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["myLearning"]["totalCount"], 0);
    let body = app.gql("{ myLearning { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    let body = app.gql_as(&sam.access, DROP, json!({ "c": course })).await;
    assert_eq!(error_code(&body), "CONFLICT", "a completed course is not dropped: {body}");
}

/// enroll / dropCourse / recordProgress by each kind of caller; refusals change nothing.
#[tokio::test]
async fn permission_matrix_for_learning_mutations() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let sam = app.register("sam@example.com").await;
    let eve = app.register("eve@example.com").await;
    let body = app.gql("query($id: ID!) { course(id: $id) { contents { id } } }", json!({ "id": course })).await;
    let content = data(&body)["course"]["contents"][0]["id"].as_str().expect("content").to_string();
    data(&app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await);

    let tables = ["learning_records", "content_progress", "courses"];
    let refused: Vec<(Option<&str>, &str, serde_json::Value, &str)> = vec![
        (None, ENROLL, json!({ "c": course }), "UNAUTHENTICATED"),
        (None, DROP, json!({ "c": course }), "UNAUTHENTICATED"),
        (None, PROGRESS, json!({ "id": content, "p": 10.0 }), "UNAUTHENTICATED"),
        (Some(&eve.access), DROP, json!({ "c": course }), "NOT_FOUND"),
        (Some(&eve.access), PROGRESS, json!({ "id": content, "p": 10.0 }), "FORBIDDEN"),
        (Some(&ada.session.access), ENROLL, json!({ "c": course }), "FORBIDDEN"),
        (Some(&ada.session.access), PROGRESS, json!({ "id": content, "p": 10.0 }), "FORBIDDEN"),
        (Some(&world.admin.access), PROGRESS, json!({ "id": content, "p": 10.0 }), "FORBIDDEN"),
    ];
    for (token, query, variables, code) in refused {
        let before = futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await;
        let body = app.gql_with(token, query, variables.clone()).await;
        assert_eq!(error_code(&body), code, "{variables}: {body}");
        assert_eq!(futures_util::future::join_all(tables.map(|t| app.snapshot(t))).await, before, "{variables}");
    }
    // The enrolled student may.
    data(&app.gql_as(&sam.access, PROGRESS, json!({ "id": content, "p": 10.0 })).await);
    data(&app.gql_as(&sam.access, DROP, json!({ "c": course })).await);
    // A banned student cannot act with a token issued before the ban.
    app.exec("UPDATE users SET status = 'banned' WHERE email = 'sam@example.com'").await;
    let body = app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
}

/// After a drop, the same student re-enrolling from ten clients at once takes one seat and moves
/// one record (the seat's lock serializes them; the others give their seat back).
#[tokio::test]
async fn ten_concurrent_re_enrollments_after_a_drop_take_one_seat() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, Some(5), 1, true).await;
    let sam = app.register("sam@example.com").await;
    let first = app.gql_as(&sam.access, ENROLL, json!({ "c": course })).await;
    data(&app.gql_as(&sam.access, DROP, json!({ "c": course })).await);
    assert_eq!(current_students(&app, &course).await, 0);
    let again =
        futures_util::future::join_all((0..10).map(|_| app.gql_as(&sam.access, ENROLL, json!({ "c": course })))).await;
    for body in &again {
        assert_eq!(data(body)["enroll"]["id"], data(&first)["enroll"]["id"], "{body}");
        assert_eq!(data(body)["enroll"]["status"], "ENROLLED", "{body}");
    }
    assert_eq!(current_students(&app, &course).await, 1);
    assert_eq!(app.count("learning_records").await, 1);
    app.assert_no_drift();
}

/// Progress read back per content ("resume here", checkmarks) and a course's students for its
/// master.
#[tokio::test]
async fn progress_is_read_back_per_content_and_the_master_sees_the_students() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 3, true).await;
    let sam = app.register("sam@example.com").await;
    let lee = app.register("lee@example.com").await;
    for student in [&sam, &lee] {
        data(&app.gql_as(&student.access, ENROLL, json!({ "c": course })).await);
    }
    let contents_query =
        "query($id: ID!) { course(id: $id) { contents { id viewerProgress { progressPercentage isCompleted } } } }";
    let body = app.gql_as(&sam.access, contents_query, json!({ "id": course })).await;
    let contents: Vec<String> = data(&body)["course"]["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|c| {
            assert!(c["viewerProgress"].is_null(), "nothing recorded yet: {c}");
            c["id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    data(&app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[0], "p": 100.0, "m": 20 })).await);
    data(&app.gql_as(&sam.access, PROGRESS, json!({ "id": contents[1], "p": 40.0, "m": 5 })).await);

    let body = app.gql_as(&sam.access, contents_query, json!({ "id": course })).await;
    let read = &data(&body)["course"]["contents"];
    assert_eq!(read[0]["viewerProgress"], json!({ "progressPercentage": 100.0, "isCompleted": true }));
    assert_eq!(read[1]["viewerProgress"], json!({ "progressPercentage": 40.0, "isCompleted": false }));
    assert!(read[2]["viewerProgress"].is_null());
    // Another viewer sees their own (none), anonymous sees none.
    let body = app.gql_as(&lee.access, contents_query, json!({ "id": course })).await;
    assert!(data(&body)["course"]["contents"][0]["viewerProgress"].is_null());
    let body = app.gql(contents_query, json!({ "id": course })).await;
    assert!(data(&body)["course"]["contents"][0]["viewerProgress"].is_null());

    let record_query = "{ myLearning { edges { node { lastContent { id }
        contents { content { id } progressPercentage isCompleted studyTime lastAccessedAt } } } } }";
    let body = app.gql_as(&sam.access, record_query, json!({})).await;
    let node = &data(&body)["myLearning"]["edges"][0]["node"];
    assert_eq!(node["lastContent"]["id"], contents[1].as_str(), "where to resume");
    let steps = node["contents"].as_array().expect("contents");
    assert_eq!(
        steps.iter().map(|s| s["content"]["id"].clone()).collect::<Vec<_>>(),
        contents.iter().map(|c| json!(c)).collect::<Vec<_>>()
    );
    assert_eq!((steps[0]["isCompleted"].clone(), steps[0]["studyTime"].clone()), (json!(true), json!(20)));
    assert_eq!(steps[1]["progressPercentage"], 40.0);
    assert_eq!((steps[2]["progressPercentage"].clone(), steps[2]["lastAccessedAt"].clone()), (json!(0.0), Value::Null));

    // The master sees the students, newest enrollment first, with their progress.
    let students = "query($id: ID!) { course(id: $id) { students(first: 10) { totalCount edges { node {
        student { id } progressPercentage contents { isCompleted } } } } } }";
    let body = app.gql_as(&ada.session.access, students, json!({ "id": course })).await;
    let list = &data(&body)["course"]["students"];
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["edges"][0]["node"]["student"]["id"], lee.user_id.as_str());
    assert_eq!(list["edges"][1]["node"]["student"]["id"], sam.user_id.as_str());
    assert_eq!(list["edges"][1]["node"]["contents"][0]["isCompleted"], true);
    // Students and strangers may not; a dropped student leaves the list.
    for token in [Some(sam.access.as_str()), None] {
        let body = app.gql_with(token, students, json!({ "id": course })).await;
        assert!(matches!(error_code(&body), "FORBIDDEN" | "UNAUTHENTICATED"), "{body}");
    }
    data(&app.gql_as(&lee.access, DROP, json!({ "c": course })).await);
    let body = app.gql_as(&ada.session.access, students, json!({ "id": course })).await;
    assert_eq!(data(&body)["course"]["students"]["totalCount"], 1);
}

const STUDENTS: &str = "query($id: ID!, $n: Int!) { course(id: $id) { students(first: $n) { totalCount edges { node {
    student { id displayName } progressPercentage lastContent { id } contents { content { id } isCompleted } } } } } }";

/// A course's students with their progress per content: pages, contents and progress batched.
#[tokio::test]
async fn a_course_students_page_runs_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 3, true).await;
    let body = app.gql("query($id: ID!) { course(id: $id) { contents { id } } }", json!({ "id": course })).await;
    let first_content = data(&body)["course"]["contents"][0]["id"].as_str().expect("content").to_string();
    for index in 0..8 {
        let student = app.register(&format!("s{index}@example.com")).await;
        data(&app.gql_as(&student.access, ENROLL, json!({ "c": course })).await);
        data(&app.gql_as(&student.access, PROGRESS, json!({ "id": first_content, "p": 10.0 })).await);
    }
    let mut costs = Vec::new();
    for n in [2, 8] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql_as(&ada.session.access, STUDENTS, json!({ "id": course, "n": n })).await;
            let edges = data(&body)["course"]["students"]["edges"].as_array().expect("edges").clone();
            assert_eq!(edges.len(), n as usize, "{body}");
            assert!(edges.iter().all(|e| e["node"]["contents"][0]["isCompleted"] == false), "{body}");
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 8 students: {costs:?}");
}
