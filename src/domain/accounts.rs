//! Accounts: registration, login, refresh-token rotation, logout, admin grants.

use super::write;
use crate::auth::password::{self, Password};
use crate::auth::tokens::{hash_refresh_token, random_token, TokenKeys};
use crate::auth::Viewer;
use crate::domain::values::{parse_phone, Email};
use crate::error::{AppError, AppResult, Checks};
use chrono::{DateTime, Utc};
use entity::enums::{UserRole, UserStatus};
use entity::{account_tokens, refresh_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

/// What a successful register/login/refresh hands back to the client.
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: users::Model,
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub phone: Option<String>,
}

#[tracing::instrument(name = "accounts.register", skip_all)]
pub async fn register(db: &DatabaseConnection, keys: &TokenKeys, input: Registration) -> AppResult<Session> {
    let mut c = Checks::default();
    let email = c.on(Email::parse(&input.email, "input.email").map(Some));
    let password = c.on(Password::parse(input.password, "input.password").map(Some));
    let phone = c.on(parse_phone(input.phone, "input.phone"));
    c.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AppError::bad_input("input", "is invalid"));
    };

    // Cheap duplicate check before the expensive hash; the unique index still decides under races.
    if find_by_email(db, &email).await?.is_some() {
        return Err(AppError::conflict("input.email", "an account with this email already exists"));
    }
    let password_hash = password::hash(password).await?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let user = write::insert(
        &txn,
        users::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(email.into_inner()),
            password_hash: Set(password_hash),
            phone: Set(phone),
            status: Set(UserStatus::Active),
            role: Set(UserRole::User),
            email_verified: Set(false),
            phone_verified: Set(false),
            last_login_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await
    .map_err(AppError::on_unique("input.email", "an account with this email already exists"))?;
    let session = start_session(&txn, keys, user, Uuid::new_v4()).await?;
    txn.commit().await?;
    metrics::counter!("business_registrations_total").increment(1);
    Ok(session)
}

#[tracing::instrument(name = "accounts.login", skip_all)]
pub async fn login(db: &DatabaseConnection, keys: &TokenKeys, email: &str, password: String) -> AppResult<Session> {
    let wrong = || AppError::Unauthenticated("email or password is incorrect".into());
    // A malformed email is simply a wrong credential here: same error, same (hashing) time.
    let user = match Email::parse(email, "input.email") {
        Ok(email) => find_by_email(db, &email).await?,
        Err(_) => None,
    };
    let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => return Err(wrong()),
    };
    ensure_can_sign_in(&user)?;
    let verified = user.password_hash.clone();
    let txn = db.begin().await?;
    let now = Utc::now();
    let mut active: users::ActiveModel = user.into();
    active.last_login_at = Set(Some(now));
    // The update holds the user's row until commit and returns it as it is now: a password reset
    // or a ban that committed while the hash was checked wins (revocations lock the same row).
    let user = write::update(&txn, active).await?;
    if user.password_hash != verified {
        return Err(wrong());
    }
    ensure_can_sign_in(&user)?;
    let session = start_session(&txn, keys, user, Uuid::new_v4()).await?;
    txn.commit().await?;
    Ok(session)
}

/// Exchanges a refresh token for a new pair. The presented token stops working. Presenting a token
/// that was already rotated means it leaked: the whole family (that login's chain) is revoked.
#[tracing::instrument(name = "accounts.refresh", skip_all)]
pub async fn refresh(db: &DatabaseConnection, keys: &TokenKeys, token: &str) -> AppResult<Session> {
    let invalid = || AppError::Unauthenticated("refresh token is invalid or expired".into());
    let stored = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash_refresh_token(token.trim())))
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    if stored.revoked_at.is_some() {
        if stored.replaced_by.is_some() {
            tracing::warn!(user_id = %stored.user_id, family = %stored.family_id, "refresh token reuse: revoking family");
            revoke_family(db, stored.user_id, stored.family_id).await?;
        }
        return Err(invalid());
    }
    if stored.expires_at <= Utc::now() {
        return Err(invalid());
    }
    let user = users::Entity::find_by_id(stored.user_id).one(db).await?.ok_or_else(invalid)?;
    ensure_can_sign_in(&user)?;

    let txn = db.begin().await?;
    // Serialized with every revocation of the user's sessions (they lock the same row first), so
    // a revocation either sees the new token or makes the rotation below fail.
    let user = match lock_user(&txn, stored.user_id).await? {
        Some(locked) => locked,
        None => user,
    };
    ensure_can_sign_in(&user)?;
    let next_id = Uuid::new_v4();
    // Conditional update: of two concurrent refreshes with the same token, exactly one wins.
    let rotated = write::update_many(
        &txn,
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
            .col_expr(refresh_tokens::Column::ReplacedBy, Expr::value(next_id))
            .filter(refresh_tokens::Column::Id.eq(stored.id))
            .filter(refresh_tokens::Column::RevokedAt.is_null()),
    )
    .await?;
    if rotated != 1 {
        return Err(invalid());
    }
    let session = issue(&txn, keys, user, stored.family_id, next_id).await?;
    txn.commit().await?;
    Ok(session)
}

