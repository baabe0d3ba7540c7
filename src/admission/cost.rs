//! What an operation costs, and the viewer's budget it is charged to.
//!
//! Every field costs 1; a list field (one that takes `first` or `last`) multiplies what it selects
//! by its page size ([`page`]), so `circles(first: 100) { posts(first: 100) { comments(first: 100) } }`
//! costs about 10^6 and is refused before anything runs ([`price`], from the parsed document and
//! the schema's registry, before validation and execution). Each operation's cost is charged to its viewer's budget
//! (`RATE_COST`, per user, or per IP when anonymous) and reported on the response as
//! `extensions.cost { requested, limit, remaining, resetAt }`.

use super::limits::Limiter;
use crate::config::RateRule;
use crate::domain::pagination::{DEFAULT_PAGE, MAX_PAGE};
use crate::error::AppError;
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet, VariableDefinition};
use async_graphql::registry::{MetaField, MetaType, MetaTypeName, Registry};
use async_graphql::{Positioned, Value, Variables};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Mutex;

/// No field's cost grows past this, so adding costs up never overflows.
const CEILING: usize = 1 << 40;

/// The cost of a connection field: its page size (`first` or `last`, else the default page, at
/// most the largest page) times what it selects, plus itself.
pub fn page(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first.or(last).map(|n| n.clamp(0, MAX_PAGE as i32) as usize).unwrap_or(DEFAULT_PAGE as usize);
    size.max(1).saturating_mul(child_complexity).saturating_add(1).min(CEILING)
}

/// Fields that cost more than 1 by themselves (before what they select): (type, field, cost).
/// A mentor's free slots are computed from its schedule and a range of appointments.
const SURCHARGES: &[(&str, &str, usize)] = &[("Mentor", "availableSlots", 10)];

/// Deeper fragment and selection nesting than this is not priced further (admission's document
/// checks refuse fragment cycles and the schema refuses deep queries long before).
const MAX_NESTING: usize = 128;

/// What the operation `operation` of `document` costs: every field 1 plus what it selects, a
/// list field its page size times what it selects ([`page`]), fragments priced where they are
/// spread. Fields the schema does not have cost 1 (validation refuses them afterwards).
pub fn price(
    registry: &Registry,
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
) -> u64 {
    // None selected (several operations and no name): nothing runs, the schema says why.
    let Some((_, operation)) = super::document::selected(document, operation) else { return 0 };
    let pricer = Pricer { registry, document, variables, definitions: &operation.variable_definitions };
    let root = crate::graphql::root_type(registry, operation.ty).and_then(|name| registry.types.get(name));
    pricer.set(root, &operation.selection_set.node, 0) as u64
}

struct Pricer<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    definitions: &'a [Positioned<VariableDefinition>],
}

impl Pricer<'_> {
    fn set(&self, parent: Option<&MetaType>, set: &SelectionSet, depth: usize) -> usize {
        if depth > MAX_NESTING {
            return 0;
        }
        let mut total = 0usize;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => self.field(parent, &field.node, depth),
                Selection::FragmentSpread(spread) => {
                    match self.document.fragments.get(&spread.node.fragment_name.node) {
                        Some(fragment) => {
                            let on = self.registry.types.get(fragment.node.type_condition.node.on.node.as_str());
                            self.set(on, &fragment.node.selection_set.node, depth + 1)
                        }
                        None => 0,
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = match &fragment.node.type_condition {
                        Some(condition) => self.registry.types.get(condition.node.on.node.as_str()),
                        None => parent,
                    };
                    self.set(on, &fragment.node.selection_set.node, depth + 1)
                }
            };
            total = total.saturating_add(cost).min(CEILING);
        }
        total
    }

    fn field(&self, parent: Option<&MetaType>, field: &Field, depth: usize) -> usize {
        let meta = parent.and_then(|parent| parent.field_by_name(field.name.node.as_str()));
        let child_type = meta.and_then(|meta| self.registry.types.get(MetaTypeName::concrete_typename(&meta.ty)));
        let children = self.set(child_type, &field.selection_set.node, depth + 1);
        let Some(meta) = meta else { return children.saturating_add(1) };
        if meta.args.contains_key("first") || meta.args.contains_key("last") {
            return page(self.int(meta, field, "first"), self.int(meta, field, "last"), children);
        }
        let parent_name = parent.map(|parent| parent.name()).unwrap_or_default();
        let own = SURCHARGES
            .iter()
            .find(|(ty, name, _)| *ty == parent_name && *name == meta.name)
            .map_or(1, |(_, _, cost)| *cost);
        children.saturating_add(own).min(CEILING)
    }

    /// The value of `$variable`: as sent, else its default.
    fn variable(&self, variable: &async_graphql::Name) -> Option<Value> {
        self.variables.get(variable).cloned().or_else(|| {
            let definition = self.definitions.iter().find(|d| d.node.name.node == *variable)?;
            definition.node.default_value.as_ref().map(|default| default.node.clone())
        })
    }

    /// The integer argument `name` as the field will receive it: written, from a variable (or its
    /// default), else the argument's default. Anything else (absent, null, not an integer) is `None`.
    fn int(&self, meta: &MetaField, field: &Field, name: &str) -> Option<i32> {
        let default = || meta.args.get(name)?.default_value.as_deref()?.parse().ok();
        let value = match field.get_argument(name) {
            // A variable neither sent nor defaulted leaves the argument to its own default.
            Some(value) => match value.node.clone().into_const_with(|variable| self.variable(&variable).ok_or(())) {
                Ok(value) => value,
                Err(()) => return default(),
            },
            None => return default(),
        };
        match value {
            Value::Number(n) => n.as_i64().map(|n| n.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
            _ => None,
        }
    }
}

