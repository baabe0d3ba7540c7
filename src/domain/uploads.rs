//! Uploads: a ticket to send a file straight to the store (`create`), the check of what arrived
//! (`complete`: size, the real type from the bytes, image dimensions and decodability, the sizes
//! the apps show, EXIF dropped by re-encoding), the URL rules of who reads what, using an upload in
//! a row (`claim`), and the sweeper.
//!
//! Uploads feed no cache entry and no search document, so their rows are written directly.
#![allow(clippy::disallowed_methods)]

use crate::auth::Viewer;
use crate::error::{AppError, AppResult, Checks};
use crate::storage::Storage;
use bytes::Bytes;
use chrono::{Duration as ChronoDuration, Utc};
use entity::enums::{UploadPurpose, UploadStatus};
use entity::uploads;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use std::io::Cursor;
use uuid::Uuid;

const MB: u64 = 1024 * 1024;
const IMAGES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/gif"];
const DOCUMENTS: &[&str] = &["image/png", "image/jpeg", "image/webp", "application/pdf"];
const MEDIA: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/gif", "application/pdf", "video/mp4"];
/// The largest image side decoded (a bigger one is refused before it is decoded).
const MAX_SIDE: u32 = 8192;

/// What a purpose allows: types, size, the image sizes kept, and whether it is private.
pub struct Rules {
    pub types: &'static [&'static str],
    pub max_bytes: u64,
    /// Longest side of each resized copy (only those smaller than the image).
    pub variants: &'static [u32],
    pub private: bool,
}

pub fn rules(purpose: UploadPurpose) -> Rules {
    use UploadPurpose as P;
    match purpose {
        P::Avatar | P::CircleAvatar => Rules { types: IMAGES, max_bytes: 5 * MB, variants: &[64, 256], private: false },
        P::CourseCover => Rules { types: IMAGES, max_bytes: 10 * MB, variants: &[320, 1280], private: false },
        P::PostImage => Rules { types: IMAGES, max_bytes: 10 * MB, variants: &[320, 1280], private: false },
        P::CourseMedia => Rules { types: MEDIA, max_bytes: 500 * MB, variants: &[1280], private: true },
        P::IdentityDocument => Rules { types: DOCUMENTS, max_bytes: 10 * MB, variants: &[], private: true },
        P::MessageFile => Rules { types: MEDIA, max_bytes: 25 * MB, variants: &[], private: true },
    }
}

/// The content type a stored key is served with: the one its extension names (see [`extension`]).
pub fn type_of_key(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1;
    MEDIA.iter().copied().find(|t| extension(t) == format!(".{ext}"))
}

pub struct NewUpload {
    pub purpose: UploadPurpose,
    pub content_type: String,
    pub byte_size: i64,
    pub file_name: String,
}

/// An upload request that passed its checks (type, size and name for its purpose).
pub struct ValidUpload {
    purpose: UploadPurpose,
    content_type: String,
    byte_size: i64,
    file_name: String,
}

impl ValidUpload {
    pub fn byte_size(&self) -> u64 {
        self.byte_size as u64
    }
}

/// Checks an upload request against its purpose's rules.
pub fn validate(input: NewUpload) -> AppResult<ValidUpload> {
    let rules = rules(input.purpose);
    let mut c = Checks::default();
    let content_type = input.content_type.trim().to_ascii_lowercase();
    if !rules.types.contains(&content_type.as_str()) {
        c.fail("input.contentType", format!("{} takes {}", input.purpose.as_str(), rules.types.join(", ")));
    }
    if input.byte_size < 1 || input.byte_size as u64 > rules.max_bytes {
        c.fail(
            "input.byteSize",
            format!("must be between 1 and {} bytes for {}", rules.max_bytes, input.purpose.as_str()),
        );
    }
    let file_name = c.on(super::values::text("input.fileName", &input.file_name, 1, 255));
    c.finish()?;
    Ok(ValidUpload { purpose: input.purpose, content_type, byte_size: input.byte_size, file_name })
}

