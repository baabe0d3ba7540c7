// The official graphql-ws client against a running server: it connects with a token, subscribes,
// receives an event, runs a query and a mutation over the same socket, and disposes cleanly.
//   node graphql-ws-client.mjs ws://127.0.0.1:PORT/graphql/ws RECEIVER_TOKEN SENDER_TOKEN RECEIVER_ID
// Prints one JSON line per step; exits 1 on any failure.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, receiverToken, senderToken, receiverId] = process.argv.slice(2);
const client = (token) =>
  createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    lazy: true,
  });
const once = (c, payload) =>
  new Promise((resolve, reject) => {
    let result;
    c.subscribe(payload, { next: (value) => (result = value), error: reject, complete: () => resolve(result) });
  });
const step = (name, value) => console.log(JSON.stringify({ step: name, value }));

const receiver = client(receiverToken);
const sender = client(senderToken);
try {
  const event = new Promise((resolve, reject) => {
    const dispose = receiver.subscribe(
      { query: 'subscription { messageReceived { content sender { id } } }' },
      {
        next: (value) => {
          dispose();
          resolve(value);
        },
        error: reject,
        complete: () => {},
      },
    );
  });
  // Give the server a moment to register the subscription before the event is produced.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const me = await once(receiver, { query: '{ me { id } }' });
  step('query', me);
  const sent = await once(sender, {
    query: 'mutation($i: SendMessageInput!) { sendMessage(input: $i) { content } }',
    variables: { i: { toUserId: receiverId, content: 'over graphql-ws' } },
  });
  step('mutation', sent);
  const received = await Promise.race([
    event,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no event within 5 s')), 5000)),
  ]);
  step('event', received);
  const invalid = await once(receiver, { query: '{ nope }' }).then(
    (value) => ({ unexpected: value }),
    (errors) => ({ errors }),
  );
  step('invalid', invalid);
  await receiver.dispose();
  await sender.dispose();
  process.exit(0);
} catch (error) {
  console.error('graphql-ws client failed:', error instanceof Error ? error.stack : JSON.stringify(error));
  process.exit(1);
}
