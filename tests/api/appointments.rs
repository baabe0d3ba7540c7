//! Appointments (no double booking, the status machine and its history) and reviews (aggregates).

use crate::helpers::*;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

const BOOK: &str = "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { id status price endsAt } }";
const CONFIRM: &str =
    "mutation($id: ID!, $u: String!) { confirmAppointment(id: $id, meetingUrl: $u) { status meetingUrl } }";
const CANCEL: &str = "mutation($id: ID!, $r: String!) { cancelAppointment(id: $id, reason: $r) { status } }";
const COMPLETE: &str = "mutation($id: ID!) { completeAppointment(id: $id) { status } }";
const NO_SHOW: &str = "mutation($id: ID!) { markNoShow(id: $id) { status } }";
const GET: &str =
    "query($id: ID!) { appointment(id: $id) { id status history { fromStatus toStatus reason changedBy } } }";
const REVIEW: &str = "mutation($i: CreateReviewInput!) { createReview(input: $i) { id rating } }";
const UPDATE_REVIEW: &str =
    "mutation($id: ID!, $i: UpdateReviewInput!) { updateReview(id: $id, input: $i) { rating } }";
const DELETE_REVIEW: &str = "mutation($id: ID!) { deleteReview(id: $id) { id status } }";

fn slot(days: i64, hour: i64, minute: i64) -> DateTime<Utc> {
    let midnight = (Utc::now() + Duration::days(days)).duration_trunc(Duration::days(1)).unwrap_or_else(|_| Utc::now());
    midnight + Duration::hours(hour) + Duration::minutes(minute)
}

fn booking(mentor: &str, at: DateTime<Utc>, minutes: i64) -> Value {
    json!({ "i": { "mentorId": mentor, "appointmentTime": at.to_rfc3339(), "durationMinutes": minutes, "meetingType": "VIDEO" } })
}

/// Moves an appointment's start into the past, as if its time had come.
async fn let_time_pass(app: &TestApp, id: &str) {
    let db = app.db().await;
    let id = uuid::Uuid::parse_str(id).expect("uuid");
    let start = Utc::now() - Duration::minutes(90);
    entity::appointments::Entity::update_many()
        .col_expr(entity::appointments::Column::AppointmentTime, Expr::value(start))
        .col_expr(entity::appointments::Column::EndsAt, Expr::value(start + Duration::minutes(60)))
        .filter(entity::appointments::Column::Id.eq(id))
        .exec(&db)
        .await
        .expect("shift time");
}

#[tokio::test]
async fn twenty_students_booking_one_slot_get_exactly_one_appointment() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let mut students = Vec::new();
    for index in 0..20 {
        students.push(app.register(&format!("s{index}@example.com")).await);
    }
    let at = slot(3, 10, 0);
    let attempts = students.iter().map(|s| app.gql_as(&s.access, BOOK, booking(&ada.identity, at, 60)));
    let results = futures_util::future::join_all(attempts).await;
    let booked = results.iter().filter(|b| b["data"]["bookAppointment"]["id"].is_string()).count();
    let refused = results.iter().filter(|b| error_code(b) == "CONFLICT").count();
    assert_eq!((booked, refused), (1, 19), "{results:?}");
    assert_eq!(app.count("appointments").await, 1);
    let winner = results.iter().find(|b| b["data"]["bookAppointment"]["id"].is_string()).expect("winner");
    assert_eq!(winner["data"]["bookAppointment"]["price"], "100.00", "hourly rate x 60 minutes");

    // Overlapping but not equal slots are refused too, for the mentor and for the student.
    let other = app.register("other@example.com").await;
    for (start, minutes) in [(slot(3, 9, 30), 45), (slot(3, 10, 30), 15), (slot(3, 9, 0), 180)] {
        let body = app.gql_as(&other.access, BOOK, booking(&ada.identity, start, minutes)).await;
        assert_eq!(error_code(&body), "CONFLICT", "{start} +{minutes}: {body}");
    }
    let bob = app.master(&world, "bob@example.com", "software").await;
    let winner_token = students
        .iter()
        .zip(&results)
        .find(|(_, b)| b["data"]["bookAppointment"]["id"].is_string())
        .map(|(s, _)| s.access.clone())
        .expect("winner token");
    let body = app.gql_as(&winner_token, BOOK, booking(&bob.identity, slot(3, 10, 15), 30)).await;
    assert_eq!(error_code(&body), "CONFLICT", "the student is busy then: {body}");
    // Back-to-back slots are fine.
    for start in [slot(3, 9, 0), slot(3, 11, 0)] {
        let body = app.gql_as(&other.access, BOOK, booking(&ada.identity, start, 60)).await;
        assert!(body["data"]["bookAppointment"]["id"].is_string(), "{start}: {body}");
    }
    assert_eq!(app.count("appointments").await, 3);
    app.assert_no_drift();
}

