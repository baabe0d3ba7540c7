//! sea-orm entities for every table of the Master Guide database design, plus the tables the API
//! adds (`refresh_tokens`, `appointment_status_logs`, `idempotency_keys`), and the read-only stats views
//! (`mentor_stats`, `course_stats`). Status columns are typed enums (`enums`).

pub mod enums;

pub mod account_tokens;
pub mod appointment_status_logs;
pub mod appointments;
pub mod audit_logs;
pub mod circle_members;
pub mod circles;
pub mod comment_likes;
pub mod comments;
pub mod content_progress;
pub mod course_contents;
pub mod course_stats;
pub mod courses;
pub mod domains;
pub mod idempotency_keys;
pub mod learning_records;
pub mod mail_outbox;
pub mod mentor_availability;
pub mod mentor_stats;
pub mod messages;
pub mod notifications;
pub mod poll_options;
pub mod poll_votes;
pub mod post_likes;
pub mod posts;
pub mod refresh_tokens;
pub mod review_likes;
pub mod reviews;
pub mod search_outbox;
pub mod system_configs;
pub mod uploads;
pub mod user_identities;
pub mod user_profiles;
pub mod users;
