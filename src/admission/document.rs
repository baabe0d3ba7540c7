//! What a document costs to look at, bounded before async-graphql validates it: the text's size and
//! nesting before parsing, then, on the parsed document, aliases, fragment nesting and the size of
//! the selection once every fragment spread is expanded, counted with one memo per fragment so a
//! document that would expand to 2^30 fields is refused in microseconds instead of validated for
//! minutes.

use crate::error::AppError;
use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest query text accepted before parsing.
pub const MAX_QUERY_CHARS: usize = 100_000;
/// Deepest `{`/`(`/`[` nesting accepted before parsing (the parser recurses on nesting).
pub const MAX_PRE_PARSE_NESTING: usize = 64;
/// Deepest chain of fragments spreading fragments.
const MAX_FRAGMENT_NESTING: usize = 32;
/// Texts longer than this are parsed on the blocking pool, off the async workers.
pub const PARSE_INLINE_BYTES: usize = 16 * 1024;

/// What the checks need to know.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_aliases: usize,
    pub max_fields: usize,
}

/// Refuses query texts that are empty, too long or too deeply nested before the parser sees them.
pub fn precheck(query: &str) -> Result<(), AppError> {
    if query.trim().is_empty() {
        return Err(AppError::bad_input("query", "the query is empty"));
    }
    if query.len() > MAX_QUERY_CHARS {
        return Err(AppError::QueryTooComplex(format!("the query exceeds {MAX_QUERY_CHARS} characters")));
    }
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    // Strings ("...", with \ escapes), block strings ("""...""", where only \""" escapes) and
    // comments hold no structure.
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 2; // the closing quotes; the step below takes the third
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    if deepest > MAX_PRE_PARSE_NESTING {
        return Err(AppError::QueryTooComplex(format!("the query nests deeper than {MAX_PRE_PARSE_NESTING} levels")));
    }
    Ok(())
}

/// Parses a prechecked text; a syntax error is BAD_USER_INPUT on `query`.
pub fn parse(query: &str) -> Result<ExecutableDocument, AppError> {
    async_graphql::parser::parse_query(query).map_err(|error| AppError::bad_input("query", error.to_string()))
}

/// What the parsed documents kept by [`Parsed`] may weigh (estimated, see [`Parsed::keep`]).
const PARSED_BYTES: u64 = 32 * 1024 * 1024;

/// The parsed documents of recent query texts, by text: clients send the same few operations
/// over and over (their variables change, not their text), and copying a parsed document costs a
/// fraction of parsing it again (the parser was about 6 % of an uncached page's CPU). Only
/// documents that passed [`check`] are kept, so each one is bounded by its limits; the checks on
/// variables and everything after them still run on each request.
#[derive(Clone)]
pub struct Parsed(moka::sync::Cache<String, Kept>);

/// A kept document with what admission derives from it once: each operation's response shape.
#[derive(Clone)]
struct Kept {
    document: Arc<ExecutableDocument>,
    shapes: Arc<crate::graphql::shape::Shapes>,
    weight: u32,
}

impl Parsed {
    pub fn new() -> Self {
        Self(moka::sync::Cache::builder().max_capacity(PARSED_BYTES).weigher(|_, kept: &Kept| kept.weight).build())
    }

    /// A copy of the document of `query` and its operations' shapes, if it was kept.
    pub fn get(&self, query: &str) -> Option<(ExecutableDocument, Arc<crate::graphql::shape::Shapes>)> {
        self.0.get(query).map(|kept| ((*kept.document).clone(), kept.shapes))
    }

    /// Keeps the document of `query`, which passed [`check`] with `shape`, and its operations'
    /// shapes. Its weight is an estimate: about 200 bytes per field node (expanded through
    /// fragments, so never under; the shapes hold as many), the text, and the maps around them.
    pub fn keep(
        &self,
        query: &str,
        document: &ExecutableDocument,
        shape: Shape,
        shapes: Arc<crate::graphql::shape::Shapes>,
    ) {
        let weight = shape.fields.saturating_mul(300).saturating_add(query.len() as u64 * 2 + 1024);
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        self.0.insert(query.to_owned(), Kept { document: Arc::new(document.clone()), shapes, weight });
    }
}

impl Default for Parsed {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts of a parsed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Aliased fields, as written (not expanded).
    pub aliases: usize,
    /// Fields of the selected operation with every fragment spread expanded (saturating).
    pub fields: u64,
}

