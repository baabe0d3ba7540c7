//! Typed settings read once at start-up from the environment (and an optional `.env` file).
//!
//! Every key has a documented default that runs the embedded stack; a malformed value stops start-up
//! with an error naming the variable. Settings are passed down explicitly, never read globally.

use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that could not be used; names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self { var, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Database pool settings; defaults follow the database design (100 open, 10 idle, 1 h, 15 min).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: `sqlite://...` (default, a file under DATA_DIR) or `postgres://...`.
    pub url: String,
    /// `DB_MAX_CONNECTIONS` (default 100; SQLite uses at most 8 whatever is set).
    pub max_connections: u32,
    /// `DB_MIN_CONNECTIONS`: idle connections kept open (default 10).
    pub min_connections: u32,
    /// `DB_MAX_LIFETIME_SECS` (default 3600).
    pub max_lifetime: Duration,
    /// `DB_IDLE_TIMEOUT_SECS` (default 900).
    pub idle_timeout: Duration,
    /// `DB_ACQUIRE_TIMEOUT_SECS` (default 10): how long a request waits for a free connection.
    pub acquire_timeout: Duration,
}

/// Limits that make hostile requests cheap to refuse.
#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    /// `GRAPHQL_INTROSPECTION` (default true; set false in production to hide the schema).
    pub introspection: bool,
    /// `GRAPHQL_MAX_DEPTH` (default 15).
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY` (default 2000; every field costs 1, lists multiply by `first`).
    pub max_complexity: usize,
    /// `GRAPHQL_MAX_ALIASES` (default 50 aliased fields per document).
    pub max_aliases: usize,
    /// `GRAPHQL_MAX_BATCH` (default 10 operations per batched request).
    pub max_batch: usize,
    /// `GRAPHQL_MAX_BODY_BYTES` (default 1 MiB).
    pub max_body_bytes: usize,
    /// `GRAPHQL_REQUEST_TIMEOUT_SECS` (default 15).
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `JWT_SECRET`: HMAC key for access tokens (>= 32 bytes). Required when APP_ENV=production;
    /// in development it is generated once and kept in DATA_DIR/jwt_secret.
    pub jwt_secret: SecretString,
    /// `ACCESS_TOKEN_TTL_SECS` (default 900).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS` (default 30 days).
    pub refresh_token_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: development (default) or production.
    pub environment: Environment,
    /// `BIND_ADDR` (default 127.0.0.1:8000).
    pub bind_addr: SocketAddr,
    /// `DATA_DIR` (default ./data): SQLite file, search index, generated dev secret.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    /// `REDIS_URL`: optional; the cache and event fan-out use Redis when set.
    pub redis_url: Option<String>,
    /// `ELASTICSEARCH_URL`: optional; search uses Elasticsearch when set, tantivy otherwise.
    pub elasticsearch_url: Option<String>,
    pub auth: AuthSettings,
    pub graphql: GraphqlLimits,
    /// `LOG_FORMAT`: pretty (default in development) or json (default in production).
    pub log_format: LogFormat,
    /// `SHUTDOWN_GRACE_SECS` (default 20): how long in-flight requests get on SIGTERM.
    pub shutdown_grace: Duration,
    /// `VIEW_FLUSH_SECS` (default 5): how often buffered post views are written.
    pub view_flush: Duration,
    /// `EVENTS_CHANNEL` (default master-guide:events): the Redis pub/sub channel of live events.
    pub events_channel: String,
    pub cache: crate::cache::CacheSettings,
}