#[tokio::test]
async fn the_status_machine_allows_only_its_transitions_and_logs_them() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let sam = app.register("sam@example.com").await;
    let eve = app.register("eve@example.com").await;
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, slot(2, 14, 0), 60)).await;
    let id = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();
    let mentor = ada.session.access.as_str();
    let url = "https://meet.example.com/abc";

    // Strangers see nothing and can do nothing.
    let body = app.gql_as(&eve.access, GET, json!({ "id": id })).await;
    assert!(data(&body)["appointment"].is_null());
    for (query, vars) in [(CONFIRM, json!({ "id": id, "u": url })), (CANCEL, json!({ "id": id, "r": "x" }))] {
        let body = app.gql_as(&eve.access, query, vars).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
        let body = app.gql(query, json!({ "id": id, "u": url, "r": "x" })).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED");
    }
    // Only the mentor confirms, completes, marks no-shows; not before the start.
    let body = app.gql_as(&sam.access, CONFIRM, json!({ "id": id, "u": url })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app.gql_as(mentor, COMPLETE, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "CONFLICT", "pending cannot complete: {body}");
    let body = app.gql_as(mentor, CONFIRM, json!({ "id": id, "u": "not a url" })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    for _ in 0..2 {
        let body = app.gql_as(mentor, CONFIRM, json!({ "id": id, "u": url })).await;
        assert_eq!(data(&body)["confirmAppointment"]["status"], "CONFIRMED", "repeat is a no-op");
    }
    let body = app.gql_as(mentor, COMPLETE, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "CONFLICT", "not started yet: {body}");
    let body = app.gql_as(&sam.access, CANCEL, json!({ "id": id, "r": " " })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "a reason is required: {body}");

    let_time_pass(&app, &id).await;
    let body = app.gql_as(&sam.access, CANCEL, json!({ "id": id, "r": "too late" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "started appointments are not cancelled: {body}");
    let body = app.gql_as(&sam.access, COMPLETE, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app.gql_as(mentor, COMPLETE, json!({ "id": id })).await;
    assert_eq!(data(&body)["completeAppointment"]["status"], "COMPLETED");
    let body = app.gql_as(mentor, NO_SHOW, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "CONFLICT", "completed is final: {body}");

    let body = app.gql_as(&sam.access, GET, json!({ "id": id })).await;
    let history = data(&body)["appointment"]["history"].as_array().expect("history").clone();
    let steps: Vec<(Value, Value)> = history.iter().map(|h| (h["fromStatus"].clone(), h["toStatus"].clone())).collect();
    assert_eq!(
        steps,
        vec![
            (Value::Null, json!("PENDING")),
            (json!("PENDING"), json!("CONFIRMED")),
            (json!("CONFIRMED"), json!("COMPLETED"))
        ]
    );
    assert_eq!(history[0]["changedBy"], sam.user_id.as_str());
    assert_eq!(history[1]["changedBy"], ada.session.user_id.as_str());
    assert_eq!(app.count("appointment_status_logs").await, 3, "refused calls logged nothing");

    // A second appointment: the student cancels with a reason; the mentor is notified.
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, slot(4, 9, 0), 30)).await;
    let second = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();
    let body = app.gql_as(&sam.access, CANCEL, json!({ "id": second, "r": "sick" })).await;
    assert_eq!(data(&body)["cancelAppointment"]["status"], "CANCELLED");
    let body = app.gql_as(mentor, CONFIRM, json!({ "id": second, "u": url })).await;
    assert_eq!(error_code(&body), "CONFLICT", "cancelled is final: {body}");
    let body = app.gql_as(&sam.access, GET, json!({ "id": second })).await;
    assert_eq!(data(&body)["appointment"]["history"][1]["reason"], "sick");
    let notes = app.snapshot("notifications").await.join("\n");
    assert_eq!(notes.matches("appointment_booked").count(), 2, "{notes}");
    assert_eq!(notes.matches("appointment_confirmed").count(), 1);
    assert_eq!(notes.matches("appointment_cancelled").count(), 1);

    // A third, confirmed then no-show.
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, slot(5, 9, 0), 30)).await;
    let third = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();
    data(&app.gql_as(mentor, CONFIRM, json!({ "id": third, "u": url })).await);
    let_time_pass(&app, &third).await;
    let body = app.gql_as(mentor, NO_SHOW, json!({ "id": third })).await;
    assert_eq!(data(&body)["markNoShow"]["status"], "NO_SHOW");

    let body = app.gql_as(&sam.access, "{ myAppointments { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["myAppointments"]["totalCount"], 3);
    let body = app.gql_as(mentor, "{ myAppointments(role: MENTOR, status: NO_SHOW) { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["myAppointments"]["totalCount"], 1);
    let body = app.gql_as(&eve.access, "{ myAppointments(role: MENTOR) { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["myAppointments"]["totalCount"], 0);
}

#[tokio::test]
async fn bad_booking_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let sam = app.register("sam@example.com").await;
    let pending = app.register("pending@example.com").await;
    let pending_identity = app.apply(&pending, "MASTER", "software").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (booking(&ada.identity, slot(2, 10, 0), 14), "BAD_USER_INPUT", "input.durationMinutes"),
        (booking(&ada.identity, slot(2, 10, 0), 241), "BAD_USER_INPUT", "input.durationMinutes"),
        (booking(&ada.identity, Utc::now() - Duration::hours(1), 60), "BAD_USER_INPUT", "input.appointmentTime"),
        (booking(&ada.identity, Utc::now() + Duration::days(400), 60), "BAD_USER_INPUT", "input.appointmentTime"),
        (booking("nope", slot(2, 10, 0), 60), "BAD_USER_INPUT", "input.mentorId"),
        (booking(&uuid::Uuid::new_v4().to_string(), slot(2, 10, 0), 60), "NOT_FOUND", "<no field>"),
        (booking(&pending_identity, slot(2, 10, 0), 60), "NOT_FOUND", "<no field>"),
    ];
    for (variables, code, field) in cases {
        let body = app.gql_as(&sam.access, BOOK, variables).await;
        assert_eq!(error_code(&body), code, "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let mut notes = booking(&ada.identity, slot(2, 10, 0), 60);
    notes["i"]["notes"] = json!("x".repeat(2001));
    assert_eq!(error_field(&app.gql_as(&sam.access, BOOK, notes).await), "input.notes");
    let mut kind = booking(&ada.identity, slot(2, 10, 0), 60);
    kind["i"]["meetingType"] = json!("CARRIER_PIGEON");
    assert_eq!(error_code(&app.gql_as(&sam.access, BOOK, kind).await), "BAD_USER_INPUT");
    let body = app.gql_as(&ada.session.access, BOOK, booking(&ada.identity, slot(2, 10, 0), 60)).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "no booking yourself: {body}");
    let body = app.gql(BOOK, booking(&ada.identity, slot(2, 10, 0), 60)).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(app.count("appointments").await, 0);
    assert_eq!(app.count("appointment_status_logs").await, 0);
}

async fn course_rating(app: &TestApp, course: &str) -> (String, i64, Value) {
    let body = app
        .gql(
            "query($id: ID!) { course(id: $id) { rating reviewCount stats { averageRating reviewCount } } }",
            json!({ "id": course }),
        )
        .await;
    let c = &data(&body)["course"];
    (
        c["rating"].as_str().unwrap_or_default().to_string(),
        c["reviewCount"].as_i64().unwrap_or(-1),
        c["stats"]["averageRating"].clone(),
    )
}

#[tokio::test]
async fn course_ratings_follow_create_edit_delete_and_concurrent_reviews() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let mut students = Vec::new();
    for index in 0..30 {
        let student = app.register(&format!("r{index}@example.com")).await;
        data(
            &app.gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course }))
                .await,
        );
        students.push(student);
    }
    let outsider = app.register("outsider@example.com").await;
    let review = |rating: i64| json!({ "i": { "reviewType": "COURSE", "courseId": course, "rating": rating, "content": "good" } });
    let body = app.gql_as(&outsider.access, REVIEW, review(5)).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "not enrolled: {body}");

    let body = app.gql_as(&students[0].access, REVIEW, review(4)).await;
    let first = data(&body)["createReview"]["id"].as_str().expect("id").to_string();
    assert_eq!(course_rating(&app, &course).await, ("4.00".into(), 1, json!(4.0)));
    let body = app.gql_as(&students[0].access, REVIEW, review(5)).await;
    assert_eq!(error_code(&body), "CONFLICT", "one review per student: {body}");
    data(&app.gql_as(&students[0].access, UPDATE_REVIEW, json!({ "id": first, "i": { "rating": 2 } })).await);
    assert_eq!(course_rating(&app, &course).await, ("2.00".into(), 1, json!(2.0)));
    let body = app.gql_as(&students[1].access, UPDATE_REVIEW, json!({ "id": first, "i": { "rating": 5 } })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    data(&app.gql_as(&students[0].access, DELETE_REVIEW, json!({ "id": first })).await);
    assert_eq!(course_rating(&app, &course).await, ("0.00".into(), 0, Value::Null));

    // 30 students review at once (ratings 1..5 cycling): the aggregate equals the rows.
    let reviews = students.iter().enumerate().map(|(i, s)| app.gql_as(&s.access, REVIEW, review((i % 5 + 1) as i64)));
    for body in futures_util::future::join_all(reviews).await {
        data(&body);
    }
    let expected = (1..=30).map(|i| ((i - 1) % 5 + 1) as f64).sum::<f64>() / 30.0;
    let (rating, count, average) = course_rating(&app, &course).await;
    assert_eq!(count, 30);
    assert_eq!(rating, format!("{expected:.2}"));
    assert_eq!(average.as_f64().map(|a| (a * 100.0).round() / 100.0), Some((expected * 100.0).round() / 100.0));

    // Admins hide a review; it stops counting. Others cannot.
    let body = app
        .gql(
            "query($id: ID!) { course(id: $id) { reviews(first: 1) { totalCount edges { node { id rating } } } } }",
            json!({ "id": course }),
        )
        .await;
    let newest = data(&body)["course"]["reviews"]["edges"][0]["node"].clone();
    let hide = "mutation($id: ID!) { hideReview(id: $id) { status } }";
    assert_eq!(error_code(&app.gql_as(&students[3].access, hide, json!({ "id": newest["id"] })).await), "FORBIDDEN");
    data(&app.gql_as(&world.admin.access, hide, json!({ "id": newest["id"] })).await);
    assert_eq!(course_rating(&app, &course).await.1, 29);
    let notes = app.snapshot("notifications").await.join("\n");
    assert_eq!(notes.matches("\"reviewed\"").count(), 31, "the mentor hears of each review");
    app.assert_no_drift();
}