/// A new PENDING upload and where to send its bytes (the caller has spent the user's upload
/// quota: `admission::limits::upload`).
pub async fn create(
    db: &DatabaseConnection,
    storage: &Storage,
    user_id: Uuid,
    input: ValidUpload,
) -> AppResult<(uploads::Model, crate::storage::UploadTarget)> {
    let id = Uuid::new_v4();
    // The bytes arrive in a private staging key of their own; only `complete` writes the checked
    // file where it is read from, so a second PUT to the ticket's URL changes nothing served.
    let key = staging_key(id);
    let target = storage.upload_target(&key, &input.content_type, input.byte_size as u64).await?;
    let row = uploads::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        purpose: Set(input.purpose),
        status: Set(UploadStatus::Pending),
        content_type: Set(input.content_type),
        byte_size: Set(input.byte_size),
        file_name: Set(input.file_name),
        object_key: Set(key),
        width: Set(None),
        height: Set(None),
        variants: Set(None),
        reject_reason: Set(None),
        attached_at: Set(None),
        completed_at: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok((row, target))
}

/// The viewer's own upload, or NOT_FOUND (another user's upload is not theirs to see).
pub async fn own(db: &DatabaseConnection, viewer: &Viewer, id: Uuid) -> AppResult<uploads::Model> {
    let user_id = viewer.require()?;
    match uploads::Entity::find_by_id(id).one(db).await? {
        Some(upload) if upload.user_id == user_id => Ok(upload),
        _ => Err(AppError::not_found("upload")),
    }
}

/// Where a ticket's bytes arrive (private: never served, never signed for reading).
fn staging_key(id: Uuid) -> String {
    format!("private/incoming/{id}")
}

/// Where a checked file is read from: `<public|private>/<purpose>/<id>/original.<ext>`, its
/// resized copies beside it.
fn final_dir(upload: &uploads::Model) -> String {
    let visibility = if rules(upload.purpose).private { "private" } else { "public" };
    format!("{visibility}/{}/{}", upload.purpose.as_str(), upload.id)
}

/// How long one `complete` holds an upload before another may check it again.
const CHECK_LEASE_SECS: i64 = 300;

