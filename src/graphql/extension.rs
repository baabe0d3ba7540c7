//! The request guard: refuses documents with too many aliases, gives every error a stable
//! `extensions.code`, records per-operation metrics (count by outcome, latency histogram), and
//! publishes each successful mutation's domain events after commit.
//!
//! Operations are labelled by their root field names (bounded by the schema), not by the
//! client-chosen operation name, so a client cannot blow up the metrics' cardinality.

use crate::error::{code, AppError};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Pos, Response, ServerError, ServerResult, Value, Variables};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Guard {
    max_aliases: usize,
}

impl Guard {
    pub fn new(max_aliases: usize) -> Self {
        Self { max_aliases }
    }
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension { max_aliases: self.max_aliases, labels: Mutex::default(), label: Mutex::default() })
    }
}

struct GuardExtension {
    max_aliases: usize,
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
        for error in &mut response.errors {
            ensure_code(error);
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
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            let error = AppError::QueryTooComplex(format!(
                "the document uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            ));
            return Err(error.to_graphql().into_server_error(Pos::default()));
        }
        if let Ok(mut labels) = self.labels.lock() {
            for (name, operation) in document.operations.iter() {
                let name = name.map(|n| n.to_string());
                labels.insert(name, label(operation.node.ty, &operation.node.selection_set.node));
            }
        }
        Ok(document)
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
        if info.path_node.parent.is_some() || info.parent_type != "MutationRoot" {
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
        if let Some(label) = label.as_deref().filter(|label| label.starts_with("query:")) {
            crate::cache::query_running(label);
        }
        if let Ok(mut slot) = self.label.lock() {
            *slot = label;
        }
        next.run(ctx, operation_name).await
    }
}

/// Counts one request of `operation` (its label) and its latency; also for the requests the
/// response cache answers, which never reach the schema.
pub fn record_request(operation: &str, outcome: &'static str, elapsed: std::time::Duration) {
    metrics::counter!("graphql_requests_total", "operation" => operation.to_string(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("graphql_request_duration_seconds", "operation" => operation.to_string())
        .record(elapsed.as_secs_f64());
}

/// `query:me`, `mutation:login`, `query:course+courses` (root fields sorted, at most 4).
fn label(ty: OperationType, selection: &SelectionSet) -> String {
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
    let kind = match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    if fields.is_empty() {
        return format!("{kind}:fragment");
    }
    format!("{kind}:{}", fields.join("+"))
}

/// Aliased fields across all operations and fragments of the document.
fn count_aliases(document: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + walk(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => walk(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let operations: usize = document.operations.iter().map(|(_, op)| walk(&op.node.selection_set.node)).sum();
    let fragments: usize = document.fragments.values().map(|f| walk(&f.node.selection_set.node)).sum();
    operations + fragments
}

fn error_code(error: &ServerError) -> Option<&'static str> {
    let value = error.extensions.as_ref()?.get("code")?;
    match value {
        Value::String(code) => [
            code::UNAUTHENTICATED,
            code::FORBIDDEN,
            code::NOT_FOUND,
            code::BAD_USER_INPUT,
            code::CONFLICT,
            code::RATE_LIMITED,
            code::QUERY_TOO_COMPLEX,
            code::TIMEOUT,
            code::INTERNAL,
        ]
        .into_iter()
        .find(|known| known == code),
        _ => None,
    }
}

/// Errors raised by async-graphql itself (parse, validation, limits, argument coercion) carry no
/// code; classify them so every error a client sees has one.
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
    error.extensions.get_or_insert_with(Default::default).set("code", code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_in_operations_and_fragments() -> Result<(), Box<dyn std::error::Error>> {
        let doc = async_graphql::parser::parse_query(
            "query { a: me { id } b: me { x: id } ...F } fragment F on Query { c: me { id } }",
        )?;
        assert_eq!(count_aliases(&doc), 4);
        Ok(())
    }

    #[test]
    fn labels_by_root_fields() -> Result<(), Box<dyn std::error::Error>> {
        let doc = async_graphql::parser::parse_query("query Named { me { id } courses { id } me2: me { id } }")?;
        let (_, op) = doc.operations.iter().next().ok_or("no operation")?;
        assert_eq!(label(op.node.ty, &op.node.selection_set.node), "query:courses+me");
        Ok(())
    }
}
