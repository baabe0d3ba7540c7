//! Responses shaped as the GraphQL spec says, where async-graphql does not:
//!
//! - **Field order.** An object's keys follow its selection set ("CollectFields" order). async-graphql
//!   resolves sibling fields concurrently and inserts each as it finishes, so identical requests
//!   could answer in different byte orders (bad for caches, ETags and diffing clients).
//! - **Field errors** ("Handling Field Errors"). An errored field is `null` next to its error when
//!   its type is nullable; an errored non-null field makes its nearest nullable parent `null` (the
//!   whole `data` when there is none). async-graphql leaves the errored key out instead, which
//!   Apollo iOS and Apollo Kotlin reject.
//! - **Error order.** Errors are listed in the order of their fields in the response, not in the
//!   order resolvers happened to fail.
//!
//! Admission takes each operation's selection tree from the parsed document ([`Shape::of`], kept
//! with the document) and fixes the executed response with it ([`settle`]), for queries,
//! mutations and every event of a subscription.

use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet};
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{Name, PathSegment, Positioned, Response, ServerError, Value};
use std::collections::HashMap;

/// Each operation's shape in a document, by name (`None` for an anonymous one).
pub type Shapes = Vec<(Option<String>, OperationType, Shape)>;

/// Settles `response` with the shape of the operation named `name` (or the document's only one).
pub fn settle(shapes: &Shapes, name: Option<&str>, response: &mut Response, registry: &Registry) {
    let found = match name {
        Some(name) => shapes.iter().find(|(n, _, _)| n.as_deref() == Some(name)),
        None if shapes.len() == 1 => shapes.first(),
        None => None,
    };
    let Some((_, ty, shape)) = found else { return };
    if let Some(root) = super::root_type(registry, *ty) {
        shape.settle(response, registry, root);
    }
}

/// Deeper fragment chains than this are not followed (admission refuses them long before).
const MAX_DEPTH: usize = 64;

/// The response keys one selection set produces, in order, each with its fields merged across
/// fragments.
#[derive(Default, Debug)]
pub struct Shape {
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Field {
    key: Name,
    name: Name,
    /// The type the field is selected on when a fragment's type condition narrowed it; else the
    /// type of the enclosing selection set.
    on: Option<Name>,
    children: Shape,
}

/// Where an error's field leaves the response: this position becomes `null` (the whole `data`
/// when `None`).
type Target = Option<Vec<PathSegment>>;

impl Shape {
    /// The shape of each operation in the document, by operation name (`None` for an anonymous one).
    pub fn of(document: &ExecutableDocument) -> Shapes {
        let fragments = &document.fragments;
        document
            .operations
            .iter()
            .map(|(name, operation)| {
                let mut shape = Shape::default();
                shape.collect(&operation.node.selection_set.node, fragments, None, 0);
                (name.map(|n| n.to_string()), operation.node.ty, shape)
            })
            .collect()
    }

