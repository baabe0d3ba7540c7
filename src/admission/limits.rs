//! Rate limits: one GCRA (generic cell rate algorithm, a token bucket kept as one timestamp) per
//! rule and subject. With Redis every instance shares each bucket through one atomic script run on
//! Redis's own clock; without Redis, or while Redis fails, the buckets live in this process.
//!
//! A rule `N/period` lets a subject spend N units at once and gives one back every period/N.

use crate::config::RateRule;
use crate::error::AppError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a rate check waits for Redis before it decides in process.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The shared bucket, on Redis's clock: KEYS[1] holds the theoretical arrival time (TAT) in
/// microseconds. ARGV: emission interval (µs per unit), burst tolerance (µs), cost (units).
/// Returns { allowed (0/1), retry after (µs), TAT - now after the call (µs) }.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval * cost
local allow_at = next_tat - burst
if allow_at > now then
  return { 0, allow_at - now, tat - now }
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return { 1, 0, next_tat - now }
";

/// What a check decided, with what the `RateLimit-*` headers and `extensions.cost` report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule's N.
    pub limit: u64,
    /// Units the subject may still spend now.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// Until the refused call would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    fn from_tat(rule: &RateRule, allowed: bool, retry_after: Duration, tat_ahead: Duration) -> Self {
        let interval = rule.interval();
        let burst = rule.period.as_nanos();
        let used = tat_ahead.as_nanos().min(burst);
        let remaining =
            if interval.is_zero() { u64::from(rule.limit) } else { ((burst - used) / interval.as_nanos()) as u64 };
        Self { allowed, limit: u64::from(rule.limit), remaining, reset_after: tat_ahead, retry_after }
    }

    /// RATE_LIMITED with `retryAfter` (whole seconds, at least 1) when refused.
    pub fn into_result(self) -> Result<Self, AppError> {
        if self.allowed {
            Ok(self)
        } else {
            Err(AppError::RateLimited { retry_after_secs: self.retry_after_secs() })
        }
    }

    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The buckets of every rule, shared by all requests of this instance (and, through Redis, with the
/// other instances).
#[derive(Clone)]
pub struct Limiter(Arc<Inner>);

struct Inner {
    enabled: bool,
    prefix: String,
    redis: Option<(crate::redis_link::RedisLink, redis::Script)>,
    /// In-process buckets: TAT as time since `epoch`. Idle buckets leave (a bucket idle for its
    /// period is full anyway).
    local: moka::sync::Cache<String, Arc<Mutex<Duration>>>,
    epoch: Instant,
}

impl Limiter {
    pub fn new(enabled: bool, prefix: &str, redis: Option<crate::redis_link::RedisLink>) -> Self {
        Self(Arc::new(Inner {
            enabled,
            prefix: format!("{prefix}:rl"),
            redis: redis.map(|link| (link, redis::Script::new(GCRA_SCRIPT))),
            local: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
            epoch: Instant::now(),
        }))
    }

    /// Whether any rule is enforced (`RATE_LIMITS`).
    pub fn is_enabled(&self) -> bool {
        self.0.enabled
    }

    /// Spends `cost` units of `rule` for `subject` (an IP, a user id, an email), if it has them.
    pub async fn check(&self, name: &'static str, rule: &RateRule, subject: &str, cost: u64) -> Decision {
        let full = Decision {
            allowed: true,
            limit: u64::from(rule.limit),
            remaining: u64::from(rule.limit),
            reset_after: Duration::ZERO,
            retry_after: Duration::ZERO,
        };
        if !self.0.enabled {
            return full;
        }
        let key = format!("{}:{name}:{subject}", self.0.prefix);
        // Boxed: the Redis call is a large future, which every caller's future would otherwise
        // carry (and copy) even when limits are off.
        let decision = match Box::pin(self.shared(&key, rule, cost)).await {
            Some(decision) => decision,
            None => self.local(&key, rule, cost),
        };
        if !decision.allowed {
            metrics::counter!("rate_limited_total", "rule" => name).increment(1);
        }
        decision
    }

    async fn shared(&self, key: &str, rule: &RateRule, cost: u64) -> Option<Decision> {
        let (link, script) = self.0.redis.as_ref()?;
        let mut connection = link.connection()?;
        let mut invocation = script.key(key);
        invocation.arg(rule.interval().as_micros().max(1) as u64).arg(rule.period.as_micros() as u64).arg(cost);
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<(i64, i64, i64)>(&mut connection)).await {
            Ok(Ok((allowed, retry, ahead))) => Some(Decision::from_tat(
                rule,
                allowed == 1,
                Duration::from_micros(retry.max(0) as u64),
                Duration::from_micros(ahead.max(0) as u64),
            )),
            Ok(Err(error)) => {
                degraded(&error.to_string());
                link.failed(Some(&error));
                None
            }
            Err(_) => {
                degraded("timed out");
                link.failed(None);
                None
            }
        }
    }

    fn local(&self, key: &str, rule: &RateRule, cost: u64) -> Decision {
        let now = self.0.epoch.elapsed();
        let cell = self.0.local.get_with(key.to_string(), || Arc::new(Mutex::new(now)));
        let Ok(mut tat) = cell.lock() else {
            return Decision::from_tat(rule, true, Duration::ZERO, Duration::ZERO);
        };
        let current = (*tat).max(now);
        let next = current + rule.interval().saturating_mul(u32::try_from(cost).unwrap_or(u32::MAX));
        let allow_at = next.saturating_sub(rule.period);
        if allow_at > now {
            return Decision::from_tat(rule, false, allow_at - now, current - now);
        }
        *tat = next;
        Decision::from_tat(rule, true, Duration::ZERO, next - now)
    }
}

