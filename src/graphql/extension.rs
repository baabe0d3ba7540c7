//! The request guard inside the schema: prices each operation once async-graphql has validated it
//! (list-aware complexity, refused past the per-operation maximum, charged to the viewer's cost
//! budget), gives every error a stable `extensions.code`, records per-operation metrics (count by
//! outcome, latency histogram), and publishes each successful mutation's domain events after
//! commit.
//!
//! Operations are labelled by name (`query CoursePage`), or by their root fields when unnamed
//! (`query:course`); at most `METRICS_MAX_OPERATIONS` distinct labels are kept, the rest count as
//! `other`, so a client cannot blow up the metrics' cardinality.

use crate::admission::cost::CostMeter;
use crate::error::{code, AppError};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest, NextResolve,
    NextValidation, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Pos, Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub struct Guard {
    max_cost: u64,
}

impl Guard {
    pub fn new(max_cost: usize, max_labels: usize) -> Self {
        let _ = LABEL_CAP.set(max_labels);
        Self { max_cost: max_cost as u64 }
    }
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension { max_cost: self.max_cost, labels: Mutex::default(), label: Mutex::default() })
    }
}

struct GuardExtension {
    max_cost: u64,
    /// Root-field label of each operation in the document, by operation name.
    labels: Mutex<HashMap<Option<String>, String>>,
    /// The label of the operation that ran.
    label: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let mut response = next.run(ctx).await;
        response.errors = one_error_per_field(std::mem::take(&mut response.errors));
        for error in &mut response.errors {
            ensure_code(error);
            if error.extensions.as_ref().is_some_and(|ext| ext.get("field").is_none())
                && error_code(error) == Some(code::BAD_USER_INPUT)
            {
                if let Some(field) = parsed_field(&ctx.schema_env.registry, error) {
                    error.extensions.get_or_insert_with(Default::default).set("field", field);
                }
            }
        }
        let operation = self.label.lock().ok().and_then(|label| label.clone()).unwrap_or_else(|| "invalid".to_string());
        let outcome = if response.errors.is_empty() { "ok" } else { "error" };
        record_request(&operation, outcome, started.elapsed());
        for error in &response.errors {
            let code = error_code(error).unwrap_or(code::INTERNAL);
            metrics::counter!("graphql_errors_total", "code" => code).increment(1);
        }
        let span = tracing::Span::current();
        span.record("operation", operation.as_str());
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut labels) = self.labels.lock() {
            for (name, operation) in document.operations.iter() {
                let label = raw_label(operation.node.ty, name.map(|n| n.as_str()), &operation.node.selection_set.node);
                labels.insert(name.map(|n| n.to_string()), label);
            }
        }
        Ok(document)
    }

    /// Prices the validated document: refused past the per-operation maximum, else charged to the
    /// viewer's budget (admission put a [`CostMeter`] in the request's data); before anything runs.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let cost = result.complexity as u64;
        let refuse = |error: AppError| vec![error.to_graphql().into_server_error(Pos::default())];
        if cost > self.max_cost {
            return Err(refuse(AppError::TooCostly { cost, max: self.max_cost }));
        }
        if let Some(meter) = ctx.data_opt::<Arc<CostMeter>>() {
            meter.charge(cost).await.map_err(refuse)?;
        }
        Ok(result)
    }

    /// Each root mutation field runs inside `events::capture`: what its domain call emitted is
    /// published only if the field succeeded (its transaction committed), and what it changed is
    /// dropped from the cache before its result is resolved.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Every field of every request passes here: leave the others at one comparison.
        if info.path_node.parent.is_some() || info.parent_type != "Mutation" {
            return next.run(ctx, info).await;
        }
        let bus = ctx.data_opt::<crate::events::EventBus>();
        let cache = ctx.data_opt::<crate::cache::Cache>();
        let state = ctx.data_opt::<crate::app::AppState>();
        match (bus, cache, state) {
            (Some(bus), Some(cache), Some(state)) => {
                crate::events::capture(bus, cache, &state.db, next.run(ctx, info), |result| result.is_ok()).await
            }
            _ => next.run(ctx, info).await,
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let label = self.labels.lock().ok().and_then(|labels| {
            labels
                .get(&operation_name.map(String::from))
                .or_else(|| if labels.len() == 1 { labels.values().next() } else { None })
                .cloned()
        });
        // Only a validated operation earns a label of its own (invalid documents cannot fill the cap).
        let label = label.map(bounded);
        if let Some(label) = label.as_deref().filter(|label| label.starts_with("query")) {
            crate::cache::query_running(label);
        }
        if let Ok(mut slot) = self.label.lock() {
            *slot = label;
        }
        // A search answered by the database fallback says so in `extensions.search`.
        let degraded = std::cell::Cell::new(false);
        let (mut response, degraded) = super::search::DEGRADED
            .scope(degraded, async {
                let response = next.run(ctx, operation_name).await;
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
}

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
fn bounded(label: String) -> String {
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
