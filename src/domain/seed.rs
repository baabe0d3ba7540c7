//! `master-guide seed`: a small demo data set so the playground has something to show.
//! Logins are listed in the README. Running it twice changes nothing.

use super::write;
use crate::auth::password::{self, Password};
use crate::error::AppResult;
use chrono::{Duration, Utc};
use entity::enums::*;
use entity::*;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

pub const DEMO_PASSWORD: &str = "masterguide-demo";
pub const ADMIN_EMAIL: &str = "admin@masterguide.dev";

const DOMAINS: &[(&str, &str)] = &[
    ("software", "Software Engineering"),
    ("design", "Product Design"),
    ("cooking", "Cooking"),
    ("music", "Music"),
    ("finance", "Personal Finance"),
];

const MASTERS: &[(&str, &str, &str, &str, i64)] = &[
    ("ada@masterguide.dev", "Ada Lovelace", "software", "Rust, distributed systems and clean APIs.", 120),
    ("dieter@masterguide.dev", "Dieter Rams", "design", "Less, but better: product and industrial design.", 150),
    ("julia@masterguide.dev", "Julia Child", "cooking", "French cooking for the home kitchen.", 80),
];

const APPRENTICES: &[(&str, &str, &str)] = &[
    ("sam@masterguide.dev", "Sam Student", "software"),
    ("lee@masterguide.dev", "Lee Learner", "design"),
    ("kim@masterguide.dev", "Kim Cook", "cooking"),
];

pub struct SeedReport {
    pub created: bool,
    pub users: usize,
}

