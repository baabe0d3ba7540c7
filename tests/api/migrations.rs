//! Migrations: up, down, up again; every table of the design with its unique and CHECK constraints.

use crate::helpers::*;
use chrono::Utc;
use entity::enums::*;
use entity::*;
use migration::{Migrator, MigratorTrait, TABLES};
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Set, SqlErr, Statement};
use uuid::Uuid;

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type IN ('table','view') ORDER BY name"
        }
        _ => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    db.query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("list tables")
        .iter()
        .filter_map(|row| row.try_get::<String>("", "name").ok())
        .collect()
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let mut app = spawn_app().await; // the server migrated up on start
    let db = app.db().await;
    let names = table_names(&db).await;
    for table in TABLES.iter().chain(&["mentor_stats", "course_stats"]) {
        assert!(names.iter().any(|n| n == table), "{table} missing after up ({}): {names:?}", backend());
    }
    // Its background workers read the tables about to be dropped (see below).
    let _ = app.stop().await;
    Migrator::down(&db, None).await.expect("down");
    let names = table_names(&db).await;
    let left: Vec<_> = names.iter().filter(|n| !n.starts_with("seaql_") && !n.starts_with("sqlite_")).collect();
    assert!(left.is_empty(), "left after down: {left:?}");
    Migrator::up(&db, None).await.expect("up again");
    let names = table_names(&db).await;
    assert!(TABLES.iter().all(|t| names.iter().any(|n| n == t)));
    assert!(Migrator::get_pending_migrations(&db).await.expect("pending").is_empty());
}

