//! Availability and slots (a schedule in the master's time zone, correct across a DST change),
//! bookings and reschedules that must fit it, and the meeting id given on confirmation.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde_json::{json, Value};

const SET: &str = "mutation($id: ID!, $i: SetAvailabilityInput!) { setAvailability(identityId: $id, input: $i) {
    timeZone weekly { weekday start end } exceptions { date start end available } bufferMinutes minNoticeHours } }";
const SLOTS: &str = "query($id: ID!, $from: DateTime!, $to: DateTime!, $d: Int) {
    mentor(id: $id) { availableSlots(from: $from, to: $to, durationMinutes: $d) { start end } } }";
const BOOK: &str = "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { id appointmentTime } }";
const RESCHEDULE: &str = "mutation($id: ID!, $at: DateTime!) { rescheduleAppointment(id: $id, appointmentTime: $at) {
    appointmentTime endsAt status history { fromStatus toStatus reason } } }";

/// The Mondays before and after the next spring change of US clocks (the second Sunday of
/// March; 2027-03-14 while that is ahead), at 00:00 UTC.
fn mondays_around_the_change() -> (DateTime<Utc>, DateTime<Utc>) {
    let mut year = Utc::now().year();
    loop {
        let sunday = (8..=14)
            .filter_map(|day| NaiveDate::from_ymd_opt(year, 3, day))
            .find(|d| d.weekday() == Weekday::Sun)
            .expect("a second Sunday");
        let before = Utc.from_utc_datetime(&(sunday - Duration::days(6)).and_hms_opt(0, 0, 0).expect("midnight"));
        if before > Utc::now() + Duration::days(2) {
            return (before, before + Duration::days(7));
        }
        year += 1;
    }
}

fn at(day: DateTime<Utc>, hour: i64) -> String {
    (day + Duration::hours(hour)).to_rfc3339()
}

fn starts(body: &Value) -> Vec<String> {
    data(body)["mentor"]["availableSlots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| {
            let start = DateTime::parse_from_rfc3339(s["start"].as_str().expect("start")).expect("time");
            start.with_timezone(&Utc).format("%H:%M").to_string()
        })
        .collect()
}

async fn slots(app: &TestApp, mentor: &str, day: DateTime<Utc>) -> Vec<String> {
    let vars = json!({ "id": mentor, "from": day.to_rfc3339(), "to": (day + Duration::days(1)).to_rfc3339(), "d": 60 });
    starts(&app.gql(SLOTS, vars).await)
}

fn booking(mentor: &str, time: &str) -> Value {
    json!({ "i": { "mentorId": mentor, "appointmentTime": time, "durationMinutes": 60 } })
}

fn new_york_mornings() -> Value {
    json!({ "timeZone": "America/New_York", "weekly": [{ "weekday": "MONDAY", "start": "09:00", "end": "11:00" }] })
}

