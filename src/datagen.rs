//! `master-guide seed --scale small|medium|large|search`: deterministic, realistically skewed data for the
//! benchmarks (a few very popular courses, circles and posts; most quiet). Everything is generated
//! in memory first, so every denormalized counter equals the rows it counts, then written with
//! batched multi-row INSERTs in foreign-key order, with a progress bar per table.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use entity::enums::*;
use entity::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Set};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub const BENCH_PASSWORD: &str = "bench-password";

#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub users: usize,
    pub masters: usize,
    pub domains: usize,
    pub courses: usize,
    pub contents_per_course: usize,
    pub learning_records: usize,
    pub circles: usize,
    pub memberships: usize,
    pub posts: usize,
    pub comments: usize,
    pub likes: usize,
    pub appointments: usize,
    pub reviews: usize,
    pub notifications: usize,
}

impl Scale {
    pub fn large() -> Self {
        Self {
            users: 100_000,
            masters: 20_000,
            domains: 20,
            courses: 20_000,
            contents_per_course: 10,
            learning_records: 500_000,
            circles: 1_000,
            memberships: 100_000,
            posts: 500_000,
            comments: 1_000_000,
            likes: 2_000_000,
            appointments: 100_000,
            reviews: 200_000,
            notifications: 200_000,
        }
    }

    /// One twentieth of large.
    pub fn small() -> Self {
        let l = Self::large();
        Self {
            users: l.users / 20,
            masters: l.masters / 20,
            domains: l.domains,
            courses: l.courses / 20,
            contents_per_course: l.contents_per_course,
            learning_records: l.learning_records / 20,
            circles: l.circles / 20,
            memberships: l.memberships / 20,
            posts: l.posts / 20,
            comments: l.comments / 20,
            likes: l.likes / 20,
            appointments: l.appointments / 20,
            reviews: l.reviews / 20,
            notifications: l.notifications / 20,
        }
    }

    /// The side-by-side bench's set (bench/compare.sh): the row counts issue 18 measured with
    /// (20k users, 5k courses, 100k posts, 200k comments, 50k reviews), the rest one fifth of large.
    pub fn medium() -> Self {
        let l = Self::large();
        Self {
            users: 20_000,
            masters: 4_000,
            domains: l.domains,
            courses: 5_000,
            contents_per_course: l.contents_per_course,
            learning_records: l.learning_records / 5,
            circles: 200,
            memberships: l.memberships / 5,
            posts: 100_000,
            comments: 200_000,
            likes: l.likes / 5,
            appointments: l.appointments / 5,
            reviews: 50_000,
            notifications: l.notifications / 5,
        }
    }

    /// The search bench's catalogue: 100k courses, 50k masters, 5k circles, little else.
    pub fn search() -> Self {
        Self {
            users: 60_000,
            masters: 50_000,
            domains: 20,
            courses: 100_000,
            contents_per_course: 1,
            learning_records: 200_000,
            circles: 5_000,
            memberships: 50_000,
            posts: 10_000,
            comments: 10_000,
            likes: 10_000,
            appointments: 5_000,
            reviews: 100_000,
            notifications: 1_000,
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "small" => Ok(Self::small()),
            "medium" => Ok(Self::medium()),
            "large" => Ok(Self::large()),
            "search" => Ok(Self::search()),
            other => anyhow::bail!("unknown scale '{other}' (small, medium, large or search)"),
        }
    }
}

