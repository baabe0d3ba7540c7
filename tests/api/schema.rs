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