/// Revokes the session the refresh token belongs to. True when such a session existed.
#[tracing::instrument(name = "accounts.logout", skip_all)]
pub async fn logout(db: &DatabaseConnection, token: &str) -> AppResult<bool> {
    let stored = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash_refresh_token(token.trim())))
        .one(db)
        .await?;
    match stored {
        Some(stored) => {
            revoke_family(db, stored.user_id, stored.family_id).await?;
            // Its live sockets close too (published once the mutation succeeded).
            crate::events::emit(crate::events::Event::SessionsEnded {
                user_id: stored.user_id,
                session: Some(stored.family_id),
                banned: false,
            });
            Ok(true)
        }
        None => Ok(false),
    }
}

/// An admin sets a user's status. Leaving ACTIVE revokes every refresh token of the user, and every
/// live socket of theirs closes (4403 on a ban, 4401 otherwise) on every instance; audited.
#[tracing::instrument(name = "accounts.set_status", skip_all, fields(user_id = %user_id))]
pub async fn set_status(
    db: &DatabaseConnection,
    viewer: &crate::auth::Viewer,
    user_id: Uuid,
    status: UserStatus,
    reason: Option<String>,
    ip: Option<std::net::IpAddr>,
) -> AppResult<users::Model> {
    let admin = crate::domain::admin(db, viewer).await?;
    let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::bad_input("reason", "at most 500 characters"));
    }
    if status != UserStatus::Active && reason.is_none() {
        return Err(AppError::bad_input("reason", "say why the account is being suspended"));
    }
    if admin.id == user_id && status != UserStatus::Active {
        return Err(AppError::bad_input("userId", "administrators cannot suspend themselves"));
    }
    let txn = db.begin().await?;
    // The row lock (PostgreSQL) / write lock (SQLite) first, so two admins' changes serialize.
    let locked = write::update_many(
        &txn,
        users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(users::Column::Id.eq(user_id)),
    )
    .await?;
    if locked == 0 {
        return Err(AppError::not_found("user"));
    }
    let user = find_user(&txn, user_id).await?.ok_or_else(|| AppError::not_found("user"))?;
    if user.status == status {
        return Ok(user);
    }
    let old = user.status;
    let mut active: users::ActiveModel = user.into();
    active.status = Set(status);
    let user = write::update(&txn, active).await?;
    if status != UserStatus::Active {
        write::update_many(
            &txn,
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
                .filter(refresh_tokens::Column::UserId.eq(user_id))
                .filter(refresh_tokens::Column::RevokedAt.is_null()),
        )
        .await?;
    }
    crate::domain::audit::record(
        &txn,
        crate::domain::audit::AuditEntry {
            table: "users",
            operation: "UPDATE",
            old: Some(serde_json::json!({ "id": user.id, "status": old.as_str() })),
            new: Some(serde_json::json!({ "id": user.id, "status": user.status.as_str(), "reason": reason })),
            user_id: Some(admin.id),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    if status != UserStatus::Active {
        crate::events::emit(crate::events::Event::SessionsEnded {
            user_id,
            session: None,
            banned: status == UserStatus::Banned,
        });
    }
    Ok(user)
}

/// Whether a signed-in viewer may still act: the account active, and the session its token names
/// still live. Read through the cache facade (the write helpers drop both entries when a user's
/// status or a session's tokens change, on every instance), so a ban, a logout, a revoked session
/// or a password change refuses the very next request, at the cost of a hash look-up.
pub async fn check_standing(cache: &crate::cache::Cache, db: &DatabaseConnection, viewer: &Viewer) -> AppResult<()> {
    let Viewer::User { id, session, .. } = viewer else { return Ok(()) };
    // Boxed: the look-ups are large futures, which every request's future (anonymous ones too)
    // would otherwise carry and copy.
    Box::pin(standing_of(cache, db, *id, *session)).await
}

async fn standing_of(
    cache: &crate::cache::Cache,
    db: &DatabaseConnection,
    id: Uuid,
    session: Option<Uuid>,
) -> AppResult<()> {
    use crate::cache::Kind;
    if !cache.is_enabled() {
        // Nothing kept: both answers in one round trip.
        let (status, live) = standing_row(db, id, session).await?;
        return judge(status.as_deref(), live);
    }
    let (id, session) = (&id, &session);
    let status: Option<String> = cache
        .load_one(Kind::Account, *id, || async {
            Ok::<_, AppError>(find_user(db, *id).await?.map(|user| user.status.as_str().to_string()))
        })
        .await?;
    judge(status.as_deref(), None)?;
    let Some(family) = session else { return Ok(()) };
    let live = cache
        .load_one(Kind::Session, *family, || async { Ok::<_, AppError>(Some(session_is_live(db, *family).await?)) })
        .await?;
    judge(status.as_deref(), Some(live == Some(true)))
}

/// A user's status and, for a token naming a session, whether that session is live, in one
/// statement: `(None, _)` when the user does not exist.
async fn standing_row(
    db: &DatabaseConnection,
    id: Uuid,
    session: Option<Uuid>,
) -> AppResult<(Option<String>, Option<bool>)> {
    use sea_orm::sea_query::Query;
    use sea_orm::QuerySelect;
    let mut select = users::Entity::find_by_id(id).select_only().column(users::Column::Status);
    let Some(family) = session else {
        let status: Option<UserStatus> = select.into_tuple().one(db).await?;
        return Ok((status.map(|status| status.as_str().to_string()), None));
    };
    let live = Query::select()
        .expr(Expr::val(1))
        .from(refresh_tokens::Entity)
        .and_where(refresh_tokens::Column::FamilyId.eq(family))
        .and_where(refresh_tokens::Column::RevokedAt.is_null())
        .and_where(refresh_tokens::Column::ExpiresAt.gt(Utc::now()))
        .to_owned();
    select = select.column_as(Expr::exists(live), "live");
    let row: Option<(UserStatus, bool)> = select.into_tuple().one(db).await?;
    Ok(match row {
        Some((status, live)) => (Some(status.as_str().to_string()), Some(live)),
        None => (None, Some(false)),
    })
}

/// Refuses a request whose user does not exist (`status` `None`), is banned or inactive, or whose
/// session (`live`, when the token names one) ended.
fn judge(status: Option<&str>, live: Option<bool>) -> AppResult<()> {
    match status {
        None => return Err(AppError::Unauthenticated("the account no longer exists".into())),
        Some(status) if status == UserStatus::Banned.as_str() => {
            return Err(AppError::forbidden("this account is banned"))
        }
        Some(status) if status == UserStatus::Inactive.as_str() => {
            return Err(AppError::forbidden("this account is inactive"))
        }
        Some(_) => {}
    }
    if live == Some(false) {
        return Err(AppError::Unauthenticated("the session ended; sign in again".into()));
    }
    Ok(())
}

/// Whether a session (refresh-token family) still has a usable refresh token: false once it
/// logged out, was revoked by a ban, or expired.
pub async fn session_is_live(db: &(impl ConnectionTrait + TransactionTrait), family: Uuid) -> AppResult<bool> {
    use sea_orm::PaginatorTrait;
    let live = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::FamilyId.eq(family))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gt(Utc::now()))
        .count(db)
        .await?;
    Ok(live > 0)
}