#[tokio::test]
async fn slots_follow_the_masters_clock_across_the_march_change_and_bookings_must_fit() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let (before, after) = mondays_around_the_change();

    // No schedule yet: no slots, and (as before schedules existed) any free time can be booked.
    assert!(slots(&app, &ada.identity, before).await.is_empty());
    let body = app.gql_as(&ada.session.access, SET, json!({ "id": ada.identity, "i": new_york_mornings() })).await;
    let set = &data(&body)["setAvailability"];
    assert_eq!(set["timeZone"], "America/New_York");
    assert_eq!(set["weekly"], json!([{ "weekday": "MONDAY", "start": "09:00", "end": "11:00" }]));
    let body = app
        .gql(
            "query($id: ID!) { mentor(id: $id) { availability { timeZone bufferMinutes weekly { start } } } }",
            json!({ "id": ada.identity }),
        )
        .await;
    assert_eq!(data(&body)["mentor"]["availability"]["weekly"][0]["start"], "09:00");

    // 09:00-11:00 New York time: EST (UTC-5) the Monday before, EDT (UTC-4) the Monday after.
    assert_eq!(slots(&app, &ada.identity, before).await, ["14:00", "15:00"]);
    assert_eq!(slots(&app, &ada.identity, after).await, ["13:00", "14:00"]);

    // Outside the schedule: refused, on its field, nothing written. 16:00 UTC is 11:00 EST.
    let sam = app.register("sam@example.com").await;
    for time in [at(before, 16), at(before, 13), at(after, 15), at(before + Duration::days(1), 14)] {
        let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, &time)).await;
        assert_eq!((error_code(&body), error_field(&body)), ("CONFLICT", "input.appointmentTime"), "{time}: {body}");
    }
    assert_eq!(app.count("appointments").await, 0);

    // A booked slot leaves the list.
    let body = app.gql_as(&sam.access, BOOK, booking(&ada.identity, &at(before, 14))).await;
    let first = data(&body)["bookAppointment"]["id"].as_str().expect("id").to_string();
    assert_eq!(slots(&app, &ada.identity, before).await, ["15:00"]);

    // Twenty students at once for the last slot of that morning: one gets it.
    let mut students = Vec::new();
    for index in 0..20 {
        students.push(app.register(&format!("s{index}@example.com")).await);
    }
    let attempts = students.iter().map(|s| app.gql_as(&s.access, BOOK, booking(&ada.identity, &at(before, 15))));
    let results = futures_util::future::join_all(attempts).await;
    let booked = results.iter().filter(|b| b["data"]["bookAppointment"]["id"].is_string()).count();
    let refused = results.iter().filter(|b| error_code(b) == "CONFLICT").count();
    assert_eq!((booked, refused), (1, 19), "{results:?}");
    assert_eq!(app.count("appointments").await, 2);
    assert!(slots(&app, &ada.identity, before).await.is_empty());

    // Rescheduling: into a taken slot or outside the schedule refused (nothing moves); into a
    // free one moved, kept in the history, and the old slot is free again.
    for (time, why) in [(at(before, 15), "taken"), (at(after, 16), "outside"), (at(after, 13) + "x", "malformed")] {
        let body = app.gql_as(&sam.access, RESCHEDULE, json!({ "id": first, "at": time })).await;
        assert!(body["errors"].is_array(), "{why}: {body}");
        if why != "malformed" {
            assert_eq!((error_code(&body), error_field(&body)), ("CONFLICT", "appointmentTime"), "{why}: {body}");
        }
    }
    let stranger = app.register("eve@example.com").await;
    let body = app.gql_as(&stranger.access, RESCHEDULE, json!({ "id": first, "at": at(after, 13) })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert_eq!(slots(&app, &ada.identity, before).await, Vec::<String>::new());
    let body = app.gql_as(&sam.access, RESCHEDULE, json!({ "id": first, "at": at(after, 13) })).await;
    let moved = &data(&body)["rescheduleAppointment"];
    let start = DateTime::parse_from_rfc3339(moved["appointmentTime"].as_str().expect("time")).expect("time");
    assert_eq!(start.with_timezone(&Utc), after + Duration::hours(13));
    assert_eq!(moved["status"], "PENDING");
    let history = moved["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(
        (history[1]["fromStatus"].clone(), history[1]["toStatus"].clone()),
        (json!("PENDING"), json!("PENDING"))
    );
    assert!(history[1]["reason"].as_str().expect("reason").starts_with("rescheduled from"), "{history:?}");
    assert_eq!(slots(&app, &ada.identity, before).await, ["14:00"]);
    assert_eq!(slots(&app, &ada.identity, after).await, ["14:00"]);
    let told =
        app.scalar("SELECT COUNT(*) FROM notifications WHERE notification_type = 'appointment_rescheduled'").await;
    assert_eq!(told, 1, "the master is told");

    // Confirmation gives the meeting id.
    let body = app
        .gql_as(
            &ada.session.access,
            "mutation($id: ID!) { confirmAppointment(id: $id, meetingUrl: \"https://meet.example.com/r\") { meetingId } }",
            json!({ "id": first }),
        )
        .await;
    let meeting = data(&body)["confirmAppointment"]["meetingId"].as_str().expect("meeting id").to_string();
    assert!(meeting.starts_with("mg-") && meeting.len() == 17, "{meeting}");
    // The student moving a confirmed appointment asks the mentor again: PENDING, no meeting.
    let body = app.gql_as(&sam.access, RESCHEDULE, json!({ "id": first, "at": at(before, 14) })).await;
    let moved = &data(&body)["rescheduleAppointment"];
    assert_eq!(moved["status"], "PENDING", "{body}");
    let last = moved["history"].as_array().and_then(|h| h.last()).cloned().expect("history");
    assert_eq!((last["fromStatus"].clone(), last["toStatus"].clone()), (json!("CONFIRMED"), json!("PENDING")));
    let body = app
        .gql_as(
            &sam.access,
            "query($id: ID!) { appointment(id: $id) { meetingId meetingUrl } }",
            json!({ "id": first }),
        )
        .await;
    assert_eq!(data(&body)["appointment"], json!({ "meetingId": null, "meetingUrl": null }));
    app.assert_no_drift();
}

