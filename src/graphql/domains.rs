//! Professional domains over GraphQL.

use super::context::{client_ip, state, viewer};
use crate::domain::domains::{self, DomainInput};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::domains as table;

/// A professional domain masters are verified in (software, design, cooking, ...).
#[derive(SimpleObject)]
pub struct Domain {
    /// The domain's id.
    pub id: ID,
    /// Its display name.
    pub name: String,
    /// The code identities and courses refer to.
    pub code: String,
    /// What it covers.
    pub description: Option<String>,
    /// Its icon's URL.
    pub icon: Option<String>,
    /// Position in lists (lower first).
    pub sort_order: i32,
    /// Whether it is offered.
    pub is_active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<table::Model> for Domain {
    fn from(m: table::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            name: m.name,
            code: m.code,
            description: m.description,
            icon: m.icon,
            sort_order: m.sort_order,
            is_active: m.is_active,
            created_at: m.created_at,
        }
    }
}

/// Input of `createDomain`.
#[derive(InputObject)]
pub struct CreateDomainInput {
    /// 1..100 characters, unique.
    pub name: String,
    /// 1..50 of a-z, 0-9, - and _; unique.
    pub code: String,
    /// What the domain covers.
    pub description: Option<String>,
    /// http(s) URL.
    pub icon: Option<String>,
    /// Position in lists (lower first).
    pub sort_order: Option<i32>,
    /// Whether it is offered (default true).
    pub is_active: Option<bool>,
}

/// Input of `updateDomain`: omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateDomainInput {
    /// A new display name.
    pub name: Option<String>,
    /// A new code (lowercase letters, digits, - and _).
    pub code: Option<String>,
    /// A new description; null clears it.
    pub description: Option<String>,
    /// A new icon URL; null clears it.
    pub icon: Option<String>,
    /// A new position.
    pub sort_order: Option<i32>,
    /// Offer it or not.
    pub is_active: Option<bool>,
}

#[derive(Default)]
pub struct DomainsQuery;

#[Object]
impl DomainsQuery {
    /// Active domains, in display order. `includeInactive: true` (admins only) lists the
    /// deactivated ones after them, to reactivate with `updateDomain(isActive: true)`.
    async fn domains(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false, desc = "Also list deactivated domains (admins).")] include_inactive: bool,
    ) -> Result<Vec<Domain>> {
        let db = &state(ctx)?.db;
        let rows = if include_inactive {
            crate::cache::uncacheable();
            domains::list_all(db, viewer(ctx)).await?
        } else {
            domains::list_active(db).await?
        };
        Ok(rows.into_iter().map(Domain::from).collect())
    }
}

#[derive(Default)]
pub struct DomainsMutation;

#[Object]
impl DomainsMutation {
    /// Admins: adds a domain (audited).
    async fn create_domain(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new domain.")] input: CreateDomainInput,
    ) -> Result<Domain> {
        let input = DomainInput {
            name: Some(input.name),
            code: Some(input.code),
            description: input.description,
            icon: input.icon,
            sort_order: input.sort_order,
            is_active: input.is_active,
        };
        Ok(domains::create(&state(ctx)?.db, viewer(ctx), input, client_ip(ctx)).await?.into())
    }

    /// Admins: edits a domain (deactivating hides it from `domains` and from new identities;
    /// `isActive: true` brings it back). A code that identities or circles use cannot be renamed
    /// (CONFLICT on `input.code`): create a new domain and deactivate this one. Audited.
    async fn update_domain(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The domain to edit.")] id: ID,
        #[graphql(desc = "The fields to change; omitted ones stay.")] input: UpdateDomainInput,
    ) -> Result<Domain> {
        let id = crate::domain::values::id("id", &id)?;
        let input = DomainInput {
            name: input.name,
            code: input.code,
            description: input.description,
            icon: input.icon,
            sort_order: input.sort_order,
            is_active: input.is_active,
        };
        Ok(domains::update(&state(ctx)?.db, viewer(ctx), id, input, client_ip(ctx)).await?.into())
    }
}