pub async fn demo(db: &DatabaseConnection) -> AppResult<SeedReport> {
    let existing = users::Entity::find().filter(users::Column::Email.eq(ADMIN_EMAIL)).one(db).await?;
    if existing.is_some() {
        return Ok(SeedReport { created: false, users: 0 });
    }
    let hash = password::hash(Password::parse(DEMO_PASSWORD.into(), "password")?).await?;
    let now = Utc::now();
    let txn = db.begin().await?;

    for (order, (code, name)) in DOMAINS.iter().enumerate() {
        write::insert(
            &txn,
            domains::ActiveModel {
                id: Set(Uuid::new_v4()),
                name: Set((*name).into()),
                code: Set((*code).into()),
                description: Set(Some(format!("Masters and apprentices of {name}"))),
                icon: Set(None),
                sort_order: Set(order as i32),
                is_active: Set(true),
                created_at: Set(now),
            },
        )
        .await?;
    }

    let new_user = |email: &str, role: UserRole| users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.into()),
        password_hash: Set(hash.clone()),
        phone: Set(None),
        status: Set(UserStatus::Active),
        role: Set(role),
        email_verified: Set(true),
        phone_verified: Set(false),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    write::insert(&txn, new_user(ADMIN_EMAIL, UserRole::Admin)).await?;

    let mut master_identities = Vec::new();
    for (email, name, domain, bio, rate) in MASTERS {
        let user = write::insert(&txn, new_user(email, UserRole::User)).await?;
        let identity = write::insert(&txn, identity(user.id, IdentityType::Master, domain, now)).await?;
        write::insert(&txn, profile(user.id, identity.id, name, Some(bio), Some(Decimal::new(*rate * 100, 2)), now))
            .await?;
        master_identities.push((identity, *name, *domain));
    }
    let mut apprentices = Vec::new();
    for (email, name, domain) in APPRENTICES {
        let user = write::insert(&txn, new_user(email, UserRole::User)).await?;
        let identity = write::insert(&txn, identity(user.id, IdentityType::Apprentice, domain, now)).await?;
        write::insert(&txn, profile(user.id, identity.id, name, None, None, now)).await?;
        apprentices.push((user, identity));
    }

    for (index, (mentor, name, domain)) in master_identities.iter().enumerate() {
        let course = write::insert(
            &txn,
            courses::ActiveModel {
                id: Set(Uuid::new_v4()),
                mentor_id: Set(mentor.id),
                title: Set(format!("{domain} fundamentals with {name}")),
                description: Set(Some(format!("A first course in {domain}, taught by {name}."))),
                cover_image: Set(None),
                price: Set(Decimal::new(9900 + 5000 * index as i64, 2)),
                duration_hours: Set(6 + index as i32),
                difficulty: Set(Some(Difficulty::Beginner)),
                status: Set(CourseStatus::Published),
                max_students: Set(Some(30)),
                current_students: Set(1),
                rating: Set(Decimal::ZERO),
                review_count: Set(0),
                tags: Set(Some(StringList(vec![domain.to_string(), "beginner".into()]))),
                prerequisites: Set(None),
                learning_objectives: Set(Some(StringList(vec![format!("Understand the basics of {domain}")]))),
                created_at: Set(now - Duration::days(index as i64)),
                updated_at: Set(now),
            },
        )
        .await?;
        for lesson in 0..3 {
            write::insert(
                &txn,
                course_contents::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    course_id: Set(course.id),
                    title: Set(format!("Lesson {}", lesson + 1)),
                    content_type: Set(if lesson == 2 { ContentType::Quiz } else { ContentType::Video }),
                    content_url: Set(Some(format!("https://media.masterguide.dev/{}/{lesson}.mp4", course.id))),
                    content_text: Set(None),
                    order_index: Set(lesson),
                    duration_minutes: Set(Some(20)),
                    is_free: Set(lesson == 0),
                    created_at: Set(now),
                    updated_at: Set(now),
                },
            )
            .await?;
        }
        let (student, student_identity) = &apprentices[index];
        write::insert(
            &txn,
            learning_records::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(student.id),
                course_id: Set(course.id),
                progress_percentage: Set(Decimal::ZERO),
                status: Set(LearningStatus::Enrolled),
                enrolled_at: Set(now),
                completed_at: Set(None),
                last_accessed_at: Set(now),
                total_study_time: Set(0),
            },
        )
        .await?;

        let circle = write::insert(
            &txn,
            circles::ActiveModel {
                id: Set(Uuid::new_v4()),
                name: Set(format!("{name}'s circle")),
                description: Set(Some(format!("Talk {domain} with {name}."))),
                domain: Set(domain.to_string()),
                created_by: Set(mentor.id),
                status: Set(CircleStatus::Active),
                member_count: Set(2),
                post_count: Set(1),
                avatar: Set(None),
                rules: Set(Some("Be kind. Stay on topic.".into())),
                tags: Set(Some(StringList(vec![domain.to_string()]))),
                created_at: Set(now),
                updated_at: Set(now),
            },
        )
        .await?;
        for (user_id, identity_id, role) in
            [(mentor.user_id, mentor.id, MemberRole::Admin), (student.id, student_identity.id, MemberRole::Member)]
        {
            write::insert(
                &txn,
                circle_members::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    circle_id: Set(circle.id),
                    user_id: Set(user_id),
                    identity_id: Set(identity_id),
                    role: Set(role),
                    joined_at: Set(now),
                    is_active: Set(true),
                    banned_at: Set(None),
                    ban_reason: Set(None),
                    last_read_at: Set(None),
                },
            )
            .await?;
        }
        write::insert(
            &txn,
            posts::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(mentor.user_id),
                identity_id: Set(mentor.id),
                circle_id: Set(circle.id),
                content: Set(format!("Welcome to the {domain} circle! Introduce yourself below.")),
                media_urls: Set(None),
                post_type: Set(PostType::Text),
                status: Set(ContentStatus::Active),
                like_count: Set(0),
                comment_count: Set(0),
                share_count: Set(0),
                view_count: Set(0),
                is_top: Set(true),
                is_essence: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(SeedReport { created: true, users: 1 + MASTERS.len() + APPRENTICES.len() })
}

fn identity(
    user_id: Uuid,
    kind: IdentityType,
    domain: &str,
    now: chrono::DateTime<Utc>,
) -> user_identities::ActiveModel {
    let master = kind == IdentityType::Master;
    user_identities::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        identity_type: Set(kind),
        domain: Set(domain.into()),
        status: Set(IdentityStatus::Active),
        verification_status: Set(if master { VerificationStatus::Verified } else { VerificationStatus::Unverified }),
        verification_documents: Set(master.then(|| StringList(vec!["https://docs.masterguide.dev/diploma.pdf".into()]))),
        rejection_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn profile(
    user_id: Uuid,
    identity_id: Uuid,
    name: &str,
    bio: Option<&str>,
    hourly_rate: Option<Decimal>,
    now: chrono::DateTime<Utc>,
) -> user_profiles::ActiveModel {
    user_profiles::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        identity_id: Set(identity_id),
        name: Set(name.into()),
        avatar: Set(None),
        bio: Set(bio.map(String::from)),
        skills: Set(Some(StringList(vec![]))),
        experience_years: Set(if hourly_rate.is_some() { 10 } else { 0 }),
        hourly_rate: Set(hourly_rate),
        location: Set(None),
        website: Set(None),
        social_links: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}