#[tokio::test]
async fn exceptions_buffer_and_notice_shape_the_slots() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let (before, after) = mondays_around_the_change();
    let date = |day: DateTime<Utc>| day.format("%Y-%m-%d").to_string();
    let schedule = json!({
        "timeZone": "UTC",
        "weekly": [{ "weekday": "MONDAY", "start": "09:00", "end": "12:00" }, { "weekday": "MONDAY", "start": "12:00", "end": "13:00" }],
        "exceptions": [
            { "date": date(before), "start": "10:00", "end": "11:00" },
            { "date": date(after) },
            { "date": date(after + Duration::days(1)), "start": "18:00", "end": "20:00", "available": true }
        ],
        "bufferMinutes": 30
    });
    let body = app.gql_as(&ada.session.access, SET, json!({ "id": ada.identity, "i": schedule })).await;
    assert_eq!(data(&body)["setAvailability"]["exceptions"].as_array().map(Vec::len), Some(3));
    // Hours off cut the morning (adjacent windows join: 11:00-13:00 holds two slots); a day off
    // empties its day; extra hours open a Tuesday.
    assert_eq!(slots(&app, &ada.identity, before).await, ["09:00", "11:00", "12:00"]);
    assert!(slots(&app, &ada.identity, after).await.is_empty());
    assert_eq!(slots(&app, &ada.identity, after + Duration::days(1)).await, ["18:00", "19:00"]);
    // A booking across the two joined windows fits; the buffer keeps 30 minutes around it.
    let sam = app.register("sam@example.com").await;
    let vars = json!({ "i": { "mentorId": ada.identity, "appointmentTime": at(before, 11) , "durationMinutes": 90 } });
    data(&app.gql_as(&sam.access, BOOK, vars).await);
    assert_eq!(slots(&app, &ada.identity, before).await, ["09:00"]);
    let lee = app.register("lee@example.com").await;
    let vars = json!({ "i": { "mentorId": ada.identity, "appointmentTime": (before + Duration::minutes(12 * 60 + 30)).to_rfc3339(), "durationMinutes": 30 } });
    let body = app.gql_as(&lee.access, BOOK, vars).await;
    assert_eq!(error_code(&body), "CONFLICT", "inside the buffer: {body}");

    // Notice: with 48 hours of notice nothing in the next day is bookable.
    let every_day: Vec<Value> = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
        .iter()
        .map(|d| json!({ "weekday": d, "start": "00:00", "end": "24:00" }))
        .collect();
    let body = app
        .gql_as(
            &ada.session.access,
            SET,
            json!({ "id": ada.identity, "i": { "timeZone": "Asia/Shanghai", "weekly": every_day, "minNoticeHours": 48 } }),
        )
        .await;
    assert_eq!(data(&body)["setAvailability"]["minNoticeHours"], 48);
    let soon = (Utc::now() + Duration::hours(30)).format("%Y-%m-%dT%H:00:00Z").to_string();
    let body = app.gql_as(&lee.access, BOOK, booking(&ada.identity, &soon)).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let now = Utc::now();
    let vars =
        json!({ "id": ada.identity, "from": now.to_rfc3339(), "to": (now + Duration::days(3)).to_rfc3339(), "d": 60 });
    let body = app.gql(SLOTS, vars).await;
    let first = data(&body)["mentor"]["availableSlots"][0]["start"].as_str().expect("a slot").to_string();
    let first = DateTime::parse_from_rfc3339(&first).expect("time").with_timezone(&Utc);
    assert!(first >= now + Duration::hours(48), "{first}");
}