    fn collect(
        &mut self,
        set: &SelectionSet,
        fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
        on: Option<&Name>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = &field.response_key().node;
                    let index = match self.fields.iter().position(|f| &f.key == key) {
                        Some(index) => index,
                        None => {
                            self.fields.push(Field {
                                key: key.clone(),
                                name: field.name.node.clone(),
                                on: on.cloned(),
                                children: Shape::default(),
                            });
                            self.fields.len() - 1
                        }
                    };
                    self.fields[index].children.collect(&field.selection_set.node, fragments, None, depth + 1);
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                        let condition = &fragment.node.type_condition.node.on.node;
                        self.collect(&fragment.node.selection_set.node, fragments, Some(condition), depth + 1);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref().map(|c| &c.node.on.node).or(on);
                    self.collect(&fragment.node.selection_set.node, fragments, condition, depth + 1);
                }
            }
        }
    }

    /// Brings an executed response to the spec's shape: errored fields `null` (or their nearest
    /// nullable parent), keys in selection order, errors in response order. `root` is the
    /// operation's root type.
    pub fn settle(&self, response: &mut Response, registry: &Registry, root: &str) {
        let mut targets: Vec<Target> = response
            .errors
            .iter()
            .filter(|error| !error.path.is_empty())
            .filter_map(|error| self.target(&response.data, &error.path, registry, root))
            .collect();
        // Outermost first: a position inside one already nulled needs nothing more.
        targets.sort_by_key(|target| target.as_ref().map_or(0, |path| path.len() + 1));
        let mut applied: Vec<Vec<PathSegment>> = Vec::new();
        for target in targets {
            let Some(path) = target else {
                response.data = Value::Null;
                applied.clear();
                break;
            };
            if applied.iter().any(|done| path.starts_with(done)) {
                continue;
            }
            null_at(&mut response.data, &path);
            applied.push(path);
        }
        self.order(&mut response.data);
        if response.errors.len() > 1 {
            let keys: Vec<Vec<usize>> = response.errors.iter().map(|error| self.sort_key(error)).collect();
            let mut indexed: Vec<(Vec<usize>, ServerError)> = keys.into_iter().zip(response.errors.drain(..)).collect();
            indexed.sort_by(|a, b| a.0.cmp(&b.0));
            response.errors = indexed.into_iter().map(|(_, error)| error).collect();
        }
    }

    /// Where the field that raised an error at `path` leaves the response: the first key of the
    /// path missing from `data` is the errored field; it, or its nearest nullable ancestor, becomes
    /// `null`. `None` (no target) when the path cannot be followed or nothing is missing.
    fn target(&self, data: &Value, path: &[PathSegment], registry: &Registry, root: &str) -> Option<Target> {
        let mut shape = self;
        let mut value = Some(data);
        let mut parent_type = root.to_string();
        let mut ty = String::new();
        // (length of the path prefix, whether the value at that prefix may be null)
        let mut positions: Vec<(usize, bool)> = Vec::with_capacity(path.len());
        let mut missing_at = None;
        for (i, segment) in path.iter().enumerate() {
            match segment {
                PathSegment::Field(key) => {
                    let field = shape.fields.iter().find(|f| f.key.as_str() == key)?;
                    let on = field.on.as_ref().map_or(parent_type.as_str(), |on| on.as_str());
                    ty = registry.types.get(on)?.field_by_name(&field.name)?.ty.clone();
                    positions.push((i + 1, !MetaTypeName::create(&ty).is_non_null()));
                    // A null object on the way is one whose every field errored (a resolver's null
                    // raises no errors beneath it): its keys are all missing.
                    let child = match value {
                        Some(Value::Object(map)) => map.get(key.as_str()),
                        _ => None,
                    };
                    if child.is_none() {
                        missing_at = Some(i + 1);
                        break;
                    }
                    value = child;
                    shape = &field.children;
                    parent_type = MetaTypeName::concrete_typename(&ty).to_string();
                }
                PathSegment::Index(n) => {
                    let item = match MetaTypeName::create(&ty).unwrap_non_null() {
                        MetaTypeName::List(item) => item.to_string(),
                        _ => return None,
                    };
                    positions.push((i + 1, !MetaTypeName::create(&item).is_non_null()));
                    ty = item;
                    value = match value {
                        Some(Value::List(items)) => Some(items.get(*n)?),
                        _ => return None,
                    };
                }
            }
        }
        let missing_at = missing_at?;
        let nullable = positions.iter().rev().find(|(len, nullable)| *len <= missing_at && *nullable);
        Some(nullable.map(|(len, _)| path[..*len].to_vec()))
    }

    /// Puts each object's keys in selection order, all the way down.
    fn order(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                let ordered = {
                    let mut fields = self.fields.iter();
                    map.keys().all(|key| fields.any(|f| &f.key == key))
                };
                if !ordered {
                    let mut old = std::mem::take(map);
                    for field in &self.fields {
                        if let Some(v) = old.shift_remove(&field.key) {
                            map.insert(field.key.clone(), v);
                        }
                    }
                    map.extend(old);
                }
                for field in &self.fields {
                    if !field.children.fields.is_empty() {
                        if let Some(child) = map.get_mut(&field.key) {
                            field.children.order(child);
                        }
                    }
                }
            }
            Value::List(items) => items.iter_mut().for_each(|item| self.order(item)),
            _ => {}
        }
    }

    /// An error's place in the response: the selection index of each key on its path, and list
    /// indexes as they are (errors without a path come first).
    fn sort_key(&self, error: &ServerError) -> Vec<usize> {
        let mut shape = Some(self);
        error
            .path
            .iter()
            .map(|segment| match segment {
                PathSegment::Index(n) => *n,
                PathSegment::Field(key) => {
                    let found = shape.and_then(|s| s.fields.iter().enumerate().find(|(_, f)| f.key.as_str() == key));
                    shape = found.map(|(_, f)| &f.children);
                    found.map_or(usize::MAX, |(i, _)| i)
                }
            })
            .collect()
    }
}

