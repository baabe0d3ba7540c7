//! Parsed input values ("parse, don't validate"): once built, they are known to be valid.

use crate::error::{AppError, AppResult};
use rust_decimal::Decimal;

/// A normalized email address (trimmed, lowercase, at most 255 characters, `local@domain.tld`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str, field: &str) -> AppResult<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = || AppError::bad_input(field, "email address is not valid");
        if email.is_empty() || email.len() > 255 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number: digits with an optional leading `+`, spaces and dashes allowed, 6..20 characters.
pub fn parse_phone(raw: Option<String>, field: &str) -> AppResult<Option<String>> {
    let Some(raw) = raw else { return Ok(None) };
    let phone = raw.trim().to_string();
    if phone.is_empty() {
        return Ok(None);
    }
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let shape_ok =
        phone.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (i == 0 && c == '+'));
    if phone.len() > 20 || digits < 6 || !shape_ok {
        return Err(AppError::bad_input(field, "phone number must be 6-20 digits, optionally starting with +"));
    }
    Ok(Some(phone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ", "e").map(|e| e.into_inner()).ok(),
            Some("ada@example.com".into())
        );
        for bad in ["", "plain", "a@b", "a@@b.com", "a b@c.com", "@c.com", "a@.com", "a@c..com", "a@c.com."] {
            assert!(Email::parse(bad, "e").is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@x.com", "a".repeat(250)), "e").is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(parse_phone(Some("+86 138-0000-0000".into()), "p").ok().flatten(), Some("+86 138-0000-0000".into()));
        assert_eq!(parse_phone(None, "p").ok().flatten(), None);
        assert!(parse_phone(Some("12ab".into()), "p").is_err());
        assert!(parse_phone(Some("1+2345678".into()), "p").is_err());
        assert!(parse_phone(Some("1".repeat(21)), "p").is_err());
    }
}

/// Trimmed text of `min..=max` characters.
pub fn text(field: &str, raw: &str, min: usize, max: usize) -> AppResult<String> {
    let value = raw.trim().to_string();
    let chars = value.chars().count();
    if chars < min {
        return Err(AppError::bad_input(
            field,
            if min <= 1 { "must not be empty".to_string() } else { format!("must be at least {min} characters") },
        ));
    }
    if chars > max {
        return Err(AppError::bad_input(field, format!("must be at most {max} characters")));
    }
    Ok(value)
}

/// Optional text: `None` and blank become `None`.
pub fn optional_text(field: &str, raw: Option<String>, max: usize) -> AppResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => text(field, &raw, 1, max).map(Some),
    }
}

/// An absolute http(s) URL of at most `max` characters.
pub fn url(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let value = raw.trim();
    let invalid = || AppError::bad_input(field, "must be an http(s) URL");
    if value.len() > max {
        return Err(AppError::bad_input(field, format!("must be at most {max} characters")));
    }
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://")).ok_or_else(invalid)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_ok = !host.is_empty()
        && host.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '@' | '_'));
    if !host_ok || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    Ok(value.to_string())
}

pub fn optional_url(field: &str, raw: Option<String>, max: usize) -> AppResult<Option<String>> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => url(field, &raw, max).map(Some),
    }
}

/// A list of at most `max_items` non-empty strings of at most `max_len` characters, duplicates removed.
pub fn string_list(field: &str, items: Vec<String>, max_items: usize, max_len: usize) -> AppResult<Vec<String>> {
    if items.len() > max_items {
        return Err(AppError::bad_input(field, format!("at most {max_items} items")));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let value = text(&format!("{field}[{index}]"), item, 1, max_len)?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

pub fn url_list(field: &str, items: Vec<String>, max_items: usize) -> AppResult<Vec<String>> {
    if items.len() > max_items {
        return Err(AppError::bad_input(field, format!("at most {max_items} items")));
    }
    items.iter().enumerate().map(|(index, item)| url(&format!("{field}[{index}]"), item, 500)).collect()
}

/// Money for a DECIMAL(10,2) column: >= 0, at most 2 decimals, below 100,000,000.
pub fn money(field: &str, value: rust_decimal::Decimal) -> AppResult<rust_decimal::Decimal> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(AppError::bad_input(field, "must not be negative"));
    }
    if value.normalize().scale() > 2 {
        return Err(AppError::bad_input(field, "at most 2 decimal places"));
    }
    if value >= rust_decimal::Decimal::new(100_000_000, 0) {
        return Err(AppError::bad_input(field, "must be below 100000000"));
    }
    Ok(scale2(value))
}

