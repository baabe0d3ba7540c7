//! The admin console: `users` / `user`, `identities` / `identity` (the review queue),
//! `auditLogs` and the system configs. Admins only, checked in the database (not only the token's role).

use super::accounts::User;
use super::context::{client_ip, state, viewer};
use super::id_arg;
use super::identities::Identity;
use super::pagination::{connection, page_request, Conn, ConnectionFields};
use crate::domain::admin::{self, AuditFilter, IdentityFilter, UserFilter};
use async_graphql::{Context, InputObject, Json, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::audit_logs;
use entity::enums::{IdentityStatus, IdentityType, UserRole, UserStatus, VerificationStatus};

/// Filter of `users`.
#[derive(InputObject, Default)]
pub struct UsersFilter {
    /// Part of the email or phone number.
    pub query: Option<String>,
    /// Only users in this status.
    pub status: Option<UserStatus>,
    /// Only users with this role.
    pub role: Option<UserRole>,
}

/// Filter of `identities`.
#[derive(InputObject, Default)]
pub struct IdentitiesFilter {
    /// Only identities in this status.
    pub status: Option<IdentityStatus>,
    /// Only this verification status.
    pub verification_status: Option<VerificationStatus>,
    /// MASTER or APPRENTICE.
    pub identity_type: Option<IdentityType>,
    /// A domain code.
    pub domain: Option<String>,
}

/// Filter of `auditLogs`.
#[derive(InputObject, Default)]
pub struct AuditLogsFilter {
    /// The user who made the change.
    pub actor_id: Option<ID>,
    /// INSERT, UPDATE or DELETE.
    pub action: Option<String>,
    /// The table the change was made to (`users`, `user_identities`, `posts`, `reviews`, …).
    pub resource_type: Option<String>,
    /// The id of the changed row.
    pub resource_id: Option<ID>,
    /// Changes at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Changes before this time.
    pub until: Option<DateTime<Utc>>,
}

/// One sensitive change: who made it, from where, and the row's data before and after.
pub struct AuditLog(audit_logs::Model);

/// One sensitive change: who made it, from where, and the row's data before and after.
#[Object]
impl AuditLog {
    /// The entry's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// INSERT, UPDATE or DELETE.
    async fn action(&self) -> &str {
        &self.0.operation
    }
    /// The table of the changed row.
    async fn resource_type(&self) -> &str {
        &self.0.table_name
    }
    /// The changed row's id (absent on entries older than this field).
    async fn resource_id(&self) -> Option<ID> {
        self.0.record_id.map(|id| ID(id.to_string()))
    }
    /// Who made the change (absent for the command line, e.g. `grant-admin`).
    async fn actor(&self) -> Option<User> {
        self.0.user_id.map(User::by_id)
    }
    /// The client's address, as the server saw it (from a trusted proxy only).
    async fn ip(&self) -> Option<&str> {
        self.0.ip_address.as_deref()
    }
    /// The row's audited fields before the change (null for an insert).
    async fn old_data(&self) -> Option<Json<serde_json::Value>> {
        self.0.old_data.clone().map(Json)
    }
    /// The row's audited fields after the change (null for a delete).
    async fn new_data(&self) -> Option<Json<serde_json::Value>> {
        self.0.new_data.clone().map(Json)
    }
    /// When the change was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Admins: users, newest first.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the list by status, role or email.")] filter: Option<UsersFilter>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<User>> {
        crate::cache::uncacheable();
        let page = page_request(ctx, first, after, last, before)?;
        let filter = filter.unwrap_or_default();
        let filter = UserFilter { query: filter.query, status: filter.status, role: filter.role };
        let db = &state(ctx)?.db;
        let (rows, select) = admin::users(db, viewer(ctx), filter, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), User::new))
    }

    /// Admins: one user.
    async fn user(&self, ctx: &Context<'_>, #[graphql(desc = "The user's id.")] id: ID) -> Result<Option<User>> {
        crate::cache::uncacheable();
        let id = id_arg("id", &id)?;
        Ok(admin::user(&state(ctx)?.db, viewer(ctx), id).await?.map(User::new))
    }

    /// Admins: identities, oldest first — with `{ status: PENDING, identityType: MASTER }`, the
    /// review queue.
    async fn identities(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the list by type, status or domain.")] filter: Option<IdentitiesFilter>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<Identity>> {
        crate::cache::uncacheable();
        let page = page_request(ctx, first, after, last, before)?;
        let f = filter.unwrap_or_default();
        let filter = IdentityFilter {
            status: f.status,
            verification_status: f.verification_status,
            identity_type: f.identity_type,
            domain: f.domain,
        };
        let db = &state(ctx)?.db;
        let (rows, select) = admin::identities(db, viewer(ctx), filter, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), Identity))
    }

    /// Admins: one identity (any status).
    async fn identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The identity's id.")] id: ID,
    ) -> Result<Option<Identity>> {
        crate::cache::uncacheable();
        let id = id_arg("id", &id)?;
        Ok(admin::identity(&state(ctx)?.db, viewer(ctx), id).await?.map(Identity))
    }

    /// Admins: every known system config with the value in force.
    async fn system_configs(&self, ctx: &Context<'_>) -> Result<Vec<SystemConfig>> {
        crate::cache::uncacheable();
        let state = state(ctx)?;
        let entries = crate::settings::list(&state.db, &state.settings, viewer(ctx)).await?;
        Ok(entries.into_iter().map(SystemConfig).collect())
    }

    /// Admins: the audit log, newest first. Entries are never changed or deleted through the API.
    async fn audit_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Narrows the log by table, actor or time.")] filter: Option<AuditLogsFilter>,
        #[graphql(desc = "At most this many items from the start (page size).")] first: Option<i32>,
        #[graphql(desc = "Items after this cursor (`pageInfo.endCursor`).")] after: Option<String>,
        #[graphql(desc = "At most this many items from the end (page size).")] last: Option<i32>,
        #[graphql(desc = "Items before this cursor (`pageInfo.startCursor`).")] before: Option<String>,
    ) -> Result<Conn<AuditLog>> {
        crate::cache::uncacheable();
        let page = page_request(ctx, first, after, last, before)?;
        let f = filter.unwrap_or_default();
        let filter = AuditFilter {
            actor: f.actor_id.as_ref().map(|id| id_arg("filter.actorId", id)).transpose()?,
            action: f.action,
            resource_type: f.resource_type,
            resource: f.resource_id.as_ref().map(|id| id_arg("filter.resourceId", id)).transpose()?,
            since: f.since,
            until: f.until,
        };
        let db = &state(ctx)?.db;
        let (rows, select) = admin::audit_logs(db, viewer(ctx), filter, &page).await?;
        Ok(connection(rows, ConnectionFields::counting(db, select), AuditLog))
    }
}