/// Checks what arrived for a PENDING upload and makes it READY, or REJECTED with the reason (and
/// the bytes deleted). A READY or REJECTED upload is returned as it is. One check at a time: a
/// second `complete` while the first runs is refused (CONFLICT), never run beside it.
pub async fn complete(
    db: &DatabaseConnection,
    storage: &Storage,
    viewer: &Viewer,
    id: Uuid,
) -> AppResult<uploads::Model> {
    let upload = own(db, viewer, id).await?;
    if upload.status != UploadStatus::Pending {
        return Ok(upload);
    }
    let now = Utc::now();
    let leased = uploads::Entity::update_many()
        .col_expr(uploads::Column::CompletedAt, Expr::value(now))
        .filter(uploads::Column::Id.eq(id))
        .filter(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(uploads::Column::CompletedAt.is_null())
                .add(uploads::Column::CompletedAt.lt(now - ChronoDuration::seconds(CHECK_LEASE_SECS))),
        )
        .exec(db)
        .await?
        .rows_affected;
    if leased == 0 {
        let current = own(db, viewer, id).await?;
        if current.status != UploadStatus::Pending {
            return Ok(current);
        }
        return Err(AppError::Conflict { field: Some("id".into()), message: "the upload is being checked".into() });
    }
    let release = || async {
        uploads::Entity::update_many()
            .col_expr(uploads::Column::CompletedAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .filter(uploads::Column::Id.eq(id))
            .filter(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
            .exec(db)
            .await
    };
    let checked = check_stored(storage, &upload).await;
    let verdict = match checked {
        Ok(Some(verdict)) => verdict,
        Ok(None) => {
            release().await?;
            return Err(AppError::bad_input("id", "nothing was uploaded yet: send the file to the upload URL first"));
        }
        Err(error) => {
            release().await?;
            return Err(error);
        }
    };
    storage.delete(&staging_key(id)).await?;
    let mut row: uploads::ActiveModel = upload.clone().into();
    row.completed_at = Set(Some(Utc::now()));
    match verdict {
        Ok(checked) => {
            row.status = Set(UploadStatus::Ready);
            row.object_key = Set(checked.key);
            row.content_type = Set(checked.content_type.to_string());
            row.byte_size = Set(checked.byte_size as i64);
            row.width = Set(checked.width.map(|w| w as i32));
            row.height = Set(checked.height.map(|h| h as i32));
            row.variants = Set(Some(serde_json::Value::Object(
                checked.variants.into_iter().map(|(side, key)| (side.to_string(), key.into())).collect(),
            )));
        }
        Err(reason) => {
            row.status = Set(UploadStatus::Rejected);
            row.reject_reason = Set(Some(reason.chars().take(300).collect()));
        }
    }
    uploads::Entity::update_many()
        .set(row)
        .filter(uploads::Column::Id.eq(id))
        .filter(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
        .exec(db)
        .await?;
    uploads::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("upload"))
}

/// What the staging key holds, checked: None when nothing arrived; the file written where it is
/// read from, or the reason it is refused.
async fn check_stored(storage: &Storage, upload: &uploads::Model) -> AppResult<Option<Result<Checked, String>>> {
    let staged = staging_key(upload.id);
    let Some(size) = storage.size(&staged).await? else { return Ok(None) };
    let rules = rules(upload.purpose);
    if size != upload.byte_size as u64 {
        return Ok(Some(Err(format!("{size} bytes arrived, {} were declared", upload.byte_size))));
    }
    if !upload.content_type.starts_with("image/") {
        // Documents and videos: the type from their first bytes; the file is copied inside the
        // store (a 500 MB video never passes through this server).
        let head = storage.head_bytes(&staged, 64, size).await?;
        let real = sniff(&head);
        if real != Some(upload.content_type.as_str()) {
            return Ok(Some(Err(mismatch(&upload.content_type, real, &rules))));
        }
        let key = format!("{}/original{}", final_dir(upload), extension(&upload.content_type));
        storage.copy(&staged, &key).await?;
        let content_type = real.unwrap_or("application/octet-stream");
        return Ok(Some(Ok(Checked {
            key,
            content_type,
            byte_size: size,
            width: None,
            height: None,
            variants: vec![],
        })));
    }
    // The size is read from the object itself: bytes re-sent since the check above are refused.
    let bytes = match storage.get(&staged, rules.max_bytes).await? {
        None => return Ok(None),
        Some(Err(bigger)) => return Ok(Some(Err(format!("larger than {} bytes ({bigger})", rules.max_bytes)))),
        Some(Ok(object)) => object.bytes,
    };
    check_image(storage, upload, bytes, &rules).await.map(Some)
}

fn mismatch(declared: &str, real: Option<&str>, rules: &Rules) -> String {
    match real {
        Some(real) => format!("declared {declared}, but the bytes are {real}"),
        None => format!("the bytes are not any of {}", rules.types.join(", ")),
    }
}

struct Checked {
    key: String,
    content_type: &'static str,
    byte_size: u64,
    width: Option<u32>,
    height: Option<u32>,
    variants: Vec<(u32, String)>,
}

/// The real type of `bytes`, from their first bytes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if let Ok(format) = image::guess_format(bytes) {
        return match format {
            image::ImageFormat::Png => Some("image/png"),
            image::ImageFormat::Jpeg => Some("image/jpeg"),
            image::ImageFormat::WebP => Some("image/webp"),
            image::ImageFormat::Gif => Some("image/gif"),
            _ => None,
        };
    }
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    // ISO base media (MP4): a box size, then `ftyp`.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some("video/mp4");
    }
    None
}

