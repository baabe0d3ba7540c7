//! Persisted operations.
//!
//! - Automatic Persisted Queries as Apollo clients send them: `extensions.persistedQuery
//!   { version: 1, sha256Hash }`. A hash the server does not know is PERSISTED_QUERY_NOT_FOUND, and
//!   the client retries with the text; a text is checked against its hash before it is kept. The
//!   texts live in the cache facade (both levels), so every instance knows a hash once one does.
//! - Trusted documents (`PERSISTED_ONLY=true`): only the operations of the manifest the apps' build
//!   produced run; anything else is refused before it is parsed.

use crate::cache::Cache;
use crate::error::AppError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// How long an automatically persisted text is kept after it was last registered.
const APQ_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const APQ_NAMESPACE: &str = "apq";

pub struct Persisted {
    cache: Cache,
    /// hash -> document, when the server runs trusted documents only.
    manifest: Option<HashMap<String, String>>,
}

impl Persisted {
    pub fn new(cache: Cache, manifest: Option<HashMap<String, String>>) -> Self {
        Self { cache, manifest }
    }

    /// Replaces a persisted request's hash with its text (and drops the `persistedQuery`
    /// extension, which has done its work), or refuses it. `Some(hash)` when the request brought a
    /// new text for a hash: [`Persisted::register`] it once the text passed admission's checks.
    pub async fn resolve(&self, request: &mut async_graphql::Request) -> Result<Option<String>, AppError> {
        let hash = match request.extensions.0.remove("persistedQuery") {
            None => None,
            Some(value) => Some(hash_of(value.into_json().unwrap_or_default())?),
        };
        if let Some(manifest) = &self.manifest {
            // Trusted documents: the hash must name a manifest entry; a text alone never runs.
            let known = hash.as_deref().and_then(|hash| manifest.get(hash));
            return match known {
                Some(text) => {
                    request.query = text.clone();
                    Ok(None)
                }
                None => Err(AppError::PersistedQueryNotInList),
            };
        }
        let Some(hash) = hash else { return Ok(None) };
        if request.query.trim().is_empty() {
            // Boxed: a cache read is a large future; most requests carry no hash at all.
            return match Box::pin(self.cache.text(APQ_NAMESPACE, &hash)).await {
                Some(text) => {
                    request.query = text;
                    Ok(None)
                }
                None => Err(AppError::PersistedQueryNotFound),
            };
        }
        if sha256_hex(&request.query) != hash {
            return Err(AppError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "does not match the query's SHA-256",
            ));
        }
        Ok(Some(hash))
    }

    /// Keeps the text of `hash` (it matched, and passed the size, nesting, expansion and rate
    /// checks, so no anonymous flood of texts gets stored).
    pub async fn register(&self, hash: &str, text: &str) {
        self.cache.put_text(APQ_NAMESPACE, hash, text, APQ_TTL).await;
    }
}

fn hash_of(extension: serde_json::Value) -> Result<String, AppError> {
    let field = "extensions.persistedQuery";
    if extension.get("version").and_then(|v| v.as_i64()).is_some_and(|v| v != 1) {
        return Err(AppError::bad_input(format!("{field}.version"), "only version 1 is supported"));
    }
    let hash = extension
        .get("sha256Hash")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AppError::bad_input(format!("{field}.sha256Hash"), "is required"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::bad_input(format!("{field}.sha256Hash"), "is not a SHA-256 in hex"));
    }
    Ok(hash)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads a manifest: either a JSON object of hash -> document, or Apollo's
/// `{ "format": "apollo-persisted-query-manifest", "operations": [{ "id", "body" }] }`. Every entry's
/// hash is checked against its text, so a manifest cannot run a document it does not show.
pub fn load_manifest(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let entries: Vec<(String, String)> = match &json {
        serde_json::Value::Object(map) if map.contains_key("operations") => map["operations"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("`operations` is not an array"))?
            .iter()
            .map(|op| {
                let body = op.get("body").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                let id = op.get("id").and_then(|v| v.as_str()).map(String::from).unwrap_or_else(|| sha256_hex(&body));
                (id, body)
            })
            .collect(),
        serde_json::Value::Object(map) => {
            map.iter().map(|(hash, body)| (hash.clone(), body.as_str().unwrap_or_default().to_string())).collect()
        }
        _ => anyhow::bail!("expected a JSON object"),
    };
    let mut manifest = HashMap::with_capacity(entries.len());
    for (hash, body) in entries {
        let hash = hash.to_ascii_lowercase();
        if body.trim().is_empty() || sha256_hex(&body) != hash {
            anyhow::bail!("entry {hash}: the document's SHA-256 differs from its key");
        }
        manifest.insert(hash, body);
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_checked_entry_by_entry() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("mg-manifest-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let doc = "query Me { me { id } }";
        let plain = dir.join("plain.json");
        std::fs::write(&plain, serde_json::json!({ sha256_hex(doc): doc }).to_string())?;
        assert_eq!(load_manifest(&plain)?.get(&sha256_hex(doc)).map(String::as_str), Some(doc));
        let apollo = dir.join("apollo.json");
        std::fs::write(
            &apollo,
            serde_json::json!({ "format": "apollo-persisted-query-manifest", "version": 1,
                "operations": [{ "id": sha256_hex(doc), "name": "Me", "type": "query", "body": doc }] })
            .to_string(),
        )?;
        assert_eq!(load_manifest(&apollo)?.len(), 1);
        let forged = dir.join("forged.json");
        std::fs::write(&forged, serde_json::json!({ sha256_hex("query { x }"): doc }).to_string())?;
        assert!(load_manifest(&forged).is_err());
        Ok(())
    }

    #[test]
    fn hashes_are_validated() {
        assert!(hash_of(serde_json::json!({ "version": 1, "sha256Hash": "abc" })).is_err());
        assert!(hash_of(serde_json::json!({ "version": 2, "sha256Hash": sha256_hex("x") })).is_err());
        assert_eq!(
            hash_of(serde_json::json!({ "version": 1, "sha256Hash": sha256_hex("x") })).ok(),
            Some(sha256_hex("x"))
        );
    }
}
