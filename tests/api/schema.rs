//! schema.graphql is the SDL the code defines; this fails when they drift apart.

#[test]
fn schema_graphql_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = master_guide::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is out of date; regenerate it with:\n\n    cargo run -q -- schema > schema.graphql\n"
    );
}

/// Every type, field, argument, input field and enum value the server introspects has a
/// description: a frontend reads the schema in GraphiQL, not the source.
#[tokio::test]
async fn every_schema_element_is_described() {
    let app = crate::helpers::spawn_app().await;
    let query = r#"{ __schema { types {
        kind name description
        fields(includeDeprecated: true) { name description args { name description } }
        inputFields { name description }
        enumValues(includeDeprecated: true) { name description }
    } } }"#;
    let body = app.gql(query, serde_json::json!({})).await;
    let types = crate::helpers::data(&body)["__schema"]["types"].as_array().cloned().unwrap_or_default();
    assert!(types.len() > 50, "introspection answered: {body}");
    let described = |v: &serde_json::Value| v["description"].as_str().is_some_and(|d| !d.trim().is_empty());
    let builtin = ["String", "Int", "Float", "Boolean", "ID"];
    let mut missing = Vec::new();
    for ty in &types {
        let name = ty["name"].as_str().unwrap_or_default();
        if name.starts_with("__") || builtin.contains(&name) {
            continue;
        }
        if !described(ty) {
            missing.push(format!("type {name}"));
        }
        for field in ty["fields"].as_array().into_iter().flatten() {
            let field_name = field["name"].as_str().unwrap_or_default();
            if !described(field) {
                missing.push(format!("field {name}.{field_name}"));
            }
            for arg in field["args"].as_array().into_iter().flatten() {
                if !described(arg) {
                    missing.push(format!("argument {name}.{field_name}({})", arg["name"].as_str().unwrap_or_default()));
                }
            }
        }
        for field in ty["inputFields"].as_array().into_iter().flatten() {
            if !described(field) {
                missing.push(format!("input field {name}.{}", field["name"].as_str().unwrap_or_default()));
            }
        }
        for value in ty["enumValues"].as_array().into_iter().flatten() {
            if !described(value) {
                missing.push(format!("enum value {name}.{}", value["name"].as_str().unwrap_or_default()));
            }
        }
    }
    assert!(missing.is_empty(), "{} schema elements have no description:\n{}", missing.len(), missing.join("\n"));
}