pub async fn find_user(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id).one(db).await?)
}

/// Makes an existing user a platform admin (CLI `grant-admin`); audited.
pub async fn grant_admin(db: &DatabaseConnection, email: &str) -> AppResult<users::Model> {
    let email = Email::parse(email, "email")?;
    let user = find_by_email(db, &email).await?.ok_or_else(|| AppError::not_found("user"))?;
    if user.role == UserRole::Admin {
        return Ok(user);
    }
    let txn = db.begin().await?;
    let old_role = user.role;
    let mut active: users::ActiveModel = user.into();
    active.role = Set(UserRole::Admin);
    active.updated_at = Set(Utc::now());
    let user = write::update(&txn, active).await?;
    crate::domain::audit::record(
        &txn,
        crate::domain::audit::AuditEntry {
            table: "users",
            operation: "UPDATE",
            old: Some(serde_json::json!({ "id": user.id, "role": old_role.as_str() })),
            new: Some(serde_json::json!({ "id": user.id, "role": user.role.as_str() })),
            user_id: None,
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

async fn find_by_email(
    db: &(impl ConnectionTrait + TransactionTrait),
    email: &Email,
) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find().filter(users::Column::Email.eq(email.as_str())).one(db).await?)
}

fn ensure_can_sign_in(user: &users::Model) -> AppResult<()> {
    match user.status {
        UserStatus::Active => Ok(()),
        UserStatus::Banned => Err(AppError::forbidden("this account is banned")),
        UserStatus::Inactive => Err(AppError::forbidden("this account is inactive")),
    }
}

async fn start_session(
    db: &(impl ConnectionTrait + TransactionTrait),
    keys: &TokenKeys,
    user: users::Model,
    family: Uuid,
) -> AppResult<Session> {
    issue(db, keys, user, family, Uuid::new_v4()).await
}

async fn issue(
    db: &(impl ConnectionTrait + TransactionTrait),
    keys: &TokenKeys,
    user: users::Model,
    family: Uuid,
    id: Uuid,
) -> AppResult<Session> {
    let (access_token, expires_at) = keys.issue_access(user.id, user.role, Some(family))?;
    let refresh_token = random_token(32);
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(keys.refresh_ttl).map_err(|e| AppError::Internal(e.into()))?;
    write::insert(
        db,
        refresh_tokens::ActiveModel {
            id: Set(id),
            user_id: Set(user.id),
            family_id: Set(family),
            token_hash: Set(hash_refresh_token(&refresh_token)),
            expires_at: Set(now + ttl),
            revoked_at: Set(None),
            replaced_by: Set(None),
            created_at: Set(now),
        },
    )
    .await?;
    Ok(Session { access_token, refresh_token, expires_at, user })
}

/// PostgreSQL: the user's row, locked until the transaction ends. Refreshes and revocations of a
/// user's sessions take it first, so they run one after the other. SQLite: nothing (it has one
/// writer at a time, and a read before a transaction's first write would turn a concurrent commit
/// into SQLITE_BUSY_SNAPSHOT).
async fn lock_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<users::Model>> {
    use sea_orm::QuerySelect;
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => Ok(users::Entity::find_by_id(id).lock_exclusive().one(db).await?),
        _ => Ok(None),
    }
}

