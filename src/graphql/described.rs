//! Descriptions for the types async-graphql generates rather than this code declares: each
//! `XConnection` (from `connection::Connection`, whose impl carries no description) and the
//! `Decimal` scalar of the `rust_decimal` integration. Registering [`GeneratedTypes`] runs once
//! per schema build, after the root types (and so every generated type) are in the registry, and
//! fills in what is missing there; it adds no type of its own.

use async_graphql::parser::types::Field;
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};
use std::borrow::Cow;

/// Not a GraphQL type: its registration describes the generated ones.
pub struct GeneratedTypes;

impl OutputType for GeneratedTypes {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed("String")
    }

    fn create_type_info(registry: &mut Registry) -> String {
        describe(registry);
        "String".into()
    }

    async fn resolve(&self, _: &ContextSelectionSet<'_>, _: &Positioned<Field>) -> ServerResult<Value> {
        Ok(Value::Null)
    }
}

/// The description a generated type gets, by its name (and whether it counts its items).
fn description_of(name: &str, counted: bool) -> Option<String> {
    if name == "Decimal" {
        return Some(
            "An exact decimal number sent as a string, e.g. \"199.00\" (money is never a float; prices and rates \
             have two places)."
                .into(),
        );
    }
    let node = name.strip_suffix("Connection")?;
    let total = if counted { ", and `totalCount` over all pages" } else { "" };
    Some(format!(
        "A page of {node} items (a Relay connection): `edges` with their cursors, `pageInfo` to page on{total}."
    ))
}

fn describe(registry: &mut Registry) {
    for (name, ty) in registry.types.iter_mut() {
        let (slot, counted) = match ty {
            MetaType::Object { description, fields, .. } => (description, fields.contains_key("totalCount")),
            MetaType::Scalar { description, .. } => (description, false),
            _ => continue,
        };
        if slot.is_none() {
            *slot = description_of(name, counted);
        }
    }
}
