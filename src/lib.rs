//! Master Guide API: the GraphQL server of the Master Guide mentoring community.
//!
//! Layout: `config` (typed settings), `app` (state, start, stop), `http` (routes), `admission`
//! (the one way in for every operation: checks, cost, limits, idempotency), `graphql`
//! (schema, thin resolvers), `domain` (rules and transactions), `cache` (the entity cache facade),
//! `events` (after-commit fan-out), `search`, `settings` (live system configs), `mail` (the mail outbox and its sender), `auth`, `db`, `error`, `telemetry`.

pub mod admission;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod datagen;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod redis_link;
pub mod search;
pub mod settings;
pub mod storage;
pub mod telemetry;

pub use app::{AppState, Application};
pub use config::Config;
