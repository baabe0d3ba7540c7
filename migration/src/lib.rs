//! Schema migrations for every table of the Master Guide database design, on SQLite and PostgreSQL.
//!
//! The design's tables come first (000001..000008), then what the API adds, each in its own
//! migration. PostgreSQL-only extras (GIN indexes over JSONB arrays) sit behind a backend check.

pub use sea_orm_migration::prelude::*;

mod columns;
mod indexes;

mod m20241201_000001_create_users;
mod m20241201_000002_create_identities;
mod m20241201_000003_create_courses;
mod m20241201_000004_create_circles;
mod m20241201_000005_create_appointments;
mod m20241201_000006_create_messages;
mod m20241201_000007_create_system_tables;
mod m20241201_000008_create_stats_views;
mod m20241201_000009_add_user_role;
mod m20241201_000010_create_refresh_tokens;
mod m20241201_000011_create_appointment_status_logs;
mod m20241201_000012_appointment_ends_at;
mod m20241201_000013_review_and_message_keys;
mod m20241201_000014_hot_path_indexes;
mod m20241201_000015_mentor_courses_index;
mod m20241201_000016_stats_covering_indexes;
mod m20241201_000017_mentor_reviews_index;
mod m20241201_000018_create_idempotency_keys;
mod m20241201_000019_integrity_corners;
mod m20241201_000020_create_search_outbox;
mod m20241201_000021_create_account_tokens_and_mail_outbox;
mod m20241201_000022_audit_record_id;
mod m20241201_000023_moderation_columns;
mod m20241201_000024_feed_indexes;
mod m20241201_000025_pinned_oldest_indexes;
mod m20241201_000026_create_uploads;
mod m20241201_000027_create_availability_and_thread_indexes;
mod m20241201_000028_create_polls;
mod m20241201_000029_review_likes_and_circle_reads;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20241201_000001_create_users::Migration),
            Box::new(m20241201_000002_create_identities::Migration),
            Box::new(m20241201_000003_create_courses::Migration),
            Box::new(m20241201_000004_create_circles::Migration),
            Box::new(m20241201_000005_create_appointments::Migration),
            Box::new(m20241201_000006_create_messages::Migration),
            Box::new(m20241201_000007_create_system_tables::Migration),
            Box::new(m20241201_000008_create_stats_views::Migration),
            Box::new(m20241201_000009_add_user_role::Migration),
            Box::new(m20241201_000010_create_refresh_tokens::Migration),
            Box::new(m20241201_000011_create_appointment_status_logs::Migration),
            Box::new(m20241201_000012_appointment_ends_at::Migration),
            Box::new(m20241201_000013_review_and_message_keys::Migration),
            Box::new(m20241201_000014_hot_path_indexes::Migration),
            Box::new(m20241201_000015_mentor_courses_index::Migration),
            Box::new(m20241201_000016_stats_covering_indexes::Migration),
            Box::new(m20241201_000017_mentor_reviews_index::Migration),
            Box::new(m20241201_000018_create_idempotency_keys::Migration),
            Box::new(m20241201_000019_integrity_corners::Migration),
            Box::new(m20241201_000020_create_search_outbox::Migration),
            Box::new(m20241201_000021_create_account_tokens_and_mail_outbox::Migration),
            Box::new(m20241201_000022_audit_record_id::Migration),
            Box::new(m20241201_000023_moderation_columns::Migration),
            Box::new(m20241201_000024_feed_indexes::Migration),
            Box::new(m20241201_000025_pinned_oldest_indexes::Migration),
            Box::new(m20241201_000026_create_uploads::Migration),
            Box::new(m20241201_000027_create_availability_and_thread_indexes::Migration),
            Box::new(m20241201_000028_create_polls::Migration),
            Box::new(m20241201_000029_review_likes_and_circle_reads::Migration),
        ]
    }
}

/// Every table the migrations create, in creation order (used by tests and `migrate status`).
pub const TABLES: &[&str] = &[
    "users",
    "user_identities",
    "user_profiles",
    "courses",
    "course_contents",
    "learning_records",
    "content_progress",
    "circles",
    "circle_members",
    "posts",
    "comments",
    "post_likes",
    "comment_likes",
    "appointments",
    "reviews",
    "messages",
    "notifications",
    "domains",
    "system_configs",
    "audit_logs",
    "refresh_tokens",
    "appointment_status_logs",
    "idempotency_keys",
    "search_outbox",
    "account_tokens",
    "mail_outbox",
    "uploads",
    "mentor_availability",
    "poll_options",
    "poll_votes",
    "review_likes",
];
