//! Logging and metrics set up in one place: tracing subscriber (pretty or JSON, filtered by
//! RUST_LOG) and the Prometheus recorder behind /metrics.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// Installs the global subscriber (logs go to stderr, so a command's output on stdout stays clean);
/// a second call (tests) is a no-op.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,tower_http=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact().with_writer(std::io::stderr)).try_init(),
    };
}

/// The process-wide Prometheus recorder (metrics macros are global, so there is exactly one).
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)?
        .install_recorder()
        .or_else(|error| HANDLE.get().cloned().ok_or(error))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}
