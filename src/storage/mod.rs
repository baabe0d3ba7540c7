//! The one storage facade: file bytes in an object store, never in a GraphQL request.
//!
//! - **Local** (default): files under `MEDIA_DIR` (default `DATA_DIR/media`), written and served by
//!   this binary: uploads go to `PUT /media/upload/{key}` and reads to `GET /media/{key}`, both
//!   behind this server's own HMAC-signed URLs.
//! - **S3-compatible** (`STORAGE_URL=s3://bucket`, with `S3_ENDPOINT`, `S3_REGION`,
//!   `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`): Aliyun OSS, MinIO or AWS S3 through `object_store`.
//!   Clients upload to the store's presigned PUT URL; public files are read from `S3_PUBLIC_URL`
//!   (a CDN or the bucket's public endpoint) when set, else through this binary.
//!
//! Keys under `public/` are readable by anyone (stable, cacheable URLs); keys under `private/` only
//! through a short-lived URL this server signs for whoever may read them (identity documents,
//! message files), so a leaked link expires and a changed signature is refused, on either backend.

use crate::error::{AppError, AppResult};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use sha2::Sha256;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where files go.
#[derive(Clone, Debug)]
pub enum StorageBackend {
    Local { dir: PathBuf },
    S3(S3Settings),
}

/// An S3-compatible bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    /// `S3_ENDPOINT`, e.g. `https://oss-cn-hangzhou.aliyuncs.com` or `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `S3_PUBLIC_URL`: the base public objects are read from (e.g. a CDN); unset: through this server.
    pub public_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    /// `PUBLIC_URL`: where clients reach this server (default `http://` + the bound address).
    pub public_url: Option<String>,
    /// `UPLOAD_URL_TTL_SECS` (default 900): how long an upload URL works.
    pub upload_ttl: Duration,
    /// `PRIVATE_URL_TTL_SECS` (default 300): how long a signed read URL of a private file works.
    pub private_ttl: Duration,
    /// `UPLOAD_SWEEP_SECS` (default 3600): how often stale and unused uploads are deleted.
    pub sweep_every: Duration,
}

/// Where and how a client sends a file's bytes.
#[derive(Clone, Debug)]
pub struct UploadTarget {
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
}

/// A stored object read back.
pub struct Object {
    pub bytes: Bytes,
}

/// A stored object as a stream of chunks (served without holding it in memory).
pub struct ObjectStream {
    pub size: u64,
    pub chunks: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
}

#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The S3 store again, as the signer of presigned PUTs.
    s3: Option<AmazonS3>,
    s3_public: Option<String>,
    /// This server's public base URL (no trailing slash).
    base_url: String,
    /// This server's signer, keyed once (cloned per signature).
    mac: HmacSha256,
    upload_ttl: Duration,
    private_ttl: Duration,
}

type HmacSha256 = Hmac<Sha256>;

/// The longest key the facade accepts (`public/<purpose>/<uuid>/<name>`).
const MAX_KEY: usize = 300;