/// One rounding rule for ratings, the app's and `reconcile`'s: a mean of 4.125 is 4.13 (half away
/// from zero, not banker's 4.12), and reconcile agrees.
#[tokio::test]
async fn a_rating_midway_rounds_half_away_from_zero_and_reconcile_agrees() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    for (index, rating) in [5, 5, 5, 5, 4, 4, 4, 1].into_iter().enumerate() {
        let student = app.register(&format!("t{index}@example.com")).await;
        data(
            &app.gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course }))
                .await,
        );
        let review = json!({ "i": { "reviewType": "COURSE", "courseId": course, "rating": rating } });
        data(&app.gql_as(&student.access, REVIEW, review).await);
    }
    let (rating, count, average) = course_rating(&app, &course).await;
    assert_eq!((rating.as_str(), count), ("4.13", 8), "33 / 8 = 4.125");
    assert_eq!(average, json!(4.13));
    app.assert_no_drift();
}

#[tokio::test]
async fn mentor_and_appointment_reviews_need_a_completed_appointment() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let sam = app.register("sam@example.com").await;
    let mentor_review = json!({ "i": { "reviewType": "MENTOR", "mentorId": ada.identity, "rating": 5 } });
    let body = app.gql_as(&sam.access, REVIEW, mentor_review.clone()).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, slot(2, 8, 0), 60)).await;
    let id = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();
    let appointment_review = json!({ "i": { "reviewType": "APPOINTMENT", "appointmentId": id, "rating": 4 } });
    assert_eq!(error_code(&app.gql_as(&sam.access, REVIEW, appointment_review.clone()).await), "CONFLICT");
    data(&app.gql_as(&ada.session.access, CONFIRM, json!({ "id": id, "u": "https://meet.example.com/x" })).await);
    let_time_pass(&app, &id).await;
    data(&app.gql_as(&ada.session.access, COMPLETE, json!({ "id": id })).await);
    data(&app.gql_as(&sam.access, REVIEW, mentor_review.clone()).await);
    data(&app.gql_as(&sam.access, REVIEW, appointment_review).await);
    assert_eq!(error_code(&app.gql_as(&sam.access, REVIEW, mentor_review).await), "CONFLICT");
    let body = app
        .gql(
            "query($id: ID!) { mentor(id: $id) { stats { reviewCount averageRating } reviews { totalCount } } }",
            json!({ "id": ada.identity }),
        )
        .await;
    // The stats count the reviews the list shows (MENTOR and APPOINTMENT): 5 and 4.
    assert_eq!(data(&body)["mentor"]["stats"]["reviewCount"], 2, "{body}");
    assert_eq!(data(&body)["mentor"]["stats"]["averageRating"], 4.5);
    assert_eq!(data(&body)["mentor"]["reviews"]["totalCount"], 2);

    let bad: Vec<(Value, &str)> = vec![
        (json!({ "i": { "reviewType": "COURSE", "rating": 3 } }), "input.courseId"),
        (json!({ "i": { "reviewType": "MENTOR", "mentorId": ada.identity, "rating": 0 } }), "input.rating"),
        (json!({ "i": { "reviewType": "MENTOR", "mentorId": ada.identity, "rating": 6 } }), "input.rating"),
        (
            json!({ "i": { "reviewType": "MENTOR", "mentorId": ada.identity, "rating": 3, "content": "x".repeat(5001) } }),
            "input.content",
        ),
    ];
    let before = app.snapshot("reviews").await;
    for (variables, field) in bad {
        let body = app.gql_as(&sam.access, REVIEW, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field);
    }
    assert_eq!(app.snapshot("reviews").await, before);
}