/// Checks `document` against `bounds`. Every operation and fragment counts, not only the selected
/// operation: async-graphql validates them all.
pub fn check(document: &ExecutableDocument, bounds: Bounds) -> Result<Shape, AppError> {
    let aliases = count_aliases(document);
    if aliases > bounds.max_aliases {
        return Err(AppError::QueryTooComplex(format!(
            "the document uses {aliases} aliases; at most {} are allowed",
            bounds.max_aliases
        )));
    }
    let mut sizes = FragmentSizes { document, memo: HashMap::new(), visiting: Vec::new() };
    let mut fields = 0u64;
    for (_, op) in document.operations.iter() {
        fields = fields.saturating_add(sizes.of(&op.node.selection_set.node, 0)?);
    }
    // Fragments no operation uses are still validated once each.
    for fragment in document.fragments.values() {
        fields = fields.saturating_add(sizes.of(&fragment.node.selection_set.node, 0)?);
    }
    if fields > bounds.max_fields as u64 {
        return Err(AppError::QueryTooComplex(format!(
            "the document expands to {} fields once its fragments are spread; at most {} are allowed",
            if fields == u64::MAX { "too many".to_string() } else { fields.to_string() },
            bounds.max_fields
        )));
    }
    Ok(Shape { aliases, fields })
}

/// The type of the operation a request selects (`None` when the name matches none, or several
/// operations and no name: the schema reports that).
pub fn operation_type(document: &ExecutableDocument, operation: Option<&str>) -> Option<OperationType> {
    selected(document, operation).map(|(_, op)| op.ty)
}

/// The operation a request runs, with its name: the named one, or the document's only one
/// (`None` when the name matches none, or several operations and no name).
pub fn selected<'a>(
    document: &'a ExecutableDocument,
    operation: Option<&str>,
) -> Option<(Option<&'a str>, &'a OperationDefinition)> {
    let mut operations = document.operations.iter();
    let (name, op) = match operation {
        Some(wanted) => operations.find(|(name, _)| name.map(|n| n.as_str()) == Some(wanted))?,
        None => {
            let first = operations.next()?;
            operations.next().is_none().then_some(first)?
        }
    };
    Some((name.map(|n| n.as_str()), &op.node))
}

/// A required variable (non-null, no default) the request did not provide, or provided as null,
/// is a request error (async-graphql would only notice it while resolving, as an internal error).
pub fn check_variables(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &async_graphql::Variables,
) -> Result<(), AppError> {
    let Some((_, operation)) = selected(document, operation) else { return Ok(()) };
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if !definition.var_type.node.nullable && definition.default_value.is_none() {
            let name = &definition.name.node;
            let given = variables.get(name);
            if given.is_none() || given == Some(&async_graphql::Value::Null) {
                let what = if given.is_none() { "was not provided" } else { "must not be null" };
                return Err(AppError::bad_input(
                    format!("variables.{name}"),
                    format!("variable ${name} of required type {} {what}", definition.var_type.node),
                ));
            }
        }
    }
    Ok(())
}

/// Expanded sizes of selection sets, each fragment's computed once.
struct FragmentSizes<'a> {
    document: &'a ExecutableDocument,
    memo: HashMap<&'a str, u64>,
    /// Fragments being expanded (a cycle is refused here; validation would report it too).
    visiting: Vec<&'a str>,
}

impl<'a> FragmentSizes<'a> {
    fn of(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<u64, AppError> {
        let mut total = 0u64;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(field) => 1u64.saturating_add(self.of(&field.node.selection_set.node, nesting)?),
                Selection::InlineFragment(fragment) => self.of(&fragment.node.selection_set.node, nesting)?,
                Selection::FragmentSpread(spread) => self.spread(spread.node.fragment_name.node.as_str(), nesting)?,
            };
            total = total.saturating_add(size);
        }
        Ok(total)
    }

    fn spread(&mut self, name: &'a str, nesting: usize) -> Result<u64, AppError> {
        if let Some(size) = self.memo.get(name) {
            return Ok(*size);
        }
        if nesting >= MAX_FRAGMENT_NESTING {
            return Err(AppError::QueryTooComplex(format!(
                "fragments spread fragments more than {MAX_FRAGMENT_NESTING} levels deep"
            )));
        }
        if self.visiting.contains(&name) {
            return Err(AppError::QueryTooComplex(format!("fragment {name} spreads itself")));
        }
        // An unknown fragment is a validation error reported by the schema; it expands to nothing.
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else { return Ok(0) };
        self.visiting.push(key.as_str());
        let size = self.of(&fragment.node.selection_set.node, nesting + 1);
        self.visiting.pop();
        let size = size?;
        self.memo.insert(key.as_str(), size);
        Ok(size)
    }
}