fn is_unique_violation(result: Result<impl Sized, DbErr>) -> bool {
    matches!(result.err().as_ref().and_then(DbErr::sql_err), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A chain of rows: user, identity, profile, course, content, circle, post, comment.
struct Fixture {
    user: Uuid,
    identity: Uuid,
    course: Uuid,
    content: Uuid,
    circle: Uuid,
    post: Uuid,
    comment: Uuid,
}

fn user(email: &str) -> users::ActiveModel {
    let now = Utc::now();
    users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.into()),
        password_hash: Set("x".into()),
        phone: Set(None),
        status: Set(UserStatus::Active),
        role: Set(UserRole::User),
        email_verified: Set(false),
        phone_verified: Set(false),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn identity(user: Uuid) -> user_identities::ActiveModel {
    let now = Utc::now();
    user_identities::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user),
        identity_type: Set(IdentityType::Master),
        domain: Set("software".into()),
        status: Set(IdentityStatus::Active),
        verification_status: Set(VerificationStatus::Verified),
        verification_documents: Set(Some(StringList(vec!["https://x.test/doc.pdf".into()]))),
        rejection_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn profile(user: Uuid, identity: Uuid) -> user_profiles::ActiveModel {
    let now = Utc::now();
    user_profiles::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user),
        identity_id: Set(identity),
        name: Set("Ada".into()),
        avatar: Set(None),
        bio: Set(None),
        skills: Set(Some(StringList(vec!["rust".into()]))),
        experience_years: Set(3),
        hourly_rate: Set(Some(Decimal::new(12050, 2))),
        location: Set(None),
        website: Set(None),
        social_links: Set(Some(serde_json::json!({ "github": "ada" }))),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn course(mentor: Uuid) -> courses::ActiveModel {
    let now = Utc::now();
    courses::ActiveModel {
        id: Set(Uuid::new_v4()),
        mentor_id: Set(mentor),
        title: Set("Rust".into()),
        description: Set(None),
        cover_image: Set(None),
        price: Set(Decimal::new(19900, 2)),
        duration_hours: Set(10),
        difficulty: Set(Some(Difficulty::Beginner)),
        status: Set(CourseStatus::Draft),
        max_students: Set(Some(10)),
        current_students: Set(0),
        rating: Set(Decimal::ZERO),
        review_count: Set(0),
        tags: Set(Some(StringList(vec!["rust".into()]))),
        prerequisites: Set(None),
        learning_objectives: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

async fn fixture(db: &DatabaseConnection) -> Fixture {
    let now = Utc::now();
    let u = user("a@example.com").insert(db).await.expect("user");
    let i = identity(u.id).insert(db).await.expect("identity");
    profile(u.id, i.id).insert(db).await.expect("profile");
    let c = course(i.id).insert(db).await.expect("course");
    assert_eq!(c.price, Decimal::new(19900, 2), "money round-trips exactly");
    let content = course_contents::ActiveModel {
        id: Set(Uuid::new_v4()),
        course_id: Set(c.id),
        title: Set("Intro".into()),
        content_type: Set(ContentType::Video),
        content_url: Set(None),
        content_text: Set(None),
        order_index: Set(0),
        duration_minutes: Set(Some(5)),
        is_free: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("content");
    let circle = circles::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set("Rustaceans".into()),
        description: Set(None),
        domain: Set("software".into()),
        created_by: Set(i.id),
        status: Set(CircleStatus::Active),
        member_count: Set(0),
        post_count: Set(0),
        avatar: Set(None),
        rules: Set(None),
        tags: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("circle");
    let post = posts::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(u.id),
        identity_id: Set(i.id),
        circle_id: Set(circle.id),
        content: Set("hello".into()),
        media_urls: Set(None),
        post_type: Set(PostType::Text),
        status: Set(ContentStatus::Active),
        like_count: Set(0),
        comment_count: Set(0),
        share_count: Set(0),
        view_count: Set(0),
        is_top: Set(false),
        is_essence: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("post");
    let comment = comments::ActiveModel {
        id: Set(Uuid::new_v4()),
        post_id: Set(post.id),
        user_id: Set(u.id),
        identity_id: Set(i.id),
        content: Set("hi".into()),
        parent_id: Set(None),
        reply_to_user_id: Set(None),
        like_count: Set(0),
        status: Set(ContentStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("comment");
    circle_members::ActiveModel {
        id: Set(Uuid::new_v4()),
        circle_id: Set(circle.id),
        user_id: Set(u.id),
        identity_id: Set(i.id),
        role: Set(MemberRole::Admin),
        joined_at: Set(now),
        is_active: Set(true),
        banned_at: Set(None),
        ban_reason: Set(None),
        last_read_at: Set(None),
    }
    .insert(db)
    .await
    .expect("member");
    Fixture {
        user: u.id,
        identity: i.id,
        course: c.id,
        content: content.id,
        circle: circle.id,
        post: post.id,
        comment: comment.id,
    }
}

#[tokio::test]
async fn unique_constraints_of_the_design_refuse_duplicates() {
    let app = spawn_app().await;
    let db = app.db().await;
    let f = fixture(&db).await;
    let now = Utc::now();

    assert!(is_unique_violation(user("a@example.com").insert(&db).await), "users.email");
    let mut again = identity(f.user);
    assert!(is_unique_violation(again.clone().insert(&db).await), "user_identities(user, domain, type)");
    again.identity_type = Set(IdentityType::Apprentice);
    again.insert(&db).await.expect("same domain, other type is fine");
    assert!(is_unique_violation(profile(f.user, f.identity).insert(&db).await), "user_profiles.identity_id");

    let record = || learning_records::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(f.user),
        course_id: Set(f.course),
        progress_percentage: Set(Decimal::ZERO),
        status: Set(LearningStatus::Enrolled),
        enrolled_at: Set(now),
        completed_at: Set(None),
        last_accessed_at: Set(now),
        total_study_time: Set(0),
    };
    record().insert(&db).await.expect("first enrollment");
    assert!(is_unique_violation(record().insert(&db).await), "learning_records(user, course)");

    let progress = || content_progress::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(f.user),
        content_id: Set(f.content),
        progress_percentage: Set(Decimal::new(5000, 2)),
        is_completed: Set(false),
        completed_at: Set(None),
        last_accessed_at: Set(now),
        study_time: Set(3),
    };
    progress().insert(&db).await.expect("first progress");
    assert!(is_unique_violation(progress().insert(&db).await), "content_progress(user, content)");

    let member = || circle_members::ActiveModel {
        id: Set(Uuid::new_v4()),
        circle_id: Set(f.circle),
        user_id: Set(f.user),
        identity_id: Set(f.identity),
        role: Set(MemberRole::Admin),
        joined_at: Set(now),
        is_active: Set(true),
        banned_at: Set(None),
        ban_reason: Set(None),
        last_read_at: Set(None),
    };
    assert!(is_unique_violation(member().insert(&db).await), "circle_members(circle, user)");

    let post_like = || post_likes::ActiveModel {
        id: Set(Uuid::new_v4()),
        post_id: Set(f.post),
        user_id: Set(f.user),
        created_at: Set(now),
    };
    post_like().insert(&db).await.expect("first like");
    assert!(is_unique_violation(post_like().insert(&db).await), "post_likes(post, user)");

    let comment_like = || comment_likes::ActiveModel {
        id: Set(Uuid::new_v4()),
        comment_id: Set(f.comment),
        user_id: Set(f.user),
        created_at: Set(now),
    };
    comment_like().insert(&db).await.expect("first comment like");
    assert!(is_unique_violation(comment_like().insert(&db).await), "comment_likes(comment, user)");

    let domain = |name: &str, code: &str| domains::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.into()),
        code: Set(code.into()),
        description: Set(None),
        icon: Set(None),
        sort_order: Set(0),
        is_active: Set(true),
        created_at: Set(now),
    };
    domain("Software", "software").insert(&db).await.expect("domain");
    assert!(is_unique_violation(domain("Software", "other").insert(&db).await), "domains.name");
    assert!(is_unique_violation(domain("Other", "software").insert(&db).await), "domains.code");

    let config = || system_configs::ActiveModel {
        id: Set(Uuid::new_v4()),
        config_key: Set("site.name".into()),
        config_value: Set(Some("Master Guide".into())),
        config_type: Set(ConfigType::String),
        description: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    config().insert(&db).await.expect("config");
    assert!(is_unique_violation(config().insert(&db).await), "system_configs.config_key");
}

#[tokio::test]
async fn check_constraints_and_foreign_keys_hold() {
    let app = spawn_app().await;
    let db = app.db().await;
    let f = fixture(&db).await;
    let refused = |sql: String| {
        let db = db.clone();
        async move { db.execute_unprepared(&sql).await.is_err() }
    };
    assert!(refused("UPDATE courses SET difficulty = 'impossible'".into()).await, "courses.difficulty");
    assert!(refused("UPDATE courses SET status = 'live'".into()).await, "courses.status");
    assert!(refused("UPDATE courses SET price = -1".into()).await, "courses.price >= 0");
    assert!(refused("UPDATE courses SET max_students = 0".into()).await, "courses.max_students > 0");
    assert!(refused("UPDATE posts SET post_type = 'essay'".into()).await, "posts.post_type");
    assert!(refused("UPDATE circle_members SET role = 'owner'".into()).await, "circle_members.role");
    assert!(refused("UPDATE users SET role = 'root'".into()).await, "users.role");
    // Every status column refuses words outside its set (the rows exist from the fixture).
    for (table, column) in [
        ("users", "status"),
        ("user_identities", "status"),
        ("user_identities", "verification_status"),
        ("user_identities", "identity_type"),
        ("course_contents", "content_type"),
        ("circles", "status"),
        ("posts", "status"),
        ("comments", "status"),
    ] {
        assert!(refused(format!("UPDATE {table} SET {column} = 'bogus'")).await, "{table}.{column}");
    }
    // Foreign keys are on (SQLite too): a post for a circle that does not exist is refused.
    assert!(refused(format!("UPDATE posts SET circle_id = '{}'", Uuid::new_v4())).await, "posts.circle_id FK");
    // ON DELETE CASCADE: deleting the user removes their identity, course, post and comment.
    users::Entity::delete_by_id(f.user).exec(&db).await.expect_err("circles.created_by has no cascade");
    circles::Entity::delete_by_id(f.circle).exec(&db).await.expect("delete circle");
    assert_eq!(app.count("posts").await, 0, "posts cascade with their circle");
    assert_eq!(app.count("comments").await, 0, "comments cascade with their post");
    users::Entity::delete_by_id(f.user).exec(&db).await.expect("delete user");
    for table in ["user_identities", "user_profiles", "courses", "course_contents"] {
        assert_eq!(app.count(table).await, 0, "{table} cascades from users");
    }
}

#[tokio::test]
async fn stats_views_answer() {
    let app = spawn_app().await;
    let db = app.db().await;
    let f = fixture(&db).await;
    app.exec("UPDATE courses SET status = 'published'").await;
    let backend = db.get_database_backend();
    let all = db
        .query_all(Statement::from_string(backend, "SELECT id, enrolled_students FROM course_stats".to_string()))
        .await
        .expect("course_stats");
    assert_eq!(all.len(), 1);
    let rows = db
        .query_all(Statement::from_string(
            backend,
            "SELECT identity_id, course_count, student_count, review_count FROM mentor_stats".to_string(),
        ))
        .await
        .expect("mentor_stats");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<uuid::Uuid>("", "identity_id").expect("identity_id"), f.identity);
    assert_eq!(rows[0].try_get::<i64>("", "course_count").expect("course_count"), 1);
    assert_eq!(rows[0].try_get::<i64>("", "review_count").expect("review_count"), 0);
}

/// Migration 19: appointments booked before `ends_at` existed get it (start + duration), and it is
/// required from then on, on both backends.
#[tokio::test]
async fn appointment_end_times_are_backfilled_and_required() {
    let mut app = spawn_app().await;
    let db = app.db().await;
    let fixture = fixture(&db).await;
    // The server's background workers (outbox indexer, sweepers) read tables the migrations
    // drop: stopped first, or PostgreSQL may find their locks and the drop's in a deadlock.
    let _ = app.stop().await;
    // Down past every migration after 18 (19: integrity corners, 20: the search outbox, …).
    let after_18 = (Migrator::migrations().len() - 18) as u32;
    Migrator::down(&db, Some(after_18)).await.expect("down to 18");
    let backend = db.get_database_backend();
    let start = Utc::now() + chrono::Duration::days(2);
    let id = Uuid::new_v4();
    let legacy = Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DatabaseBackend::Sqlite => "INSERT INTO appointments (id, student_id, mentor_id, appointment_time, duration_minutes, meeting_type, status, price, created_at, updated_at) VALUES (?, ?, ?, ?, 90, 'video', 'pending', 10, ?, ?)",
            _ => "INSERT INTO appointments (id, student_id, mentor_id, appointment_time, duration_minutes, meeting_type, status, price, created_at, updated_at) VALUES ($1, $2, $3, $4, 90, 'video', 'pending', 10, $5, $6)",
        },
        [id.into(), fixture.user.into(), fixture.identity.into(), start.into(), start.into(), start.into()],
    );
    db.execute(legacy).await.expect("a row as booked before migration 12");
    Migrator::up(&db, None).await.expect("up again");
    let row = appointments::Entity::find_by_id(id).one(&db).await.expect("read").expect("row");
    let expected = start + chrono::Duration::minutes(90);
    assert!((row.ends_at - expected).num_milliseconds().abs() < 5, "{} vs {expected}", row.ends_at);
    let cleared = db.execute_unprepared("UPDATE appointments SET ends_at = NULL").await;
    assert!(cleared.is_err(), "ends_at is required");
    let row = appointments::Entity::find_by_id(id).one(&db).await.expect("read").expect("row");
    assert!((row.ends_at - expected).num_milliseconds().abs() < 5);
    db.close().await.ok();
}