/// Image decodes at once (each may hold a few hundred MB): one per core.
fn image_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// An image checked: decoded (off the async runtime, a core at a time), written again where it is
/// read from (no EXIF, so no location) and resized to the purpose's sizes.
async fn check_image(
    storage: &Storage,
    upload: &uploads::Model,
    bytes: Bytes,
    rules: &Rules,
) -> AppResult<Result<Checked, String>> {
    let real = sniff(&bytes);
    if real != Some(upload.content_type.as_str()) {
        return Ok(Err(mismatch(&upload.content_type, real, rules)));
    }
    let sides = rules.variants.to_vec();
    let slot = image_slots().acquire().await.map_err(|e| AppError::Internal(e.into()))?;
    let processed = tokio::task::spawn_blocking(move || process_image(&bytes, &sides))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    drop(slot);
    let image = match processed {
        Ok(image) => image,
        Err(reason) => return Ok(Err(reason)),
    };
    // Written again, an image may grow; past three times the purpose's limit it is refused.
    if image.original.len() as u64 > rules.max_bytes * 3 {
        return Ok(Err(format!("{} bytes once re-encoded: too large", image.original.len())));
    }
    let dir = final_dir(upload);
    let key = format!("{dir}/original{}", extension(image.content_type));
    storage.put(&key, image.original.clone(), image.content_type).await?;
    let mut variants = Vec::new();
    for (side, bytes, content_type) in image.variants {
        let variant = format!("{dir}/{side}{}", extension(content_type));
        storage.put(&variant, bytes, content_type).await?;
        variants.push((side, variant));
    }
    Ok(Ok(Checked {
        key,
        content_type: image.content_type,
        byte_size: image.original.len() as u64,
        width: Some(image.width),
        height: Some(image.height),
        variants,
    }))
}

struct Processed {
    original: Bytes,
    content_type: &'static str,
    width: u32,
    height: u32,
    variants: Vec<(u32, Bytes, &'static str)>,
}

/// The most pixels an image may have (40 MP: a 24 MP camera photo passes).
const MAX_PIXELS: u64 = 40_000_000;

fn process_image(bytes: &[u8], sides: &[u32]) -> Result<Processed, String> {
    use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
    let format = image::guess_format(bytes).map_err(|e| e.to_string())?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| format!("not a readable image: {e}"))?;
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(format!("{width}×{height}: images may be at most {MAX_SIDE} px a side and {MAX_PIXELS} pixels"));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * MB);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| format!("not a readable image: {e}"))?;
    let orientation = decoder.orientation().map_err(|e| format!("not a readable image: {e}"))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable image: {e}"))?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    // Written again: JPEG as JPEG, PNG as PNG; WebP (whose encoder here is lossless only, so
    // several times larger) as JPEG, or PNG when it has transparency. GIFs keep their bytes
    // (animation; GIF carries no EXIF).
    let alpha = image.color().has_alpha();
    let (out_format, content_type) = match format {
        ImageFormat::Jpeg => (ImageFormat::Jpeg, "image/jpeg"),
        ImageFormat::WebP if !alpha => (ImageFormat::Jpeg, "image/jpeg"),
        _ => (ImageFormat::Png, "image/png"),
    };
    let variant_type = content_type;
    let content_type = if format == ImageFormat::Gif { "image/gif" } else { content_type };
    let original = if format == ImageFormat::Gif { Bytes::copy_from_slice(bytes) } else { encode(&image, out_format)? };
    let mut variants = Vec::new();
    for &side in sides {
        if side < width.max(height) {
            variants.push((side, encode(&image.thumbnail(side, side), out_format)?, variant_type));
        }
    }
    Ok(Processed { original, content_type, width, height, variants })
}

fn encode(image: &image::DynamicImage, format: image::ImageFormat) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let result = match format {
        image::ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(image.to_rgb8())
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88)),
        other => image.write_to(&mut Cursor::new(&mut out), other),
    };
    result.map_err(|e| format!("cannot encode the image: {e}"))?;
    Ok(Bytes::from(out))
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/webp" => ".webp",
        "image/gif" => ".gif",
        "application/pdf" => ".pdf",
        "video/mp4" => ".mp4",
        _ => "",
    }
}

/// The URL of an upload's file (or of its variant `side`) for `viewer`: public purposes a stable
/// URL; private ones a short-lived signed URL for the owner and admins (`may_read` widens that,
/// e.g. to a message's parties), else None. None too while it is not READY.
pub fn url_for(storage: &Storage, upload: &uploads::Model, viewer_may_read: bool, side: Option<u32>) -> Option<String> {
    if upload.status != UploadStatus::Ready {
        return None;
    }
    let key = match side {
        None => upload.object_key.clone(),
        Some(side) => upload.variants.as_ref()?.get(side.to_string())?.as_str()?.to_string(),
    };
    if rules(upload.purpose).private {
        viewer_may_read.then(|| storage.private_url(&key))
    } else {
        Some(storage.public_url(&key))
    }
}

