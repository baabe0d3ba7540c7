//! Messages, conversations, notifications, and live subscriptions (in-process and across two
//! server instances through Redis).

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Frame;

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id content } }";

#[tokio::test]
async fn private_messages_conversations_and_read_state() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let cat = app.register("cat@example.com").await;
    for (from, to, text) in
        [(&ann, &bob, "hi bob"), (&bob, &ann, "hi ann"), (&ann, &bob, "how are you?"), (&cat, &bob, "hey")]
    {
        data(&app.gql_as(&from.access, SEND, json!({ "i": { "toUserId": to.user_id, "content": text } })).await);
    }
    let body = app
        .gql_as(
            &bob.access,
            "{ conversations { edges { node { partner { id } unreadCount lastMessage { content } } } } }",
            json!({}),
        )
        .await;
    let edges = data(&body)["conversations"]["edges"].as_array().expect("edges").clone();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["partner"]["id"], cat.user_id.as_str(), "most recent first");
    assert_eq!(edges[1]["node"]["lastMessage"]["content"], "how are you?");
    assert_eq!(edges[1]["node"]["unreadCount"], 2);

    let thread = "query($u: ID!) { messages(withUserId: $u) { totalCount edges { node { content isRead } } } }";
    let body = app.gql_as(&bob.access, thread, json!({ "u": ann.user_id })).await;
    let contents: Vec<&str> = data(&body)["messages"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["content"].as_str())
        .collect();
    assert_eq!(contents, vec!["hi bob", "hi ann", "how are you?"], "time order");
    let body = app
        .gql_as(&bob.access, "mutation($u: ID!) { markMessagesRead(withUserId: $u) }", json!({ "u": ann.user_id }))
        .await;
    assert_eq!(data(&body)["markMessagesRead"], 2);
    let body = app.gql_as(&bob.access, "{ conversations { edges { node { unreadCount } } } }", json!({})).await;
    assert_eq!(data(&body)["conversations"]["edges"][1]["node"]["unreadCount"], 0);
    // Paging backwards in time: the latest message first with last: 1.
    let body = app.gql_as(&bob.access, "query($u: ID!) { messages(withUserId: $u, last: 1) { pageInfo { hasPreviousPage } edges { node { content } } } }", json!({ "u": ann.user_id })).await;
    assert_eq!(data(&body)["messages"]["edges"][0]["node"]["content"], "how are you?");
    assert_eq!(data(&body)["messages"]["pageInfo"]["hasPreviousPage"], true);
    // Cat sees only her own conversation with Bob, never Ann and Bob's.
    let body = app.gql_as(&cat.access, "{ conversations { edges { node { partner { id } } } } }", json!({})).await;
    assert_eq!(data(&body)["conversations"]["edges"].as_array().map(Vec::len), Some(1));
    let body = app.gql_as(&cat.access, thread, json!({ "u": ann.user_id })).await;
    assert_eq!(data(&body)["messages"]["totalCount"], 0);
    let body = app.gql(thread, json!({ "u": ann.user_id })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_messages_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({ "toUserId": bob.user_id, "content": "" }), "BAD_USER_INPUT", "input.content"),
        (json!({ "toUserId": bob.user_id, "content": "x".repeat(5001) }), "BAD_USER_INPUT", "input.content"),
        (
            json!({ "toUserId": bob.user_id, "content": "x", "messageType": "SYSTEM" }),
            "BAD_USER_INPUT",
            "input.messageType",
        ),
        (json!({ "content": "x" }), "BAD_USER_INPUT", "input.toUserId"),
        (
            json!({ "toUserId": bob.user_id, "circleId": bob.user_id, "content": "x" }),
            "BAD_USER_INPUT",
            "input.toUserId",
        ),
        (json!({ "toUserId": ann.user_id, "content": "me" }), "BAD_USER_INPUT", "input.toUserId"),
        (json!({ "toUserId": uuid::Uuid::new_v4().to_string(), "content": "x" }), "NOT_FOUND", "<no field>"),
        (json!({ "circleId": uuid::Uuid::new_v4().to_string(), "content": "x" }), "NOT_FOUND", "<no field>"),
    ];
    for (input, code, field) in cases {
        let body = app.gql_as(&ann.access, SEND, json!({ "i": input })).await;
        assert_eq!(error_code(&body), code, "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app.gql(SEND, json!({ "i": { "toUserId": bob.user_id, "content": "x" } })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn circle_messages_reach_members_only() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.register("owner@example.com").await;
    let owner_identity = app.apply(&owner, "APPRENTICE", "software").await;
    let outsider = app.register("outsider@example.com").await;
    let body = app
        .gql_as(
            &owner.access,
            "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }",
            json!({ "i": { "identityId": owner_identity, "name": "C", "domain": "software" } }),
        )
        .await;
    let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
    data(&app.gql_as(&owner.access, SEND, json!({ "i": { "circleId": circle, "content": "welcome" } })).await);
    let body = app.gql_as(&outsider.access, SEND, json!({ "i": { "circleId": circle, "content": "let me in" } })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let read = "query($c: ID!) { messages(circleId: $c) { totalCount } }";
    assert_eq!(error_code(&app.gql_as(&outsider.access, read, json!({ "c": circle })).await), "FORBIDDEN");
    assert_eq!(data(&app.gql_as(&owner.access, read, json!({ "c": circle })).await)["messages"]["totalCount"], 1);
}

#[tokio::test]
async fn notifications_are_read_and_counted_by_their_owner_only() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ada = app.register("ada@example.com").await;
    let eve = app.register("eve@example.com").await;
    let identity = app.apply(&ada, "MASTER", "software").await;
    data(
        &app.gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: APPROVE) { id } }",
            json!({ "id": identity }),
        )
        .await,
    );
    let identity2 = app.apply(&ada, "MASTER", "design").await;
    data(
        &app.gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: REJECT, reason: \"no\") { id } }",
            json!({ "id": identity2 }),
        )
        .await,
    );

    let count = "{ unreadNotificationCount }";
    assert_eq!(data(&app.gql_as(&ada.access, count, json!({})).await)["unreadNotificationCount"], 2);
    assert_eq!(data(&app.gql_as(&eve.access, count, json!({})).await)["unreadNotificationCount"], 0);
    let body = app
        .gql_as(
            &ada.access,
            "{ notifications { totalCount edges { node { id notificationType isRead } } } }",
            json!({}),
        )
        .await;
    let edges = data(&body)["notifications"]["edges"].as_array().expect("edges").clone();
    assert_eq!(edges[0]["node"]["notificationType"], "identity_rejected", "newest first");
    let id = edges[0]["node"]["id"].clone();
    let mark = "mutation($id: ID!) { markNotificationRead(id: $id) { isRead readAt } }";
    let body = app.gql_as(&eve.access, mark, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "not hers: {body}");
    assert_eq!(data(&app.gql_as(&ada.access, mark, json!({ "id": id })).await)["markNotificationRead"]["isRead"], true);
    let body = app.gql_as(&ada.access, "{ notifications(unreadOnly: true) { totalCount } }", json!({})).await;
    assert_eq!(data(&body)["notifications"]["totalCount"], 1);
    assert_eq!(
        data(&app.gql_as(&ada.access, "mutation { markAllNotificationsRead }", json!({})).await)
            ["markAllNotificationsRead"],
        1
    );
    assert_eq!(data(&app.gql_as(&ada.access, count, json!({})).await)["unreadNotificationCount"], 0);
    assert_eq!(error_code(&app.gql(count, json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn subscribers_receive_their_messages_and_notifications_live() {
    let app = spawn_app().await;
    let world = app.world().await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let eve = app.register("eve@example.com").await;
    let mut bob_messages =
        ws_subscribed(&app, &bob.access, "subscription { messageReceived { content sender { id } } }").await;
    let mut eve_messages = ws_subscribed(&app, &eve.access, "subscription { messageReceived { content } }").await;
    data(&app.gql_as(&ann.access, SEND, json!({ "i": { "toUserId": bob.user_id, "content": "psst" } })).await);
    let event = next_json(&mut bob_messages).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["payload"]["data"]["messageReceived"]["content"], "psst");
    assert_eq!(event["payload"]["data"]["messageReceived"]["sender"]["id"], ann.user_id.as_str());
    // Eve got nothing: the next thing she sees is her own message.
    data(&app.gql_as(&ann.access, SEND, json!({ "i": { "toUserId": eve.user_id, "content": "for eve" } })).await);
    assert_eq!(next_json(&mut eve_messages).await["payload"]["data"]["messageReceived"]["content"], "for eve");

    // A notification arrives live when the mutation that made it commits...
    let mut ann_notes =
        ws_subscribed(&app, &ann.access, "subscription { notificationReceived { notificationType } }").await;
    let identity = app.apply(&ann, "MASTER", "software").await;
    data(
        &app.gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: APPROVE) { id } }",
            json!({ "id": identity }),
        )
        .await,
    );
    let event = next_json(&mut ann_notes).await;
    assert_eq!(event["payload"]["data"]["notificationReceived"]["notificationType"], "identity_approved");
    // ...and never for a refused one.
    let identity2 = app.apply(&ann, "MASTER", "design").await;
    let body = app
        .gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: REJECT) { id } }",
            json!({ "id": identity2 }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    data(
        &app.gql_as(
            &world.admin.access,
            "mutation($id: ID!) { reviewIdentity(id: $id, decision: REJECT, reason: \"r\") { id } }",
            json!({ "id": identity2 }),
        )
        .await,
    );
    let event = next_json(&mut ann_notes).await;
    assert_eq!(event["payload"]["data"]["notificationReceived"]["notificationType"], "identity_rejected");

    // Anonymous subscriptions are refused with an error; a banned user's socket is closed (4403).
    let mut anon = ws_open(&app, Some("graphql-transport-ws")).await;
    anon.send(Frame::Text(json!({ "type": "connection_init" }).to_string().into())).await.expect("init");
    assert_eq!(next_json(&mut anon).await["type"], "connection_ack");
    anon.send(Frame::Text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { messageReceived { content } }" } }).to_string().into())).await.expect("sub");
    let reply = next_json(&mut anon).await;
    assert_eq!(reply["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{reply}");

    app.exec("UPDATE users SET status = 'banned' WHERE email = 'eve@example.com'").await;
    let mut banned = ws_open(&app, Some("graphql-transport-ws")).await;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", eve.access) } });
    banned.send(Frame::Text(init.to_string().into())).await.expect("init");
    assert_eq!(next_json(&mut banned).await, json!({ "type": "close", "code": 4403 }));
}

/// Two instances on one database and one Redis: a message sent through A reaches a subscriber
/// connected to B within a second.
#[tokio::test]
async fn a_message_sent_through_one_instance_reaches_a_subscriber_on_another() {
    let Some(redis) = test_redis("cross-instance test") else { return };
    let channel = format!("mg-test-{}", uuid::Uuid::new_v4());
    let settings = [("REDIS_URL", redis.as_str()), ("EVENTS_CHANNEL", channel.as_str())];
    let a = spawn_app_with(&settings).await;
    let b = spawn_sibling(&a, &settings).await;
    let ann = a.register("ann@example.com").await;
    let bob = a.register("bob@example.com").await;
    let mut on_b = ws_subscribed(&b, &bob.access, "subscription { messageReceived { content } }").await;
    let sent = Instant::now();
    data(
        &a.gql_as(&ann.access, SEND, json!({ "i": { "toUserId": bob.user_id, "content": "across instances" } })).await,
    );
    let event = next_json(&mut on_b).await;
    let elapsed = sent.elapsed();
    assert_eq!(event["payload"]["data"]["messageReceived"]["content"], "across instances", "{event}");
    assert!(elapsed < Duration::from_secs(1), "delivered in {elapsed:?}");
}

/// Circle chats are listed with each member's own unread count, read positions move per member,
/// and the inbox badge counts private and circle messages.
#[tokio::test]
async fn circle_conversations_count_each_members_unread_messages() {
    let app = spawn_app().await;
    let _world = app.world().await;
    let owner = app.register("owner@example.com").await;
    let owner_identity = app.apply(&owner, "APPRENTICE", "software").await;
    let member = app.register("member@example.com").await;
    let member_identity = app.apply(&member, "APPRENTICE", "software").await;
    let mut circles = Vec::new();
    for name in ["First", "Second"] {
        let body = app
            .gql_as(
                &owner.access,
                "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }",
                json!({ "i": { "identityId": owner_identity, "name": name, "domain": "software" } }),
            )
            .await;
        let circle = data(&body)["createCircle"]["id"].as_str().expect("circle").to_string();
        let join = "mutation($c: ID!, $i: ID!) { joinCircle(circleId: $c, identityId: $i) { id } }";
        data(&app.gql_as(&member.access, join, json!({ "c": circle, "i": member_identity })).await);
        circles.push(circle);
    }
    for text in ["one", "two", "three"] {
        data(&app.gql_as(&owner.access, SEND, json!({ "i": { "circleId": circles[0], "content": text } })).await);
    }
    data(&app.gql_as(&member.access, SEND, json!({ "i": { "circleId": circles[1], "content": "mine" } })).await);
    let list = "{ circleConversations(first: 10) { edges { node { circle { name } unreadCount lastMessage { content isRead } } } } unreadMessageCount }";
    let body = app.gql_as(&member.access, list, json!({})).await;
    let edges = data(&body)["circleConversations"]["edges"].as_array().cloned().unwrap_or_default();
    let rows: Vec<(String, i64, String, bool)> = edges
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["circle"]["name"].as_str().unwrap_or_default().to_string(),
                n["unreadCount"].as_i64().unwrap_or(-1),
                n["lastMessage"]["content"].as_str().unwrap_or_default().to_string(),
                n["lastMessage"]["isRead"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("Second".into(), 0, "mine".into(), true), ("First".into(), 3, "three".into(), false)],
        "most recent first, own messages never unread: {body}"
    );
    assert_eq!(data(&body)["unreadMessageCount"], 3, "{body}");
    let body = app.gql_as(&owner.access, list, json!({})).await;
    let counts: Vec<i64> = data(&body)["circleConversations"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"]["unreadCount"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(counts, [1, 0], "the owner has the member's one message unread: {body}");

    let mark = "mutation($c: ID!) { markCircleMessagesRead(circleId: $c) }";
    assert_eq!(data(&app.gql_as(&member.access, mark, json!({ "c": circles[0] })).await)["markCircleMessagesRead"], 3);
    let body = app.gql_as(&member.access, list, json!({})).await;
    assert_eq!(data(&body)["unreadMessageCount"], 0, "{body}");
    assert_eq!(data(&body)["circleConversations"]["edges"][1]["node"]["lastMessage"]["isRead"], true, "{body}");
    let body = app.gql_as(&owner.access, list, json!({})).await;
    assert_eq!(data(&body)["unreadMessageCount"], 1, "the member's reading moves only their position: {body}");

    // Read up to the last message seen, and never back.
    let mut sent = Vec::new();
    for text in ["four", "five"] {
        let body = app.gql_as(&owner.access, SEND, json!({ "i": { "circleId": circles[0], "content": text } })).await;
        sent.push(data(&body)["sendMessage"]["id"].as_str().expect("id").to_string());
    }
    let through = "mutation($c: ID!, $m: ID) { markCircleMessagesRead(circleId: $c, throughMessageId: $m) }";
    let body = app.gql_as(&member.access, through, json!({ "c": circles[0], "m": sent[0] })).await;
    assert_eq!(data(&body)["markCircleMessagesRead"], 1, "{body}");
    let body = app.gql_as(&member.access, through, json!({ "c": circles[0], "m": sent[0] })).await;
    assert_eq!(data(&body)["markCircleMessagesRead"], 0, "already read: {body}");
    let body = app.gql_as(&member.access, list, json!({})).await;
    assert_eq!(data(&body)["unreadMessageCount"], 1, "five is still unread: {body}");
    let other = app.gql_as(&member.access, through, json!({ "c": circles[1], "m": sent[1] })).await;
    assert_eq!((error_code(&other), error_field(&other)), ("BAD_USER_INPUT", "throughMessageId"), "{other}");

    // Paging, and the refusals.
    let page =
        "{ circleConversations(first: 1) { edges { cursor node { circle { name } } } pageInfo { hasNextPage } } }";
    let body = app.gql_as(&member.access, page, json!({})).await;
    assert_eq!(data(&body)["circleConversations"]["pageInfo"]["hasNextPage"], true, "{body}");
    let cursor = data(&body)["circleConversations"]["edges"][0]["cursor"].as_str().expect("cursor").to_string();
    let next = "query($a: String) { circleConversations(first: 1, after: $a) { edges { node { circle { name } } } pageInfo { hasNextPage } } }";
    let body = app.gql_as(&member.access, next, json!({ "a": cursor })).await;
    assert_eq!(
        data(&body)["circleConversations"]["edges"][0]["node"]["circle"]["name"],
        "Second",
        "First moved up: {body}"
    );
    assert_eq!(data(&body)["circleConversations"]["pageInfo"]["hasNextPage"], false, "{body}");
    let private = "query($a: String) { conversations(first: 1, after: $a) { edges { cursor } } }";
    let body = app.gql_as(&member.access, private, json!({ "a": cursor })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "after"), "another list's cursor: {body}");
    let outsider = app.register("outsider@example.com").await;
    let body = app.gql_as(&outsider.access, mark, json!({ "c": circles[0] })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app.gql_as(&outsider.access, list, json!({})).await;
    assert_eq!(data(&body)["circleConversations"]["edges"], json!([]), "{body}");
    assert_eq!(error_code(&app.gql(list, json!({})).await), "UNAUTHENTICATED");
}
