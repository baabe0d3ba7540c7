//! Accounts over GraphQL: register, login, refreshToken, logout, me.

use super::context::{loaders, state, viewer};
use super::identities::Identity;
use crate::domain::accounts::{self, Registration, Session};
use crate::error::AppError;
use async_graphql::{Context, InputObject, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::enums::{UserRole, UserStatus};
use entity::users;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// A registered account. `email` and `phone` are visible to the user themself and to admins only.
/// A user referred to by another row (a review's author, a member) is known by id at first; the
/// row is loaded, batched, only when a field other than `id` is asked for.
pub struct User {
    id: Uuid,
    model: OnceCell<users::Model>,
    /// Set when the account is handed to its own (just signed-in) owner.
    owner: bool,
}

impl User {
    pub fn new(model: users::Model) -> Self {
        Self { id: model.id, model: OnceCell::new_with(Some(model)), owner: false }
    }

    /// The user `id` (an existing user: a foreign key names it).
    pub fn by_id(id: Uuid) -> Self {
        Self { id, model: OnceCell::new(), owner: false }
    }

    fn own(model: users::Model) -> Self {
        Self { owner: true, ..Self::new(model) }
    }

    async fn model(&self, ctx: &Context<'_>) -> Result<&users::Model, AppError> {
        self.model
            .get_or_try_init(|| async {
                let user = loaders(ctx)?.users.load_one(self.id).await?;
                user.ok_or_else(|| AppError::not_found("user"))
            })
            .await
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }
    /// Null unless the viewer is this user or an admin.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        if !self.visible_to(ctx) {
            return Ok(None);
        }
        Ok(Some(self.model(ctx).await?.email.as_str()))
    }
    /// Null unless the viewer is this user or an admin.
    async fn phone(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        if !self.visible_to(ctx) {
            return Ok(None);
        }
        Ok(self.model(ctx).await?.phone.as_deref())
    }
    async fn status(&self, ctx: &Context<'_>) -> Result<UserStatus> {
        Ok(self.model(ctx).await?.status)
    }
    async fn email_verified(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.model(ctx).await?.email_verified)
    }
    /// USER or ADMIN.
    async fn role(&self, ctx: &Context<'_>) -> Result<UserRole> {
        Ok(self.model(ctx).await?.role)
    }
    /// The user's master and apprentice identities.
    async fn identities(&self, ctx: &Context<'_>) -> Result<Vec<Identity>> {
        let found = loaders(ctx)?.identities_by_user.load_one(self.id).await.map_err(AppError::from)?;
        Ok(found.unwrap_or_default().into_iter().map(Identity).collect())
    }
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.created_at)
    }
}

impl User {
    fn visible_to(&self, ctx: &Context<'_>) -> bool {
        if self.owner {
            return true;
        }
        match viewer(ctx) {
            crate::auth::Viewer::User { id, role } => *id == self.id || *role == UserRole::Admin,
            _ => false,
        }
    }
}

/// Tokens for a signed-in session.
pub struct AuthPayload(Session);

#[Object]
impl AuthPayload {
    /// Short-lived JWT; send as `Authorization: Bearer <accessToken>`.
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }
    /// Opaque token for `refreshToken`; it works once (each use returns a new one).
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }
    /// When the access token expires.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn user(&self) -> User {
        User::own(self.0.user.clone())
    }
}

/// Input of `register`.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Normalized to lowercase; must be unique.
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub phone: Option<String>,
}

/// Input of `login`.
#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user; null when anonymous. An invalid or expired token is UNAUTHENTICATED.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = viewer(ctx).optional()? else { return Ok(None) };
        Ok(accounts::find_user(&state(ctx)?.db, id).await?.map(User::new))
    }
}

#[derive(Default)]
pub struct AccountsMutation;

fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    ctx.data_opt::<crate::http::RequestMeta>().and_then(|meta| meta.ip)
}

#[Object]
impl AccountsMutation {
    /// Creates an account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let state = state(ctx)?;
        crate::admission::limits::sign_up(state, client_ip(ctx)).await?;
        let registration = Registration { email: input.email, password: input.password, phone: input.phone };
        Ok(AuthPayload(accounts::register(&state.db, &state.keys, registration).await?))
    }

    /// Signs in with email and password. A wrong password and an unknown email give the same error.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let state = state(ctx)?;
        crate::admission::limits::sign_in(state, client_ip(ctx), &input.email).await?;
        Ok(AuthPayload(accounts::login(&state.db, &state.keys, &input.email, input.password).await?))
    }

    /// Exchanges a refresh token for a new token pair; the presented token stops working.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = state(ctx)?;
        Ok(AuthPayload(accounts::refresh(&state.db, &state.keys, &refresh_token).await?))
    }

    /// Ends the session the refresh token belongs to (its live sockets close too). False when the
    /// token was unknown.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        Ok(accounts::logout(&state(ctx)?.db, &refresh_token).await?)
    }

    /// Admins: activates, deactivates or bans a user (a reason is required unless ACTIVE). Leaving
    /// ACTIVE revokes the user's refresh tokens and closes their live sockets on every instance.
    async fn set_user_status(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        status: entity::enums::UserStatus,
        reason: Option<String>,
    ) -> Result<User> {
        let user_id = super::id_arg("userId", &user_id)?;
        let user = accounts::set_status(&state(ctx)?.db, viewer(ctx), user_id, status, reason, client_ip(ctx)).await?;
        Ok(User::new(user))
    }
}