/// Every purpose, as its key segment names it.
const PURPOSES: [UploadPurpose; 7] = [
    UploadPurpose::Avatar,
    UploadPurpose::CircleAvatar,
    UploadPurpose::CourseCover,
    UploadPurpose::CourseMedia,
    UploadPurpose::PostImage,
    UploadPurpose::IdentityDocument,
    UploadPurpose::MessageFile,
];

/// A file of an upload that a URL names: its key, the upload's id and purpose. Only keys of the
/// shape this module writes, `<public|private>/<purpose>/<upload id>/<file>` with the purpose's
/// own visibility, count; under any host (rows keep URLs made under an earlier `PUBLIC_URL`).
/// `claim` checks every such URL given to a mutation, whatever its host, so a row never holds
/// one that is not a READY upload its writer owned; staging keys and anything else are not
/// uploads (never signed, never released).
pub fn upload_key(storage: &Storage, url: &str) -> Option<(String, Uuid, UploadPurpose)> {
    let key = storage.key_of_stored_url(url)?;
    let mut segments = key.split('/');
    let (visibility, purpose, id) = (segments.next()?, segments.next()?, segments.next()?);
    (segments.next().is_some() && segments.next().is_none()).then_some(())?;
    let purpose = PURPOSES.into_iter().find(|p| p.as_str() == purpose)?;
    let id = Uuid::parse_str(id).ok()?;
    let private = rules(purpose).private;
    (visibility == if private { "private" } else { "public" }).then_some((key, id, purpose))
}

/// A URL kept in a row's field that takes `purpose`, as a reader who may see the row gets it: a
/// private upload of that purpose becomes a short-lived signed URL (a file of another purpose is
/// never signed through this field); anything else is returned as it is.
pub fn readable_url(storage: &Storage, url: &str, purpose: UploadPurpose) -> String {
    match upload_key(storage, url) {
        Some((key, _, of)) if of == purpose && rules(of).private => storage.private_url(&key),
        _ => url.to_string(),
    }
}

/// A free course content's media URL: a COURSE_MEDIA file of this store (private) is read
/// through a stable URL that works while the content is free (cacheable, unlike a signed one);
/// anything else is returned as it is.
pub fn free_media_url(storage: &Storage, url: &str, content_id: Uuid) -> String {
    match upload_key(storage, url) {
        Some((key, _, UploadPurpose::CourseMedia)) => format!("{}?free={content_id}", storage.public_url(&key)),
        _ => url.to_string(),
    }
}

/// Whether `key` is a file of the COURSE_MEDIA upload that course content `content_id` holds,
/// and that content is free now.
pub async fn is_free_media(db: &DatabaseConnection, storage: &Storage, content_id: &str, key: &str) -> AppResult<bool> {
    use entity::course_contents;
    let Ok(content_id) = Uuid::parse_str(content_id) else { return Ok(false) };
    let Some((_, asked, UploadPurpose::CourseMedia)) = upload_key(storage, &storage.public_url(key)) else {
        return Ok(false);
    };
    let Some(content) = course_contents::Entity::find_by_id(content_id).one(db).await? else { return Ok(false) };
    let held = content.content_url.as_deref().and_then(|url| upload_key(storage, url));
    Ok(content.is_free && held.is_some_and(|(_, id, purpose)| id == asked && purpose == UploadPurpose::CourseMedia))
}