/// Aliased fields across all operations and fragments of the document, as written.
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

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { max_aliases: 50, max_fields: 5000 };

    #[test]
    fn precheck_refuses_deep_and_long_queries() {
        assert!(precheck("{ me { id } }").is_ok());
        assert!(precheck(&format!("{}{}", "{a".repeat(100), "}".repeat(100))).is_err());
        assert!(precheck(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        // Braces inside strings and comments do not count.
        assert!(precheck(&format!("{{ f(x: \"{}\") }} # {}", "{".repeat(100), "{".repeat(100))).is_ok());
        assert!(precheck("   ").is_err());
        // A block string holding a lone quote does not hide the nesting after it.
        let deep = format!(r#"{{ f(x: """ " """) {}{} }}"#, "{a".repeat(100), "}".repeat(100));
        assert!(precheck(&deep).is_err());
        // An escaped triple quote stays inside the block string; so does an escaped quote in a string.
        let escaped = format!(r#"{{ f(x: """ \""" {} """) }}"#, "{".repeat(100));
        assert!(precheck(&escaped).is_ok());
        assert!(precheck(&format!(r#"{{ f(x: "a\"{}") }}"#, "{".repeat(100))).is_ok());
    }

    #[test]
    fn counts_aliases_in_operations_and_fragments() -> Result<(), Box<dyn std::error::Error>> {
        let doc = parse("query { a: me { id } b: me { x: id } ...F } fragment F on Query { c: me { id } }")
            .map_err(|e| e.message())?;
        assert_eq!(count_aliases(&doc), 4);
        Ok(())
    }

    /// 30 fragments, each spreading the one before twice: 2^30 fields once expanded.
    pub fn exploding(levels: usize) -> String {
        let mut text = String::from("query { ...F0 }\nfragment F0 on Query { __typename }\n");
        for i in 1..levels {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{prev} ...F{prev} }}\n", prev = i - 1));
        }
        text.replace("{ ...F0 }", &format!("{{ ...F{} }}", levels - 1))
    }

    #[test]
    fn an_exploding_document_is_measured_without_expanding_it() -> Result<(), Box<dyn std::error::Error>> {
        let doc = parse(&exploding(30)).map_err(|e| e.message())?;
        let started = std::time::Instant::now();
        let refused = check(&doc, BOUNDS);
        assert!(matches!(refused, Err(AppError::QueryTooComplex(_))), "{refused:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        // Small expansions pass and are counted exactly: 2^4 spreads of F0 plus the unused chain.
        let doc = parse(&exploding(5)).map_err(|e| e.message())?;
        let shape = check(&doc, BOUNDS).map_err(|e| e.message())?;
        assert_eq!(shape.fields, 16 + (1 + 2 + 4 + 8 + 16));
        Ok(())
    }

    #[test]
    fn cycles_and_deep_fragment_chains_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let doc = parse("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .map_err(|e| e.message())?;
        assert!(check(&doc, BOUNDS).is_err());
        let mut text = String::from("query { ...F0 } fragment F40 on Query { __typename }\n");
        for i in 0..40 {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        let doc = parse(&text).map_err(|e| e.message())?;
        assert!(check(&doc, BOUNDS).is_err());
        Ok(())
    }

    #[test]
    fn the_selected_operation_type_is_found() -> Result<(), Box<dyn std::error::Error>> {
        let doc = parse("query A { me { id } } mutation B { logout(refreshToken: \"x\") }").map_err(|e| e.message())?;
        assert_eq!(operation_type(&doc, Some("B")), Some(OperationType::Mutation));
        assert_eq!(operation_type(&doc, Some("A")), Some(OperationType::Query));
        assert_eq!(operation_type(&doc, None), None);
        assert_eq!(operation_type(&doc, Some("C")), None);
        Ok(())
    }
}
