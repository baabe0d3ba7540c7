//! Identities, their review by admins, profiles, domains and mentors.

use crate::helpers::*;
use serde_json::{json, Value};

const APPLY: &str =
    "mutation($i: ApplyIdentityInput!) { applyIdentity(input: $i) { id status verificationStatus identityType } }";
const REVIEW: &str = "mutation($id: ID!, $d: IdentityDecision!, $r: String) { reviewIdentity(id: $id, decision: $d, reason: $r) { id status verificationStatus } }";
const PROFILE: &str = "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { name skills hourlyRate website socialLinks } }";
const CREATE_DOMAIN: &str = "mutation($i: CreateDomainInput!) { createDomain(input: $i) { id code } }";

#[tokio::test]
async fn apprentices_are_active_at_once_and_masters_wait_for_review() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let sam = app.register("sam@example.com").await;
    let body =
        app.gql_as(&sam.access, APPLY, json!({ "i": { "identityType": "APPRENTICE", "domain": "software" } })).await;
    assert_eq!(data(&body)["applyIdentity"]["status"], "ACTIVE");
    let body = app
        .gql_as(&sam.access, APPLY, json!({ "i": { "identityType": "MASTER", "domain": "Software", "verificationDocuments": ["https://x.example.com/d.pdf"] } }))
        .await;
    assert_eq!(data(&body)["applyIdentity"]["status"], "PENDING");
    assert_eq!(data(&body)["applyIdentity"]["verificationStatus"], "PENDING");
    let body =
        app.gql_as(&sam.access, APPLY, json!({ "i": { "identityType": "APPRENTICE", "domain": "software" } })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");

    let me = app.gql_as(&sam.access, "{ me { identities { identityType domain status } } }", json!({})).await;
    assert_eq!(data(&me)["me"]["identities"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn bad_applications_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let world = app.world().await;
    let body = app
        .gql_as(&world.admin.access, "mutation { updateDomain(id: \"00000000-0000-0000-0000-000000000000\", input: { isActive: false }) { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let sam = app.register("sam@example.com").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "identityType": "MASTER", "domain": "astrology", "verificationDocuments": ["https://x.example.com/a"] }),
            "BAD_USER_INPUT",
            "input.domain",
        ),
        (json!({ "identityType": "MASTER", "domain": "software" }), "BAD_USER_INPUT", "input.verificationDocuments"),
        (
            json!({ "identityType": "MASTER", "domain": "software", "verificationDocuments": ["ftp://x"] }),
            "BAD_USER_INPUT",
            "input.verificationDocuments[0]",
        ),
        (
            json!({ "identityType": "MASTER", "domain": "software", "verificationDocuments": vec!["https://x.example.com/a"; 11] }),
            "BAD_USER_INPUT",
            "input.verificationDocuments",
        ),
        (json!({ "identityType": "APPRENTICE", "domain": "" }), "BAD_USER_INPUT", "input.domain"),
    ];
    for (input, code, field) in cases {
        let body = app.gql_as(&sam.access, APPLY, json!({ "i": input })).await;
        assert_eq!(error_code(&body), code, "{input}: {body}");
        assert_eq!(error_field(&body), field, "{input}: {body}");
    }
    let body = app.gql_as(&sam.access, APPLY, json!({ "i": { "identityType": "GURU", "domain": "software" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app.gql(APPLY, json!({ "i": { "identityType": "APPRENTICE", "domain": "software" } })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    // An inactive domain takes no new identities.
    let domains = app.gql("{ domains { id code } }", json!({})).await;
    let design =
        data(&domains)["domains"].as_array().expect("domains").iter().find(|d| d["code"] == "design").expect("design")
            ["id"]
            .clone();
    data(
        &app.gql_as(
            &world.admin.access,
            "mutation($id: ID!) { updateDomain(id: $id, input: { isActive: false }) { id } }",
            json!({ "id": design }),
        )
        .await,
    );
    let body =
        app.gql_as(&sam.access, APPLY, json!({ "i": { "identityType": "APPRENTICE", "domain": "design" } })).await;
    assert_eq!(error_field(&body), "input.domain", "{body}");
    assert_eq!(app.count("user_identities").await, 0);
    let domains = app.gql("{ domains { code } }", json!({})).await;
    assert_eq!(data(&domains)["domains"], json!([{ "code": "software" }]), "inactive domains are hidden");
}

#[tokio::test]
async fn admins_review_master_identities_with_audit_and_notification() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let ada_identity = app.apply(&ada, "MASTER", "software").await;
    let bob_identity = app.apply(&bob, "MASTER", "software").await;
    let apprentice_identity = app.apply(&bob, "APPRENTICE", "software").await;

    // Non-admins cannot review, and nothing changes.
    let before = app.snapshot("user_identities").await;
    for (token, code) in
        [(None, "UNAUTHENTICATED"), (Some(ada.access.as_str()), "FORBIDDEN"), (Some(bob.access.as_str()), "FORBIDDEN")]
    {
        let body = app.gql_with(token, REVIEW, json!({ "id": ada_identity, "d": "APPROVE" })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    assert_eq!(app.snapshot("user_identities").await, before);
    // (world() also made its domains: audited, not counted here.)
    let entries = "SELECT COUNT(*) FROM audit_logs WHERE table_name <> 'domains'";
    assert_eq!(app.scalar(entries).await, 1, "only the grant-admin entry");

    let admin = world.admin.access.as_str();
    let body = app.gql_as(admin, REVIEW, json!({ "id": ada_identity, "d": "APPROVE" })).await;
    assert_eq!(data(&body)["reviewIdentity"]["status"], "ACTIVE");
    assert_eq!(data(&body)["reviewIdentity"]["verificationStatus"], "VERIFIED");
    // Repeating the decision is a no-op success; the opposite decision is a conflict.
    let body = app.gql_as(admin, REVIEW, json!({ "id": ada_identity, "d": "APPROVE" })).await;
    assert_eq!(data(&body)["reviewIdentity"]["status"], "ACTIVE");
    let body = app.gql_as(admin, REVIEW, json!({ "id": ada_identity, "d": "REJECT", "r": "changed my mind" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");

    let body = app.gql_as(admin, REVIEW, json!({ "id": bob_identity, "d": "REJECT" })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "a rejection needs a reason: {body}");
    let body =
        app.gql_as(admin, REVIEW, json!({ "id": bob_identity, "d": "REJECT", "r": "documents unreadable" })).await;
    assert_eq!(data(&body)["reviewIdentity"]["status"], "REJECTED");
    let body = app.gql_as(admin, REVIEW, json!({ "id": apprentice_identity, "d": "APPROVE" })).await;
    assert_eq!(error_code(&body), "CONFLICT", "apprentices are not reviewed: {body}");
    let body = app.gql_as(admin, REVIEW, json!({ "id": uuid::Uuid::new_v4().to_string(), "d": "APPROVE" })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    assert_eq!(app.scalar(entries).await, 3, "grant-admin + two decisions");
    let logs = app.snapshot("audit_logs").await.join("\n");
    assert!(logs.contains("pending") && logs.contains("verified") && logs.contains("rejected"), "{logs}");
    assert!(logs.contains("documents unreadable"));
    assert!(logs.contains("127.0.0.1"), "the admin's IP is recorded: {logs}");
    assert_eq!(app.count("notifications").await, 2);
    let notes = app.snapshot("notifications").await.join("\n");
    assert!(notes.contains("identity_approved") && notes.contains("identity_rejected"), "{notes}");
}

#[tokio::test]
async fn profiles_are_validated_and_only_their_owner_edits_them() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let eve = app.register("eve@example.com").await;
    let id = ada.identity.as_str();

    let body = app
        .gql_as(
            &ada.session.access,
            PROFILE,
            json!({ "id": id, "i": {
            "skills": ["rust", "sql", "rust"], "hourlyRate": "150.5", "website": "https://ada.dev",
            "socialLinks": { "github": "https://github.com/ada" }, "bio": "Engines."
        } }),
        )
        .await;
    let profile = &data(&body)["updateProfile"];
    assert_eq!(profile["skills"], json!(["rust", "sql"]));
    assert_eq!(profile["hourlyRate"], "150.50");
    assert_eq!(profile["socialLinks"]["github"], "https://github.com/ada");
    // Null clears a field; omitted fields stay.
    let body = app.gql_as(&ada.session.access, PROFILE, json!({ "id": id, "i": { "website": null } })).await;
    assert!(data(&body)["updateProfile"]["website"].is_null());
    assert_eq!(data(&body)["updateProfile"]["hourlyRate"], "150.50");

    let before = app.snapshot("user_profiles").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "name": "" }), "input.name"),
        (json!({ "name": "x".repeat(101) }), "input.name"),
        (json!({ "avatar": "not a url" }), "input.avatar"),
        (json!({ "website": "ftp://ada.dev" }), "input.website"),
        (json!({ "skills": vec!["s"; 31] }), "input.skills"),
        (json!({ "skills": ["x".repeat(51)] }), "input.skills[0]"),
        (json!({ "hourlyRate": "-1.00" }), "input.hourlyRate"),
        (json!({ "hourlyRate": "10.999" }), "input.hourlyRate"),
        (json!({ "experienceYears": -1 }), "input.experienceYears"),
        (json!({ "experienceYears": 81 }), "input.experienceYears"),
        (json!({ "location": "x".repeat(201) }), "input.location"),
        (json!({ "socialLinks": ["https://x.com"] }), "input.socialLinks"),
        (json!({ "socialLinks": { "x": "javascript:1" } }), "input.socialLinks"),
    ];
    for (input, field) in cases {
        let body = app.gql_as(&ada.session.access, PROFILE, json!({ "id": id, "i": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(error_field(&body), field, "{input}: {body}");
    }
    for (token, code) in [
        (None, "UNAUTHENTICATED"),
        (Some(eve.access.as_str()), "FORBIDDEN"),
        (Some(world.admin.access.as_str()), "FORBIDDEN"),
    ] {
        let body = app.gql_with(token, PROFILE, json!({ "id": id, "i": { "name": "Hijacked" } })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let body = app
        .gql_as(&ada.session.access, PROFILE, json!({ "id": uuid::Uuid::new_v4().to_string(), "i": { "name": "X" } }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(app.snapshot("user_profiles").await, before);
}

#[tokio::test]
async fn domains_are_managed_by_admins() {
    let app = spawn_app().await;
    let world = app.world().await;
    let eve = app.register("eve@example.com").await;
    for (token, code) in [(None, "UNAUTHENTICATED"), (Some(eve.access.as_str()), "FORBIDDEN")] {
        let body = app.gql_with(token, CREATE_DOMAIN, json!({ "i": { "name": "Music", "code": "music" } })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let admin = world.admin.access.as_str();
    let body = app.gql_as(admin, CREATE_DOMAIN, json!({ "i": { "name": "Software 2", "code": "software" } })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    for (input, field) in [
        (json!({ "name": "", "code": "x" }), "input.name"),
        (json!({ "name": "X", "code": "Has Space" }), "input.code"),
        (json!({ "name": "X", "code": "x", "icon": "nope" }), "input.icon"),
    ] {
        let body = app.gql_as(admin, CREATE_DOMAIN, json!({ "i": input })).await;
        assert_eq!(error_field(&body), field, "{body}");
    }
    assert_eq!(app.count("domains").await, 2);
    data(
        &app.gql_as(admin, CREATE_DOMAIN, json!({ "i": { "name": "Music", "code": "music", "sortOrder": -1 } })).await,
    );
    let body = app.gql("{ domains { code } }", json!({})).await;
    assert_eq!(data(&body)["domains"][0]["code"], "music", "ordered by sortOrder");
}

#[tokio::test]
async fn mentors_are_listed_with_stats_filters_and_order() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let dee = app.master(&world, "dee@example.com", "design").await;
    data(
        &app.gql_as(
            &dee.session.access,
            PROFILE,
            json!({ "id": dee.identity, "i": { "hourlyRate": "300.00", "skills": ["figma"] } }),
        )
        .await,
    );
    let course = app.course(&ada, None, 1, true).await;
    app.course(&ada, None, 1, false).await; // drafts do not count
    let sam = app.register("sam@example.com").await;
    data(&app.gql_as(&sam.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course })).await);
    let pending = app.register("pending@example.com").await;
    app.apply(&pending, "MASTER", "software").await;

    let query = "query($f: MentorFilterInput, $o: MentorOrderBy) { mentors(filter: $f, orderBy: $o) {
        totalCount edges { node { id profile { name hourlyRate } stats { courseCount studentCount reviewCount averageRating } courses { id } } } } }";
    let body = app.gql(query, json!({})).await;
    let mentors = &data(&body)["mentors"];
    assert_eq!(mentors["totalCount"], 2, "pending masters are not mentors: {mentors}");
    let ada_node = mentors["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["node"]["id"] == ada.identity.as_str())
        .expect("ada")["node"]
        .clone();
    assert_eq!(ada_node["stats"]["courseCount"], 1);
    assert_eq!(ada_node["stats"]["studentCount"], 1);
    assert_eq!(ada_node["stats"]["reviewCount"], 0);
    assert!(ada_node["stats"]["averageRating"].is_null());
    assert_eq!(ada_node["courses"], json!([{ "id": course }]));
    let newer = app.course(&ada, None, 1, true).await;
    let body = app
        .gql(
            "query($id: ID!) { mentor(id: $id) { all: courses { id } newest: courses(first: 1) { id } } }",
            json!({ "id": ada.identity }),
        )
        .await;
    assert_eq!(data(&body)["mentor"]["all"], json!([{ "id": newer }, { "id": course }]), "newest first");
    assert_eq!(data(&body)["mentor"]["newest"], json!([{ "id": newer }]));

    let body = app.gql(query, json!({ "f": { "domain": "design" } })).await;
    assert_eq!(data(&body)["mentors"]["totalCount"], 1);
    let body = app.gql(query, json!({ "f": { "skill": "figma" } })).await;
    assert_eq!(data(&body)["mentors"]["edges"][0]["node"]["id"], dee.identity.as_str());
    let body = app.gql(query, json!({ "f": { "minRate": "200.00" } })).await;
    assert_eq!(data(&body)["mentors"]["totalCount"], 1);
    let body = app.gql(query, json!({ "o": { "field": "HOURLY_RATE", "direction": "ASC" } })).await;
    assert_eq!(data(&body)["mentors"]["edges"][0]["node"]["profile"]["hourlyRate"], "100.00");

    let body =
        app.gql("query($id: ID!) { mentor(id: $id) { id profile { name } } }", json!({ "id": ada.identity })).await;
    assert_eq!(data(&body)["mentor"]["profile"]["name"], "ada");
    let body =
        app.gql("query($id: ID!) { mentor(id: $id) { id } }", json!({ "id": uuid::Uuid::new_v4().to_string() })).await;
    assert!(data(&body)["mentor"].is_null());
}
