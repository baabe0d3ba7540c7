//! What happens around each operation the schema runs, outside the schema: the operation's metrics
//! label, the response's final shape (stable `extensions.code` on every error, one error per
//! invalid input field), per-operation metrics (count by outcome, latency histogram), and the
//! mutation root that publishes each successful mutation's domain events after commit.
//!
//! None of it is a schema extension: with no extension installed, async-graphql resolves each
//! field directly instead of through the extension chain (an allocation and a type look-up per
//! field, a quarter of an uncached page's CPU). Admission calls these around `execute`.
//!
//! Operations are labelled by name (`query CoursePage`), or by their root fields when unnamed
//! (`query:course`); at most `METRICS_MAX_OPERATIONS` distinct labels are kept, the rest count as
//! `other`, so a client cannot blow up the metrics' cardinality.

use crate::error::code;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::ContainerType;
use async_graphql::{
    Context, ContextSelectionSet, ObjectType, OutputType, Positioned, ServerError, ServerResult, Value,
};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

/// Sets how many distinct operation labels metrics keep (`METRICS_MAX_OPERATIONS`); the first
/// call wins.
pub fn cap_labels(max_labels: usize) {
    let _ = LABEL_CAP.set(max_labels);
}

/// The label of the operation a request names (or its only one), unbounded: see [`bounded`].
pub fn raw_label_of(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<String> {
    let (name, operation) = crate::admission::document::selected(document, operation_name)?;
    Some(raw_label(operation.ty, name, &operation.selection_set.node))
}

/// Brings the errors of an executed response to their final form: one error per invalid input
/// field, every error with an `extensions.code`, and the input a coercion error is about in
/// `extensions.field`. Counts each error by code.
pub fn finish_errors(response: &mut async_graphql::Response, registry: &Registry) {
    if response.errors.is_empty() {
        return;
    }
    response.errors = one_error_per_field(std::mem::take(&mut response.errors));
    for error in &mut response.errors {
        ensure_code(error);
        if error.extensions.as_ref().is_some_and(|ext| ext.get("field").is_none())
            && error_code(error) == Some(code::BAD_USER_INPUT)
        {
            if let Some(field) = parsed_field(registry, error) {
                error.extensions.get_or_insert_with(Default::default).set("field", field);
            }
        }
    }
    for error in &response.errors {
        let code = error_code(error).unwrap_or(code::INTERNAL);
        metrics::counter!("graphql_errors_total", "code" => code).increment(1);
    }
}

/// A search answered by the database fallback says so in `extensions.search`: runs `execute`
/// with the flag its resolvers raise.
pub async fn flag_degraded_search(
    execute: impl std::future::Future<Output = async_graphql::Response>,
) -> async_graphql::Response {
    let degraded = std::cell::Cell::new(false);
    let (mut response, degraded) = super::search::DEGRADED
        .scope(degraded, async {
            let response = execute.await;
            (response, super::search::DEGRADED.with(|flag| flag.get()))
        })
        .await;
    if degraded {
        let mut flag = async_graphql::indexmap::IndexMap::new();
        flag.insert(async_graphql::Name::new("degraded"), Value::Boolean(true));
        response.extensions.insert("search".into(), Value::Object(flag));
    }
    response
}

/// The mutation root as the schema runs it: each root mutation field runs inside
/// `events::capture`, so what its domain call emitted is published only if the field succeeded
/// (its transaction committed), and what it changed is dropped from the cache before its result
/// is resolved. Same type, name and fields as `M`.
#[derive(Default)]
pub struct Publishing<M>(pub M);

impl<M: ObjectType> OutputType for Publishing<M> {
    fn type_name() -> Cow<'static, str> {
        M::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        M::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        async_graphql::resolver_utils::resolve_container_serial(ctx, self).await
    }
}

impl<M: ObjectType> ContainerType for Publishing<M> {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        // What an earlier field of this mutation read with a page is not trusted past its writes.
        crate::cache::forget_primed();
        let bus = ctx.data_opt::<crate::events::EventBus>();
        let cache = ctx.data_opt::<crate::cache::Cache>();
        let state = ctx.data_opt::<crate::app::AppState>();
        match (bus, cache, state) {
            (Some(bus), Some(cache), Some(state)) => {
                crate::events::capture(bus, cache, &state.db, self.0.resolve_field(ctx), |result| result.is_ok()).await
            }
            _ => self.0.resolve_field(ctx).await,
        }
    }
}

