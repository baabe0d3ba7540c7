//! The Elasticsearch 8 backend, through the official client. What it sends is kept readable in
//! `elasticsearch/` (mappings per collection, the query skeleton, and a README of how the query
//! is filled in); the terms it indexes and matches are the server's own analysis, the same as
//! the embedded index's.
//!
//! - Indices are versioned (`{prefix}-{collection}-{millis}`) behind the alias
//!   `{prefix}-{collection}`: a rebuild fills a new index beside the live one and swaps the alias
//!   atomically, so searches never stop.
//! - Every write carries an external version (when its rows were read): Elasticsearch keeps the
//!   newest read, whichever instance or rebuild wrote last.

use super::analysis::{self, Matcher, QueryWord};
use super::{
    Backend, Collection, Document, FieldKind, Filter, Hit, Order, Request, Results, FACET_SIZE, PINYIN_WEIGHT,
};
use anyhow::{bail, Context};
use elasticsearch::auth::Credentials;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{StatusCode, Url};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts, IndicesPutSettingsParts, IndicesRefreshParts,
};
use elasticsearch::params::{Refresh, VersionType};
use elasticsearch::{BulkOperation, BulkParts, Elasticsearch, SearchParts};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Longest a search may take before the facade answers from the database.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest any other request may take (a bulk of a rebuild included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Documents per bulk request of a rebuild.
const BULK_CHUNK: usize = 1_000;
/// An index of ours without the alias and older than this is a rebuild that died: deleted.
const ORPHAN_AGE_MS: i64 = 3_600_000;

const QUERY: &str = include_str!("elasticsearch/query.json");

/// Settings: `ELASTICSEARCH_URL` (credentials may be in it: `https://user:password@host:9200`)
/// and `SEARCH_PREFIX` (index and alias names; default `master-guide`).
#[derive(Clone, Debug, PartialEq)]
pub struct ElasticSettings {
    pub url: String,
    pub prefix: String,
}

pub struct Elastic {
    client: Elasticsearch,
    prefix: String,
}

/// The mapping and settings of a collection's index, as written in its file.
pub fn index_body(collection: Collection) -> Value {
    let text = match collection {
        Collection::Courses => include_str!("elasticsearch/courses.json"),
        Collection::Mentors => include_str!("elasticsearch/mentors.json"),
        Collection::Circles => include_str!("elasticsearch/circles.json"),
    };
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl Elastic {
    /// Connects (checking that the cluster answers and is version 8 or later).
    pub async fn open(settings: &ElasticSettings) -> anyhow::Result<Self> {
        let mut url = Url::parse(&settings.url).context("ELASTICSEARCH_URL")?;
        let credentials = match (url.username(), url.password()) {
            ("", _) => None,
            (user, password) => Some(Credentials::Basic(decode(user), decode(password.unwrap_or("")))),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut transport = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(REQUEST_TIMEOUT);
        if let Some(credentials) = credentials {
            transport = transport.auth(credentials);
        }
        let client = Elasticsearch::new(transport.build()?);
        let info: Value = client
            .info()
            .request_timeout(SEARCH_TIMEOUT)
            .send()
            .await
            .context("Elasticsearch does not answer")?
            .error_for_status_code()?
            .json()
            .await?;
        let version = info["version"]["number"].as_str().unwrap_or_default();
        let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        if major < 8 {
            bail!("Elasticsearch {version} is too old: 8 or later is needed");
        }
        tracing::info!(version, prefix = %settings.prefix, "search on Elasticsearch");
        Ok(Self { client, prefix: settings.prefix.clone() })
    }

    fn alias(&self, collection: Collection) -> String {
        format!("{}-{}", self.prefix, collection.name())
    }

    /// The concrete indices `alias` points to (none when it does not exist).
    async fn targets(&self, alias: &str) -> anyhow::Result<Vec<String>> {
        let response = self.client.indices().get_alias(IndicesGetAliasParts::Name(&[alias])).send().await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body: Value = response.error_for_status_code()?.json().await?;
        Ok(body.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    async fn bulk(
        &self,
        index: &str,
        live: bool,
        version: i64,
        upserts: &[Document],
        deletes: &[Uuid],
    ) -> anyhow::Result<()> {
        let mut operations: Vec<BulkOperation<Value>> = Vec::with_capacity(upserts.len() + deletes.len());
        for document in upserts {
            let operation = BulkOperation::index(source(document))
                .id(document.id.to_string())
                .version(version)
                .version_type(VersionType::External);
            operations.push(operation.into());
        }
        for id in deletes {
            let operation =
                BulkOperation::<Value>::delete(id.to_string()).version(version).version_type(VersionType::External);
            operations.push(operation.into());
        }
        let mut request = self.client.bulk(BulkParts::Index(index)).body(operations);
        if live {
            // Through the alias only: a missing alias must fail, not auto-create an index by its
            // name.
            request = request.require_alias(true).refresh(Refresh::True);
        }
        let body: Value = checked(request.send().await?).await?.json().await?;
        bulk_errors(&body)
    }

    /// Deletes indices of ours that no alias points to and that a rebuild left behind long ago.
    async fn delete_orphans(&self, collection: Collection, alias: &str) -> anyhow::Result<()> {
        let pattern = format!("{alias}-*");
        let response = self.client.indices().get_alias(IndicesGetAliasParts::Index(&[&pattern])).send().await?;
        if response.status_code() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body: Value = checked(response).await?.json().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let orphans: Vec<String> = body
            .as_object()
            .map(|indices| {
                indices
                    .iter()
                    .filter(|(_, v)| v["aliases"].as_object().is_none_or(|a| a.is_empty()))
                    .map(|(name, _)| name.clone())
                    .filter(|name| {
                        let born = name.rsplit('-').next().and_then(|t| t.parse::<i64>().ok());
                        born.is_some_and(|born| now - born > ORPHAN_AGE_MS)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !orphans.is_empty() {
            tracing::warn!(collection = collection.name(), ?orphans, "deleting indices of interrupted rebuilds");
            let names: Vec<&str> = orphans.iter().map(String::as_str).collect();
            checked(self.client.indices().delete(IndicesDeleteParts::Index(&names)).send().await?).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for Elastic {
    fn name(&self) -> &'static str {
        "elasticsearch"
    }

    /// Every collection has its alias (a build finished once).
    async fn is_empty(&self) -> anyhow::Result<bool> {
        for collection in Collection::ALL {
            if self.targets(&self.alias(collection)).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn search(&self, request: &Request, matcher: &Matcher) -> anyhow::Result<Results> {
        let body = search_body(request, matcher)?;
        let alias = self.alias(request.collection);
        let response =
            self.client.search(SearchParts::Index(&[&alias])).request_timeout(SEARCH_TIMEOUT).body(body).send().await?;
        let response = checked(response).await?;
        let body: Value = response.json().await?;
        parse_results(request, &body)
    }

    /// Writes these documents and removes those, through the alias (refreshed at once: an edit
    /// is searchable when this returns).
    async fn apply(
        &self,
        collection: Collection,
        version: i64,
        upserts: Vec<Document>,
        deletes: Vec<Uuid>,
    ) -> anyhow::Result<()> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let alias = self.alias(collection);
        self.bulk(&alias, true, version, &upserts, &deletes).await
    }

    /// Fills a new versioned index with `documents`, then points the alias at it and deletes the
    /// indices it pointed to (searches go on from the old index until the swap).
    async fn replace_all(&self, collection: Collection, version: i64, documents: Vec<Document>) -> anyhow::Result<()> {
        let alias = self.alias(collection);
        self.delete_orphans(collection, &alias).await?;
        let name = format!("{alias}-{}", chrono::Utc::now().timestamp_millis());
        let mut body = index_body(collection);
        // No refreshes while loading; the file's interval is restored before the swap.
        let interval = body["settings"]["index"]["refresh_interval"].clone();
        body["settings"]["index"]["refresh_interval"] = json!("-1");
        let created = self.client.indices().create(IndicesCreateParts::Index(&name)).body(body).send().await?;
        checked(created).await.with_context(|| format!("creating index {name}"))?;
        for chunk in documents.chunks(BULK_CHUNK) {
            self.bulk(&name, false, version, chunk, &[]).await?;
        }
        let interval = if interval.is_null() { json!("1s") } else { interval };
        let settings = json!({ "index": { "refresh_interval": interval } });
        let response =
            self.client.indices().put_settings(IndicesPutSettingsParts::Index(&[&name])).body(settings).send().await?;
        checked(response).await?;
        checked(self.client.indices().refresh(IndicesRefreshParts::Index(&[&name])).send().await?).await?;
        let old = self.targets(&alias).await?;
        let mut actions: Vec<Value> =
            old.iter().map(|index| json!({ "remove": { "index": index, "alias": alias } })).collect();
        actions.push(json!({ "add": { "index": name, "alias": alias, "is_write_index": true } }));
        let swapped = self.client.indices().update_aliases().body(json!({ "actions": actions })).send().await?;
        checked(swapped).await.with_context(|| format!("pointing {alias} at {name}"))?;
        let old: Vec<&str> = old.iter().map(String::as_str).filter(|index| *index != name).collect();
        if !old.is_empty() {
            checked(self.client.indices().delete(IndicesDeleteParts::Index(&old)).send().await?).await?;
        }
        tracing::info!(%alias, index = %name, documents = documents.len(), "search index rebuilt");
        Ok(())
    }

    fn rebuilds_beside_writers(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(Ok(byte)) = part.get(i + 1..i + 3).map(|hex| u8::from_str_radix(hex, 16)) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error status as an error carrying Elasticsearch's reason.
async fn checked(
    response: elasticsearch::http::response::Response,
) -> anyhow::Result<elasticsearch::http::response::Response> {
    let status = response.status_code();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let reason: String = text.chars().take(500).collect();
    bail!("Elasticsearch answered {status}: {reason}")
}

/// The first failed item of a bulk response, if any: a version conflict (a newer read is
/// already there) and a delete of a missing document are not failures.
fn bulk_errors(body: &Value) -> anyhow::Result<()> {
    if body["errors"] != json!(true) {
        return Ok(());
    }
    for item in body["items"].as_array().into_iter().flatten() {
        let Some((action, result)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
        let status = result["status"].as_u64().unwrap_or(0);
        // A 404 is a document already gone only when it says so (a missing index is a 404 too).
        let gone = action == "delete" && status == 404 && result["result"] == "not_found" && result["error"].is_null();
        let harmless = status == 409 || gone;
        if status >= 300 && !harmless {
            bail!("Elasticsearch refused a {action} of {}: {}", result["_id"], result["error"]);
        }
    }
    Ok(())
}

/// A document's `_source`: its fields as the server analysed them.
pub fn source(document: &Document) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(document.id.to_string()));
    for (name, text) in &document.text {
        out.insert((*name).into(), json!(analysis::terms(text).join(" ")));
        out.insert(format!("{name}_py"), json!(analysis::pinyin_terms(text).join(" ")));
    }
    for (name, values) in &document.keywords {
        out.insert((*name).into(), json!(values));
    }
    for (name, value) in &document.numbers {
        out.insert((*name).into(), json!(value));
    }
    Value::Object(out)
}

fn word_query(collection: Collection, word: &QueryWord) -> Value {
    let mut should = Vec::new();
    for field in collection.fields() {
        let FieldKind::Text { boost } = field.kind else { continue };
        let pinyin = format!("{}_py", field.name);
        for (name, boost, fuzzy) in [(field.name, boost, true), (pinyin.as_str(), boost * PINYIN_WEIGHT, false)] {
            should.push(json!({ "term": { name: { "value": word.text, "boost": boost * 2.0 } } }));
            // Pinyin is matched exactly or as a prefix: typos there would match most syllables.
            if word.typos > 0 && fuzzy {
                should.push(json!({ "fuzzy": { name: {
                    "value": word.text, "fuzziness": word.typos, "transpositions": true, "boost": boost * 0.5 } } }));
            }
            if word.prefix {
                should.push(json!({ "prefix": { name: { "value": word.text, "boost": boost * 0.5 } } }));
            }
        }
    }
    json!({ "bool": { "should": should, "minimum_should_match": 1 } })
}

fn filter_query(filter: &Filter) -> Value {
    match filter {
        Filter::AnyOf(name, values) => json!({ "terms": { *name: values } }),
        Filter::Range(name, min, max) => {
            let mut range = serde_json::Map::new();
            if let Some(min) = min {
                range.insert("gte".into(), json!(min));
            }
            if let Some(max) = max {
                range.insert("lte".into(), json!(max));
            }
            json!({ "range": { *name: range } })
        }
    }
}

/// The search request: `query.json` filled in (see `elasticsearch/README.md`).
pub fn search_body(request: &Request, matcher: &Matcher) -> anyhow::Result<Value> {
    let mut body: Value = serde_json::from_str(QUERY).context("elasticsearch/query.json")?;
    let text = if matcher.is_empty() {
        json!({ "match_all": {} })
    } else {
        let readings: Vec<Value> = matcher
            .readings
            .iter()
            .map(|words| {
                let all: Vec<Value> = words.iter().map(|w| word_query(request.collection, w)).collect();
                json!({ "bool": { "must": all } })
            })
            .collect();
        json!({ "bool": { "should": readings, "minimum_should_match": 1 } })
    };
    let score = &mut body["query"]["function_score"];
    score["query"]["bool"]["must"] = json!([text]);
    score["query"]["bool"]["filter"] = Value::Array(request.filters.iter().map(filter_query).collect());
    if request.collection == Collection::Circles {
        score["functions"][1]["field_value_factor"]["field"] = json!("members");
    }
    if let Order::Field { field, descending } = request.order {
        let order = if descending { "desc" } else { "asc" };
        body["sort"] = json!([{ field: { "order": order } }, { "id": "asc" }]);
    }
    let mut aggs = serde_json::Map::new();
    for facet in &request.facets {
        aggs.insert(
            (*facet).into(),
            json!({ "terms": { "field": facet, "size": FACET_SIZE, "order": [{ "_count": "desc" }, { "_key": "asc" }] } }),
        );
    }
    body["aggs"] = Value::Object(aggs);
    body["from"] = json!(request.offset);
    body["size"] = json!(request.limit);
    Ok(body)
}

fn parse_results(request: &Request, body: &Value) -> anyhow::Result<Results> {
    let total = body["hits"]["total"]["value"].as_u64().context("search response without hits.total")?;
    let mut hits = Vec::new();
    for hit in body["hits"]["hits"].as_array().into_iter().flatten() {
        let id = hit["_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("a hit without an id")?;
        hits.push(Hit { id, score: hit["_score"].as_f64().unwrap_or(0.0) as f32 });
    }
    let facets = request
        .facets
        .iter()
        .map(|facet| {
            let buckets = body["aggregations"][*facet]["buckets"].as_array().cloned().unwrap_or_default();
            let counts = buckets
                .iter()
                .filter_map(|b| Some((b["key"].as_str()?.to_string(), b["doc_count"].as_u64()?)))
                .collect();
            (*facet, counts)
        })
        .collect();
    Ok(Results { hits, total, facets, degraded: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping files name exactly the fields of `Collection::fields`, with their kinds.
    #[test]
    fn mappings_match_the_fields() {
        for collection in Collection::ALL {
            let body = index_body(collection);
            let properties = body["mappings"]["properties"].as_object().expect("properties");
            assert_eq!(body["mappings"]["dynamic"], "strict");
            let mut expected = vec![("id".to_string(), "keyword")];
            for field in collection.fields() {
                match field.kind {
                    FieldKind::Text { .. } => {
                        expected.push((field.name.to_string(), "text"));
                        expected.push((format!("{}_py", field.name), "text"));
                    }
                    FieldKind::Keyword => expected.push((field.name.to_string(), "keyword")),
                    FieldKind::Number => expected.push((field.name.to_string(), "double")),
                }
            }
            assert_eq!(properties.len(), expected.len(), "{}: {properties:?}", collection.name());
            for (name, kind) in expected {
                assert_eq!(properties[&name]["type"], kind, "{}.{name}", collection.name());
                if kind == "text" {
                    assert_eq!(properties[&name]["analyzer"], "whitespace", "{}.{name}", collection.name());
                }
            }
            let window = body["settings"]["index"]["max_result_window"].as_u64().expect("window");
            assert!(window as usize >= super::super::MAX_OFFSET + 100);
        }
    }

    #[test]
    fn queries_follow_the_matcher() {
        let request = Request {
            collection: Collection::Circles,
            query: "postgre sql".into(),
            filters: vec![Filter::AnyOf("domain", vec!["software".into()]), Filter::Range("members", Some(2.0), None)],
            order: Order::Relevance,
            offset: 40,
            limit: 20,
            facets: vec!["tags"],
        };
        let body = search_body(&request, &Matcher::parse(&request.query)).expect("body");
        let readings = &body["query"]["function_score"]["query"]["bool"]["must"][0]["bool"]["should"];
        assert!(readings.as_array().expect("readings").len() >= 2, "as typed and joined: {readings}");
        let text = readings.to_string();
        assert!(text.contains("\"prefix\":{\"name\":{\"boost\":2.0,\"value\":\"sql\"}}"), "{text}");
        assert!(text.contains("\"term\":{\"name_py\""), "{text}");
        assert!(!text.contains("\"fuzzy\":{\"name_py\""), "no typos on pinyin: {text}");
        assert_eq!(
            body["query"]["function_score"]["query"]["bool"]["filter"],
            json!([{ "terms": { "domain": ["software"] } }, { "range": { "members": { "gte": 2.0 } } }])
        );
        assert_eq!(body["query"]["function_score"]["functions"][1]["field_value_factor"]["field"], "members");
        assert_eq!((body["from"].clone(), body["size"].clone()), (json!(40), json!(20)));
        assert_eq!(body["aggs"]["tags"]["terms"]["size"], FACET_SIZE);
    }

    #[test]
    fn bulk_conflicts_and_missing_deletes_are_not_failures() {
        let ok = json!({ "errors": true, "items": [
            { "index": { "_id": "a", "status": 409, "error": { "type": "version_conflict_engine_exception" } } },
            { "delete": { "_id": "b", "status": 404, "result": "not_found" } },
            { "index": { "_id": "c", "status": 201 } } ] });
        assert!(bulk_errors(&ok).is_ok());
        let failed = json!({ "errors": true, "items": [
            { "index": { "_id": "a", "status": 400, "error": { "type": "strict_dynamic_mapping_exception" } } } ] });
        assert!(bulk_errors(&failed).is_err());
        let missing_index = json!({ "errors": true, "items": [
            { "delete": { "_id": "a", "status": 404, "error": { "type": "index_not_found_exception" } } } ] });
        assert!(bulk_errors(&missing_index).is_err(), "a missing index is not a deleted document");
    }

    #[test]
    fn credentials_in_the_url_are_decoded() {
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz"), "bad%zz");
    }
}