#[tokio::test]
async fn bad_schedules_and_slot_queries_are_refused_on_their_field_and_change_nothing() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let bob = app.master(&world, "bob@example.com", "software").await;
    let window = |start: &str, end: &str| json!([{ "weekday": "MONDAY", "start": start, "end": end }]);
    let cases = [
        (json!({ "timeZone": "Mars/Olympus", "weekly": [] }), "input.timeZone"),
        (json!({ "timeZone": "UTC", "weekly": window("10:00", "09:00") }), "input.weekly[0].end"),
        (json!({ "timeZone": "UTC", "weekly": window("9:00", "10:00") }), "input.weekly[0].start"),
        (json!({ "timeZone": "UTC", "weekly": window("24:00", "24:00") }), "input.weekly[0].start"),
        (json!({ "timeZone": "UTC", "weekly": window("10:00", "24:30") }), "input.weekly[0].end"),
        (
            json!({ "timeZone": "UTC", "weekly": [], "exceptions": [{ "date": "2027-02-30" }] }),
            "input.exceptions[0].date",
        ),
        (
            json!({ "timeZone": "UTC", "weekly": [], "exceptions": [{ "date": "2027-02-01", "available": true }] }),
            "input.exceptions[0].start",
        ),
        (
            json!({ "timeZone": "UTC", "weekly": [], "exceptions": [{ "date": "2027-02-01", "start": "10:00" }] }),
            "input.exceptions[0].end",
        ),
        (json!({ "timeZone": "UTC", "weekly": [], "bufferMinutes": -1 }), "input.bufferMinutes"),
        (json!({ "timeZone": "UTC", "weekly": [], "minNoticeHours": 100000 }), "input.minNoticeHours"),
    ];
    for (input, field) in cases {
        let body = app.gql_as(&ada.session.access, SET, json!({ "id": ada.identity, "i": input })).await;
        assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", field), "{input}: {body}");
    }
    // Someone else's identity, or no one signed in.
    let body = app.gql_as(&bob.session.access, SET, json!({ "id": ada.identity, "i": new_york_mornings() })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app.gql(SET, json!({ "id": ada.identity, "i": new_york_mornings() })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(app.count("mentor_availability").await, 0, "nothing written");

    let now = Utc::now();
    for (from, to, minutes, field) in [
        (now, now, 60, "to"),
        (now, now + Duration::days(63), 60, "to"),
        (now, now + Duration::days(1), 10, "durationMinutes"),
        (now, now + Duration::days(1), 241, "durationMinutes"),
    ] {
        let vars = json!({ "id": ada.identity, "from": from.to_rfc3339(), "to": to.to_rfc3339(), "d": minutes });
        let body = app.gql(SLOTS, vars).await;
        assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", field), "{body}");
    }
}

/// A page of mentors with their free slots reads the schedules and the appointments in a fixed
/// number of statements, however many mentors are on it; each mentor's own booking is removed
/// from their slots only.
#[tokio::test]
async fn a_page_of_mentors_slots_runs_a_fixed_number_of_statements() {
    let app = spawn_app_with(&[("CACHE_ENABLED", "false"), ("GRAPHQL_BATCH_DELAY_MS", "25")]).await;
    let world = app.world().await;
    let (monday, _) = mondays_around_the_change();
    let student = app.register("student@example.com").await;
    let mut mentors = Vec::new();
    for index in 0..6 {
        let master = app.master(&world, &format!("m{index}@example.com"), "software").await;
        let body =
            app.gql_as(&master.session.access, SET, json!({ "id": master.identity, "i": new_york_mornings() })).await;
        data(&body);
        mentors.push(master);
    }
    // The first mentor's 14:00 UTC slot is taken.
    data(&app.gql_as(&student.access, BOOK, booking(&mentors[0].identity, &at(monday, 14))).await);
    let query = "query($n: Int!, $from: DateTime!, $to: DateTime!) { mentors(first: $n) { edges { node {
        identity { id } availableSlots(from: $from, to: $to, durationMinutes: 60) { start } } } } }";
    let vars = |n: i32| json!({ "n": n, "from": monday.to_rfc3339(), "to": (monday + Duration::days(1)).to_rfc3339() });
    let mut costs = Vec::new();
    for n in [2, 6] {
        let mut fewest = u64::MAX;
        for _ in 0..3 {
            let before = app.statements().await;
            let body = app.gql(query, vars(n)).await;
            let edges = data(&body)["mentors"]["edges"].as_array().expect("edges").clone();
            assert_eq!(edges.len(), n as usize, "{body}");
            for edge in &edges {
                let slots = edge["node"]["availableSlots"].as_array().expect("slots").len();
                let booked = edge["node"]["identity"]["id"] == mentors[0].identity.as_str();
                assert_eq!(slots, if booked { 1 } else { 2 }, "{body}");
            }
            fewest = fewest.min(app.statements().await - before);
        }
        costs.push(fewest);
    }
    assert_eq!(costs[0], costs[1], "statements for 2 and for 6 mentors: {costs:?}");
}