impl<M: ObjectType> ObjectType for Publishing<M> {}

/// Counts one request of `operation` (its label) and its latency; also for the requests the
/// response cache answers, which never reach the schema.
pub fn record_request(operation: &str, outcome: &'static str, elapsed: std::time::Duration) {
    /// One operation label's handles: its duration histogram and a counter per outcome.
    type Handles = (metrics::Histogram, Vec<(&'static str, metrics::Counter)>);
    // The recorder's handles, kept per thread by label: registering builds a key (allocating its
    // labels) and looks it up in the registry, which every request would otherwise pay twice.
    // Labels are bounded (see `bounded`), so these maps are too. A handle taken before the
    // recorder is installed would stay a no-op: `App::build` installs it before serving.
    thread_local! {
        static HANDLES: std::cell::RefCell<HashMap<String, Handles>> = std::cell::RefCell::new(HashMap::new());
    }
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if !handles.contains_key(operation) {
            let duration =
                metrics::histogram!("graphql_request_duration_seconds", "operation" => operation.to_string());
            handles.insert(operation.to_string(), (duration, Vec::new()));
        }
        let Some((duration, counts)) = handles.get_mut(operation) else { return };
        duration.record(elapsed.as_secs_f64());
        match counts.iter().find(|(kind, _)| *kind == outcome) {
            Some((_, count)) => count.increment(1),
            None => {
                let count = metrics::counter!(
                    "graphql_requests_total", "operation" => operation.to_string(), "outcome" => outcome
                );
                count.increment(1);
                counts.push((outcome, count));
            }
        }
    });
}

/// How many distinct operation labels metrics keep (`METRICS_MAX_OPERATIONS`).
static LABEL_CAP: OnceLock<usize> = OnceLock::new();

/// `label`, if it is one of the first `METRICS_MAX_OPERATIONS` distinct labels seen, else `other`.
pub fn bounded(label: String) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let cap = LABEL_CAP.get().copied().unwrap_or(200);
    let Ok(mut seen) = SEEN.get_or_init(Mutex::default).lock() else { return "other".into() };
    if seen.contains(&label) || seen.len() < cap {
        seen.insert(label.clone());
        label
    } else {
        "other".into()
    }
}

/// `query CoursePage` for a named operation; `query:me`, `mutation:login`, `query:course+courses`
/// (root fields sorted, at most 4) for an unnamed one. [`bounded`] caps the distinct ones.
fn raw_label(ty: OperationType, name: Option<&str>, selection: &SelectionSet) -> String {
    let kind = match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    if let Some(name) = name {
        return format!("{kind} {}", name.chars().take(64).collect::<String>());
    }
    root_fields_label(kind, selection)
}

fn root_fields_label(kind: &str, selection: &SelectionSet) -> String {
    let mut fields: Vec<&str> = selection
        .items
        .iter()
        .filter_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            _ => None,
        })
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields.truncate(4);
    if fields.is_empty() {
        return format!("{kind}:fragment");
    }
    format!("{kind}:{}", fields.join("+"))
}

fn error_code(error: &ServerError) -> Option<&'static str> {
    let value = error.extensions.as_ref()?.get("code")?;
    match value {
        Value::String(code) => code::ALL.iter().copied().find(|known| known == code),
        _ => None,
    }
}

/// An error about several invalid fields of an input (`AppError::Invalid`) becomes one error per
/// field, each with its message and `extensions.field`, at the same path.
fn one_error_per_field(errors: Vec<ServerError>) -> Vec<ServerError> {
    let mut out = Vec::with_capacity(errors.len());
    for mut error in errors {
        let invalid = error.extensions.as_mut().and_then(|ext| {
            let list = ext.get(crate::error::INVALID_FIELDS).cloned();
            ext.unset(crate::error::INVALID_FIELDS);
            list
        });
        let Some(Value::List(fields)) = invalid else {
            out.push(error);
            continue;
        };
        let before = out.len();
        for entry in fields {
            let Value::Object(entry) = entry else { continue };
            let mut one = error.clone();
            if let Some(Value::String(message)) = entry.get("message") {
                one.message = message.clone();
            }
            if let Some(field) = entry.get("field") {
                one.extensions.get_or_insert_with(Default::default).set("field", field.clone());
            }
            out.push(one);
        }
        if out.len() == before {
            out.push(error);
        }
    }
    out
}

