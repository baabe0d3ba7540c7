//! Black-box tests: each starts the real server on a random port with a fresh database (SQLite
//! always; PostgreSQL when TEST_DATABASE_URL is set) and speaks HTTP/WebSocket to it like a client.

// Panicking on a broken precondition is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
// Setup that a client cannot do (back-dating a row, a database before the server) writes SQL
// directly: there is no server cache in the test process to mark (`domain::write`).
#![allow(clippy::disallowed_methods)]

mod helpers;

mod accounts;
mod admin;
mod admission;
mod appointments;
mod availability;
mod browser;
mod cache;
mod circles;
mod config_files;
mod conformance;
mod courses;
mod hostile;
mod http;
mod identities;
mod learning;
mod lifecycle;
mod messaging;
mod migrations;
mod moderation;
mod node;
mod pages;
mod redis_outage;
mod schema;
mod search;
mod uploads;
mod websocket;
