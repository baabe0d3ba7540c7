//! Uploads: a ticket to send a file straight to the store (`create`), the check of what arrived
//! (`complete`: size, the real type from the bytes, image dimensions and decodability, the sizes
//! the apps show, EXIF dropped by re-encoding), the URL rules of who reads what, using an upload in
//! a row (`claim`), and the sweeper.
//!
//! Uploads feed no cache entry and no search document, so their rows are written directly.
#![allow(clippy::disallowed_methods)]

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
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
/// Uploads one user may start per day, and bytes per day.
pub const DAILY_COUNT: u64 = 200;
pub const DAILY_BYTES: u64 = 2 * 1024 * MB;

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
        P::CourseMedia => Rules { types: MEDIA, max_bytes: 500 * MB, variants: &[1280], private: false },
        P::IdentityDocument => Rules { types: DOCUMENTS, max_bytes: 10 * MB, variants: &[], private: true },
        P::MessageFile => Rules { types: MEDIA, max_bytes: 25 * MB, variants: &[], private: true },
    }
}

/// The content type a stored key is served with: the one its extension names (see [`extension`]).
pub fn type_of_key(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1;
    MEDIA.iter().copied().find(|t| extension(t) == format!(".{ext}"))
}

/// The largest file any purpose takes (the local upload route's body limit).
pub fn max_upload_bytes() -> u64 {
    500 * MB
}

pub struct NewUpload {
    pub purpose: UploadPurpose,
    pub content_type: String,
    pub byte_size: i64,
    pub file_name: String,
}