/// What titles, descriptions, names and bios are made of: Chinese and English, as the platform's
/// users write them (so the search bench matches, segments and ranks real-looking text).
const TOPICS: &[&str] = &[
    "PostgreSQL 数据库",
    "Rust 编程",
    "Python 数据分析",
    "机器学习",
    "前端开发 React",
    "产品设计",
    "UI 设计 Figma",
    "烘焙",
    "家常菜",
    "吉他",
    "钢琴",
    "个人理财",
    "税务规划",
    "写作",
    "摄影",
    "日语",
    "英语口语",
    "健身训练",
    "Go 微服务",
    "Kubernetes 运维",
    "SQL 查询优化",
    "数据库设计",
    "职业规划",
    "面试技巧",
];
const LEVELS: &[&str] = &[
    "入门",
    "实战",
    "进阶",
    "从零开始",
    "高级技巧",
    "for beginners",
    "in practice",
    "masterclass",
    "完全指南",
    "30 天",
];
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙"];
const GIVEN: &[&str] = &["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "杰", "涛", "明", "超", "霞"];
const FIRST_NAMES: &[&str] = &["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack"];
const CITIES: &[&str] = &["北京", "上海", "深圳", "杭州", "成都", "广州", "Remote"];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

/// A person's name: mostly Chinese (surname and one or two given characters), some English.
fn person_name(rng: &mut StdRng, i: usize) -> String {
    if i % 5 == 4 {
        format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, SURNAMES))
    } else if rng.gen_bool(0.5) {
        format!("{}{}", pick(rng, SURNAMES), pick(rng, GIVEN))
    } else {
        format!("{}{}{}", pick(rng, SURNAMES), pick(rng, GIVEN), pick(rng, GIVEN))
    }
}

/// A skewed pick in 0..n: low indexes are far more likely (u^3), like popularity in real life.
fn skewed(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.gen();
    ((u * u * u) * n as f64) as usize % n.max(1)
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

pub fn bench_email(index: usize) -> String {
    format!("user{index}@bench.masterguide.dev")
}

/// Writes rows in multi-row INSERTs small enough for PostgreSQL's 65535-parameter limit. (The bench's
/// generator fills an empty database before any server runs: there is no cache to mark, so it
/// writes past `domain::write`.)
#[allow(clippy::disallowed_methods)]
async fn insert_all<A>(db: &DatabaseConnection, label: &str, rows: Vec<A>) -> anyhow::Result<()>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    let bar = ProgressBar::new(rows.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>18} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    // Every column is bound, set or not: the entity's column count is the parameters per row.
    let columns = <<A::Entity as EntityTrait>::Column as sea_orm::Iterable>::iter().count();
    let chunk = (60_000 / columns.max(1)).max(1);
    let mut rows = rows;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(chunk));
        let batch = std::mem::replace(&mut rows, rest);
        let n = batch.len() as u64;
        <A::Entity as EntityTrait>::insert_many(batch)
            .exec_without_returning(db)
            .await
            .with_context(|| format!("inserting {label}"))?;
        bar.inc(n);
    }
    bar.finish();
    Ok(())
}

pub struct Report {
    pub rows: usize,
    pub seconds: f64,
}