/// One person is never booked twice at once, whichever side they are on: a master with
/// identities in two domains cannot be booked for one hour through both, and cannot book another
/// master as a student during an hour they teach. Concurrent attempts, checked in the database.
#[tokio::test]
async fn one_person_is_never_booked_twice_at_once_through_any_identity_or_side() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let ada_design = app.second_identity(&world, &ada, "design").await;
    let bob = app.master(&world, "bob@example.com", "software").await;
    let students: Vec<Session> = {
        let mut list = Vec::new();
        for index in 0..6 {
            list.push(app.register(&format!("s{index}@example.com")).await);
        }
        list
    };
    let at = slot(4, 14, 0);
    // Six students at once, three through each of Ada's identities, plus Ada herself booking Bob
    // for the same hour: exactly one of the seven wins.
    let mut attempts = Vec::new();
    for (index, student) in students.iter().enumerate() {
        let identity = if index % 2 == 0 { &ada.identity } else { &ada_design };
        attempts.push(app.gql_as(&student.access, BOOK, booking(identity, at, 60)));
    }
    attempts.push(app.gql_as(&ada.session.access, BOOK, booking(&bob.identity, slot(4, 14, 30), 60)));
    let results = futures_util::future::join_all(attempts).await;
    let booked = results.iter().filter(|b| b["data"]["bookAppointment"]["id"].is_string()).count();
    let refused = results.iter().filter(|b| error_code(b) == "CONFLICT").count();
    assert_eq!((booked, refused), (1, 6), "{results:?}");
    assert_eq!(app.count("appointments").await, 1);

    // Sequentially, each way round: through the other identity, and Ada as a student while she
    // teaches (and Bob's students cannot book Ada's teaching hour through Bob either way round).
    let teaching = results[..6].iter().any(|b| b["data"]["bookAppointment"]["id"].is_string());
    let spare = app.register("spare@example.com").await;
    for identity in [&ada.identity, &ada_design] {
        let body = app.gql_as(&spare.access, BOOK, booking(identity, slot(4, 14, 15), 30)).await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
    }
    // 14:15–14:45 overlaps whichever won: Ada teaching 14:00–15:00, or Ada booked with Bob 14:30–15:30.
    let body = app.gql_as(&ada.session.access, BOOK, booking(&bob.identity, slot(4, 14, 15), 30)).await;
    assert_eq!(error_code(&body), "CONFLICT", "Ada is busy at 14:15 (teaching: {teaching}): {body}");
    // Another hour is free for everyone.
    data(&app.gql_as(&spare.access, BOOK, booking(&ada_design, slot(4, 18, 0), 60)).await);
    assert_eq!(app.count("appointments").await, 2);
    // No two active appointments of one person overlap, in the database.
    let overlaps = "SELECT COUNT(*) AS n FROM appointments a JOIN appointments b ON a.id < b.id
        AND a.status IN ('pending','confirmed') AND b.status IN ('pending','confirmed')
        AND a.appointment_time < b.ends_at AND b.appointment_time < a.ends_at
        JOIN user_identities ma ON ma.id = a.mentor_id JOIN user_identities mb ON mb.id = b.mentor_id
        WHERE ma.user_id IN (mb.user_id, b.student_id) OR a.student_id IN (mb.user_id, b.student_id)";
    assert_eq!(app.scalar(overlaps).await, 0);
}

