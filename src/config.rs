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
    /// `DB_STATEMENT_TIMEOUT_SECS` (default 30): PostgreSQL's `statement_timeout` on every connection.
    pub statement_timeout: Duration,
}

/// Limits that make hostile requests cheap to refuse.
#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    /// `GRAPHQL_INTROSPECTION` (default true in development, false in production).
    pub introspection: bool,
    /// `GRAPHIQL` (default true in development, false in production): the playground at `/`.
    pub graphiql: bool,
    /// `GRAPHQL_MAX_DEPTH` (default 15).
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY` (default 5000): the most one operation may cost. Every field costs
    /// 1 and a connection multiplies what it selects by its page size (`first`/`last`, else 20).
    pub max_complexity: usize,
    /// `GRAPHQL_MAX_FIELDS` (default 2000): fields of a document once every fragment is spread.
    pub max_fields: usize,
    /// `GRAPHQL_BATCH_DELAY_MS` (default 1): how long a DataLoader waits for more keys before it
    /// queries (longer batches more on a slow or busy box, at that much latency per level; a debug
    /// build may need 4 or more).
    pub batch_delay: Duration,
    /// `GRAPHQL_MAX_ALIASES` (default 50 aliased fields per document).
    pub max_aliases: usize,
    /// `GRAPHQL_MAX_BATCH` (default 10 operations per batched request).
    pub max_batch: usize,
    /// `GRAPHQL_MAX_BODY_BYTES` (default 1 MiB).
    pub max_body_bytes: usize,
    /// `GRAPHQL_REQUEST_TIMEOUT_SECS` (default 15): parse, validation and execution together.
    pub request_timeout: Duration,
    /// `WS_MAX_OPERATIONS` (default 32): live operations one WebSocket may hold at once.
    pub ws_max_operations: usize,
    /// `WS_INIT_TIMEOUT_SECS` (default 3): a socket that sends no `connection_init` within this
    /// closes with 4408.
    pub ws_init_timeout: Duration,
    /// `PERSISTED_ONLY` (default false): run only the operations of `PERSISTED_MANIFEST`.
    pub persisted_only: bool,
    /// `PERSISTED_MANIFEST`: the apps' build output, hash -> document (or Apollo's manifest format).
    pub persisted_manifest: Option<PathBuf>,
}

/// `N/period`: N units at once, one more every period/N (`10/15m`, `120/1m`, `20/1h`, `5/30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    pub limit: u32,
    pub period: Duration,
}

impl RateRule {
    /// Time to earn back one unit.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }
}

/// The longest period a rate rule may have (30 days).
const MAX_RULE_PERIOD_SECS: u64 = 30 * 86_400;

impl std::fmt::Display for RateRule {
    /// The form `FromStr` reads, in the largest whole unit (`10/15m`, `3/1h`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.period.as_secs();
        let (amount, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(size, _)| seconds % size == 0)
            .map(|(size, unit)| (seconds / size, unit))
            .unwrap_or((seconds, "s"));
        write!(f, "{}/{amount}{unit}", self.limit)
    }
}

impl FromStr for RateRule {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (limit, period) = raw.trim().split_once('/').ok_or("expected N/period, e.g. 10/15m")?;
        let limit: u32 = limit.trim().parse().map_err(|_| format!("'{limit}' is not a count"))?;
        let period = period.trim();
        let split = period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len());
        let (amount, unit) = period.split_at(split);
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().map_err(|_| "bad period".to_string())? };
        let unit_seconds: u64 = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => return Err(format!("unknown period unit '{other}' (s, m, h, d)")),
        };
        let seconds = amount.checked_mul(unit_seconds).filter(|s| *s <= MAX_RULE_PERIOD_SECS);
        let Some(seconds) = seconds else { return Err("the period is at most 30 days".into()) };
        if limit == 0 || seconds == 0 {
            return Err("count and period must be greater than zero".into());
        }
        Ok(Self { limit, period: Duration::from_secs(seconds) })
    }
}