/// What `extensions.cost` says.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// What this operation cost.
    pub requested: u64,
    /// The viewer's budget per window (`RATE_COST`).
    pub limit: u64,
    /// What is left of it now.
    pub remaining: u64,
    /// When the budget is whole again (whole seconds).
    #[serde(serialize_with = "seconds")]
    pub reset_at: DateTime<Utc>,
    /// Seconds from now until then (the `RateLimit-Reset` header).
    #[serde(skip)]
    pub reset_after: u64,
}

/// RFC 3339 to the second. Every response carries one, and most share the second: the text of the
/// last one is kept per thread.
fn seconds<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let secs = at.timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        serializer.serialize_str(&last.1)
    })
}

/// Charges one request's operations to its viewer's budget and remembers the report.
pub struct CostMeter {
    limiter: Limiter,
    rule: RateRule,
    subject: String,
    report: Mutex<Option<CostReport>>,
}

impl CostMeter {
    pub fn new(limiter: Limiter, rule: RateRule, subject: String) -> Self {
        Self { limiter, rule, subject, report: Mutex::new(None) }
    }

    /// Spends `cost` of the budget; RATE_LIMITED (with `retryAfter`) when it is not there.
    pub async fn charge(&self, cost: u64) -> Result<(), AppError> {
        let decision = self.limiter.check("cost", &self.rule, &self.subject, cost).await;
        let reset = chrono::Duration::from_std(decision.reset_after).unwrap_or_default();
        let report = CostReport {
            requested: cost,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_at: Utc::now() + reset,
            reset_after: decision.reset_after.as_secs(),
        };
        if let Ok(mut slot) = self.report.lock() {
            *slot = Some(report);
        }
        decision.into_result().map(|_| ())
    }

    pub fn report(&self) -> Option<CostReport> {
        self.report.lock().ok().and_then(|slot| *slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_multiply_what_they_select() {
        assert_eq!(page(Some(10), None, 3), 31);
        assert_eq!(page(None, Some(5), 2), 11);
        assert_eq!(page(None, None, 1), DEFAULT_PAGE as usize + 1);
        // Bounded by the largest page, and never overflowing.
        assert_eq!(page(Some(10_000), None, 1), MAX_PAGE as usize + 1);
        assert_eq!(page(Some(100), None, usize::MAX), CEILING);
        assert_eq!(page(Some(0), None, 7), 8);
    }

    fn priced(query: &str, variables: serde_json::Value, operation: Option<&str>) -> u64 {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        price(crate::graphql::registry(), &document, operation, &variables)
    }

    #[test]
    fn an_operation_is_priced_from_its_arguments_variables_and_defaults() {
        let page = "courses(first: $n) { edges { node { id title } } }";
        assert_eq!(priced("{ courses(first: 10) { edges { node { id title } } } }", json!({}), None), 41);
        assert_eq!(priced(&format!("query($n: Int) {{ {page} }}"), json!({ "n": 5 }), None), 21);
        assert_eq!(priced(&format!("query($n: Int = 3) {{ {page} }}"), json!({}), None), 13);
        // Neither sent nor defaulted: the default page.
        assert_eq!(priced(&format!("query($n: Int) {{ {page} }}"), json!({}), None), 20 * 4 + 1);
        // An argument's own default (a mentor's courses: first = 10), also behind a variable
        // that was not sent.
        assert_eq!(priced(r#"{ mentor(id: "x") { courses { id } } }"#, json!({}), None), 1 + 10 + 1);
        let unsent = r#"query($n: Int) { mentor(id: "x") { courses(first: $n) { id } } }"#;
        assert_eq!(priced(unsent, json!({}), None), 1 + 10 + 1);
        // A field's own surcharge.
        assert_eq!(priced(r#"{ mentor(id: "x") { availableSlots { start } } }"#, json!({}), None), 1 + 10 + 1);
    }

    #[test]
    fn fragments_are_priced_where_they_are_spread_and_only_the_selected_operation_counts() {
        let spread = "{ ...F ...F } fragment F on Query { courses(first: 2) { edges { node { id } } } }";
        assert_eq!(priced(spread, json!({}), None), 2 * (2 * 3 + 1));
        let inline = "{ node(id: \"x\") { ... on Course { reviews(first: 4) { edges { node { id } } } } } }";
        assert_eq!(priced(inline, json!({}), None), 1 + 4 * 3 + 1);
        let two = "query A { me { id } } query B { courses(first: 10) { edges { node { id } } } }";
        assert_eq!(priced(two, json!({}), Some("A")), 2);
        assert_eq!(priced(two, json!({}), Some("B")), 31);
        // No name among several: nothing runs, nothing is charged.
        assert_eq!(priced(two, json!({}), None), 0);
        // Unknown fields cost 1 each (validation refuses them next).
        assert_eq!(priced("{ nothing { here } }", json!({}), None), 2);
    }

    #[test]
    fn a_hundred_cubed_is_priced_past_any_maximum() {
        let query = "{ circles(first: 100) { edges { node { posts(first: 100) { edges { node {
            comments(first: 100) { edges { node { id } } } } } } } } } }";
        assert!(priced(query, json!({}), None) > 1_000_000);
    }
}
