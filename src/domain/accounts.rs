//! Accounts: registration, login, refresh-token rotation, logout, admin grants.

use super::write;
use crate::auth::password::{self, Password};
use crate::auth::tokens::{hash_refresh_token, random_token, TokenKeys};
use crate::domain::values::{parse_phone, Email};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::enums::{UserRole, UserStatus};
use entity::{refresh_tokens, users};
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
    let email = Email::parse(&input.email, "input.email")?;
    let password = Password::parse(input.password, "input.password")?;
    let phone = parse_phone(input.phone, "input.phone")?;

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
    let txn = db.begin().await?;
    let now = Utc::now();
    let mut active: users::ActiveModel = user.into();
    active.last_login_at = Set(Some(now));
    let user = write::update(&txn, active).await?;
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
            revoke_family(db, stored.family_id).await?;
        }
        return Err(invalid());
    }
    if stored.expires_at <= Utc::now() {
        return Err(invalid());
    }
    let user = users::Entity::find_by_id(stored.user_id).one(db).await?.ok_or_else(invalid)?;
    ensure_can_sign_in(&user)?;

    let txn = db.begin().await?;
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
            revoke_family(db, stored.family_id).await?;
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

async fn revoke_family(db: &(impl ConnectionTrait + TransactionTrait), family: Uuid) -> AppResult<()> {
    write::update_many(
        db,
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(refresh_tokens::Column::FamilyId.eq(family))
            .filter(refresh_tokens::Column::RevokedAt.is_null()),
    )
    .await?;
    Ok(())
}
