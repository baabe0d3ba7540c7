//! The one error type of the API. Every variant maps to a GraphQL error with a stable
//! `extensions.code` that clients switch on; internal causes are logged, never shown.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Stable codes in `extensions.code`.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const CONFLICT: &str = "CONFLICT";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    pub const PERSISTED_QUERY_NOT_IN_LIST: &str = "PERSISTED_QUERY_NOT_IN_LIST";
    pub const FEATURE_DISABLED: &str = "FEATURE_DISABLED";
    pub const INTERNAL: &str = "INTERNAL";

    /// Every code, for classifying errors and for the test that each one is produced.
    pub const ALL: &[&str] = &[
        UNAUTHENTICATED,
        FORBIDDEN,
        NOT_FOUND,
        BAD_USER_INPUT,
        CONFLICT,
        RATE_LIMITED,
        QUERY_TOO_COMPLEX,
        TIMEOUT,
        PERSISTED_QUERY_NOT_FOUND,
        PERSISTED_QUERY_NOT_IN_LIST,
        FEATURE_DISABLED,
        INTERNAL,
    ];
}

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error without
/// extensions, so `?` on an `AppError` must go through our `From` impl, which always sets the code.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound {
        entity: &'static str,
    },
    /// Bad input on one field; `field` is the input path the client sent (e.g. `input.email`).
    BadInput {
        field: String,
        message: String,
    },
    /// Bad input on several fields at once, each `(field, message)`: every one is reported, as
    /// its own error with its own `extensions.field` (see [`Checks`]).
    Invalid(Vec<(String, String)>),
    Conflict {
        field: Option<String>,
        message: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    QueryTooComplex(String),
    /// An operation costs more than one operation may (`cost` against `max`).
    TooCostly {
        cost: u64,
        max: u64,
    },
    Timeout,
    /// An Automatic Persisted Query hash this server does not know: send the text with it.
    PersistedQueryNotFound,
    /// Trusted documents only: the operation is not in the manifest.
    PersistedQueryNotInList,
    /// An admin switched the feature off for now (`extensions.feature` names its system config).
    FeatureDisabled {
        feature: &'static str,
    },
    Internal(anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput { field: field.into(), message: message.into() }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict { field: Some(field.into()), message: message.into() }
    }

    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }

    pub fn unauthenticated() -> Self {
        Self::Unauthenticated("authentication required".into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// The message shown to clients; internal causes are never part of it.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(message) | Self::Forbidden(message) | Self::QueryTooComplex(message) => {
                message.clone()
            }
            Self::NotFound { entity } => format!("{entity} not found"),
            Self::BadInput { message, .. } | Self::Conflict { message, .. } => message.clone(),
            Self::Invalid(fields) => fields.first().map(|(_, message)| message.clone()).unwrap_or_default(),
            Self::RateLimited { retry_after_secs } => format!("too many requests, retry in {retry_after_secs}s"),
            Self::TooCostly { cost, max } => {
                format!(
                    "the operation costs {cost}; one operation may cost at most {max} (lists count their page size)"
                )
            }
            Self::Timeout => "the request took too long and was stopped".into(),
            Self::PersistedQueryNotFound => "PersistedQueryNotFound".into(),
            Self::PersistedQueryNotInList => "only the operations persisted by the apps' build run here".into(),
            Self::FeatureDisabled { feature } => format!("{feature} is switched off for now; try again later"),
            Self::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => code::UNAUTHENTICATED,
            Self::Forbidden(_) => code::FORBIDDEN,
            Self::NotFound { .. } => code::NOT_FOUND,
            Self::BadInput { .. } | Self::Invalid(_) => code::BAD_USER_INPUT,
            Self::Conflict { .. } => code::CONFLICT,
            Self::RateLimited { .. } => code::RATE_LIMITED,
            Self::QueryTooComplex(_) | Self::TooCostly { .. } => code::QUERY_TOO_COMPLEX,
            Self::Timeout => code::TIMEOUT,
            Self::PersistedQueryNotFound => code::PERSISTED_QUERY_NOT_FOUND,
            Self::PersistedQueryNotInList => code::PERSISTED_QUERY_NOT_IN_LIST,
            Self::FeatureDisabled { .. } => code::FEATURE_DISABLED,
            Self::Internal(_) => code::INTERNAL,
        }
    }

    /// Turns a unique-constraint violation into a CONFLICT on `field`; anything else stays internal.
    pub fn on_unique(field: &'static str, message: &'static str) -> impl FnOnce(DbErr) -> AppError {
        move |error| match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict { field: Some(field.to_string()), message: message.to_string() }
            }
            _ => AppError::from(error),
        }
    }

    pub fn to_graphql(&self) -> async_graphql::Error {
        if let Self::Internal(cause) = self {
            // The full chain goes to the log with the request's span; the client sees only the code.
            tracing::error!(error = ?cause, "internal error");
        }
        async_graphql::Error::new(self.message()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                Self::BadInput { field, .. } => ext.set("field", field.as_str()),
                Self::Invalid(fields) => {
                    // The first here; the response guard turns `invalid` into one error per field.
                    if let Some((field, _)) = fields.first() {
                        ext.set("field", field.as_str());
                    }
                    let list = fields
                        .iter()
                        .map(|(field, message)| {
                            let mut entry = async_graphql::indexmap::IndexMap::new();
                            entry.insert(async_graphql::Name::new("field"), async_graphql::Value::from(field.as_str()));
                            entry.insert(
                                async_graphql::Name::new("message"),
                                async_graphql::Value::from(message.as_str()),
                            );
                            async_graphql::Value::Object(entry)
                        })
                        .collect::<Vec<_>>();
                    ext.set(INVALID_FIELDS, async_graphql::Value::List(list));
                }
                Self::Conflict { field: Some(field), .. } => ext.set("field", field.as_str()),
                Self::NotFound { entity } => ext.set("entity", *entity),
                Self::FeatureDisabled { feature } => ext.set("feature", *feature),
                Self::RateLimited { retry_after_secs } => ext.set("retryAfter", *retry_after_secs),
                Self::TooCostly { cost, max } => {
                    ext.set("cost", *cost);
                    ext.set("maxCost", *max);
                }
                _ => {}
            }
        })
    }
}

