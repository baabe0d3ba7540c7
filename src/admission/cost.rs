//! What an operation costs, and the viewer's budget it is charged to.
//!
//! Every field costs 1; a connection multiplies what it selects by its page size ([`page`]), so
//! `circles(first: 100) { posts(first: 100) { comments(first: 100) } }` costs about 10^6 and is
//! refused before anything runs. Each operation's cost is charged to its viewer's budget
//! (`RATE_COST`, per user, or per IP when anonymous) and reported on the response as
//! `extensions.cost { requested, limit, remaining, resetAt }`.

use super::limits::Limiter;
use crate::config::RateRule;
use crate::domain::pagination::{DEFAULT_PAGE, MAX_PAGE};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Mutex;

/// No field's cost grows past this, so adding costs up never overflows.
const CEILING: usize = 1 << 40;

/// The cost of a connection field: its page size (`first` or `last`, else the default page, at
/// most the largest page) times what it selects, plus itself.
pub fn page(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first.or(last).map(|n| n.clamp(0, MAX_PAGE as i32) as usize).unwrap_or(DEFAULT_PAGE as usize);
    size.max(1).saturating_mul(child_complexity).saturating_add(1).min(CEILING)
}

/// What `extensions.cost` says.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// What this operation cost.
    pub requested: u64,
    /// The viewer's budget per window (`RATE_COST`).
    pub limit: u64,
    /// What is left of it now.
    pub remaining: u64,
    /// When the budget is whole again (whole seconds).
    #[serde(serialize_with = "seconds")]
    pub reset_at: DateTime<Utc>,
    /// Seconds from now until then (the `RateLimit-Reset` header).
    #[serde(skip)]
    pub reset_after: u64,
}

/// RFC 3339 to the second. Every response carries one, and most share the second: the text of the
/// last one is kept per thread.
fn seconds<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let secs = at.timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        serializer.serialize_str(&last.1)
    })
}

/// Charges one request's operations to its viewer's budget and remembers the report.
pub struct CostMeter {
    limiter: Limiter,
    rule: RateRule,
    subject: String,
    report: Mutex<Option<CostReport>>,
}

impl CostMeter {
    pub fn new(limiter: Limiter, rule: RateRule, subject: String) -> Self {
        Self { limiter, rule, subject, report: Mutex::new(None) }
    }

    /// Spends `cost` of the budget; RATE_LIMITED (with `retryAfter`) when it is not there.
    pub async fn charge(&self, cost: u64) -> Result<(), AppError> {
        let decision = self.limiter.check("cost", &self.rule, &self.subject, cost).await;
        let reset = chrono::Duration::from_std(decision.reset_after).unwrap_or_default();
        let report = CostReport {
            requested: cost,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_at: Utc::now() + reset,
            reset_after: decision.reset_after.as_secs(),
        };
        if let Ok(mut slot) = self.report.lock() {
            *slot = Some(report);
        }
        decision.into_result().map(|_| ())
    }

    pub fn report(&self) -> Option<CostReport> {
        self.report.lock().ok().and_then(|slot| *slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_multiply_what_they_select() {
        assert_eq!(page(Some(10), None, 3), 31);
        assert_eq!(page(None, Some(5), 2), 11);
        assert_eq!(page(None, None, 1), DEFAULT_PAGE as usize + 1);
        // Bounded by the largest page, and never overflowing.
        assert_eq!(page(Some(10_000), None, 1), MAX_PAGE as usize + 1);
        assert_eq!(page(Some(100), None, usize::MAX), CEILING);
        assert_eq!(page(Some(0), None, 7), 8);
    }
}