/// A media URL given to a mutation (field `field`): a URL of an upload (see [`upload_key`], any
/// host) must be a READY upload of the viewer's own with one of `purposes` (it is then marked
/// used, and its stable form returned); any other http(s) URL passes through unchanged, as before
/// uploads existed.
pub async fn claim(
    db: &impl ConnectionTrait,
    storage: &Storage,
    user_id: Uuid,
    field: &str,
    url: &str,
    purposes: &[UploadPurpose],
) -> AppResult<String> {
    let Some((key, upload_id, _)) = upload_key(storage, url) else { return Ok(url.to_string()) };
    let upload = uploads::Entity::find_by_id(upload_id).one(db).await?;
    let upload = upload
        .filter(|u| u.user_id == user_id && key.starts_with(u.object_key.rsplit_once('/').map_or("", |(dir, _)| dir)))
        .ok_or_else(|| AppError::bad_input(field, "is not an upload of yours"))?;
    if upload.status != UploadStatus::Ready {
        return Err(AppError::bad_input(field, "the upload is not complete (call completeUpload)"));
    }
    if !purposes.contains(&upload.purpose) {
        let wanted: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
        return Err(AppError::bad_input(field, format!("takes an upload for {}", wanted.join(" or "))));
    }
    // Marked every time (not only when unmarked): the update takes the upload's row, so a sweep
    // deciding on a released upload at this moment either sees the mark or has deleted the row,
    // and then this claim fails instead of pointing at a file that is gone.
    let marked = uploads::Entity::update_many()
        .col_expr(uploads::Column::AttachedAt, Expr::value(Utc::now()))
        .filter(uploads::Column::Id.eq(upload.id))
        .exec(db)
        .await?
        .rows_affected;
    if marked == 0 {
        return Err(AppError::bad_input(field, "the upload no longer exists"));
    }
    Ok(storage.public_url(&key))
}

/// [`claim`] for each URL of a list field (`field.0`, `field.1`...), in order.
pub async fn claim_all(
    db: &impl ConnectionTrait,
    storage: &Storage,
    user_id: Uuid,
    field: &str,
    urls: &[String],
    purpose: UploadPurpose,
) -> AppResult<Vec<String>> {
    let mut claimed = Vec::with_capacity(urls.len());
    for (n, url) in urls.iter().enumerate() {
        claimed.push(claim(db, storage, user_id, &format!("{field}.{n}"), url, &[purpose]).await?);
    }
    Ok(claimed)
}

/// How long a claim holds an upload against a release: a release in that time (another row
/// replacing the same file while this one is being written) leaves it marked, so a sweep can
/// never delete a file a row is about to hold. The price: a file replaced within a minute of
/// being set is not released (it stays stored).
const CLAIM_GRACE_SECS: i64 = 60;

