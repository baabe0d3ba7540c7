//! docker-compose.yml and the Dockerfile: parsed and checked for the official images and health checks.

use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML")
}

#[test]
fn compose_runs_the_full_stack_on_official_images_with_health_checks() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let image = |name: &str| compose["services"][name]["image"].as_str().unwrap_or_default().to_string();
    assert!(image("postgres").starts_with("postgres:15"), "{}", image("postgres"));
    assert!(image("redis").starts_with("redis:7"), "{}", image("redis"));
    assert!(
        image("elasticsearch").starts_with("docker.elastic.co/elasticsearch/elasticsearch:8."),
        "{}",
        image("elasticsearch")
    );
    assert!(image("minio").starts_with("minio/minio:"), "{}", image("minio"));
    for name in ["postgres", "redis", "elasticsearch", "minio", "api"] {
        assert!(services.contains_key(name), "service {name}");
        assert!(compose["services"][name]["healthcheck"]["test"].is_sequence(), "{name} has a health check");
    }
    let api = &compose["services"]["api"];
    assert_eq!(api["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    let env = api["environment"].as_mapping().expect("api environment");
    for key in [
        "DATABASE_URL",
        "REDIS_URL",
        "ELASTICSEARCH_URL",
        "STORAGE_URL",
        "S3_ENDPOINT",
        "JWT_SECRET",
        "APP_ENV",
        "BIND_ADDR",
    ] {
        assert!(env.contains_key(key), "api sets {key}");
    }
    for dependency in ["postgres", "redis", "elasticsearch"] {
        assert_eq!(
            api["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy"),
            "api waits for {dependency}"
        );
    }
    let es_env = compose["services"]["elasticsearch"]["environment"].as_mapping().expect("es environment");
    assert!(es_env.iter().any(|(k, v)| k.as_str() == Some("xpack.security.enabled") && v.as_str() == Some("false")));
    assert!(es_env.iter().any(|(k, v)| k.as_str() == Some("discovery.type") && v.as_str() == Some("single-node")));
}

#[test]
fn dockerfile_is_multi_stage_on_official_images() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains("rust:"), "{froms:?}");
    assert!(froms.iter().skip(1).all(|f| f.contains("debian:")), "{froms:?}");
    assert!(text.contains("HEALTHCHECK") || text.contains("EXPOSE 8000"));
}