/// A money value with exactly two decimals ("199.00"), whatever the backend returned.
pub fn scale2(value: rust_decimal::Decimal) -> rust_decimal::Decimal {
    let mut value = value.round_dp(2);
    value.rescale(2);
    value
}

/// An integer within `min..=max`.
pub fn int_range(field: &str, value: i32, min: i32, max: i32) -> AppResult<i32> {
    if value < min || value > max {
        return Err(AppError::bad_input(field, format!("must be between {min} and {max}")));
    }
    Ok(value)
}

/// An id sent by a client: a UUID, or NOT_FOUND (an id that cannot exist names nothing).
pub fn id(field: &str, raw: &str) -> AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| AppError::bad_input(field, "is not a valid id"))
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn urls() {
        assert!(url("u", "https://example.com/a?b#c", 500).is_ok());
        assert!(url("u", "http://localhost:8000", 500).is_ok());
        for bad in ["ftp://x.com", "javascript:alert(1)", "https://", "https:// x.com", "example.com"] {
            assert!(url("u", bad, 500).is_err(), "{bad}");
        }
        assert!(url("u", &format!("https://x.com/{}", "a".repeat(500)), 500).is_err());
    }

    #[test]
    fn money_values() {
        assert_eq!(money("m", Decimal::new(19999, 2)).ok(), Some(Decimal::new(19999, 2)));
        assert_eq!(money("m", Decimal::new(5, 0)).map(|d| d.to_string()).ok(), Some("5.00".into()));
        assert!(money("m", Decimal::new(-1, 2)).is_err());
        assert!(money("m", Decimal::new(1001, 3)).is_err());
        assert!(money("m", Decimal::new(100_000_000, 0)).is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(
            string_list("s", vec!["a".into(), " a ".into(), "b".into()], 30, 50).ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert!(string_list("s", vec!["x".into(); 31], 30, 50).is_err());
        assert!(string_list("s", vec!["x".repeat(51)], 30, 50).is_err());
        assert!(string_list("s", vec!["  ".into()], 30, 50).is_err());
    }
}

/// The one rounding rule for ratings, shared by the app and `master-guide reconcile`: the exact mean
/// of `count` ratings summing to `sum`, to two places, half away from zero (4.125 is 4.13); 0 with
/// no ratings. Reconcile's SQL computes the same with integers: `(200 * sum + count) / (2 * count)`
/// hundredths.
pub fn average_rating(sum: i64, count: i64) -> Decimal {
    if count == 0 {
        return Decimal::ZERO;
    }
    (Decimal::from(sum) / Decimal::from(count))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod rating_tests {
    use super::*;

    #[test]
    fn ratings_round_half_away_from_zero_exactly() {
        assert_eq!(average_rating(33, 8).to_string(), "4.13"); // 4.125
        assert_eq!(average_rating(823, 200).to_string(), "4.12"); // 4.115, not representable in f64
        assert_eq!(average_rating(9, 2).to_string(), "4.50");
        assert_eq!(average_rating(0, 0), Decimal::ZERO);
        // The SQL rule gives the same hundredths.
        for (sum, count) in [(33i64, 8i64), (823, 200), (9, 2), (14, 3), (5, 1)] {
            let hundredths = (200 * sum + count) / (2 * count);
            assert_eq!(Decimal::new(hundredths, 2), average_rating(sum, count), "{sum}/{count}");
        }
    }
}