/// Rate limits (see `admission::limits`); every rule is `N/period`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// `RATE_LIMITS` (default true).
    pub enabled: bool,
    /// `RATE_LOGIN_ACCOUNT` (default 10/15m): sign-in attempts per email.
    pub login_account: RateRule,
    /// `RATE_LOGIN_IP` (default 30/1m): sign-in attempts per client IP.
    pub login_ip: RateRule,
    /// `RATE_RESET_ACCOUNT` (default 3/1h): password-reset (and email-verification) requests per
    /// account.
    pub reset_account: RateRule,
    /// `RATE_RESET_IP` (default 10/1h): password-reset requests and uses per client IP.
    pub reset_ip: RateRule,
    /// `RATE_REGISTER_IP` (default 20/1h): registrations per client IP.
    pub register_ip: RateRule,
    /// `RATE_ANONYMOUS_IP` (default 300/1m): operations of anonymous clients per IP.
    pub anonymous_ip: RateRule,
    /// `RATE_MUTATION_USER` (default 120/1m): mutations per signed-in user.
    pub mutation_user: RateRule,
    /// `RATE_MESSAGE_USER` (default 30/1m): messages sent per user.
    pub message_user: RateRule,
    /// `RATE_COST` (default 100000/1m): what one viewer's operations may cost together.
    pub cost: RateRule,
    /// `RATE_WS_MESSAGES` (default 100/10s): messages one WebSocket may send.
    pub ws_messages: RateRule,
    /// `RATE_UPLOAD_USER` (default 200/1d): uploads one user may start.
    pub upload_user: RateRule,
    /// `RATE_UPLOAD_MB_USER` (default 2048/1d): megabytes one user may upload (declared sizes).
    pub upload_mb_user: RateRule,
    /// `PASSWORD_HASH_CONCURRENCY` (default: the number of cores): argon2 runs at once.
    pub hash_concurrency: usize,
    /// `PASSWORD_HASH_QUEUE_SECS` (default 5): how long a sign-in waits for a hashing slot.
    pub hash_queue: Duration,
}

/// What faces the network besides GraphQL itself.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser (`*` for
    /// any, without credentials). Unset: no cross-origin access.
    pub cors_origins: Vec<String>,
    /// `CORS_MAX_AGE_SECS` (default 600): how long browsers keep a preflight.
    pub cors_max_age: Duration,
    /// `TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed.
    /// Unset: the socket's peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// `METRICS_ADDR`: serve /metrics on this address instead of the API's.
    pub metrics_addr: Option<SocketAddr>,
    /// `METRICS_TOKEN`: /metrics on the API's address asks for `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// `METRICS_MAX_OPERATIONS` (default 200): distinct operation names metrics label; the rest
    /// count as `other`.
    pub metrics_max_operations: usize,
}

/// An IP network (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(ip)) => self.contains(IpAddr::V6(ip.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|ip| self.contains(IpAddr::V4(ip))),
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| format!("'{addr}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or(format!("bad prefix length '{p}'"))?,
        };
        Ok(Self { addr, prefix })
    }
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
    /// `APP_URL` (default http://localhost:3000: where mailed links point),
    /// `PASSWORD_RESET_TTL_SECS` (default 3600), `EMAIL_VERIFICATION_TTL_SECS` (default 86400).
    pub mail: crate::domain::accounts::AccountMail,
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
    pub auth: AuthSettings,
    pub graphql: GraphqlLimits,
    pub rate: RateLimits,
    pub http: HttpSettings,
    /// `LOG_FORMAT`: pretty (default in development) or json (default in production).
    pub log_format: LogFormat,
    /// `SHUTDOWN_GRACE_SECS` (default 20): how long in-flight requests get on SIGTERM.
    pub shutdown_grace: Duration,
    /// `VIEW_FLUSH_SECS` (default 5): how often buffered post views are written.
    pub view_flush: Duration,
    /// `EVENTS_CHANNEL` (default master-guide:events): the Redis pub/sub channel of live events.
    pub events_channel: String,
    pub cache: crate::cache::CacheSettings,
    pub search: crate::search::SearchSettings,
    /// `SMTP_URL`, `MAIL_FROM`, `MAIL_DIR` (see `mail`).
    pub mail: crate::mail::MailSettings,
    /// `STORAGE_URL`, `MEDIA_DIR`, `S3_*`, `PUBLIC_URL` (see `storage`).
    pub storage: crate::storage::StorageSettings,
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

