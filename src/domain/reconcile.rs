//! `master-guide reconcile [--repair]`: proves the denormalized counters equal what the detail
//! tables say (count the truth, compare, report) and, when asked, repairs the rows that drifted.
//! The SQL is portable (SQLite and PostgreSQL).

use crate::error::AppResult;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};

struct Counter {
    name: &'static str,
    table: &'static str,
    column: &'static str,
    /// The true value for the row `{table}` (correlated sub-query).
    truth: &'static str,
}

const COUNTERS: &[Counter] = &[
    Counter {
        name: "courses.current_students",
        table: "courses",
        column: "current_students",
        truth: "(SELECT COUNT(*) FROM learning_records l WHERE l.course_id = courses.id AND l.status <> 'dropped')",
    },
    Counter {
        name: "courses.review_count",
        table: "courses",
        column: "review_count",
        truth: "(SELECT COUNT(*) FROM reviews r WHERE r.course_id = courses.id AND r.review_type = 'course' AND r.status = 'active')",
    },
    Counter {
        name: "courses.rating",
        table: "courses",
        column: "rating",
        // `values::average_rating` in integers: hundredths, half away from zero, exact on both
        // backends (SQLite's ROUND works on binary floats, where 4.115 is below 4.115).
        truth: "(SELECT CASE WHEN COUNT(*) = 0 THEN 0 ELSE ((200 * SUM(r.rating) + COUNT(*)) / (2 * COUNT(*))) / 100.0 END FROM reviews r WHERE r.course_id = courses.id AND r.review_type = 'course' AND r.status = 'active')",
    },
    Counter {
        name: "posts.like_count",
        table: "posts",
        column: "like_count",
        truth: "(SELECT COUNT(*) FROM post_likes l WHERE l.post_id = posts.id)",
    },
    Counter {
        name: "posts.comment_count",
        table: "posts",
        column: "comment_count",
        truth: "(SELECT COUNT(*) FROM comments c WHERE c.post_id = posts.id AND c.status = 'active')",
    },
    Counter {
        name: "comments.like_count",
        table: "comments",
        column: "like_count",
        truth: "(SELECT COUNT(*) FROM comment_likes l WHERE l.comment_id = comments.id)",
    },
    Counter {
        name: "circles.member_count",
        table: "circles",
        column: "member_count",
        truth: "(SELECT COUNT(*) FROM circle_members m WHERE m.circle_id = circles.id AND m.is_active = TRUE)",
    },
    Counter {
        name: "circles.post_count",
        table: "circles",
        column: "post_count",
        truth: "(SELECT COUNT(*) FROM posts p WHERE p.circle_id = circles.id AND p.status = 'active')",
    },
    Counter {
        name: "poll_options.vote_count",
        table: "poll_options",
        column: "vote_count",
        truth: "(SELECT COUNT(*) FROM poll_votes v WHERE v.option_id = poll_options.id)",
    },
    Counter {
        name: "reviews.like_count",
        table: "reviews",
        column: "like_count",
        truth: "(SELECT COUNT(*) FROM review_likes l WHERE l.review_id = reviews.id)",
    },
];

/// Rows whose counter differs from the truth, per counter (after repair when `repair`).
pub struct Finding {
    pub counter: &'static str,
    pub drifted: i64,
    pub repaired: u64,
}

pub async fn run(db: &DatabaseConnection, repair: bool) -> AppResult<Vec<Finding>> {
    let backend = db.get_database_backend();
    let mut findings = Vec::new();
    let txn = db.begin().await?;
    for counter in COUNTERS {
        let differs = format!("{} <> {}", counter.column, counter.truth);
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {} WHERE {differs}", counter.table);
        let drifted = match txn.query_one(Statement::from_string(backend, sql)).await? {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
        let mut repaired = 0;
        if repair && drifted > 0 {
            let sql = format!("UPDATE {} SET {} = {} WHERE {differs}", counter.table, counter.column, counter.truth);
            repaired = txn.execute(Statement::from_string(backend, sql)).await?.rows_affected();
        }
        findings.push(Finding { counter: counter.name, drifted, repaired });
    }
    txn.commit().await?;
    Ok(findings)
}
