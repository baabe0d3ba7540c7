//! Accounts over GraphQL: register, login, refreshToken, logout, me; passwords (change, reset),
//! email verification, phone, sessions.

use super::context::{client_ip, loaders, state, viewer};
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

/// An account. Its name and avatar come from its primary identity's profile.
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

/// An account. Its name and avatar come from its primary identity's profile.
#[Object]
impl User {
    /// The user's id.
    pub(crate) async fn id(&self) -> ID {
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
    /// ACTIVE, INACTIVE or BANNED.
    async fn status(&self, ctx: &Context<'_>) -> Result<UserStatus> {
        Ok(self.model(ctx).await?.status)
    }
    /// Whether the email was verified.
    async fn email_verified(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(self.model(ctx).await?.email_verified)
    }
    /// USER or ADMIN.
    async fn role(&self, ctx: &Context<'_>) -> Result<UserRole> {
        Ok(self.model(ctx).await?.role)
    }
    /// The name the user goes by: the profile name of their primary identity (their oldest active
    /// master identity with a profile, else their oldest active identity with one). Null until
    /// they have a profile.
    async fn display_name(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.primary_profile(ctx).await?.map(|profile| profile.name))
    }
    /// The avatar URL of the same profile as `displayName`.
    async fn avatar(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.primary_profile(ctx).await?.and_then(|profile| profile.avatar))
    }
    /// The user's master and apprentice identities.
    async fn identities(&self, ctx: &Context<'_>) -> Result<Vec<Identity>> {
        let found = loaders(ctx)?.identities_by_user.load_one(self.id).await.map_err(AppError::from)?;
        Ok(found.unwrap_or_default().into_iter().map(Identity).collect())
    }
    /// When the account was created.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.created_at)
    }
}

/// An account. Its name and avatar come from its primary identity's profile.
impl User {
    /// The profile `displayName` and `avatar` show: two batched loads (identities by user,
    /// profiles by identity) whatever the number of users in the response.
    async fn primary_profile(&self, ctx: &Context<'_>) -> Result<Option<entity::user_profiles::Model>, AppError> {
        let loaders = loaders(ctx)?;
        let mut identities = loaders.identities_by_user.load_one(self.id).await?.unwrap_or_default();
        identities.retain(|i| i.status == entity::enums::IdentityStatus::Active);
        identities.sort_by_key(|i| (i.identity_type != entity::enums::IdentityType::Master, i.created_at));
        let ids: Vec<Uuid> = identities.iter().map(|i| i.id).collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let profiles: Vec<_> = loaders.profiles_by_identity.load_ordered(&ids).await?.into_iter().flatten().collect();
        Ok(ids.iter().find_map(|id| profiles.iter().find(|p| p.identity_id == *id).cloned()))
    }

    fn visible_to(&self, ctx: &Context<'_>) -> bool {
        if self.owner {
            return true;
        }
        match viewer(ctx) {
            crate::auth::Viewer::User { id, role, .. } => *id == self.id || *role == UserRole::Admin,
            _ => false,
        }
    }
}

/// Tokens for a signed-in session.
pub struct AuthPayload(Session);

/// A signed-in session: a short-lived access token, the refresh token that renews it, and the user.
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
    /// The signed-in user.
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
    /// A phone number (E.164, e.g. +8613800138000), optional.
    pub phone: Option<String>,
}

/// Input of `login`.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Input of `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// Your password now.
    pub current_password: String,
    /// 8 to 128 characters.
    pub new_password: String,
}

/// Input of `resetPassword`.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The code from the reset mail (it works once, for a limited time).
    pub token: String,
    /// 8 to 128 characters.
    pub new_password: String,
}

/// A signed-in session (one login and the refreshes that followed it).
pub struct SessionInfo(accounts::SessionInfo);

/// One signed-in device or browser of yours: a login and the token refreshes that followed it.
#[Object(name = "Session")]
impl SessionInfo {
    /// The session's id (what `revokeSession` takes).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When it signed in.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// Its last sign-in or token refresh.
    async fn last_active_at(&self) -> DateTime<Utc> {
        self.0.last_active_at
    }
    /// When its refresh token expires unless used.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// The session of the token that asks.
    async fn current(&self) -> bool {
        self.0.current
    }
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