/// A new PENDING upload and where to send its bytes.
pub async fn create(
    db: &DatabaseConnection,
    storage: &Storage,
    viewer: &Viewer,
    input: NewUpload,
) -> AppResult<(uploads::Model, crate::storage::UploadTarget)> {
    let user_id = viewer.require()?;
    let rules = rules(input.purpose);
    let content_type = input.content_type.trim().to_ascii_lowercase();
    if !rules.types.contains(&content_type.as_str()) {
        return Err(AppError::bad_input(
            "input.contentType",
            format!("{} takes {}", input.purpose.as_str(), rules.types.join(", ")),
        ));
    }
    if input.byte_size < 1 || input.byte_size as u64 > rules.max_bytes {
        return Err(AppError::bad_input(
            "input.byteSize",
            format!("must be between 1 and {} bytes for {}", rules.max_bytes, input.purpose.as_str()),
        ));
    }
    let file_name = super::values::text("input.fileName", &input.file_name, 1, 255)?;
    // The day's quota: uploads started in the last 24 hours, and their declared bytes.
    let since = Utc::now() - ChronoDuration::hours(24);
    let (count, bytes): (i64, Option<i64>) = uploads::Entity::find()
        .filter(uploads::Column::UserId.eq(user_id))
        .filter(uploads::Column::CreatedAt.gt(since))
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(Expr::cust("CAST(SUM(byte_size) AS BIGINT)"), "b")
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or((0, None));
    if count as u64 >= DAILY_COUNT || bytes.unwrap_or(0) as u64 + input.byte_size as u64 > DAILY_BYTES {
        return Err(AppError::RateLimited { retry_after_secs: 3600 });
    }
    let id = Uuid::new_v4();
    let visibility = if rules.private { "private" } else { "public" };
    let key = format!("{visibility}/{}/{id}/original{}", input.purpose.as_str(), extension(&content_type));
    let target = storage.upload_target(&key, &content_type, input.byte_size as u64).await?;
    let row = uploads::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        purpose: Set(input.purpose),
        status: Set(UploadStatus::Pending),
        content_type: Set(content_type),
        byte_size: Set(input.byte_size),
        file_name: Set(file_name),
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

/// Checks what arrived for a PENDING upload and makes it READY, or REJECTED with the reason (and
/// the bytes deleted). A READY or REJECTED upload is returned as it is.
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
    let Some(size) = storage.size(&upload.object_key).await? else {
        return Err(AppError::bad_input("id", "nothing was uploaded yet: send the file to the upload URL first"));
    };
    let rules = rules(upload.purpose);
    let verdict = if size != upload.byte_size as u64 {
        Err(format!("{size} bytes arrived, {} were declared", upload.byte_size))
    } else if size > rules.max_bytes {
        Err(format!("larger than {} bytes", rules.max_bytes))
    } else {
        match storage.get(&upload.object_key).await? {
            None => Err("the file disappeared from the store".to_string()),
            Some(object) => check(storage, &upload, object.bytes, &rules).await?,
        }
    };
    let mut row: uploads::ActiveModel = upload.clone().into();
    row.completed_at = Set(Some(Utc::now()));
    match verdict {
        Ok(checked) => {
            row.status = Set(UploadStatus::Ready);
            row.content_type = Set(checked.content_type.to_string());
            row.byte_size = Set(checked.byte_size as i64);
            row.width = Set(checked.width.map(|w| w as i32));
            row.height = Set(checked.height.map(|h| h as i32));
            row.variants = Set(Some(serde_json::Value::Object(
                checked.variants.into_iter().map(|(side, key)| (side.to_string(), key.into())).collect(),
            )));
        }
        Err(reason) => {
            storage.delete(&upload.object_key).await?;
            row.status = Set(UploadStatus::Rejected);
            row.reject_reason = Set(Some(reason.chars().take(300).collect()));
        }
    }
    // Only a PENDING row moves (two completes at once: one writes, the other reads its result).
    let moved = uploads::Entity::update_many()
        .set(row)
        .filter(uploads::Column::Id.eq(id))
        .filter(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
        .exec(db)
        .await?;
    let _ = moved;
    uploads::Entity::find_by_id(id).one(db).await?.ok_or_else(|| AppError::not_found("upload"))
}

struct Checked {
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

/// The stored bytes checked against the upload; images decoded (off the async runtime), stored
/// again re-encoded (no EXIF, so no location) and resized to the purpose's sizes.
async fn check(
    storage: &Storage,
    upload: &uploads::Model,
    bytes: Bytes,
    rules: &Rules,
) -> AppResult<Result<Checked, String>> {
    let Some(real) = sniff(&bytes) else {
        return Ok(Err(format!("the bytes are not any of {}", rules.types.join(", "))));
    };
    if real != upload.content_type {
        return Ok(Err(format!("declared {}, but the bytes are {real}", upload.content_type)));
    }
    if !real.starts_with("image/") {
        let byte_size = bytes.len() as u64;
        storage.put(&upload.object_key, bytes, real).await?;
        return Ok(Ok(Checked { content_type: real, byte_size, width: None, height: None, variants: vec![] }));
    }
    let sides = rules.variants.to_vec();
    let processed = tokio::task::spawn_blocking(move || process_image(&bytes, real, &sides))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let image = match processed {
        Ok(image) => image,
        Err(reason) => return Ok(Err(reason)),
    };
    storage.put(&upload.object_key, image.original.clone(), real).await?;
    let mut variants = Vec::new();
    let base = upload.object_key.rsplit_once('/').map(|(dir, _)| dir).unwrap_or(&upload.object_key).to_string();
    for (side, bytes, content_type) in image.variants {
        let key = format!("{base}/{side}{}", extension(content_type));
        storage.put(&key, bytes, content_type).await?;
        variants.push((side, key));
    }
    Ok(Ok(Checked {
        content_type: real,
        byte_size: image.original.len() as u64,
        width: Some(image.width),
        height: Some(image.height),
        variants,
    }))
}

struct Processed {
    original: Bytes,
    width: u32,
    height: u32,
    variants: Vec<(u32, Bytes, &'static str)>,
}

fn process_image(bytes: &[u8], content_type: &'static str, sides: &[u32]) -> Result<Processed, String> {
    use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
    let format = image::guess_format(bytes).map_err(|e| e.to_string())?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| format!("not a readable image: {e}"))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("{width}×{height}: images may be at most {MAX_SIDE}×{MAX_SIDE}"));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(512 * MB);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| format!("not a readable image: {e}"))?;
    let orientation = decoder.orientation().map_err(|e| format!("not a readable image: {e}"))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable image: {e}"))?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    // GIFs keep their bytes (animation; GIF carries no EXIF); the others are written again.
    let (out_format, out_type) = match format {
        ImageFormat::Jpeg => (ImageFormat::Jpeg, "image/jpeg"),
        ImageFormat::WebP => (ImageFormat::WebP, "image/webp"),
        _ => (ImageFormat::Png, "image/png"),
    };
    let original = if format == ImageFormat::Gif { Bytes::copy_from_slice(bytes) } else { encode(&image, out_format)? };
    let _ = content_type;
    let mut variants = Vec::new();
    for &side in sides {
        if side >= width.max(height) {
            continue;
        }
        variants.push((side, encode(&image.thumbnail(side, side), out_format)?, out_type));
    }
    Ok(Processed { original, width, height, variants })
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

/// A URL kept in a row, as a reader who may see the row gets it: a private upload's stable form
/// becomes a short-lived signed URL; anything else is returned as it is.
pub fn readable_url(storage: &Storage, url: &str) -> String {
    match storage.key_of_url(url) {
        Some(key) if key.starts_with("private/") => storage.private_url(&key),
        _ => url.to_string(),
    }
}

/// A media URL given to a mutation (field `field`): a URL of this store must be a READY upload of
/// the viewer's own with one of `purposes` (it is then marked used, and its stable form returned);
/// any other http(s) URL passes through unchanged, as before uploads existed.
pub async fn claim(
    db: &impl ConnectionTrait,
    storage: &Storage,
    user_id: Uuid,
    field: &str,
    url: &str,
    purposes: &[UploadPurpose],
) -> AppResult<String> {
    let Some(key) = storage.key_of_url(url) else { return Ok(url.to_string()) };
    // `<public|private>/<purpose>/<upload id>/<original or variant>`
    let upload_id = key.split('/').nth(2).and_then(|id| Uuid::parse_str(id).ok());
    let upload = match upload_id {
        Some(id) => uploads::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
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
    if upload.attached_at.is_none() {
        uploads::Entity::update_many()
            .col_expr(uploads::Column::AttachedAt, Expr::value(Utc::now()))
            .filter(uploads::Column::Id.eq(upload.id))
            .exec(db)
            .await?;
    }
    Ok(storage.public_url(&key))
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

/// Deletes PENDING uploads older than a day and READY ones nothing used within a day (files and
/// rows); returns how many.
pub async fn sweep(db: &DatabaseConnection, storage: &Storage) -> AppResult<u64> {
    let day_ago = Utc::now() - ChronoDuration::hours(24);
    let stale = uploads::Entity::find()
        .filter(uploads::Column::CreatedAt.lt(day_ago))
        .filter(
            sea_orm::Condition::any()
                .add(uploads::Column::Status.eq(UploadStatus::Pending.as_str()))
                .add(uploads::Column::Status.eq(UploadStatus::Rejected.as_str()))
                .add(
                    sea_orm::Condition::all()
                        .add(uploads::Column::Status.eq(UploadStatus::Ready.as_str()))
                        .add(uploads::Column::AttachedAt.is_null()),
                ),
        )
        .limit(500)
        .all(db)
        .await?;
    let mut swept = 0;
    for upload in stale {
        storage.delete(&upload.object_key).await?;
        if let Some(variants) = upload.variants.as_ref().and_then(|v| v.as_object()) {
            for key in variants.values().filter_map(|k| k.as_str()) {
                storage.delete(key).await?;
            }
        }
        swept += uploads::Entity::delete_by_id(upload.id).exec(db).await?.rows_affected;
    }
    Ok(swept)
}