/// Media URLs a row stopped holding (replaced or cleared): their uploads are marked unused, so the
/// sweeper looks at them again. It deletes one only when no row refers to it any more (the same
/// cover may be on two courses, the same image in two posts). Only uploads of `purpose`, the
/// field's, are released; other URLs are ignored.
pub async fn release<'a>(
    db: &impl ConnectionTrait,
    storage: &Storage,
    purpose: UploadPurpose,
    urls: impl IntoIterator<Item = &'a str>,
) -> AppResult<()> {
    let ids: Vec<Uuid> = urls
        .into_iter()
        .filter_map(|url| upload_key(storage, url))
        .filter(|(_, _, of)| *of == purpose)
        .map(|(_, id, _)| id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    uploads::Entity::update_many()
        .col_expr(uploads::Column::AttachedAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .filter(uploads::Column::Id.is_in(ids))
        .filter(uploads::Column::Purpose.eq(purpose.as_str()))
        .filter(uploads::Column::AttachedAt.lt(Utc::now() - ChronoDuration::seconds(CLAIM_GRACE_SECS)))
        .exec(db)
        .await?;
    Ok(())
}

/// [`release`] of a media field's old value when an update replaces or clears it (`new` as the
/// update takes it: None leaves the field as it is).
pub async fn release_replaced(
    db: &impl ConnectionTrait,
    storage: &Storage,
    purpose: UploadPurpose,
    old: Option<&str>,
    new: &Option<Option<String>>,
) -> AppResult<()> {
    match (old, new) {
        (Some(old), Some(new)) if new.as_deref() != Some(old) => release(db, storage, purpose, [old]).await,
        _ => Ok(()),
    }
}

/// Whether a row still refers to the upload: its id is in every key of its files, so a row
/// holding any of its URLs (original or a resized copy, under any base URL) contains it.
async fn in_use(db: &DatabaseConnection, upload: &uploads::Model) -> AppResult<bool> {
    use entity::{circles, course_contents, courses, messages, posts, user_identities, user_profiles};
    use sea_orm::PaginatorTrait;
    let needle = format!("%{}%", upload.id);
    let text_like = |column: &str| Expr::expr(Expr::cust(format!("CAST({column} AS TEXT)"))).like(needle.as_str());
    let count = match upload.purpose {
        UploadPurpose::Avatar => {
            user_profiles::Entity::find().filter(user_profiles::Column::Avatar.like(&needle)).count(db).await?
        }
        UploadPurpose::CircleAvatar => {
            circles::Entity::find().filter(circles::Column::Avatar.like(&needle)).count(db).await?
        }
        UploadPurpose::CourseCover => {
            courses::Entity::find().filter(courses::Column::CoverImage.like(&needle)).count(db).await?
        }
        UploadPurpose::CourseMedia => {
            course_contents::Entity::find().filter(course_contents::Column::ContentUrl.like(&needle)).count(db).await?
        }
        UploadPurpose::MessageFile => {
            messages::Entity::find()
                .filter(messages::Column::FromUserId.eq(upload.user_id))
                .filter(messages::Column::Content.like(&needle))
                .count(db)
                .await?
        }
        UploadPurpose::PostImage => {
            posts::Entity::find()
                .filter(posts::Column::UserId.eq(upload.user_id))
                .filter(text_like("media_urls"))
                .count(db)
                .await?
        }
        UploadPurpose::IdentityDocument => {
            user_identities::Entity::find()
                .filter(user_identities::Column::UserId.eq(upload.user_id))
                .filter(text_like("verification_documents"))
                .count(db)
                .await?
        }
    };
    Ok(count > 0)
}

/// [`claim`] for an optional, clearable media field (`Some(None)` clears it).
pub async fn claim_optional(
    db: &impl ConnectionTrait,
    storage: &Storage,
    user_id: Uuid,
    field: &str,
    value: Option<Option<String>>,
    purpose: UploadPurpose,
) -> AppResult<Option<Option<String>>> {
    match value {
        Some(Some(url)) => Ok(Some(Some(claim(db, storage, user_id, field, &url, &[purpose]).await?))),
        other => Ok(other),
    }
}

/// Deletes PENDING and REJECTED uploads older than a day, and READY ones older than a day that no
/// row holds: never used, or released by the row that held them (files and rows; a course
/// content, a message, a profile... claims its file; replacing it releases the old one).
pub async fn sweep(db: &DatabaseConnection, storage: &Storage) -> AppResult<u64> {
    let day_ago = Utc::now() - ChronoDuration::hours(24);
    let claimable = PURPOSES;
    let stale = sea_orm::Condition::all().add(uploads::Column::CreatedAt.lt(day_ago)).add(
        sea_orm::Condition::any()
            .add(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
            .add(uploads::Column::Status.eq(UploadStatus::Rejected.as_str()))
            .add(
                sea_orm::Condition::all()
                    .add(uploads::Column::Status.eq(UploadStatus::Ready.as_str()))
                    .add(uploads::Column::AttachedAt.is_null())
                    .add(uploads::Column::Purpose.is_in(claimable.iter().map(|p| p.as_str()))),
            ),
    );
    let candidates = uploads::Entity::find().filter(stale.clone()).limit(500).all(db).await?;
    let mut swept = 0;
    for upload in candidates {
        // A released upload another row still holds is marked used again, and kept.
        if upload.status == UploadStatus::Ready && in_use(db, &upload).await? {
            uploads::Entity::update_many()
                .col_expr(uploads::Column::AttachedAt, Expr::value(Utc::now()))
                .filter(uploads::Column::Id.eq(upload.id))
                .exec(db)
                .await?;
            continue;
        }
        // The row goes first, on the same condition: a claim since the read keeps it.
        let deleted = uploads::Entity::delete_many()
            .filter(uploads::Column::Id.eq(upload.id))
            .filter(stale.clone())
            .exec(db)
            .await?
            .rows_affected;
        if deleted == 0 {
            continue;
        }
        storage.delete(&staging_key(upload.id)).await?;
        storage.delete(&upload.object_key).await?;
        if let Some(variants) = upload.variants.as_ref().and_then(|v| v.as_object()) {
            for key in variants.values().filter_map(|k| k.as_str()) {
                storage.delete(key).await?;
            }
        }
        swept += 1;
    }
    Ok(swept)
}