/// Sets the value at `path` to `null`, inserting its key if it is missing; an object on the way
/// that async-graphql left as `null` (all its fields errored) becomes an object again.
fn null_at(data: &mut Value, path: &[PathSegment]) {
    let mut value = data;
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match segment {
            PathSegment::Field(key) => {
                if matches!(value, Value::Null) {
                    *value = Value::Object(Default::default());
                }
                let Value::Object(map) = value else { return };
                let key = Name::new(key);
                if last {
                    map.insert(key, Value::Null);
                    return;
                }
                let Some(child) = map.get_mut(&key) else { return };
                value = child;
            }
            PathSegment::Index(n) => {
                let Value::List(items) = value else { return };
                let Some(item) = items.get_mut(*n) else { return };
                if last {
                    *item = Value::Null;
                    return;
                }
                value = item;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, OutputType, Schema, SimpleObject};

    #[derive(SimpleObject)]
    struct Item {
        id: i32,
        name: Option<String>,
    }

    struct Q;

    #[Object]
    impl Q {
        async fn ok(&self) -> i32 {
            1
        }
        async fn maybe(&self) -> async_graphql::Result<Option<i32>> {
            Err("nope".into())
        }
        async fn sure(&self) -> async_graphql::Result<i32> {
            Err("nope".into())
        }
        async fn item(&self) -> Option<Item> {
            Some(Item { id: 1, name: None })
        }
        async fn items(&self) -> Vec<Item> {
            vec![Item { id: 1, name: None }]
        }
        async fn nested(&self) -> Option<Nested> {
            Some(Nested)
        }
    }

    struct Nested;

    #[Object]
    impl Nested {
        async fn bad(&self) -> async_graphql::Result<i32> {
            Err("nope".into())
        }
        async fn soft(&self) -> async_graphql::Result<Option<i32>> {
            Err("nope".into())
        }
    }

    async fn run(query: &str) -> serde_json::Value {
        serde_json::from_str(&run_text(query).await).expect("json")
    }

    async fn run_text(query: &str) -> String {
        let schema = Schema::build(Q, EmptyMutation, EmptySubscription).finish();
        let shapes = Shape::of(&async_graphql::parser::parse_query(query).expect("parses"));
        let registry = crate::graphql::registry_with("Q", None, None, |registry| {
            Q::create_type_info(registry);
        });
        let mut response = schema.execute(query).await;
        settle(&shapes, None, &mut response, &registry);
        serde_json::to_string(&response).expect("serializes")
    }

    #[tokio::test]
    async fn errored_nullable_field_is_null_and_keys_follow_the_selection() {
        let body = run("{ maybe ok nested { soft } }").await;
        assert_eq!(body["data"], serde_json::json!({ "maybe": null, "ok": 1, "nested": { "soft": null } }));
        let text = run_text("{ maybe ok nested { soft } }").await;
        let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap_or(usize::MAX);
        assert!(at("maybe") < at("ok") && at("ok") < at("nested"), "{text}");
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn errored_non_null_field_nulls_the_nearest_nullable_parent() {
        let body = run("{ ok nested { bad soft } }").await;
        assert_eq!(body["data"], serde_json::json!({ "ok": 1, "nested": null }));
        let body = run("{ ok sure }").await;
        assert_eq!(body["data"], serde_json::Value::Null);
    }
}