impl Storage {
    /// Opens the store; `secret` keys this server's signatures, `bound` is the listener's address.
    pub fn open(settings: &StorageSettings, secret: &[u8], bound: std::net::SocketAddr) -> anyhow::Result<Self> {
        let (store, s3, s3_public): (Arc<dyn ObjectStore>, _, _) = match &settings.backend {
            StorageBackend::Local { dir } => {
                std::fs::create_dir_all(dir)?;
                (Arc::new(LocalFileSystem::new_with_prefix(dir)?), None, None)
            }
            StorageBackend::S3(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let store = builder.build()?;
                let public = s3.public_url.as_ref().map(|u| u.trim_end_matches('/').to_string());
                (Arc::new(store.clone()), Some(store), public)
            }
        };
        let base_url =
            settings.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_string();
        // A key of its own, derived from the token secret: a media signature is never a token's.
        let mut mac = HmacSha256::new_from_slice(secret).map_err(|e| anyhow::anyhow!("{e}"))?;
        mac.update(b"master-guide media signatures");
        let key = mac.finalize().into_bytes();
        let mac = HmacSha256::new_from_slice(&key).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                s3,
                s3_public,
                base_url,
                mac,
                upload_ttl: settings.upload_ttl,
                private_ttl: settings.private_ttl,
            }),
        })
    }

    /// Whether uploads go to this binary (`PUT /media/upload/...`).
    pub fn is_local(&self) -> bool {
        self.inner.s3.is_none()
    }

    pub fn upload_ttl(&self) -> Duration {
        self.inner.upload_ttl
    }

    /// The URL the client sends `size` bytes of `content_type` to, valid for the upload TTL.
    pub async fn upload_target(&self, key: &str, content_type: &str, size: u64) -> AppResult<UploadTarget> {
        let headers = vec![("Content-Type".to_string(), content_type.to_string())];
        if let Some(s3) = &self.inner.s3 {
            let url = s3
                .signed_url(http::Method::PUT, &ObjectPath::from(key), self.inner.upload_ttl)
                .await
                .map_err(|e| AppError::Internal(e.into()))?;
            return Ok(UploadTarget { url: url.to_string(), method: "PUT", headers });
        }
        let expires = now_secs() + self.inner.upload_ttl.as_secs();
        let sig = self.sign(&format!("PUT\n{key}\n{expires}\n{size}"));
        let url = format!("{}/media/upload/{key}?expires={expires}&size={size}&sig={sig}", self.inner.base_url);
        Ok(UploadTarget { url, method: "PUT", headers })
    }

    /// Checks a local upload URL's signature: the key, its expiry and the size it allows.
    pub fn verify_upload(&self, key: &str, expires: u64, size: u64, sig: &str) -> bool {
        expires >= now_secs() && self.verify(&format!("PUT\n{key}\n{expires}\n{size}"), sig)
    }

    /// The stable URL of a file: readable by anyone for a public key; for a private key the
    /// unsigned form rows keep (reading it needs [`Storage::private_url`]'s signature).
    pub fn public_url(&self, key: &str) -> String {
        match &self.inner.s3_public {
            Some(base) if key.starts_with("public/") => format!("{base}/{key}"),
            _ => format!("{}/media/{key}", self.inner.base_url),
        }
    }

    /// A short-lived signed URL of a private file (read through this server).
    pub fn private_url(&self, key: &str) -> String {
        let expires = now_secs() + self.inner.private_ttl.as_secs();
        let sig = self.sign(&format!("GET\n{key}\n{expires}"));
        format!("{}/media/{key}?expires={expires}&sig={sig}", self.inner.base_url)
    }

    /// Checks a private read URL's signature and expiry.
    pub fn verify_read(&self, key: &str, expires: u64, sig: &str) -> bool {
        expires >= now_secs() && self.verify(&format!("GET\n{key}\n{expires}"), sig)
    }

    /// The object key a URL of this store names (a public or a private URL, signature ignored),
    /// or None when the URL points elsewhere (an external host).
    pub fn key_of_url(&self, url: &str) -> Option<String> {
        let own = format!("{}/media/", self.inner.base_url);
        let rest = url
            .strip_prefix(&own)
            .or_else(|| self.inner.s3_public.as_ref().and_then(|base| url.strip_prefix(&format!("{base}/"))))?;
        let key = rest.split(['?', '#']).next().unwrap_or_default();
        valid_key(key).then(|| key.to_string())
    }

    /// Stores `bytes` under `key`; an S3 store keeps `content_type` for its own readers (local
    /// files have no attributes: this server serves them by the key's extension).
    /// The key of a `/media/...` URL of this server whatever host it names (rows keep URLs made
    /// under an earlier `PUBLIC_URL`), or of the S3 public base; None for other URLs.
    pub fn key_of_stored_url(&self, url: &str) -> Option<String> {
        if let Some(key) = self.key_of_url(url) {
            return Some(key);
        }
        let after_scheme = url.split_once("://")?.1;
        let path = &after_scheme[after_scheme.find('/')?..];
        let key = path.strip_prefix("/media/")?.split(['?', '#']).next()?;
        valid_key(key).then(|| key.to_string())
    }

    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> AppResult<()> {
        let mut options = PutOptions::default();
        if self.inner.s3.is_some() {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, content_type.to_string().into());
            options.attributes = attributes;
        }
        self.inner.store.put_opts(&ObjectPath::from(key), PutPayload::from(bytes), options).await.map_err(internal)?;
        Ok(())
    }

    /// Stores a stream of chunks under `key`, at most `max` bytes: Ok(false) (and nothing stored)
    /// when the stream is longer. Chunks go to the store as they come (a multipart upload), so a
    /// large body is never held in memory whole.
    pub async fn put_stream<S, E>(&self, key: &str, mut chunks: S, max: u64) -> AppResult<bool>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        let upload = self.inner.store.put_multipart(&ObjectPath::from(key)).await.map_err(internal)?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        let mut total = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = writer.abort().await;
                    return Err(AppError::bad_input("body", format!("the upload was cut off: {error}")));
                }
            };
            total += chunk.len() as u64;
            if total > max {
                let _ = writer.abort().await;
                return Ok(false);
            }
            writer.wait_for_capacity(2).await.map_err(internal)?;
            writer.put(chunk);
        }
        writer.finish().await.map_err(internal)?;
        Ok(true)
    }

    /// The stored size, or None when nothing is stored under `key`.
    pub async fn size(&self, key: &str) -> AppResult<Option<u64>> {
        match self.inner.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(internal(error)),
        }
    }

    /// The object if it is at most `max` bytes: None when nothing is stored under `key`,
    /// `Err(size)` inside when it is bigger (nothing of it is read then).
    pub async fn get(&self, key: &str, max: u64) -> AppResult<Option<Result<Object, u64>>> {
        let found = match self.inner.store.get(&ObjectPath::from(key)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(internal(error)),
        };
        if found.meta.size > max {
            return Ok(Some(Err(found.meta.size)));
        }
        let bytes = found.bytes().await.map_err(internal)?;
        Ok(Some(Ok(Object { bytes })))
    }

    /// The first `n` bytes (fewer if the object is shorter).
    pub async fn head_bytes(&self, key: &str, n: u64, size: u64) -> AppResult<Bytes> {
        self.inner.store.get_range(&ObjectPath::from(key), 0..n.min(size)).await.map_err(internal)
    }

    /// The object as a stream, or None when nothing is stored under `key`.
    pub async fn stream(&self, key: &str) -> AppResult<Option<ObjectStream>> {
        match self.inner.store.get(&ObjectPath::from(key)).await {
            Ok(found) => Ok(Some(ObjectStream { size: found.meta.size, chunks: found.into_stream() })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(internal(error)),
        }
    }

    /// Bytes `range` of the object as a stream (a `Range` request), or None when nothing is
    /// stored under `key`.
    pub async fn stream_range(&self, key: &str, range: std::ops::Range<u64>) -> AppResult<Option<ObjectStream>> {
        let options =
            object_store::GetOptions { range: Some(object_store::GetRange::Bounded(range)), ..Default::default() };
        match self.inner.store.get_opts(&ObjectPath::from(key), options).await {
            Ok(found) => {
                let size = found.range.end - found.range.start;
                Ok(Some(ObjectStream { size, chunks: found.into_stream() }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(internal(error)),
        }
    }

    /// Copies `from` to `to` inside the store (no bytes through this server).
    pub async fn copy(&self, from: &str, to: &str) -> AppResult<()> {
        self.inner.store.copy(&ObjectPath::from(from), &ObjectPath::from(to)).await.map_err(internal)
    }

    /// Deletes `key` (nothing there is fine).
    pub async fn delete(&self, key: &str) -> AppResult<()> {
        match self.inner.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(internal(error)),
        }
    }

    fn sign(&self, message: &str) -> String {
        let mut mac = self.inner.mac.clone();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, message: &str, sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else { return false };
        let mut mac = self.inner.mac.clone();
        mac.update(message.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

/// One byte range of a `Range: bytes=...` header (RFC 9110, section 14.1.2), inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`
    Bounded(u64, u64),
    /// `bytes=first-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Last(u64),
}

impl ByteRange {
    /// A header naming one well-formed bytes range; None for anything else (several ranges,
    /// another unit, a malformed one), which is served whole, as RFC 9110 allows.
    pub fn parse(value: &str) -> Option<ByteRange> {
        let value = value.trim();
        // The unit is case-insensitive.
        let spec = value.get(..6).filter(|unit| unit.eq_ignore_ascii_case("bytes=")).and(value.get(6..))?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Some(ByteRange::Last(number(last)?)),
            (false, true) => Some(ByteRange::From(number(first)?)),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(ByteRange::Bounded(first, last))
            }
            (true, true) => None,
        }
    }

    /// The offsets `start..end` of this range in an object of `size` bytes (a last byte past the
    /// end is the end), or None when no byte of it exists (416).
    pub fn within(self, size: u64) -> Option<std::ops::Range<u64>> {
        match self {
            ByteRange::Bounded(first, last) if first < size => Some(first..last.min(size - 1) + 1),
            ByteRange::From(first) if first < size => Some(first..size),
            ByteRange::Last(n) if n > 0 && size > 0 => Some(size - n.min(size)..size),
            _ => None,
        }
    }
}

/// A key this facade could have made: `public/...` or `private/...`, ASCII letters, digits and
/// `-_./`, no empty or dot segments.
pub fn valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY
        && (key.starts_with("public/") || key.starts_with("private/"))
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && key.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

fn internal(error: object_store::Error) -> AppError {
    AppError::Internal(anyhow::anyhow!("object store: {error}"))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_read_as_rfc_9110_says() {
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(ByteRange::Bounded(0, 99)));
        assert_eq!(ByteRange::parse("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(ByteRange::parse("bytes=-20"), Some(ByteRange::Last(20)));
        assert_eq!(ByteRange::parse("Bytes=1-2"), Some(ByteRange::Bounded(1, 2)));
        for ignored in ["bytes=5-1", "bytes=0-1,4-5", "items=0-1", "bytes=-", "bytes=a-b", "bytes=+1-2"] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored}");
        }
        assert_eq!(ByteRange::Bounded(0, 99).within(50), Some(0..50));
        assert_eq!(ByteRange::Bounded(10, 19).within(50), Some(10..20));
        assert_eq!(ByteRange::From(49).within(50), Some(49..50));
        assert_eq!(ByteRange::Last(20).within(50), Some(30..50));
        assert_eq!(ByteRange::Last(80).within(50), Some(0..50));
        assert_eq!(ByteRange::From(50).within(50), None);
        assert_eq!(ByteRange::Last(0).within(50), None);
        assert_eq!(ByteRange::Last(5).within(0), None);
    }

    #[test]
    fn keys_stay_inside_the_two_prefixes() {
        assert!(valid_key("public/avatar/0b6c/face.png"));
        assert!(valid_key("private/identity_document/0b6c/scan.pdf"));
        for bad in ["avatar/x.png", "public/../etc/passwd", "public//x", "public/a b", "private/./x", "public/é"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
