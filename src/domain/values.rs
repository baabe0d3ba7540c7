//! Parsed input values ("parse, don't validate"): once built, they are known to be valid.

use crate::error::{AppError, AppResult};

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