/// Generates and loads one scale. Refuses a database that holds users unless `force` (which wipes
/// it first with `migrate fresh`).
pub async fn run(db: &DatabaseConnection, scale: Scale, force: bool) -> anyhow::Result<Report> {
    let existing = users::Entity::find().count(db).await?;
    if existing > 0 {
        if !force {
            anyhow::bail!("the database already holds {existing} users; pass --force to wipe it and load bench data");
        }
        use migration::MigratorTrait;
        migration::Migrator::fresh(db).await?;
    }
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(20_241_201);
    let now = Utc::now();
    let ago =
        |rng: &mut StdRng, days: i64| -> DateTime<Utc> { now - Duration::minutes(rng.gen_range(0..days * 24 * 60)) };
    let hash = crate::auth::password::hash(
        crate::auth::password::Password::parse(BENCH_PASSWORD.into(), "password")
            .map_err(|e| anyhow::anyhow!(e.message()))?,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    let mut total = 0usize;

    // Domains.
    let domain_codes: Vec<String> = (0..scale.domains).map(|i| format!("domain-{i:02}")).collect();
    let domains: Vec<domains::ActiveModel> = domain_codes
        .iter()
        .enumerate()
        .map(|(i, code)| domains::ActiveModel {
            id: Set(uuid(&mut rng)),
            name: Set(format!("Domain {i:02}")),
            code: Set(code.clone()),
            description: Set(None),
            icon: Set(None),
            sort_order: Set(i as i32),
            is_active: Set(true),
            created_at: Set(now),
        })
        .collect();
    total += domains.len();
    insert_all(db, "domains", domains).await?;

    // Users, one identity and one profile each: the first `masters` users are verified masters.
    let user_ids: Vec<Uuid> = (0..scale.users).map(|_| uuid(&mut rng)).collect();
    let identity_ids: Vec<Uuid> = (0..scale.users).map(|_| uuid(&mut rng)).collect();
    let user_domain: Vec<usize> = (0..scale.users).map(|_| skewed(&mut rng, scale.domains)).collect();
    let users: Vec<users::ActiveModel> = (0..scale.users)
        .map(|i| users::ActiveModel {
            id: Set(user_ids[i]),
            email: Set(bench_email(i)),
            password_hash: Set(hash.clone()),
            phone: Set(None),
            status: Set(UserStatus::Active),
            role: Set(if i == 0 { UserRole::Admin } else { UserRole::User }),
            email_verified: Set(true),
            phone_verified: Set(false),
            last_login_at: Set(None),
            created_at: Set(now - Duration::days(800) + Duration::minutes(i as i64)),
            updated_at: Set(now),
        })
        .collect();
    total += users.len();
    insert_all(db, "users", users).await?;
    let identities: Vec<user_identities::ActiveModel> = (0..scale.users)
        .map(|i| {
            let master = i < scale.masters;
            user_identities::ActiveModel {
                id: Set(identity_ids[i]),
                user_id: Set(user_ids[i]),
                identity_type: Set(if master { IdentityType::Master } else { IdentityType::Apprentice }),
                domain: Set(domain_codes[user_domain[i]].clone()),
                status: Set(IdentityStatus::Active),
                verification_status: Set(if master {
                    VerificationStatus::Verified
                } else {
                    VerificationStatus::Unverified
                }),
                verification_documents: Set(None),
                rejection_reason: Set(None),
                created_at: Set(now - Duration::days(700) + Duration::minutes(i as i64)),
                updated_at: Set(now),
            }
        })
        .collect();
    total += identities.len();
    insert_all(db, "user_identities", identities).await?;
    const SKILLS: &[&str] =
        &["rust", "go", "sql", "design", "figma", "cooking", "baking", "guitar", "piano", "finance", "tax", "writing"];
    let profiles: Vec<user_profiles::ActiveModel> = (0..scale.users)
        .map(|i| {
            let master = i < scale.masters;
            let skills: Vec<String> = (0..3)
                .map(|_| SKILLS[rng.gen_range(0..SKILLS.len())].to_string())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            user_profiles::ActiveModel {
                id: Set(uuid(&mut rng)),
                user_id: Set(user_ids[i]),
                identity_id: Set(identity_ids[i]),
                name: Set(person_name(&mut rng, i)),
                avatar: Set(Some(format!("https://cdn.masterguide.dev/avatars/{i}.png"))),
                bio: Set(master.then(|| {
                    let (a, b) = (pick(&mut rng, TOPICS), pick(&mut rng, TOPICS));
                    format!("{} 年 {a} 经验, also teaches {b}. Patient teacher, 讲解清楚.", rng.gen_range(3..20))
                })),
                skills: Set(Some(StringList(skills))),
                experience_years: Set(if master { rng.gen_range(3..30) } else { 0 }),
                hourly_rate: Set(master.then(|| Decimal::new(rng.gen_range(50..300) * 100, 2))),
                location: Set(master.then(|| pick(&mut rng, CITIES).to_string())),
                website: Set(None),
                social_links: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
        })
        .collect();
    total += profiles.len();
    insert_all(db, "user_profiles", profiles).await?;
    let apprentice = |rng: &mut StdRng| scale.masters + rng.gen_range(0..scale.users - scale.masters);

    // Courses: popular masters teach more; popular courses get most students and reviews.
    let course_ids: Vec<Uuid> = (0..scale.courses).map(|_| uuid(&mut rng)).collect();
    let course_mentor: Vec<usize> = (0..scale.courses).map(|_| skewed(&mut rng, scale.masters)).collect();
    let mut enrolled: HashSet<(usize, usize)> = HashSet::with_capacity(scale.learning_records);
    let mut students_of: HashMap<usize, Vec<usize>> = HashMap::new();
    while enrolled.len() < scale.learning_records {
        let pair = (apprentice(&mut rng), skewed(&mut rng, scale.courses));
        if enrolled.insert(pair) {
            students_of.entry(pair.1).or_default().push(pair.0);
        }
    }
    // Course reviews by enrolled students (three quarters of all reviews); mentor reviews follow
    // the appointments below.
    let mut course_reviews: Vec<(usize, usize, i32)> = Vec::new();
    let course_review_target = scale.reviews * 3 / 4;
    let mut reviewed: HashSet<(usize, usize)> = HashSet::new();
    let enrolled_list: Vec<(usize, usize)> = enrolled.iter().copied().collect();
    while course_reviews.len() < course_review_target.min(enrolled_list.len()) {
        let (user, course) = enrolled_list[skewed(&mut rng, enrolled_list.len())];
        if reviewed.insert((user, course)) {
            course_reviews.push((user, course, rng.gen_range(3..=5)));
        }
    }
    let mut rating_sum: HashMap<usize, (i64, i32)> = HashMap::new();
    for (_, course, rating) in &course_reviews {
        let entry = rating_sum.entry(*course).or_default();
        entry.0 += i64::from(*rating);
        entry.1 += 1;
    }
    const DIFFICULTY: [Difficulty; 3] = [Difficulty::Beginner, Difficulty::Intermediate, Difficulty::Advanced];
    let courses: Vec<courses::ActiveModel> = (0..scale.courses)
        .map(|c| {
            let (sum, count) = rating_sum.get(&c).copied().unwrap_or((0, 0));
            let rating =
                if count == 0 { Decimal::ZERO } else { (Decimal::from(sum) / Decimal::from(count)).round_dp(2) };
            let domain = &domain_codes[user_domain[course_mentor[c]]];
            courses::ActiveModel {
                id: Set(course_ids[c]),
                mentor_id: Set(identity_ids[course_mentor[c]]),
                title: Set(format!("{} {}", pick(&mut rng, TOPICS), pick(&mut rng, LEVELS))),
                description: Set(Some(format!(
                    "系统学习 {}: hands-on lessons, exercises and feedback, 并结合 {} 的真实案例.",
                    pick(&mut rng, TOPICS),
                    pick(&mut rng, TOPICS)
                ))),
                cover_image: Set(Some(format!("https://cdn.masterguide.dev/covers/{c}.jpg"))),
                price: Set(Decimal::new(rng.gen_range(0..500) * 100 + 99, 2)),
                duration_hours: Set(rng.gen_range(2..60)),
                difficulty: Set(Some(DIFFICULTY[c % 3])),
                status: Set(if c % 10 == 9 { CourseStatus::Draft } else { CourseStatus::Published }),
                max_students: Set(None),
                current_students: Set(students_of.get(&c).map_or(0, |s| s.len() as i32)),
                rating: Set(rating),
                review_count: Set(count),
                tags: Set(Some(StringList(vec![domain.clone(), SKILLS[c % SKILLS.len()].to_string()]))),
                prerequisites: Set(None),
                learning_objectives: Set(Some(StringList(vec!["Build something real".into()]))),
                created_at: Set(ago(&mut rng, 700)),
                updated_at: Set(now),
            }
        })
        .collect();
    total += courses.len();
    insert_all(db, "courses", courses).await?;
    let mut contents = Vec::with_capacity(scale.courses * scale.contents_per_course);
    for (c, course_id) in course_ids.iter().enumerate() {
        for k in 0..scale.contents_per_course {
            contents.push(course_contents::ActiveModel {
                id: Set(uuid(&mut rng)),
                course_id: Set(*course_id),
                title: Set(format!("Lesson {}", k + 1)),
                content_type: Set(if k % 4 == 3 { ContentType::Quiz } else { ContentType::Video }),
                content_url: Set(Some(format!("https://media.masterguide.dev/{c}/{k}.mp4"))),
                content_text: Set(None),
                order_index: Set(k as i32),
                duration_minutes: Set(Some(15)),
                is_free: Set(k == 0),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
    }
    total += contents.len();
    insert_all(db, "course_contents", contents).await?;
    let records: Vec<learning_records::ActiveModel> = enrolled_list
        .iter()
        .map(|(user, course)| learning_records::ActiveModel {
            id: Set(uuid(&mut rng)),
            user_id: Set(user_ids[*user]),
            course_id: Set(course_ids[*course]),
            progress_percentage: Set(Decimal::new(rng.gen_range(0..=100) * 100, 2)),
            status: Set(LearningStatus::Learning),
            enrolled_at: Set(ago(&mut rng, 600)),
            completed_at: Set(None),
            last_accessed_at: Set(now),
            total_study_time: Set(rng.gen_range(0..600)),
        })
        .collect();
    total += records.len();
    insert_all(db, "learning_records", records).await?;

    // Circles and members (popular circles are large); the creator is the admin member.
    let circle_ids: Vec<Uuid> = (0..scale.circles).map(|_| uuid(&mut rng)).collect();
    let circle_owner: Vec<usize> = (0..scale.circles).map(|_| rng.gen_range(0..scale.masters)).collect();
    let mut members: Vec<Vec<usize>> = circle_owner.iter().map(|o| vec![*o]).collect();
    let mut member_set: HashSet<(usize, usize)> = circle_owner.iter().enumerate().map(|(c, o)| (c, *o)).collect();
    while member_set.len() < scale.memberships {
        let pair = (skewed(&mut rng, scale.circles), rng.gen_range(0..scale.users));
        if member_set.insert(pair) {
            members[pair.0].push(pair.1);
        }
    }
    // Posts in skewed circles by their members; comments and likes on skewed posts.
    let post_ids: Vec<Uuid> = (0..scale.posts).map(|_| uuid(&mut rng)).collect();
    let post_circle: Vec<usize> = (0..scale.posts).map(|_| skewed(&mut rng, scale.circles)).collect();
    let post_author: Vec<usize> =
        post_circle.iter().map(|c| members[*c][rng.gen_range(0..members[*c].len())]).collect();
    let mut comment_count = vec![0i32; scale.posts];
    let comment_posts: Vec<usize> = (0..scale.comments).map(|_| skewed(&mut rng, scale.posts)).collect();
    for p in &comment_posts {
        comment_count[*p] += 1;
    }
    let mut likes: HashSet<(usize, usize)> = HashSet::with_capacity(scale.likes);
    let mut like_count = vec![0i32; scale.posts];
    let mut attempts = 0usize;
    while likes.len() < scale.likes && attempts < scale.likes * 3 {
        attempts += 1;
        let post = skewed(&mut rng, scale.posts);
        if likes.insert((post, rng.gen_range(0..scale.users))) {
            like_count[post] += 1;
        }
    }
    let mut post_count = vec![0i32; scale.circles];
    for c in &post_circle {
        post_count[*c] += 1;
    }
    let circles: Vec<circles::ActiveModel> = (0..scale.circles)
        .map(|c| circles::ActiveModel {
            id: Set(circle_ids[c]),
            name: Set(format!("{} 交流圈 {c}", TOPICS[c % TOPICS.len()])),
            description: Set(Some(format!(
                "Share work, ask questions about {}, 互相帮助.",
                TOPICS[(c * 7) % TOPICS.len()]
            ))),
            domain: Set(domain_codes[user_domain[circle_owner[c]]].clone()),
            created_by: Set(identity_ids[circle_owner[c]]),
            status: Set(CircleStatus::Active),
            member_count: Set(members[c].len() as i32),
            post_count: Set(post_count[c]),
            avatar: Set(None),
            rules: Set(None),
            tags: Set(Some(StringList(vec![SKILLS[c % SKILLS.len()].to_string()]))),
            created_at: Set(ago(&mut rng, 700)),
            updated_at: Set(now),
        })
        .collect();
    total += circles.len();
    insert_all(db, "circles", circles).await?;
    let mut memberships = Vec::with_capacity(scale.memberships);
    for (c, list) in members.iter().enumerate() {
        for (k, user) in list.iter().enumerate() {
            memberships.push(circle_members::ActiveModel {
                id: Set(uuid(&mut rng)),
                circle_id: Set(circle_ids[c]),
                user_id: Set(user_ids[*user]),
                identity_id: Set(identity_ids[*user]),
                role: Set(if k == 0 { MemberRole::Admin } else { MemberRole::Member }),
                joined_at: Set(ago(&mut rng, 600)),
                is_active: Set(true),
                banned_at: Set(None),
                ban_reason: Set(None),
                last_read_at: Set(None),
            });
        }
    }
    total += memberships.len();
    insert_all(db, "circle_members", memberships).await?;
    let posts: Vec<posts::ActiveModel> = (0..scale.posts)
        .map(|p| {
            let author = post_author[p];
            posts::ActiveModel {
                id: Set(post_ids[p]),
                user_id: Set(user_ids[author]),
                identity_id: Set(identity_ids[author]),
                circle_id: Set(circle_ids[post_circle[p]]),
                content: Set(format!("Post {p}: what I learned this week, and a question for you all.")),
                media_urls: Set(Some(StringList(vec![]))),
                post_type: Set(PostType::Text),
                status: Set(ContentStatus::Active),
                like_count: Set(like_count[p]),
                comment_count: Set(comment_count[p]),
                share_count: Set(0),
                view_count: Set(like_count[p] * 10),
                is_top: Set(p % 997 == 0),
                is_essence: Set(false),
                created_at: Set(ago(&mut rng, 365)),
                updated_at: Set(now),
            }
        })
        .collect();
    total += posts.len();
    insert_all(db, "posts", posts).await?;
    let comments: Vec<comments::ActiveModel> = comment_posts
        .iter()
        .map(|p| {
            let author = rng.gen_range(0..scale.users);
            comments::ActiveModel {
                id: Set(uuid(&mut rng)),
                post_id: Set(post_ids[*p]),
                user_id: Set(user_ids[author]),
                identity_id: Set(identity_ids[author]),
                content: Set("Thanks for sharing!".into()),
                parent_id: Set(None),
                reply_to_user_id: Set(None),
                like_count: Set(0),
                status: Set(ContentStatus::Active),
                created_at: Set(ago(&mut rng, 300)),
                updated_at: Set(now),
            }
        })
        .collect();
    total += comments.len();
    insert_all(db, "comments", comments).await?;
    let like_rows: Vec<post_likes::ActiveModel> = likes
        .iter()
        .map(|(post, user)| post_likes::ActiveModel {
            id: Set(uuid(&mut rng)),
            post_id: Set(post_ids[*post]),
            user_id: Set(user_ids[*user]),
            created_at: Set(ago(&mut rng, 300)),
        })
        .collect();
    total += like_rows.len();
    insert_all(db, "post_likes", like_rows).await?;

    // Appointments: popular mentors are busy; one-hour slots per mentor never overlap.
    let mut slot_of: HashMap<usize, i64> = HashMap::new();
    let mut appointment_rows = Vec::with_capacity(scale.appointments);
    let mut completed_pairs: HashSet<(usize, usize)> = HashSet::new();
    for _ in 0..scale.appointments {
        let mentor = skewed(&mut rng, scale.masters);
        let student = apprentice(&mut rng);
        let slot = slot_of.entry(mentor).or_insert(-2000);
        *slot += 1;
        let start = now + Duration::hours(*slot * 3);
        let status = if start < now {
            if rng.gen_range(0..10) < 8 {
                AppointmentStatus::Completed
            } else {
                AppointmentStatus::Cancelled
            }
        } else if rng.gen_bool(0.5) {
            AppointmentStatus::Confirmed
        } else {
            AppointmentStatus::Pending
        };
        if status == AppointmentStatus::Completed {
            completed_pairs.insert((student, mentor));
        }
        appointment_rows.push(appointments::ActiveModel {
            id: Set(uuid(&mut rng)),
            student_id: Set(user_ids[student]),
            mentor_id: Set(identity_ids[mentor]),
            appointment_time: Set(start),
            ends_at: Set(start + Duration::minutes(60)),
            duration_minutes: Set(60),
            meeting_type: Set(MeetingType::Video),
            status: Set(status),
            price: Set(Decimal::new(10000, 2)),
            notes: Set(None),
            meeting_url: Set(None),
            meeting_id: Set(None),
            created_at: Set(start - Duration::days(3)),
            updated_at: Set(now),
        });
    }
    total += appointment_rows.len();
    insert_all(db, "appointments", appointment_rows).await?;

    let mut review_rows: Vec<reviews::ActiveModel> = course_reviews
        .iter()
        .map(|(user, course, rating)| reviews::ActiveModel {
            id: Set(uuid(&mut rng)),
            reviewer_id: Set(user_ids[*user]),
            reviewed_id: Set(identity_ids[course_mentor[*course]]),
            course_id: Set(Some(course_ids[*course])),
            appointment_id: Set(None),
            rating: Set(*rating),
            content: Set(Some("Clear, practical, worth it.".into())),
            review_type: Set(ReviewType::Course),
            status: Set(ContentStatus::Active),
            like_count: Set(0),
            created_at: Set(ago(&mut rng, 300)),
            updated_at: Set(now),
        })
        .collect();
    for (student, mentor) in completed_pairs.iter().take(scale.reviews - review_rows.len().min(scale.reviews)) {
        review_rows.push(reviews::ActiveModel {
            id: Set(uuid(&mut rng)),
            reviewer_id: Set(user_ids[*student]),
            reviewed_id: Set(identity_ids[*mentor]),
            course_id: Set(None),
            appointment_id: Set(None),
            rating: Set(rng.gen_range(3..=5)),
            content: Set(Some("Great session.".into())),
            review_type: Set(ReviewType::Mentor),
            status: Set(ContentStatus::Active),
            like_count: Set(0),
            created_at: Set(ago(&mut rng, 300)),
            updated_at: Set(now),
        });
    }
    total += review_rows.len();
    insert_all(db, "reviews", review_rows).await?;

    // Notifications: the first users (the benchmark's viewers) get plenty, most get a few.
    let notifications: Vec<notifications::ActiveModel> = (0..scale.notifications)
        .map(|_| notifications::ActiveModel {
            id: Set(uuid(&mut rng)),
            user_id: Set(user_ids[skewed(&mut rng, scale.users)]),
            title: Set("Your post got likes".into()),
            content: Set(None),
            notification_type: Set("post_liked".into()),
            related_id: Set(Some(post_ids[rng.gen_range(0..scale.posts)])),
            is_read: Set(rng.gen_bool(0.7)),
            read_at: Set(None),
            created_at: Set(ago(&mut rng, 200)),
        })
        .collect();
    total += notifications.len();
    insert_all(db, "notifications", notifications).await?;

    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Statistics for the planner, and the visibility map that lets the stats views' covering
        // indexes answer without the table (autovacuum would get there later on its own).
        db.execute_unprepared("VACUUM ANALYZE").await?;
    }
    Ok(Report { rows: total, seconds: started.elapsed().as_secs_f64() })
}