/// The extension key under which [`AppError::Invalid`] carries its fields to the response guard.
pub const INVALID_FIELDS: &str = "invalid";

/// Checks several fields of one input and reports every bad one at once: [`Checks::on`] keeps a
/// field's value or records why it is bad, [`Checks::finish`] fails with all of them.
#[derive(Default)]
pub struct Checks {
    invalid: Vec<(String, String)>,
    other: Option<AppError>,
}

impl Checks {
    /// The checked value; on bad input records it and gives `T::default()` (never used, as
    /// [`Checks::finish`] then fails).
    pub fn on<T: Default>(&mut self, result: AppResult<T>) -> T {
        match result {
            Ok(value) => value,
            Err(error) => {
                self.record(error);
                T::default()
            }
        }
    }

    /// Records one more bad field.
    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push((field.into(), message.into()));
    }

    fn record(&mut self, error: AppError) {
        match error {
            AppError::BadInput { field, message } => self.invalid.push((field, message)),
            AppError::Invalid(fields) => self.invalid.extend(fields),
            other => {
                self.other.get_or_insert(other);
            }
        }
    }

    /// Ok when every field passed; otherwise the first error that is not bad input, or all the
    /// bad fields.
    pub fn finish(mut self) -> AppResult<()> {
        if let Some(other) = self.other {
            return Err(other);
        }
        match self.invalid.len() {
            0 => Ok(()),
            1 => {
                let (field, message) = self.invalid.remove(0);
                Err(AppError::BadInput { field, message })
            }
            _ => Err(AppError::Invalid(self.invalid)),
        }
    }
}

impl From<DbErr> for AppError {
    fn from(error: DbErr) -> Self {
        // Pool exhaustion and connection loss are still INTERNAL for the client, but get their own log line.
        if let DbErr::Conn(RuntimeErr::SqlxError(_)) | DbErr::ConnectionAcquire(_) = &error {
            tracing::warn!(error = %error, "database unavailable");
        }
        Self::Internal(anyhow::Error::new(error))
    }
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        Self::Internal(error)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(error: AppError) -> Self {
        error.to_graphql()
    }
}
