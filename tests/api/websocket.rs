//! The graphql-transport-ws endpoint: handshake, viewer from connection_init, bad tokens refused.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn connect(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().expect("header"));
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("connect");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
        Some("graphql-transport-ws")
    );
    socket
}

async fn next_message(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .expect("socket open")
        .expect("valid frame")
}

#[tokio::test]
async fn a_valid_or_absent_token_is_acknowledged() {
    let app = spawn_app().await;
    let session = app.register("ws@example.com").await;
    for payload in [json!({}), json!({ "Authorization": format!("Bearer {}", session.access) })] {
        let mut socket = connect(&app).await;
        socket
            .send(Message::Text(json!({ "type": "connection_init", "payload": payload }).to_string().into()))
            .await
            .expect("send init");
        let Message::Text(text) = next_message(&mut socket).await else { panic!("expected text") };
        let ack: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket.send(Message::Text(json!({ "type": "ping" }).to_string().into())).await.expect("ping");
        let Message::Text(text) = next_message(&mut socket).await else { panic!("expected text") };
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json")["type"], "pong");
    }
}

#[tokio::test]
async fn an_invalid_token_closes_the_socket_with_4401() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    socket
        .send(Message::Text(
            json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } })
                .to_string()
                .into(),
        ))
        .await
        .expect("send init");
    match next_message(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4401, "{frame:?}"),
        other => panic!("expected a close frame, got {other:?}"),
    }
}