/// A known system config key with the value in force on the server.
pub struct SystemConfig(crate::settings::Entry);

/// A runtime setting administrators change without a restart (audited).
#[Object]
impl SystemConfig {
    /// The key, e.g. `features.likes` or `rate.login_account`.
    async fn key(&self) -> &str {
        self.0.key
    }
    /// What the key controls and which values it takes.
    async fn description(&self) -> &str {
        self.0.description
    }
    /// The type of its values: STRING (a rate rule `N/period`), NUMBER or BOOLEAN.
    async fn config_type(&self) -> entity::enums::ConfigType {
        self.0.kind
    }
    /// The value in force.
    async fn value(&self) -> Json<serde_json::Value> {
        Json(self.0.value.clone())
    }
    /// The value without an override (from the environment or built in).
    async fn default_value(&self) -> Json<serde_json::Value> {
        Json(self.0.default.clone())
    }
    /// Whether an admin's value overrides the default.
    async fn is_overridden(&self) -> bool {
        self.0.updated_at.is_some()
    }
    /// When an admin last set it.
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Admins: sets a known system config (`value: null` returns it to its default). The value
    /// is checked against the key's type; every instance applies it within a second. Audited.
    async fn set_system_config(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The config key (see `systemConfigs`).")] key: String,
        #[graphql(desc = "The new value, as JSON of the key's type.")] value: Option<Json<serde_json::Value>>,
    ) -> Result<SystemConfig> {
        let state = state(ctx)?;
        let value = value.map(|v| v.0).unwrap_or(serde_json::Value::Null);
        let entry = crate::settings::set(&state.db, &state.settings, viewer(ctx), &key, value, client_ip(ctx)).await?;
        Ok(SystemConfig(entry))
    }
}