/// The same booking sent twice (a retry, a double tap) returns the appointment it made, at once
/// or one after the other; a different booking of the same hour is still a CONFLICT.
#[tokio::test]
async fn the_same_booking_sent_twice_returns_the_existing_appointment() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let sam = app.register("sam@example.com").await;
    let at = slot(5, 9, 0);
    let first = app.gql_as(&sam.access, BOOK, booking(&ada.identity, at, 60)).await;
    let id = data(&first)["bookAppointment"]["id"].clone();
    let again =
        futures_util::future::join_all((0..4).map(|_| app.gql_as(&sam.access, BOOK, booking(&ada.identity, at, 60))))
            .await;
    for body in &again {
        assert_eq!(data(body)["bookAppointment"]["id"], id, "{body}");
    }
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, at, 30)).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(app.count("appointments").await, 1);
}

/// Review likes ("helpful") are one per person and review however many arrive at once, the count
/// moves with the rows, and nobody likes their own review.
#[tokio::test]
async fn twenty_concurrent_likes_of_one_person_count_once() {
    let app = spawn_app().await;
    let world = app.world().await;
    let student = app.register("student@example.com").await;
    let (_, review) = app.reviewed_course(&world, "ada@example.com", &student, 4).await;
    let reader = app.register("reader@example.com").await;
    let like = "mutation($id: ID!) { likeReview(id: $id) { likeCount viewerHasLiked } }";
    let likes = (0..20).map(|_| app.gql_as(&reader.access, like, json!({ "id": review })));
    for body in futures_util::future::join_all(likes).await {
        assert_eq!(data(&body)["likeReview"]["viewerHasLiked"], true, "{body}");
    }
    assert_eq!(app.count("review_likes").await, 1);
    let other = app.register("other@example.com").await;
    let body = app.gql_as(&other.access, like, json!({ "id": review })).await;
    assert_eq!(data(&body)["likeReview"]["likeCount"], 2, "{body}");
    let read = "query($id: ID!) { review(id: $id) { likeCount viewerHasLiked reviewer { id } } }";
    let body = app.gql_as(&reader.access, read, json!({ "id": review })).await;
    assert_eq!(data(&body)["review"]["likeCount"], 2, "{body}");
    assert_eq!(data(&body)["review"]["viewerHasLiked"], true, "{body}");
    assert_eq!(data(&body)["review"]["reviewer"]["id"], student.user_id.as_str(), "{body}");

    let unlike = "mutation($id: ID!) { unlikeReview(id: $id) { likeCount viewerHasLiked } }";
    let unlikes = (0..5).map(|_| app.gql_as(&reader.access, unlike, json!({ "id": review })));
    futures_util::future::join_all(unlikes).await;
    let body = app.gql_as(&reader.access, read, json!({ "id": review })).await;
    assert_eq!(data(&body)["review"]["likeCount"], 1, "{body}");
    assert_eq!(data(&body)["review"]["viewerHasLiked"], false, "{body}");
    assert_eq!(app.count("review_likes").await, 1);
    let truth = "SELECT COUNT(*) FROM reviews r WHERE r.like_count <> (SELECT COUNT(*) FROM review_likes l WHERE l.review_id = r.id)";
    assert_eq!(app.scalar(truth).await, 0, "like_count is exact");
    app.assert_no_drift();

    let body = app.gql_as(&student.access, like, json!({ "id": review })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "not one's own review: {body}");
    assert_eq!(error_code(&app.gql(like, json!({ "id": review })).await), "UNAUTHENTICATED");
    let body = app.gql_as(&reader.access, like, json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app.gql_as(&reader.access, like, json!({ "id": "nope" })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "id"), "{body}");
    // A deleted review answers with its new status, and takes no more likes.
    let body = app.gql_as(&student.access, DELETE_REVIEW, json!({ "id": review })).await;
    assert_eq!(data(&body)["deleteReview"]["status"], "DELETED", "{body}");
    assert_eq!(error_code(&app.gql_as(&other.access, like, json!({ "id": review })).await), "NOT_FOUND");
    assert_eq!(app.count("review_likes").await, 1);
}