/// The file storage: local disk under `MEDIA_DIR` (default `DATA_DIR/media`) unless `STORAGE_URL`
/// is `s3://bucket`, then the `S3_*` settings.
fn storage_settings(
    source: &dyn Source,
    data_dir: &std::path::Path,
) -> Result<crate::storage::StorageSettings, ConfigError> {
    use crate::storage::{S3Settings, StorageBackend};
    let backend = match source.get("STORAGE_URL") {
        None => StorageBackend::Local {
            dir: source.get("MEDIA_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("media")),
        },
        Some(url) => {
            let bucket = url
                .strip_prefix("s3://")
                .map(|b| b.trim_end_matches('/'))
                .filter(|b| !b.is_empty() && !b.contains('/'))
                .ok_or_else(|| ConfigError::new("STORAGE_URL", "expected s3://<bucket>"))?;
            let required = |var: &'static str| {
                source.get(var).ok_or_else(|| ConfigError::new(var, "is required with STORAGE_URL=s3://..."))
            };
            let endpoint = source.get("S3_ENDPOINT");
            if let Some(endpoint) = &endpoint {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(ConfigError::new("S3_ENDPOINT", "expected an http(s) URL"));
                }
            }
            StorageBackend::S3(S3Settings {
                bucket: bucket.to_string(),
                endpoint,
                region: source.get("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: required("S3_ACCESS_KEY_ID")?,
                secret_access_key: required("S3_SECRET_ACCESS_KEY")?,
                public_url: source.get("S3_PUBLIC_URL"),
            })
        }
    };
    Ok(crate::storage::StorageSettings {
        backend,
        public_url: source.get("PUBLIC_URL"),
        upload_ttl: secs(source, "UPLOAD_URL_TTL_SECS", 900)?,
        private_ttl: secs(source, "PRIVATE_URL_TTL_SECS", 300)?,
        sweep_every: secs(source, "UPLOAD_SWEEP_SECS", 3600)?,
    })
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
        let production = environment == Environment::Production;
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
            Some(secret) if environment == Environment::Production && is_development_secret(&secret, &data_dir) => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "is a development secret (the generated DATA_DIR/jwt_secret or an example value); set a random one",
                ))
            }
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

        let elasticsearch_url = source.get("ELASTICSEARCH_URL");
        let search_prefix = source.get("SEARCH_PREFIX").unwrap_or_else(|| "master-guide".into());
        // Elasticsearch index names: lower case, none of its reserved characters, not led by - _ +.
        if search_prefix.is_empty()
            || search_prefix.len() > 100
            || search_prefix.starts_with(['-', '_', '+', '.'])
            || !search_prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        {
            return Err(ConfigError::new(
                "SEARCH_PREFIX",
                format!(
                    "'{search_prefix}' is not a valid index name prefix (a-z, 0-9, - _ .; not starting with - _ .)"
                ),
            ));
        }
        let storage = storage_settings(source, &data_dir)?;
        let config = Config {
            storage,
            environment,
            bind_addr,
            database: DatabaseSettings {
                url: database_url,
                max_connections: positive(source, "DB_MAX_CONNECTIONS", 100)?,
                min_connections: parse(source, "DB_MIN_CONNECTIONS", 10)?,
                max_lifetime: secs(source, "DB_MAX_LIFETIME_SECS", 3600)?,
                idle_timeout: secs(source, "DB_IDLE_TIMEOUT_SECS", 900)?,
                acquire_timeout: secs(source, "DB_ACQUIRE_TIMEOUT_SECS", 10)?,
                statement_timeout: secs(source, "DB_STATEMENT_TIMEOUT_SECS", 30)?,
            },
            redis_url: source.get("REDIS_URL"),
            auth: AuthSettings {
                jwt_secret,
                access_token_ttl: secs(source, "ACCESS_TOKEN_TTL_SECS", 900)?,
                refresh_token_ttl: secs(source, "REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
                mail: crate::domain::accounts::AccountMail {
                    app_url: source.get("APP_URL").unwrap_or_else(|| "http://localhost:3000".into()),
                    reset_ttl: secs(source, "PASSWORD_RESET_TTL_SECS", 3600)?,
                    verification_ttl: secs(source, "EMAIL_VERIFICATION_TTL_SECS", 24 * 3600)?,
                },
            },
            graphql: GraphqlLimits {
                introspection: parse(source, "GRAPHQL_INTROSPECTION", !production)?,
                graphiql: parse(source, "GRAPHIQL", !production)?,
                max_depth: positive(source, "GRAPHQL_MAX_DEPTH", 15)?,
                max_complexity: positive(source, "GRAPHQL_MAX_COMPLEXITY", 5000)?,
                max_fields: positive(source, "GRAPHQL_MAX_FIELDS", 2000)?,
                max_aliases: positive(source, "GRAPHQL_MAX_ALIASES", 50)?,
                max_batch: positive(source, "GRAPHQL_MAX_BATCH", 10)?,
                max_body_bytes: positive(source, "GRAPHQL_MAX_BODY_BYTES", 1024 * 1024)?,
                request_timeout: secs(source, "GRAPHQL_REQUEST_TIMEOUT_SECS", 15)?,
                ws_max_operations: positive(source, "WS_MAX_OPERATIONS", 32)?,
                ws_init_timeout: secs(source, "WS_INIT_TIMEOUT_SECS", 3)?,
                batch_delay: Duration::from_millis(positive(source, "GRAPHQL_BATCH_DELAY_MS", 1)?),
                persisted_only: parse(source, "PERSISTED_ONLY", false)?,
                persisted_manifest: source.get("PERSISTED_MANIFEST").map(PathBuf::from),
            },
            rate: RateLimits {
                enabled: parse(source, "RATE_LIMITS", true)?,
                login_account: rule(source, "RATE_LOGIN_ACCOUNT", "10/15m")?,
                login_ip: rule(source, "RATE_LOGIN_IP", "30/1m")?,
                reset_account: rule(source, "RATE_RESET_ACCOUNT", "3/1h")?,
                reset_ip: rule(source, "RATE_RESET_IP", "10/1h")?,
                register_ip: rule(source, "RATE_REGISTER_IP", "20/1h")?,
                anonymous_ip: rule(source, "RATE_ANONYMOUS_IP", "300/1m")?,
                mutation_user: rule(source, "RATE_MUTATION_USER", "120/1m")?,
                message_user: rule(source, "RATE_MESSAGE_USER", "30/1m")?,
                cost: rule(source, "RATE_COST", "100000/1m")?,
                ws_messages: rule(source, "RATE_WS_MESSAGES", "100/10s")?,
                upload_user: rule(source, "RATE_UPLOAD_USER", "200/1d")?,
                upload_mb_user: rule(source, "RATE_UPLOAD_MB_USER", "2048/1d")?,
                hash_concurrency: positive(
                    source,
                    "PASSWORD_HASH_CONCURRENCY",
                    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
                )?,
                hash_queue: secs(source, "PASSWORD_HASH_QUEUE_SECS", 5)?,
            },
            http: HttpSettings {
                cors_origins: list(source, "CORS_ORIGINS")
                    .into_iter()
                    .map(|origin| origin.trim_end_matches('/').to_string())
                    .collect(),
                cors_max_age: secs(source, "CORS_MAX_AGE_SECS", 600)?,
                trusted_proxies: list(source, "TRUSTED_PROXIES")
                    .iter()
                    .map(|net| net.parse().map_err(|message: String| ConfigError::new("TRUSTED_PROXIES", message)))
                    .collect::<Result<_, _>>()?,
                metrics_addr: source
                    .get("METRICS_ADDR")
                    .map(|raw| {
                        raw.trim()
                            .parse()
                            .map_err(|_| ConfigError::new("METRICS_ADDR", format!("'{raw}' is not host:port")))
                    })
                    .transpose()?,
                metrics_token: source.get("METRICS_TOKEN").map(SecretString::from),
                metrics_max_operations: positive(source, "METRICS_MAX_OPERATIONS", 200)?,
            },
            search: crate::search::SearchSettings {
                index: match source.get("SEARCH_INDEX") {
                    Some(raw) if raw.trim() == "memory" => crate::search::IndexLocation::Memory,
                    Some(raw) => crate::search::IndexLocation::Directory(PathBuf::from(raw.trim())),
                    None => crate::search::IndexLocation::Directory(data_dir.join("search")),
                },
                elasticsearch: elasticsearch_url
                    .map(|url| crate::search::ElasticSettings { url, prefix: search_prefix }),
                batch: positive(source, "SEARCH_BATCH", 500)?,
                paused: parse(source, "SEARCH_INDEXER_PAUSED", false)?,
            },
            mail: crate::mail::MailSettings {
                smtp_url: source.get("SMTP_URL"),
                from: source.get("MAIL_FROM").unwrap_or_else(|| "Master Guide <no-reply@masterguide.local>".into()),
                dir: source.get("MAIL_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("mail")),
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
        if production && config.http.metrics_addr.is_none() && config.http.metrics_token.is_none() {
            return Err(ConfigError::new(
                "METRICS_TOKEN",
                "production serves /metrics only on METRICS_ADDR or behind METRICS_TOKEN: set one",
            ));
        }
        if config.graphql.persisted_only && config.graphql.persisted_manifest.is_none() {
            return Err(ConfigError::new("PERSISTED_MANIFEST", "is required when PERSISTED_ONLY=true"));
        }
        if config.http.cors_origins.iter().any(|o| o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::new("CORS_ORIGINS", "each origin is `*` or scheme://host[:port]"));
        }
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

fn rule(source: &dyn Source, var: &'static str, default: &str) -> Result<RateRule, ConfigError> {
    let raw = source.get(var).unwrap_or_else(|| default.to_string());
    raw.parse().map_err(|message: String| ConfigError::new(var, message))
}

/// A comma-separated list; empty items dropped.
fn list(source: &dyn Source, var: &'static str) -> Vec<String> {
    source
        .get(var)
        .map(|raw| raw.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// Secrets that must never sign production tokens: the one development generated into DATA_DIR,
/// and the placeholders of the docs and docker-compose.yml.
fn is_development_secret(secret: &str, data_dir: &Path) -> bool {
    let generated = std::fs::read_to_string(data_dir.join("jwt_secret")).ok();
    let lowered = secret.to_ascii_lowercase();
    generated.is_some_and(|g| g.trim() == secret.trim())
        || ["change-me", "changeme", "development", "dev-secret", "example", "not-a-secret"]
            .iter()
            .any(|p| lowered.contains(p))
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
    fn production_turns_the_playground_off_and_refuses_development_secrets() {
        let dir = std::env::temp_dir().join(format!("mg-config-{}", uuid::Uuid::new_v4()));
        let dir = dir.to_string_lossy().to_string();
        let strong = "k3Q9-zt7VwX2pL8mN4bR6yH1cF5gJ0dS";
        let prod = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("DATA_DIR", dir.as_str()), ("APP_ENV", "production"), ("METRICS_TOKEN", "t0ken")];
            pairs.extend_from_slice(extra);
            Config::from_source(&source(&pairs))
        };
        let config = prod(&[("JWT_SECRET", strong)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.graphql.introspection && !config.graphql.graphiql);
        let on = prod(&[("JWT_SECRET", strong), ("GRAPHQL_INTROSPECTION", "true")]);
        assert!(on.map(|c| c.graphql.introspection).unwrap_or(false));
        let error = prod(&[("JWT_SECRET", "change-me-change-me-change-me-change-me")]);
        assert_eq!(error.err().map(|e| e.var), Some("JWT_SECRET"));
        // The secret development generated into DATA_DIR is refused too.
        let _ = Config::from_source(&source(&[("DATA_DIR", &dir)]));
        let generated = std::fs::read_to_string(std::path::Path::new(&dir).join("jwt_secret")).unwrap_or_default();
        let error = prod(&[("JWT_SECRET", &generated)]);
        assert_eq!(error.err().map(|e| e.var), Some("JWT_SECRET"));
        // /metrics must be protected in production.
        let error =
            Config::from_source(&source(&[("DATA_DIR", &dir), ("APP_ENV", "production"), ("JWT_SECRET", strong)]));
        assert_eq!(error.err().map(|e| e.var), Some("METRICS_TOKEN"));
    }

    #[test]
    fn rate_rules_and_networks_parse() {
        assert_eq!("10/15m".parse::<RateRule>(), Ok(RateRule { limit: 10, period: Duration::from_secs(900) }));
        assert_eq!("5/s".parse::<RateRule>().map(|r| r.period), Ok(Duration::from_secs(1)));
        assert!(
            "0/1m".parse::<RateRule>().is_err()
                && "10".parse::<RateRule>().is_err()
                && "1/3y".parse::<RateRule>().is_err()
        );
        let net: IpNet = "10.0.0.0/8".parse().unwrap_or_else(|e: String| panic!("{e}"));
        assert!(net.contains("10.1.2.3".parse().unwrap_or_else(|_| panic!())));
        assert!(!net.contains("11.0.0.1".parse().unwrap_or_else(|_| panic!())));
        let one: IpNet = "127.0.0.1".parse().unwrap_or_else(|e: String| panic!("{e}"));
        assert!(one.contains("127.0.0.1".parse().unwrap_or_else(|_| panic!())));
        assert!(!one.contains("127.0.0.2".parse().unwrap_or_else(|_| panic!())));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://***@h/db");
    }
}