async fn revoke_family(db: &(impl ConnectionTrait + TransactionTrait), user: Uuid, family: Uuid) -> AppResult<()> {
    let txn = db.begin().await?;
    lock_user(&txn, user).await?;
    write::update_many(
        &txn,
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(refresh_tokens::Column::FamilyId.eq(family))
            .filter(refresh_tokens::Column::RevokedAt.is_null()),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// What mailed account tokens need: where the web app lives (links point there) and how long
/// each kind of token lasts.
#[derive(Clone, Debug)]
pub struct AccountMail {
    pub app_url: String,
    pub reset_ttl: std::time::Duration,
    pub verification_ttl: std::time::Duration,
}

const PASSWORD_RESET: &str = "password_reset";
const EMAIL_VERIFICATION: &str = "email_verification";

/// Issues a single-use token of `purpose` for `user` (earlier unused ones of that purpose stop
/// working) and returns it; the caller mails it in the same transaction.
async fn issue_account_token(
    db: &(impl ConnectionTrait + TransactionTrait),
    user: Uuid,
    purpose: &str,
    ttl: std::time::Duration,
) -> AppResult<String> {
    let now = Utc::now();
    write::update_many(
        db,
        account_tokens::Entity::update_many()
            .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
            .filter(account_tokens::Column::UserId.eq(user))
            .filter(account_tokens::Column::Purpose.eq(purpose))
            .filter(account_tokens::Column::UsedAt.is_null()),
    )
    .await?;
    let token = random_token(32);
    let ttl = chrono::Duration::from_std(ttl).map_err(|e| AppError::Internal(e.into()))?;
    write::insert(
        db,
        account_tokens::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user),
            purpose: Set(purpose.to_string()),
            token_hash: Set(hash_refresh_token(&token)),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            created_at: Set(now),
        },
    )
    .await?;
    Ok(token)
}

