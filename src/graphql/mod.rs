//! The GraphQL schema: one query/mutation object per area merged at the root, request limits, and
//! the observability extension. Resolvers are thin: they parse arguments and call `domain/`.

pub mod accounts;
pub mod admin;
pub mod appointments;
pub mod availability;
pub mod circles;
pub mod courses;
mod described;
pub mod domains;
pub mod extension;
pub mod identities;
pub mod learning;
pub mod loaders;
pub mod messages;
pub mod node;
pub mod pagination;
pub mod search;
pub mod shape;
pub mod uploads;

use crate::app::AppState;
use crate::config::GraphqlLimits;
use async_graphql::{Enum, MergedObject, Schema, SchemaBuilder};

/// Every read the API offers.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    accounts::AccountsQuery,
    admin::AdminQuery,
    domains::DomainsQuery,
    identities::IdentitiesQuery,
    courses::CoursesQuery,
    learning::LearningQuery,
    circles::CirclesQuery,
    appointments::AppointmentsQuery,
    messages::MessagesQuery,
    search::SearchQuery,
    uploads::UploadsQuery,
    node::NodeQuery,
);

/// Every write the API offers.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    accounts::AccountsMutation,
    admin::AdminMutation,
    domains::DomainsMutation,
    identities::IdentitiesMutation,
    courses::CoursesMutation,
    learning::LearningMutation,
    circles::CirclesMutation,
    appointments::AppointmentsMutation,
    availability::AvailabilityMutation,
    messages::MessagesMutation,
    uploads::UploadsMutation,
);

/// Sort direction of a list.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SortDirection {
    /// Smallest, oldest or first in the alphabet first.
    Asc,
    /// Largest, newest or last first.
    Desc,
}

impl From<SortDirection> for crate::domain::pagination::Direction {
    fn from(direction: SortDirection) -> Self {
        match direction {
            SortDirection::Asc => Self::Asc,
            SortDirection::Desc => Self::Desc,
        }
    }
}

pub type AppSchema = Schema<QueryRoot, MutationRoot, messages::SubscriptionRoot>;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, messages::SubscriptionRoot> {
    Schema::build(QueryRoot::default(), MutationRoot::default(), messages::SubscriptionRoot)
        .register_output_type::<described::GeneratedTypes>()
}

/// The schema the server runs, with the configured limits and the shared state as context data.
pub fn build(state: AppState, limits: &GraphqlLimits) -> AppSchema {
    // Complexity is checked by the Guard (it prices and charges it); depth here.
    let mut schema = builder()
        .limit_depth(limits.max_depth)
        .limit_recursive_depth(limits.max_depth.max(32))
        .limit_directives(8)
        .extension(extension::Guard::new(limits.max_complexity, state.config.http.metrics_max_operations))
        .extension(shape::SpecShape)
        .data(loaders::new(state.db.clone(), &state.cache, limits.batch_delay))
        .data(state.events.clone())
        .data(state.cache.clone())
        .data(state);
    if !limits.introspection {
        schema = schema.disable_introspection();
    }
    schema.finish()
}

/// The SDL the code defines (`master-guide schema`, and the snapshot test against schema.graphql).
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// A client-sent id; a malformed one is BAD_USER_INPUT on `field` (a well-formed unknown id is
/// NOT_FOUND where it is looked up).
pub(crate) fn id_arg(field: &str, raw: &async_graphql::ID) -> Result<uuid::Uuid, crate::error::AppError> {
    crate::domain::values::id(field, raw)
}

/// A row its foreign key guarantees (a post's author, a member's circle): the field is non-null,
/// and a missing row is an internal error, never a silent null.
pub(crate) fn present<T>(row: Option<T>, what: &'static str) -> Result<T, crate::error::AppError> {
    row.ok_or_else(|| crate::error::AppError::Internal(anyhow::anyhow!("{what} missing behind its foreign key")))
}

/// `MaybeUndefined` as the domain layer's partial-update shape: omitted, cleared, or set.
pub(crate) fn maybe_undefined<T>(value: async_graphql::MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        async_graphql::MaybeUndefined::Undefined => None,
        async_graphql::MaybeUndefined::Null => Some(None),
        async_graphql::MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// The shared state and the viewer, as every resolver reads them from the context.
pub(crate) mod context {
    use crate::app::AppState;
    use crate::auth::Viewer;
    use crate::error::{AppError, AppResult};
    use async_graphql::Context;

    static ANONYMOUS: Viewer = Viewer::Anonymous;

    pub fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
        ctx.data::<AppState>().map_err(|_| AppError::Internal(anyhow::anyhow!("AppState missing from schema data")))
    }

    pub fn viewer<'a>(ctx: &Context<'a>) -> &'a Viewer {
        ctx.data_opt::<Viewer>().unwrap_or(&ANONYMOUS)
    }

    /// The client's address as the HTTP layer decided it (`TRUSTED_PROXIES`), for audit rows.
    pub fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
        ctx.data_opt::<crate::http::RequestMeta>().and_then(|meta| meta.ip)
    }

    pub fn loaders<'a>(ctx: &Context<'a>) -> AppResult<&'a super::loaders::Loaders> {
        ctx.data::<super::loaders::Loaders>()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("loaders missing from schema data")))
    }
}