/// Every bad field of one input is reported at once, each as its own error with its own
/// `extensions.field`; nothing is written.
#[tokio::test]
async fn every_bad_field_of_a_booking_is_reported_at_once() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let sam = app.register("sam@example.com").await;
    let mut variables = booking(&ada.identity, Utc::now() - Duration::hours(1), 14);
    variables["i"]["notes"] = json!("x".repeat(2001));
    let fields_of = |body: &Value| {
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        assert!(errors.iter().all(|e| e["path"] == json!(["bookAppointment"])), "{body}");
        assert!(errors.iter().all(|e| e["extensions"].get("invalid").is_none()), "{body}");
        let mut fields: Vec<(String, String)> = errors
            .iter()
            .map(|e| {
                (
                    e["extensions"]["code"].as_str().unwrap_or_default().to_string(),
                    e["extensions"]["field"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        fields.sort();
        fields
    };
    let expected = ["input.appointmentTime", "input.durationMinutes", "input.notes"]
        .map(|f| ("BAD_USER_INPUT".to_string(), f.to_string()));
    let body = app.gql_as(&sam.access, BOOK, variables.clone()).await;
    assert_eq!(fields_of(&body), expected, "{body}");
    // The same over WebSocket.
    let mut socket = ws_connect(&app, Some(&sam.access)).await;
    let payload = json!({ "query": BOOK, "variables": variables });
    ws_send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": payload })).await;
    let message = next_json(&mut socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(fields_of(&message["payload"]), expected, "{message}");
    assert_eq!(app.count("appointments").await, 0);

    // Errors async-graphql raises itself (coercion, missing arguments) name the field too.
    let mut kind = booking(&ada.identity, slot(2, 10, 0), 60);
    kind["i"]["meetingType"] = json!("CARRIER_PIGEON");
    let body = app.gql_as(&sam.access, BOOK, kind).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.meetingType"), "{body}");
    let inline = r#"mutation { bookAppointment(input: { mentorId: "x", appointmentTime: "soon", durationMinutes: 60 }) { id } }"#;
    let body = app.gql_as(&sam.access, inline, json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.appointmentTime", "an argument's field: {body}");
    let body = app.gql_as(&sam.access, "mutation { completeAppointment { id } }", json!({})).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "id"), "a missing argument: {body}");
    assert_eq!(app.count("appointments").await, 0);
}