/// Spends a token of `purpose`: the user it was issued to, once (a conditional update, so two
/// concurrent uses cannot both succeed). Unknown, used and expired tokens are the same error.
async fn spend_account_token(
    db: &(impl ConnectionTrait + TransactionTrait),
    token: &str,
    purpose: &str,
    field: &str,
) -> AppResult<Uuid> {
    let invalid = || AppError::bad_input(field, "is invalid, used or expired; ask for a new one");
    let stored = account_tokens::Entity::find()
        .filter(account_tokens::Column::TokenHash.eq(hash_refresh_token(token.trim())))
        .filter(account_tokens::Column::Purpose.eq(purpose))
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    if stored.used_at.is_some() || stored.expires_at <= Utc::now() {
        return Err(invalid());
    }
    let spent = write::update_many(
        db,
        account_tokens::Entity::update_many()
            .col_expr(account_tokens::Column::UsedAt, Expr::value(Utc::now()))
            .filter(account_tokens::Column::Id.eq(stored.id))
            .filter(account_tokens::Column::UsedAt.is_null()),
    )
    .await?;
    if spent != 1 {
        return Err(invalid());
    }
    Ok(stored.user_id)
}

/// Every unused code of `purpose` the user holds stops working (a new password makes older reset
/// mails void).
async fn spend_all_codes(db: &(impl ConnectionTrait + TransactionTrait), user: Uuid, purpose: &str) -> AppResult<()> {
    write::update_many(
        db,
        account_tokens::Entity::update_many()
            .col_expr(account_tokens::Column::UsedAt, Expr::value(Utc::now()))
            .filter(account_tokens::Column::UserId.eq(user))
            .filter(account_tokens::Column::Purpose.eq(purpose))
            .filter(account_tokens::Column::UsedAt.is_null()),
    )
    .await?;
    Ok(())
}

/// Revokes every live session of `user` but `keep`; returns the ended sessions.
async fn end_sessions(
    db: &(impl ConnectionTrait + TransactionTrait),
    user: Uuid,
    keep: Option<Uuid>,
) -> AppResult<Vec<Uuid>> {
    // After a refresh in flight (see `lock_user`): its new token is then seen and revoked.
    lock_user(db, user).await?;
    let mut live = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::UserId.eq(user))
        .filter(refresh_tokens::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        live = live.filter(refresh_tokens::Column::FamilyId.ne(keep));
    }
    let mut families: Vec<Uuid> = live.all(db).await?.into_iter().map(|t| t.family_id).collect();
    families.sort();
    families.dedup();
    if !families.is_empty() {
        write::update_many(
            db,
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
                .filter(refresh_tokens::Column::FamilyId.is_in(families.clone()))
                .filter(refresh_tokens::Column::RevokedAt.is_null()),
        )
        .await?;
    }
    Ok(families)
}

fn password_audit(
    user: Uuid,
    how: &str,
    ip: Option<std::net::IpAddr>,
    actor: Option<Uuid>,
) -> crate::domain::audit::AuditEntry<'static> {
    crate::domain::audit::AuditEntry {
        table: "users",
        operation: "UPDATE",
        old: None,
        new: Some(serde_json::json!({ "id": user, "password": how })),
        user_id: actor,
        ip,
    }
}

