//! Identities (master / apprentice in a domain), their verification by admins, and profiles.

use super::audit::{self, AuditEntry};
use super::notify::{self, Kind, Notice};
use super::values::{int_range, money, optional_text, optional_url, string_list, text, url, url_list};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult, Checks};
use chrono::Utc;
use entity::enums::UploadPurpose;
use entity::enums::{IdentityStatus, IdentityType, StringList, VerificationStatus};
use entity::{user_identities, user_profiles};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};
use std::net::IpAddr;
use uuid::Uuid;

pub struct Application {
    pub identity_type: IdentityType,
    pub domain: String,
    pub verification_documents: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// A partial profile update: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Default)]
pub struct ProfileInput {
    pub name: Option<String>,
    pub avatar: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
    pub experience_years: Option<i32>,
    pub hourly_rate: Option<Option<Decimal>>,
    pub location: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub social_links: Option<Option<serde_json::Value>>,
}

pub async fn find(
    db: &(impl ConnectionTrait + TransactionTrait),
    id: Uuid,
) -> AppResult<Option<user_identities::Model>> {
    Ok(user_identities::Entity::find_by_id(id).one(db).await?)
}

/// Applies for an identity. Apprentices are active at once; masters wait for an admin's review.
/// A rejected master applies again with new documents: the same row goes back to pending (its
/// rejection reason stays for the reviewer), audited.
#[tracing::instrument(name = "identities.apply", skip_all)]
pub async fn apply(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    input: Application,
    ip: Option<IpAddr>,
) -> AppResult<user_identities::Model> {
    let mut c = Checks::default();
    let domain = c.on(text("input.domain", &input.domain, 1, 100)).to_lowercase();
    let none = input.verification_documents.is_empty();
    let documents = c.on(url_list("input.verificationDocuments", input.verification_documents, 10));
    if input.identity_type == IdentityType::Master && none {
        c.fail("input.verificationDocuments", "a master application needs at least one document");
    }
    c.finish()?;
    let user = super::active_user(db, viewer).await?;
    let field = "input.verificationDocuments";
    let documents =
        super::uploads::claim_all(db, storage, user.id, field, &documents, UploadPurpose::IdentityDocument).await?;
    let txn = db.begin().await?;
    super::domains::hold_active(&txn, &domain, "input.domain").await?;
    let held = user_identities::Entity::find()
        .filter(user_identities::Column::UserId.eq(user.id))
        .filter(user_identities::Column::Domain.eq(domain.as_str()))
        .filter(user_identities::Column::IdentityType.eq(input.identity_type.as_str()))
        .one(&txn)
        .await?;
    if let Some(held) = held {
        if held.status == IdentityStatus::Rejected {
            return reapply(txn, held, documents, ip).await;
        }
        return Err(AppError::Conflict {
            field: Some("input.domain".into()),
            message: "you already hold this identity in this domain".into(),
        });
    }
    let (status, verification) = match input.identity_type {
        IdentityType::Apprentice => (IdentityStatus::Active, VerificationStatus::Unverified),
        IdentityType::Master => (IdentityStatus::Pending, VerificationStatus::Pending),
    };
    let now = Utc::now();
    let created = write::insert(
        &txn,
        user_identities::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user.id),
            identity_type: Set(input.identity_type),
            domain: Set(domain),
            status: Set(status),
            verification_status: Set(verification),
            verification_documents: Set((!documents.is_empty()).then_some(StringList(documents))),
            rejection_reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await
    .map_err(AppError::on_unique("input.domain", "you already hold this identity in this domain"))?;
    txn.commit().await?;
    Ok(created)
}

/// A rejected application sent again: REJECTED → PENDING with the new documents, in one
/// conditional update (two tabs re-applying at once move it once).
async fn reapply(
    txn: sea_orm::DatabaseTransaction,
    held: user_identities::Model,
    documents: Vec<String>,
    ip: Option<IpAddr>,
) -> AppResult<user_identities::Model> {
    let moved = write::update_many(
        &txn,
        user_identities::Entity::update_many()
            .col_expr(user_identities::Column::Status, Expr::value(IdentityStatus::Pending.as_str()))
            .col_expr(user_identities::Column::VerificationStatus, Expr::value(VerificationStatus::Pending.as_str()))
            .col_expr(
                user_identities::Column::VerificationDocuments,
                Expr::value(serde_json::Value::from(documents.clone())),
            )
            .col_expr(user_identities::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user_identities::Column::Id.eq(held.id))
            .filter(user_identities::Column::Status.eq(IdentityStatus::Rejected.as_str())),
    )
    .await?;
    if moved != 1 {
        return Err(AppError::Conflict {
            field: Some("input.domain".into()),
            message: "the application changed meanwhile".into(),
        });
    }
    audit::record(
        &txn,
        AuditEntry {
            table: "user_identities",
            operation: "UPDATE",
            old: Some(serde_json::json!({
                "id": held.id, "status": held.status.as_str(), "rejection_reason": held.rejection_reason,
                "verification_documents": held.verification_documents.map(|d| d.0),
            })),
            new: Some(serde_json::json!({
                "id": held.id, "status": IdentityStatus::Pending.as_str(), "verification_documents": documents,
            })),
            user_id: Some(held.user_id),
            ip,
        },
    )
    .await?;
    let updated = find(&txn, held.id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    txn.commit().await?;
    Ok(updated)
}

/// An admin approves or rejects a pending master identity. Audited; the applicant is notified.
/// Repeating the decision already taken is a no-op success.
#[tracing::instrument(name = "identities.review", skip_all, fields(identity = %id))]
pub async fn review(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    decision: Decision,
    reason: Option<String>,
    ip: Option<IpAddr>,
) -> AppResult<user_identities::Model> {
    let reason = optional_text("reason", reason, 1000)?;
    if decision == Decision::Reject && reason.is_none() {
        return Err(AppError::bad_input("reason", "a rejection needs a reason"));
    }
    let admin = super::admin(db, viewer).await?;
    let identity = find(db, id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    let (status, verification) = match decision {
        Decision::Approve => (IdentityStatus::Active, VerificationStatus::Verified),
        Decision::Reject => (IdentityStatus::Rejected, VerificationStatus::Rejected),
    };
    if identity.status == status && identity.verification_status == verification {
        return Ok(identity);
    }
    if identity.identity_type != IdentityType::Master || identity.status != IdentityStatus::Pending {
        return Err(AppError::Conflict {
            field: None,
            message: format!(
                "only pending master identities can be reviewed (this one is {})",
                identity.status.as_str()
            ),
        });
    }
    let txn = db.begin().await?;
    // Conditional update: two admins deciding at once cannot both move it out of pending.
    let moved = write::update_many(
        &txn,
        user_identities::Entity::update_many()
            .col_expr(user_identities::Column::Status, Expr::value(status.as_str()))
            .col_expr(user_identities::Column::VerificationStatus, Expr::value(verification.as_str()))
            .col_expr(
                user_identities::Column::RejectionReason,
                Expr::value(reason.clone().filter(|_| decision == Decision::Reject)),
            )
            .col_expr(user_identities::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user_identities::Column::Id.eq(id))
            .filter(user_identities::Column::Status.eq(IdentityStatus::Pending.as_str())),
    )
    .await?;
    if moved != 1 {
        return Err(AppError::Conflict { field: None, message: "the identity was reviewed meanwhile".into() });
    }
    audit::record(
        &txn,
        AuditEntry {
            table: "user_identities",
            operation: "UPDATE",
            old: Some(serde_json::json!({
                "id": id, "status": identity.status.as_str(), "verification_status": identity.verification_status.as_str()
            })),
            new: Some(serde_json::json!({
                "id": id, "status": status.as_str(), "verification_status": verification.as_str(), "reason": reason
            })),
            user_id: Some(admin.id),
            ip,
        },
    )
    .await?;
    let (kind, title) = match decision {
        Decision::Approve => {
            (Kind::IdentityApproved, format!("Your master identity in {} is verified", identity.domain))
        }
        Decision::Reject => {
            (Kind::IdentityRejected, format!("Your master application in {} was rejected", identity.domain))
        }
    };
    notify::send(&txn, Notice { user_id: identity.user_id, kind, title, content: reason, related_id: Some(id) })
        .await?;
    let updated = find(&txn, id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    txn.commit().await?;
    Ok(updated)
}

/// What an admin does to an identity after its review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// ACTIVE → SUSPENDED (needs a reason): the identity stops acting as a master (not listed, not
    /// found by search, cannot be booked).
    Suspend,
    /// SUSPENDED → ACTIVE.
    Reinstate,
}

/// An admin suspends or reinstates an identity. Audited with the reason; repeating the current
/// standing is a no-op success.
#[tracing::instrument(name = "identities.set_standing", skip_all, fields(identity = %id))]
pub async fn set_standing(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    standing: Standing,
    reason: Option<String>,
    ip: Option<IpAddr>,
) -> AppResult<user_identities::Model> {
    let reason = optional_text("reason", reason, 1000)?;
    if standing == Standing::Suspend && reason.is_none() {
        return Err(AppError::bad_input("reason", "a suspension needs a reason"));
    }
    let admin = super::admin(db, viewer).await?;
    let identity = find(db, id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    let (from, to) = match standing {
        Standing::Suspend => (IdentityStatus::Active, IdentityStatus::Suspended),
        Standing::Reinstate => (IdentityStatus::Suspended, IdentityStatus::Active),
    };
    if identity.status == to {
        return Ok(identity);
    }
    if identity.status != from {
        return Err(AppError::Conflict {
            field: None,
            message: format!(
                "only {} identities can be {} (this one is {})",
                from.as_str(),
                if standing == Standing::Suspend { "suspended" } else { "reinstated" },
                identity.status.as_str()
            ),
        });
    }
    let txn = db.begin().await?;
    let moved = write::update_many(
        &txn,
        user_identities::Entity::update_many()
            .col_expr(user_identities::Column::Status, Expr::value(to.as_str()))
            .col_expr(user_identities::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user_identities::Column::Id.eq(id))
            .filter(user_identities::Column::Status.eq(from.as_str())),
    )
    .await?;
    if moved != 1 {
        return Err(AppError::Conflict { field: None, message: "the identity changed meanwhile".into() });
    }
    audit::record(
        &txn,
        AuditEntry {
            table: "user_identities",
            operation: "UPDATE",
            old: Some(serde_json::json!({ "id": id, "status": from.as_str() })),
            new: Some(serde_json::json!({ "id": id, "status": to.as_str(), "reason": reason })),
            user_id: Some(admin.id),
            ip,
        },
    )
    .await?;
    let updated = find(&txn, id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    txn.commit().await?;
    Ok(updated)
}

/// Creates or updates the profile of one of the viewer's identities.
#[tracing::instrument(name = "identities.update_profile", skip_all, fields(identity = %identity_id))]
pub async fn update_profile(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    viewer: &Viewer,
    identity_id: Uuid,
    input: ProfileInput,
) -> AppResult<user_profiles::Model> {
    let mut c = Checks::default();
    let name = c.on(input.name.as_deref().map(|n| text("input.name", n, 1, 100)).transpose());
    let avatar = c.on(input.avatar.map(|v| optional_url("input.avatar", v, 500)).transpose());
    let bio = c.on(input.bio.map(|v| optional_text("input.bio", v, 5000)).transpose());
    let skills = c.on(input.skills.map(|v| string_list("input.skills", v, 30, 50)).transpose());
    let experience = c.on(input.experience_years.map(|v| int_range("input.experienceYears", v, 0, 80)).transpose());
    let rate = c.on(input.hourly_rate.map(|v| v.map(|r| money("input.hourlyRate", r)).transpose()).transpose());
    let location = c.on(input.location.map(|v| optional_text("input.location", v, 200)).transpose());
    let website = c.on(input.website.map(|v| optional_url("input.website", v, 500)).transpose());
    let links = c.on(input.social_links.map(|v| v.map(parse_social_links).transpose()).transpose());
    c.finish()?;

    let user = super::active_user(db, viewer).await?;
    let identity = find(db, identity_id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    if identity.user_id != user.id {
        return Err(AppError::forbidden("only the identity's owner can edit its profile"));
    }
    let avatar =
        super::uploads::claim_optional(db, storage, user.id, "input.avatar", avatar, UploadPurpose::Avatar).await?;
    let now = Utc::now();
    let existing =
        user_profiles::Entity::find().filter(user_profiles::Column::IdentityId.eq(identity_id)).one(db).await?;
    let old_avatar = existing.as_ref().and_then(|profile| profile.avatar.clone());
    let mut active = match existing {
        Some(profile) => profile.into(),
        None => {
            let Some(name) = name.clone() else {
                return Err(AppError::bad_input("input.name", "a new profile needs a name"));
            };
            user_profiles::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(user.id),
                identity_id: Set(identity_id),
                name: Set(name),
                avatar: Set(None),
                bio: Set(None),
                skills: Set(Some(StringList::default())),
                experience_years: Set(0),
                hourly_rate: Set(None),
                location: Set(None),
                website: Set(None),
                social_links: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
        }
    };
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(avatar) = &avatar {
        active.avatar = Set(avatar.clone());
    }
    if let Some(bio) = bio {
        active.bio = Set(bio);
    }
    if let Some(skills) = skills {
        active.skills = Set(Some(StringList(skills)));
    }
    if let Some(years) = experience {
        active.experience_years = Set(years);
    }
    if let Some(rate) = rate {
        active.hourly_rate = Set(rate);
    }
    if let Some(location) = location {
        active.location = Set(location);
    }
    if let Some(website) = website {
        active.website = Set(website);
    }
    if let Some(links) = links {
        active.social_links = Set(links);
    }
    active.updated_at = Set(now);
    let profile =
        if active.id.is_unchanged() { write::update(db, active).await? } else { write::insert(db, active).await? };
    super::uploads::release_replaced(db, storage, UploadPurpose::Avatar, old_avatar.as_deref(), &avatar).await?;
    Ok(profile)
}

/// Social links: a JSON object of at most 20 `name: http(s) URL` pairs.
fn parse_social_links(value: serde_json::Value) -> AppResult<serde_json::Value> {
    let field = "input.socialLinks";
    let object = value.as_object().ok_or_else(|| AppError::bad_input(field, "must be an object of name: URL"))?;
    if object.len() > 20 {
        return Err(AppError::bad_input(field, "at most 20 links"));
    }
    let mut clean = serde_json::Map::new();
    for (name, link) in object {
        let name = text(field, name, 1, 50)?;
        let link = link.as_str().ok_or_else(|| AppError::bad_input(field, "each link must be a URL string"))?;
        clean.insert(name, serde_json::Value::String(url(field, link, 500)?));
    }
    Ok(serde_json::Value::Object(clean))
}