/// The bucket of a client address: an IPv4 address, or the /64 of an IPv6 one (a single host
/// usually holds a whole /64, so per-address buckets would be free for the taking).
pub fn ip_key(ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

/// A sign-in attempt: per client IP and per account (the normalized email), before any hashing.
pub async fn sign_in(app: &crate::app::AppState, ip: Option<std::net::IpAddr>, email: &str) -> Result<(), AppError> {
    let live = app.settings.live();
    let rules = &live.rate;
    let ip = ip_key(ip);
    app.limiter.check("login_ip", &rules.login_ip, &ip, 1).await.into_result()?;
    let account = email.trim().to_lowercase();
    app.limiter.check("login_account", &rules.login_account, &account, 1).await.into_result()?;
    Ok(())
}

/// A password-reset request or use (and an email-verification request): per client IP, and per
/// account when one is named (the normalized email, or another key naming the account; a code's
/// use names none: its own entropy guards it), before any work.
pub async fn password_reset(
    app: &crate::app::AppState,
    ip: Option<std::net::IpAddr>,
    account: Option<&str>,
) -> Result<(), AppError> {
    let live = app.settings.live();
    let rules = &live.rate;
    app.limiter.check("reset_ip", &rules.reset_ip, &ip_key(ip), 1).await.into_result()?;
    if let Some(account) = account {
        let account = account.trim().to_lowercase();
        app.limiter.check("reset_account", &rules.reset_account, &account, 1).await.into_result()?;
    }
    Ok(())
}

/// A registration: per client IP.
pub async fn sign_up(app: &crate::app::AppState, ip: Option<std::net::IpAddr>) -> Result<(), AppError> {
    let ip = ip_key(ip);
    app.limiter.check("register_ip", &app.settings.live().rate.register_ip, &ip, 1).await.into_result().map(|_| ())
}

/// A message sent: per user.
pub async fn message(app: &crate::app::AppState, user: uuid::Uuid) -> Result<(), AppError> {
    app.limiter
        .check("message", &app.settings.live().rate.message_user, &user.to_string(), 1)
        .await
        .into_result()
        .map(|_| ())
}

/// An upload started: per user, one upload and its declared megabytes (rounded up).
pub async fn upload(app: &crate::app::AppState, user: uuid::Uuid, bytes: u64) -> Result<(), AppError> {
    let rate = &app.settings.live().rate;
    let user = user.to_string();
    app.limiter.check("upload", &rate.upload_user, &user, 1).await.into_result()?;
    let mb = bytes.div_ceil(1024 * 1024).max(1);
    app.limiter.check("upload_mb", &rate.upload_mb_user, &user, mb).await.into_result().map(|_| ())
}

fn degraded(error: &str) {
    metrics::counter!("rate_limit_redis_errors_total").increment(1);
    tracing::debug!(error, "Redis rate limits unavailable; limiting in this instance only");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_allowed_then_refused_with_a_retry_time() {
        let limiter = Limiter::new(true, "t", None);
        let rule = RateRule { limit: 5, period: Duration::from_secs(60) };
        for left in (0..5).rev() {
            let decision = limiter.check("login", &rule, "a@x", 1).await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, left);
        }
        let refused = limiter.check("login", &rule, "a@x", 1).await;
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(10) && refused.retry_after <= Duration::from_secs(12));
        assert_eq!(refused.retry_after_secs(), refused.retry_after.as_secs_f64().ceil() as u64);
        // Another subject has its own bucket.
        assert!(limiter.check("login", &rule, "b@x", 1).await.allowed);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = ip_key("2001:db8:1:2:aaaa::1".parse().ok());
        assert_eq!(a, ip_key("2001:db8:1:2:bbbb::9".parse().ok()));
        assert_ne!(a, ip_key("2001:db8:1:3::1".parse().ok()));
        assert_eq!(ip_key("::ffff:203.0.113.9".parse().ok()), "203.0.113.9");
        assert_eq!(ip_key("203.0.113.9".parse().ok()), "203.0.113.9");
    }

    #[tokio::test]
    async fn costs_spend_several_units_and_a_disabled_limiter_allows_everything() {
        let limiter = Limiter::new(true, "t", None);
        let rule = RateRule { limit: 100, period: Duration::from_secs(60) };
        assert_eq!(limiter.check("cost", &rule, "u", 60).await.remaining, 40);
        assert!(!limiter.check("cost", &rule, "u", 41).await.allowed);
        assert!(limiter.check("cost", &rule, "u", 40).await.allowed);
        let off = Limiter::new(false, "t", None);
        for _ in 0..10 {
            assert!(off.check("cost", &rule, "u", 100).await.allowed);
        }
    }
}
