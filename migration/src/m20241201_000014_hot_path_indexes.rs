//! Added to the design: composite indexes for the pages the frontends load most. The design indexes
//! single columns; a page query filters on some columns and orders on others, and with single-column
//! indexes PostgreSQL has to read every matching row and sort it (a popular circle's feed read all
//! its posts to return 20). Each index below is the filter's equality columns followed by the page's
//! order and the keyset tie-breaker, so a page is an index range scan that stops after `first` rows,
//! read forwards or backwards (every keyset order uses one direction for all its keys).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns)
const INDEXES: &[(&str, &str, &str)] = &[
    // circle.posts(orderBy: LATEST | HOT): pinned first
    ("idx_posts_circle_latest", "posts", "circle_id, status, is_top, created_at, id"),
    ("idx_posts_circle_hot", "posts", "circle_id, status, is_top, like_count, created_at, id"),
    // post.comments: thread order
    ("idx_comments_post_thread", "comments", "post_id, created_at, id"),
    // course.reviews and mentor.reviews: newest first
    ("idx_reviews_course_page", "reviews", "course_id, review_type, status, created_at, id"),
    ("idx_reviews_reviewed_page", "reviews", "reviewed_id, status, created_at, id"),
    // courses(orderBy: RATING | PRICE | CREATED_AT | STUDENTS) over one status
    ("idx_courses_status_rating", "courses", "status, rating, id"),
    ("idx_courses_status_price", "courses", "status, price, id"),
    ("idx_courses_status_created", "courses", "status, created_at, id"),
    ("idx_courses_status_students", "courses", "status, current_students, id"),
    // unreadNotificationCount
    ("idx_notifications_user_unread", "notifications", "user_id, is_read"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::create(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::indexes::drop(manager, INDEXES).await
    }
}
