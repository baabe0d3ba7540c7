//! The GraphQL schema: one query/mutation object per area merged at the root, request limits, and
//! the mutation root that publishes domain events. Resolvers are thin: they parse arguments and call `domain/`.

pub mod accounts;
pub mod admin;
pub mod appointments;
pub mod availability;
pub mod circles;
pub mod courses;
mod described;
pub mod domains;
pub mod identities;
pub mod learning;
pub mod loaders;
pub mod messages;
pub mod node;
pub mod operation;
pub mod pagination;
pub mod search;
pub mod shape;
pub mod uploads;

use crate::app::AppState;
use crate::config::GraphqlLimits;
use async_graphql::registry::Registry;
use async_graphql::{Enum, MergedObject, OutputType, Schema, SchemaBuilder};

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

/// The schema has no extensions (see [`operation`]): what they would do runs in admission.
pub type AppSchema = Schema<QueryRoot, operation::Publishing<MutationRoot>, messages::SubscriptionRoot>;

fn builder() -> SchemaBuilder<QueryRoot, operation::Publishing<MutationRoot>, messages::SubscriptionRoot> {
    Schema::build(QueryRoot::default(), operation::Publishing::default(), messages::SubscriptionRoot)
        .register_output_type::<described::GeneratedTypes>()
}

/// The schema's types, as async-graphql registers them, for what admission does outside the
/// schema: pricing an operation and shaping its response. (The schema keeps its own registry
/// private.) Introspection's types (`__Schema`, ...) are not in it: their fields cost 1 each and
/// never error.
pub fn registry() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| {
        registry_with(
            &QueryRoot::type_name(),
            Some(&MutationRoot::type_name()),
            Some(&<messages::SubscriptionRoot as async_graphql::SubscriptionType>::type_name()),
            |registry| {
                QueryRoot::create_type_info(registry);
                MutationRoot::create_type_info(registry);
                <messages::SubscriptionRoot as async_graphql::SubscriptionType>::create_type_info(registry);
                described::GeneratedTypes::create_type_info(registry);
            },
        )
    });
    &REGISTRY
}

/// The root type an operation of type `ty` starts from.
pub fn root_type(registry: &Registry, ty: async_graphql::parser::types::OperationType) -> Option<&str> {
    use async_graphql::parser::types::OperationType;
    match ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    }
}

/// A registry with these root type names, filled by `register`.
pub(crate) fn registry_with(
    query: &str,
    mutation: Option<&str>,
    subscription: Option<&str>,
    register: impl FnOnce(&mut Registry),
) -> Registry {
    let mut registry = Registry {
        types: Default::default(),
        directives: Default::default(),
        implements: Default::default(),
        query_type: query.to_string(),
        mutation_type: mutation.map(str::to_string),
        subscription_type: subscription.map(str::to_string),
        introspection_mode: async_graphql::IntrospectionMode::Enabled,
        enable_federation: false,
        federation_subscription: false,
        ignore_name_conflicts: Default::default(),
        enable_suggestions: true,
    };
    register(&mut registry);
    registry
}

/// The schema the server runs, with the configured limits and the shared state as context data.
pub fn build(state: AppState, limits: &GraphqlLimits) -> AppSchema {
    // Admission prices each operation (cost.rs); depth is checked here.
    let mut schema = builder()
        .limit_depth(limits.max_depth)
        .limit_recursive_depth(limits.max_depth.max(32))
        .limit_directives(8)
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

#[cfg(test)]
mod tests {
    /// Admission prices and shapes with [`super::registry`]: it must know every type the schema
    /// serves (all but introspection's own).
    #[test]
    fn the_registry_holds_every_type_of_the_schema() {
        let registry = super::registry();
        let sdl = super::sdl();
        let declared: Vec<&str> = sdl
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                match words.next()? {
                    "type" | "interface" | "union" | "input" | "enum" | "scalar" => words.next(),
                    _ => None,
                }
            })
            .map(|name| name.trim_end_matches('{'))
            .collect();
        assert!(declared.len() > 50, "{} types declared", declared.len());
        for name in declared {
            assert!(registry.types.contains_key(name), "{name} is missing from the registry");
        }
        assert_eq!(registry.mutation_type.as_deref(), Some("Mutation"));
        assert_eq!(registry.subscription_type.as_deref(), Some("Subscription"));
    }
}