/// The signed-in user changes their password (the current one is checked). Every other session
/// ends: its refresh token is revoked and its access token refused from the next request on;
/// this session goes on.
#[tracing::instrument(name = "accounts.change_password", skip_all)]
pub async fn change_password(
    db: &DatabaseConnection,
    viewer: &Viewer,
    current: String,
    new: String,
    ip: Option<std::net::IpAddr>,
) -> AppResult<()> {
    let new = Password::parse(new, "input.newPassword")?;
    let user = crate::domain::active_user(db, viewer).await?;
    if !password::verify(current, Some(user.password_hash.clone())).await? {
        return Err(AppError::bad_input("input.currentPassword", "is not your current password"));
    }
    let hash = password::hash(new).await?;
    let keep = match viewer {
        Viewer::User { session, .. } => *session,
        _ => None,
    };
    let txn = db.begin().await?;
    let user_id = user.id;
    let mut active: users::ActiveModel = user.into();
    active.password_hash = Set(hash);
    active.updated_at = Set(Utc::now());
    write::update(&txn, active).await?;
    let ended = end_sessions(&txn, user_id, keep).await?;
    spend_all_codes(&txn, user_id, PASSWORD_RESET).await?;
    crate::domain::audit::record(&txn, password_audit(user_id, "changed", ip, Some(user_id))).await?;
    txn.commit().await?;
    for session in ended {
        crate::events::emit(crate::events::Event::SessionsEnded { user_id, session: Some(session), banned: false });
    }
    Ok(())
}

/// Mails a password-reset link to `email` if an active account has it; says nothing either way
/// (the caller answers true), so the answer does not tell who has an account.
#[tracing::instrument(name = "accounts.request_password_reset", skip_all)]
pub async fn request_password_reset(db: &DatabaseConnection, mail: &AccountMail, email: &str) -> AppResult<()> {
    let email = Email::parse(email, "email")?;
    let Some(user) = find_by_email(db, &email).await? else { return Ok(()) };
    if user.status != UserStatus::Active {
        return Ok(());
    }
    let txn = db.begin().await?;
    let token = issue_account_token(&txn, user.id, PASSWORD_RESET, mail.reset_ttl).await?;
    let minutes = mail.reset_ttl.as_secs() / 60;
    let body = format!(
        "Someone (hopefully you) asked to reset the password of your Master Guide account.\n\n\
         Choose a new password here (the link works once, for {minutes} minutes):\n\
         {}/reset-password?token={token}\n\n\
         Or paste this code into the app: {token}\n\n\
         If you did not ask for this, ignore this mail: your password stays as it is.\n",
        mail.app_url.trim_end_matches('/')
    );
    crate::mail::queue(&txn, &user.email, "Reset your Master Guide password", &body).await?;
    txn.commit().await?;
    Ok(())
}

/// Sets a new password with a reset token (once, before it expires): every session ends, a new
/// one starts, and the mailbox is proven (the email counts as verified).
#[tracing::instrument(name = "accounts.reset_password", skip_all)]
pub async fn reset_password(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    token: &str,
    new: String,
    ip: Option<std::net::IpAddr>,
) -> AppResult<Session> {
    let new = Password::parse(new, "input.newPassword")?;
    let hash = password::hash(new).await?;
    let txn = db.begin().await?;
    let user_id = spend_account_token(&txn, token, PASSWORD_RESET, "input.token").await?;
    let user = users::Entity::find_by_id(user_id).one(&txn).await?.ok_or_else(AppError::unauthenticated)?;
    ensure_can_sign_in(&user)?;
    let mut active: users::ActiveModel = user.into();
    active.password_hash = Set(hash);
    active.email_verified = Set(true);
    active.updated_at = Set(Utc::now());
    let user = write::update(&txn, active).await?;
    let ended = end_sessions(&txn, user_id, None).await?;
    spend_all_codes(&txn, user_id, PASSWORD_RESET).await?;
    crate::domain::audit::record(&txn, password_audit(user_id, "reset", ip, Some(user_id))).await?;
    let session = start_session(&txn, keys, user, Uuid::new_v4()).await?;
    txn.commit().await?;
    for session in ended {
        crate::events::emit(crate::events::Event::SessionsEnded { user_id, session: Some(session), banned: false });
    }
    Ok(session)
}