/// Where settings come from; tests pass a map instead of the process environment.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment (after loading `.env`).
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|value| !value.trim().is_empty())
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl Config {
    /// Reads `.env` (if present) and the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => return Err(ConfigError::new(".env", error.to_string())),
        }
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let environment = match source.get("APP_ENV").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("development") | Some("dev") | Some("test") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::new("APP_ENV", format!("expected development or production, got '{other}'")))
            }
        };
        let data_dir = PathBuf::from(source.get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = match source.get("DATABASE_URL") {
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                url
            }
            Some(url) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    format!("expected a sqlite: or postgres:// URL, got '{}'", redact_url(&url)),
                ))
            }
            None => format!("sqlite://{}?mode=rwc", data_dir.join("master-guide.db").display()),
        };
        let bind_addr = parse(
            source,
            "BIND_ADDR",
            "127.0.0.1:8000".parse().map_err(|_| ConfigError::new("BIND_ADDR", "bad default"))?,
        )?;
        let log_format = match source.get("LOG_FORMAT").as_deref() {
            None if environment == Environment::Production => LogFormat::Json,
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("LOG_FORMAT", format!("expected pretty or json, got '{other}'")))
            }
        };
        let jwt_secret = match source.get("JWT_SECRET") {
            Some(secret) if secret.len() >= 32 => SecretString::from(secret),
            Some(_) => return Err(ConfigError::new("JWT_SECRET", "must be at least 32 characters")),
            None if environment == Environment::Production => {
                return Err(ConfigError::new("JWT_SECRET", "is required when APP_ENV=production"))
            }
            None => SecretString::from(dev_jwt_secret(&data_dir)?),
        };
        for (var, url) in
            [("REDIS_URL", source.get("REDIS_URL")), ("ELASTICSEARCH_URL", source.get("ELASTICSEARCH_URL"))]
        {
            if let Some(url) = url {
                let ok = match var {
                    "REDIS_URL" => url.starts_with("redis://") || url.starts_with("rediss://"),
                    _ => url.starts_with("http://") || url.starts_with("https://"),
                };
                if !ok {
                    return Err(ConfigError::new(var, format!("not a valid URL: '{}'", redact_url(&url))));
                }
            }
        }

        let config = Config {
            environment,
            bind_addr,
            database: DatabaseSettings {
                url: database_url,
                max_connections: positive(source, "DB_MAX_CONNECTIONS", 100)?,
                min_connections: parse(source, "DB_MIN_CONNECTIONS", 10)?,
                max_lifetime: secs(source, "DB_MAX_LIFETIME_SECS", 3600)?,
                idle_timeout: secs(source, "DB_IDLE_TIMEOUT_SECS", 900)?,
                acquire_timeout: secs(source, "DB_ACQUIRE_TIMEOUT_SECS", 10)?,
            },
            redis_url: source.get("REDIS_URL"),
            elasticsearch_url: source.get("ELASTICSEARCH_URL"),
            auth: AuthSettings {
                jwt_secret,
                access_token_ttl: secs(source, "ACCESS_TOKEN_TTL_SECS", 900)?,
                refresh_token_ttl: secs(source, "REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            },
            graphql: GraphqlLimits {
                introspection: parse(source, "GRAPHQL_INTROSPECTION", true)?,
                max_depth: positive(source, "GRAPHQL_MAX_DEPTH", 15)?,
                max_complexity: positive(source, "GRAPHQL_MAX_COMPLEXITY", 2000)?,
                max_aliases: positive(source, "GRAPHQL_MAX_ALIASES", 50)?,
                max_batch: positive(source, "GRAPHQL_MAX_BATCH", 10)?,
                max_body_bytes: positive(source, "GRAPHQL_MAX_BODY_BYTES", 1024 * 1024)?,
                request_timeout: secs(source, "GRAPHQL_REQUEST_TIMEOUT_SECS", 15)?,
            },
            data_dir,
            log_format,
            shutdown_grace: secs(source, "SHUTDOWN_GRACE_SECS", 20)?,
            view_flush: secs(source, "VIEW_FLUSH_SECS", 5)?,
            events_channel: source.get("EVENTS_CHANNEL").unwrap_or_else(|| "master-guide:events".into()),
            cache: crate::cache::CacheSettings {
                enabled: parse(source, "CACHE_ENABLED", true)?,
                ttl: secs(source, "CACHE_TTL_SECS", 1800)?,
                local_capacity: positive(source, "CACHE_LOCAL_CAPACITY", 100_000)?,
                key_prefix: source.get("CACHE_KEY_PREFIX").unwrap_or_else(|| "mg".into()),
                responses: parse(source, "CACHE_RESPONSES", true)?,
                response_bytes: positive::<u64>(source, "CACHE_RESPONSE_MB", 64)?.saturating_mul(1024 * 1024),
            },
        };
        if config.database.min_connections > config.database.max_connections {
            return Err(ConfigError::new("DB_MIN_CONNECTIONS", "must not exceed DB_MAX_CONNECTIONS"));
        }
        Ok(config)
    }

    pub fn is_sqlite(&self) -> bool {
        self.database.url.starts_with("sqlite:")
    }
}

fn parse<T: FromStr>(source: &dyn Source, var: &'static str, default: T) -> Result<T, ConfigError> {
    match source.get(var) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(var, format!("cannot parse '{raw}' as {}", std::any::type_name::<T>()))),
    }
}

fn positive<T: FromStr + Default + PartialOrd>(
    source: &dyn Source,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    let value = parse(source, var, default)?;
    if value <= T::default() {
        return Err(ConfigError::new(var, "must be greater than zero"));
    }
    Ok(value)
}

fn secs(source: &dyn Source, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    positive(source, var, default).map(Duration::from_secs)
}

/// Hides the password of a URL in messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// The development JWT secret: generated once, kept in DATA_DIR so tokens survive restarts.
fn dev_jwt_secret(data_dir: &Path) -> Result<String, ConfigError> {
    let path = data_dir.join("jwt_secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_string();
        if secret.len() >= 32 {
            return Ok(secret);
        }
    }
    let secret = crate::auth::tokens::random_token(48);
    std::fs::create_dir_all(data_dir)
        .and_then(|_| std::fs::write(&path, &secret))
        .map_err(|error| ConfigError::new("DATA_DIR", format!("cannot write {}: {error}", path.display())))?;
    // Config is read before logging is set up, so this goes straight to stderr.
    eprintln!(
        "warning: JWT_SECRET not set: generated a development secret in {} (set JWT_SECRET in production)",
        path.display()
    );
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bad_values_name_the_variable() {
        let dir = std::env::temp_dir().join(format!("mg-config-{}", uuid::Uuid::new_v4()));
        let dir = dir.to_string_lossy().to_string();
        for (var, value) in [
            ("DB_MAX_CONNECTIONS", "lots"),
            ("DB_MAX_CONNECTIONS", "0"),
            ("BIND_ADDR", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("JWT_SECRET", "short"),
            ("APP_ENV", "staging"),
            ("REDIS_URL", "localhost:6379"),
        ] {
            let error = Config::from_source(&source(&[("DATA_DIR", &dir), (var, value)])).err();
            assert_eq!(error.map(|e| e.var), Some(var), "{var}={value}");
        }
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let error = Config::from_source(&source(&[("APP_ENV", "production")])).err();
        assert_eq!(error.map(|e| e.var), Some("JWT_SECRET"));
    }

    #[test]
    fn defaults_run_embedded() {
        let dir = std::env::temp_dir().join(format!("mg-config-{}", uuid::Uuid::new_v4()));
        let config = Config::from_source(&source(&[("DATA_DIR", &dir.to_string_lossy())]));
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert!(config.is_sqlite());
        assert_eq!(config.database.max_connections, 100);
        assert_eq!(config.database.min_connections, 10);
        assert!(config.redis_url.is_none());
        assert!(dir.join("jwt_secret").exists());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://***@h/db");
    }
}