/// The input a message of async-graphql's own names: `argument "input.price"` (argument and
/// input-field coercion, missing arguments) or `Variable "$first"` (variables).
fn field_in_message(message: &str) -> Option<&str> {
    let quoted = |after: &str| -> Option<&str> {
        let start = message.find(after)? + after.len();
        let rest = &message[start..];
        Some(&rest[..rest.find('"')?])
    };
    quoted("argument \"").or_else(|| quoted("Variable \"$")).filter(|field| !field.is_empty())
}

/// The input a scalar that failed to parse while a root field ran came in, from the schema:
/// `Failed to parse "DateTime" (occurred while parsing "BookAppointmentInput")` on
/// `bookAppointment` is `input.appointmentTime` when that input has one DateTime field (the
/// argument alone when it has several). Deeper fields are left without.
fn parsed_field(registry: &async_graphql::registry::Registry, error: &ServerError) -> Option<String> {
    use async_graphql::registry::{MetaType, MetaTypeName};
    let [async_graphql::PathSegment::Field(root)] = error.path.as_slice() else { return None };
    let quoted = |rest: &str| rest.split('"').nth(1).map(str::to_owned);
    let scalar = quoted(error.message.strip_prefix("Failed to parse ")?)?;
    let inputs: Vec<String> = error
        .message
        .split("(occurred while parsing ")
        .skip(1)
        .filter_map(|rest| quoted(&format!(" {rest}")))
        .collect();
    // The innermost input holds the scalar; the outermost is the argument's type.
    let (inner, outer) = (inputs.first().cloned(), inputs.last().cloned());
    let base = |ty: &str| MetaTypeName::concrete_typename(ty).to_string();
    let field = [Some(registry.query_type.as_str()), registry.mutation_type.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|root_type| match registry.types.get(root_type)? {
            MetaType::Object { fields, .. } => fields.get(root.as_str()),
            _ => None,
        })?;
    let wanted = outer.clone().unwrap_or_else(|| scalar.clone());
    let mut args = field.args.values().filter(|arg| base(&arg.ty) == wanted);
    let arg = args.next()?;
    if args.next().is_some() {
        return None;
    }
    if outer.is_none() || inner != outer {
        return Some(arg.name.clone());
    }
    let Some(MetaType::InputObject { input_fields, .. }) = registry.types.get(&wanted) else {
        return Some(arg.name.clone());
    };
    let mut holders = input_fields.values().filter(|f| base(&f.ty) == scalar);
    match (holders.next(), holders.next()) {
        (Some(only), None) => Some(format!("{}.{}", arg.name, only.name)),
        _ => Some(arg.name.clone()),
    }
}

/// Errors raised by async-graphql itself (parse, validation, limits, argument coercion) carry no
/// code; classify them so every error a client sees has one, and the input it is about in
/// `extensions.field` where the message names one.
fn ensure_code(error: &mut ServerError) {
    if error_code(error).is_some() {
        return;
    }
    let message = error.message.as_str();
    let code = if message.contains("nested too deep")
        || message.contains("too complex")
        || message.contains("recursion depth")
        || message.contains("cannot be greater than")
    {
        code::QUERY_TOO_COMPLEX
    } else if error.path.is_empty()
        || message.starts_with("Failed to parse")
        || message.starts_with("Invalid value")
        || message.starts_with("Expected input type")
    {
        code::BAD_USER_INPUT
    } else {
        tracing::error!(message, "resolver error without a code");
        error.message = "internal error".into();
        code::INTERNAL
    };
    let field = (code == code::BAD_USER_INPUT).then(|| field_in_message(&error.message)).flatten().map(str::to_owned);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", code);
    if let Some(field) = field {
        extensions.set("field", field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_by_root_fields() -> Result<(), Box<dyn std::error::Error>> {
        let doc = async_graphql::parser::parse_query("query Named { me { id } courses { id } me2: me { id } }")?;
        let (name, op) = doc.operations.iter().next().ok_or("no operation")?;
        assert_eq!(raw_label(op.node.ty, None, &op.node.selection_set.node), "query:courses+me");
        assert_eq!(raw_label(op.node.ty, name.map(|n| n.as_str()), &op.node.selection_set.node), "query Named");
        Ok(())
    }
}