/// Mails the signed-in user a link that verifies their email (nothing when it is verified).
#[tracing::instrument(name = "accounts.request_email_verification", skip_all)]
pub async fn request_email_verification(db: &DatabaseConnection, mail: &AccountMail, viewer: &Viewer) -> AppResult<()> {
    let user = crate::domain::active_user(db, viewer).await?;
    if user.email_verified {
        return Ok(());
    }
    let txn = db.begin().await?;
    let token = issue_account_token(&txn, user.id, EMAIL_VERIFICATION, mail.verification_ttl).await?;
    let body = format!(
        "Confirm that this address is yours:\n{}/verify-email?token={token}\n\nOr paste this code into the app: {token}\n",
        mail.app_url.trim_end_matches('/')
    );
    crate::mail::queue(&txn, &user.email, "Confirm your email for Master Guide", &body).await?;
    txn.commit().await?;
    Ok(())
}

/// Marks the email of the token's user verified (the token works once).
#[tracing::instrument(name = "accounts.verify_email", skip_all)]
pub async fn verify_email(db: &DatabaseConnection, token: &str) -> AppResult<users::Model> {
    let txn = db.begin().await?;
    let user_id = spend_account_token(&txn, token, EMAIL_VERIFICATION, "token").await?;
    let user = users::Entity::find_by_id(user_id).one(&txn).await?.ok_or_else(|| AppError::not_found("user"))?;
    let mut active: users::ActiveModel = user.into();
    active.email_verified = Set(true);
    active.updated_at = Set(Utc::now());
    let user = write::update(&txn, active).await?;
    txn.commit().await?;
    Ok(user)
}

/// The signed-in user's phone number (null clears it); a new number is unverified.
#[tracing::instrument(name = "accounts.update_phone", skip_all)]
pub async fn update_phone(db: &DatabaseConnection, viewer: &Viewer, phone: Option<String>) -> AppResult<users::Model> {
    let phone = parse_phone(phone, "phone")?;
    let user = crate::domain::active_user(db, viewer).await?;
    if user.phone == phone {
        return Ok(user);
    }
    let mut active: users::ActiveModel = user.into();
    active.phone = Set(phone);
    active.phone_verified = Set(false);
    active.updated_at = Set(Utc::now());
    Ok(write::update(db, active).await?)
}

/// One live session of a user, as `sessions` lists it.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub current: bool,
}

/// The signed-in user's live sessions, most recently active first.
pub async fn sessions(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<Vec<SessionInfo>> {
    let user = crate::domain::active_user(db, viewer).await?;
    let current = match viewer {
        Viewer::User { session, .. } => *session,
        _ => None,
    };
    let live = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::UserId.eq(user.id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gt(Utc::now()))
        .all(db)
        .await?;
    let families: Vec<Uuid> = live.iter().map(|t| t.family_id).collect();
    let all = refresh_tokens::Entity::find().filter(refresh_tokens::Column::FamilyId.is_in(families)).all(db).await?;
    let mut out: Vec<SessionInfo> = live
        .iter()
        .map(|token| SessionInfo {
            id: token.family_id,
            started_at: all
                .iter()
                .filter(|t| t.family_id == token.family_id)
                .map(|t| t.created_at)
                .min()
                .unwrap_or(token.created_at),
            last_active_at: token.created_at,
            expires_at: token.expires_at,
            current: current == Some(token.family_id),
        })
        .collect();
    out.sort_by(|a, b| b.last_active_at.cmp(&a.last_active_at).then(a.id.cmp(&b.id)));
    out.dedup_by_key(|s| s.id);
    Ok(out)
}

/// Ends one of the signed-in user's sessions (its sockets close, its access token is refused).
/// False when it was not a live session of theirs.
pub async fn revoke_session(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<bool> {
    let user = crate::domain::active_user(db, viewer).await?;
    let owned = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::FamilyId.eq(id))
        .filter(refresh_tokens::Column::UserId.eq(user.id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    if owned.is_none() {
        return Ok(false);
    }
    revoke_family(db, user.id, id).await?;
    crate::events::emit(crate::events::Event::SessionsEnded { user_id: user.id, session: Some(id), banned: false });
    Ok(true)
}
