//! Object identification: `node(id)` over every kind a client opens by id, and a notification's
//! typed `target`, both under the visibility rules of the kind's own field.

use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::json;

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";

#[tokio::test]
async fn a_notification_opens_its_target_and_node_finds_what_you_may_see() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let draft = app.course(&ada, None, 1, false).await;
    let sam = app.register("sam@example.com").await;
    let eve = app.register("eve@example.com").await;
    let at = (Utc::now() + Duration::days(3)).format("%Y-%m-%dT10:00:00Z").to_string();
    let body = app
        .gql_as(
            &sam.access,
            "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { id } }",
            json!({ "i": { "mentorId": ada.identity, "appointmentTime": at, "durationMinutes": 60 } }),
        )
        .await;
    let appointment = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();

    // The master's notification opens the appointment, typed.
    let body = app
        .gql_as(
            &ada.session.access,
            "{ notifications { edges { node { id notificationType target { __typename id ... on Appointment { status } } } } } }",
            json!({}),
        )
        .await;
    let edges = data(&body)["notifications"]["edges"].as_array().expect("edges").clone();
    let booked = edges.iter().find(|e| e["node"]["notificationType"] == "appointment_booked").expect("booked notice");
    assert_eq!(
        booked["node"]["target"],
        json!({ "__typename": "Appointment", "id": appointment, "status": "PENDING" }),
        "{body}"
    );
    let notification = booked["node"]["id"].as_str().expect("id").to_string();
    // The identity approval notice opens the identity.
    let approved = edges.iter().find(|e| e["node"]["notificationType"] == "identity_approved").expect("approval");
    assert_eq!(approved["node"]["target"]["__typename"], "Identity");

    // node(id) finds each kind for whoever may see it, and nothing for others.
    for (id, who, typename) in [
        (&notification, Some(ada.session.access.as_str()), Some("Notification")),
        (&notification, Some(sam.access.as_str()), None),
        (&appointment, Some(sam.access.as_str()), Some("Appointment")),
        (&appointment, Some(eve.access.as_str()), None),
        (&appointment, None, None),
        (&course, None, Some("Course")),
        (&draft, None, None),
        (&draft, Some(ada.session.access.as_str()), Some("Course")),
        (&ada.identity, None, Some("Identity")),
        (&sam.user_id, None, Some("User")),
    ] {
        let body = app.gql_with(who, NODE, json!({ "id": id })).await;
        let node = &data(&body)["node"];
        match typename {
            Some(typename) => assert_eq!(node, &json!({ "__typename": typename, "id": id }), "{body}"),
            None => assert!(node.is_null(), "{id} should be hidden: {body}"),
        }
    }
    let body = app.gql(NODE, json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert!(data(&body)["node"].is_null());
    let body = app.gql(NODE, json!({ "id": "not-an-id" })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "id"), "{body}");
    // A content is as visible as its course.
    let body = app.gql("query($id: ID!) { course(id: $id) { contents { id } } }", json!({ "id": course })).await;
    let content = data(&body)["course"]["contents"][0]["id"].as_str().expect("content").to_string();
    let body = app.gql(NODE, json!({ "id": content })).await;
    assert_eq!(data(&body)["node"]["__typename"], "CourseContent");
}

/// A page of notifications opens its targets (appointments, with the visibility check of
/// `appointment(id)`) in a fixed number of statements, however long the page.
#[tokio::test]
async fn a_page_of_notification_targets_runs_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    for index in 0..6 {
        let student = app.register(&format!("s{index}@example.com")).await;
        let at = (Utc::now() + Duration::days(3 + index)).format("%Y-%m-%dT10:00:00Z").to_string();
        let body = app
            .gql_as(
                &student.access,
                "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { id } }",
                json!({ "i": { "mentorId": ada.identity, "appointmentTime": at, "durationMinutes": 60 } }),
            )
            .await;
        data(&body);
    }
    let query = "query($n: Int!) { notifications(first: $n) { edges { node {
        target { __typename ... on Appointment { id status student { id } } } } } } }";
    let mut costs = Vec::new();
    for n in [2, 6] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql_as(&ada.session.access, query, json!({ "n": n })).await;
            let edges = data(&body)["notifications"]["edges"].as_array().expect("edges").clone();
            assert_eq!(edges.len(), n as usize, "{body}");
            assert!(edges.iter().all(|e| e["node"]["target"]["status"] == "PENDING"), "{body}");
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 6 targets: {costs:?}");
}