    /// The signed-in user's live sessions, most recently active first.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<SessionInfo>> {
        crate::cache::uncacheable();
        Ok(accounts::sessions(&state(ctx)?.db, viewer(ctx)).await?.into_iter().map(SessionInfo).collect())
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates an account and signs it in.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's email, password and optional phone.")] input: RegisterInput,
    ) -> Result<AuthPayload> {
        let state = state(ctx)?;
        if !state.settings.live().registration {
            return Err(AppError::FeatureDisabled { feature: "features.registration" }.into());
        }
        crate::admission::limits::sign_up(state, client_ip(ctx)).await?;
        let registration = Registration { email: input.email, password: input.password, phone: input.phone };
        Ok(AuthPayload(accounts::register(&state.db, &state.keys, registration).await?))
    }

    /// Signs in with email and password. A wrong password and an unknown email give the same error.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email and password.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let state = state(ctx)?;
        crate::admission::limits::sign_in(state, client_ip(ctx), &input.email).await?;
        Ok(AuthPayload(accounts::login(&state.db, &state.keys, &input.email, input.password).await?))
    }

    /// Exchanges a refresh token for a new token pair; the presented token stops working.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token of the session to renew (it is replaced).")] refresh_token: String,
    ) -> Result<AuthPayload> {
        let state = state(ctx)?;
        Ok(AuthPayload(accounts::refresh(&state.db, &state.keys, &refresh_token).await?))
    }

    /// Ends the session the refresh token belongs to (its live sockets close too). False when the
    /// token was unknown.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refresh token of the session to end.")] refresh_token: String,
    ) -> Result<bool> {
        Ok(accounts::logout(&state(ctx)?.db, &refresh_token).await?)
    }

    /// Changes the signed-in user's password (the current one is checked). Every other session
    /// ends at once (refresh tokens revoked, access tokens refused, sockets closed); this one goes on.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Your current password and the new one.")] input: ChangePasswordInput,
    ) -> Result<bool> {
        let state = state(ctx)?;
        // Each try of the current password is a sign-in attempt (a stolen token must not guess).
        let user = viewer(ctx).require()?;
        crate::admission::limits::sign_in(state, client_ip(ctx), &format!("user:{user}")).await?;
        accounts::change_password(&state.db, viewer(ctx), input.current_password, input.new_password, client_ip(ctx))
            .await?;
        Ok(true)
    }

    /// Mails a single-use password-reset code to the address if an account has it. Always true
    /// (the answer does not tell who has an account); rate limited per address and per client.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email; the answer is the same whether it exists or not.")] email: String,
    ) -> Result<bool> {
        let state = state(ctx)?;
        let account = format!("reset:{}", email.trim().to_lowercase());
        crate::admission::limits::password_reset(state, client_ip(ctx), Some(&account)).await?;
        accounts::request_password_reset(&state.db, &state.config.auth.mail, &email).await?;
        Ok(true)
    }

    /// Sets a new password with the mailed code (once, before it expires); every session ends and
    /// a new one starts.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reset token from the email and the new password.")] input: ResetPasswordInput,
    ) -> Result<AuthPayload> {
        let state = state(ctx)?;
        crate::admission::limits::password_reset(state, client_ip(ctx), None).await?;
        let session =
            accounts::reset_password(&state.db, &state.keys, &input.token, input.new_password, client_ip(ctx)).await?;
        Ok(AuthPayload(session))
    }

    /// Mails the signed-in user a code that verifies their email (true; nothing is sent when it is
    /// verified already).
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        let state = state(ctx)?;
        let user = viewer(ctx).require()?;
        crate::admission::limits::password_reset(state, client_ip(ctx), Some(&format!("verify:{user}"))).await?;
        accounts::request_email_verification(&state.db, &state.config.auth.mail, viewer(ctx)).await?;
        Ok(true)
    }

    /// Verifies the email of the code's account (the code works once).
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the verification email.")] token: String,
    ) -> Result<User> {
        Ok(User::own(accounts::verify_email(&state(ctx)?.db, &token).await?))
    }

    /// Sets (or with null clears) the signed-in user's phone number; a new number is unverified.
    async fn update_phone(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new phone number (E.164, e.g. +8613800138000); null removes it.")] phone: Option<String>,
    ) -> Result<User> {
        Ok(User::own(accounts::update_phone(&state(ctx)?.db, viewer(ctx), phone).await?))
    }

    /// Ends one of the signed-in user's sessions (see `sessions`). False when it was not a live
    /// session of theirs.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session (refresh token family) to end, as listed in `mySessions`.")] id: ID,
    ) -> Result<bool> {
        let id = super::id_arg("id", &id)?;
        Ok(accounts::revoke_session(&state(ctx)?.db, viewer(ctx), id).await?)
    }

    /// Admins: activates, deactivates or bans a user (a reason is required unless ACTIVE). Leaving
    /// ACTIVE revokes the user's refresh tokens and closes their live sockets on every instance.
    async fn set_user_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account to change.")] user_id: ID,
        #[graphql(desc = "The new status.")] status: entity::enums::UserStatus,
        #[graphql(desc = "Why (required to suspend or ban; audited).")] reason: Option<String>,
    ) -> Result<User> {
        let user_id = super::id_arg("userId", &user_id)?;
        let user = accounts::set_status(&state(ctx)?.db, viewer(ctx), user_id, status, reason, client_ip(ctx)).await?;
        Ok(User::new(user))
    }
}
