//! Uploads over GraphQL: a ticket to send the bytes to (`createUpload`), the check
//! (`completeUpload`), and the viewer's upload by id.

use super::context::{state, viewer};
use super::id_arg;
use crate::domain::uploads::{self, NewUpload};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::enums::{UploadPurpose, UploadStatus};
use entity::uploads as upload_table;

/// A file a user sent to the store.
pub struct Upload {
    row: upload_table::Model,
    /// Whether the viewer may read it (always for public purposes; owner and admins for private).
    readable: bool,
}

/// A resized copy of an image upload.
#[derive(SimpleObject)]
pub struct ImageVariant {
    /// Its longest side, in pixels.
    pub size: i32,
    /// Where to read it.
    pub url: String,
}

/// A file sent to the platform's storage, checked before use.
#[Object]
impl Upload {
    /// The upload's id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    /// What it is for.
    async fn purpose(&self) -> UploadPurpose {
        self.row.purpose
    }
    /// PENDING, READY or REJECTED.
    async fn status(&self) -> UploadStatus {
        self.row.status
    }
    /// Declared until READY; then the type found in the bytes.
    async fn content_type(&self) -> &str {
        &self.row.content_type
    }
    /// Its size in bytes.
    async fn byte_size(&self) -> i64 {
        self.row.byte_size
    }
    /// Its file name.
    async fn file_name(&self) -> &str {
        &self.row.file_name
    }
    /// Images, once READY.
    async fn width(&self) -> Option<i32> {
        self.row.width
    }
    /// An image's height in pixels.
    async fn height(&self) -> Option<i32> {
        self.row.height
    }
    /// Once READY: a stable URL for public purposes; a short-lived signed URL for identity
    /// documents and message files (their owner and admins only).
    async fn url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(uploads::url_for(&state(ctx)?.storage, &self.row, self.readable, None))
    }
    /// The sizes the apps show (e.g. 64 and 256 px avatars), smallest first.
    async fn variants(&self, ctx: &Context<'_>) -> Result<Vec<ImageVariant>> {
        let storage = &state(ctx)?.storage;
        let mut sizes: Vec<u32> = self
            .row
            .variants
            .as_ref()
            .and_then(|v| v.as_object())
            .map(|v| v.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        sizes.sort_unstable();
        Ok(sizes
            .into_iter()
            .filter_map(|size| {
                let url = uploads::url_for(storage, &self.row, self.readable, Some(size))?;
                Some(ImageVariant { size: size as i32, url })
            })
            .collect())
    }
    /// Why the check refused it (REJECTED).
    async fn reject_reason(&self) -> Option<&str> {
        self.row.reject_reason.as_deref()
    }
    /// When the ticket was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
}

/// An HTTP header the upload request must carry.
#[derive(SimpleObject)]
pub struct HttpHeader {
    /// The header's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Where to send an upload's bytes: `method` (PUT) to `url` with `headers`, before `expiresAt`.
#[derive(SimpleObject)]
pub struct UploadTicket {
    /// The PENDING upload.
    pub upload: Upload,
    /// Where to send the bytes.
    pub url: String,
    /// The HTTP method (PUT).
    pub method: String,
    /// Headers to send with them.
    pub headers: Vec<HttpHeader>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// Input of `createUpload`.
#[derive(InputObject)]
pub struct CreateUploadInput {
    /// What the file is for (sets its limits and who may read it).
    pub purpose: UploadPurpose,
    /// image/png, image/jpeg, image/webp, image/gif, application/pdf or video/mp4, as the purpose
    /// allows; the check compares it with the bytes.
    pub content_type: String,
    /// The exact size in bytes (avatars at most 5 MB, covers and post images 10 MB, identity
    /// documents 10 MB, message files 25 MB, course media 500 MB).
    pub byte_size: i64,
    /// The file's name, as the person chose it.
    pub file_name: String,
}

#[derive(Default)]
pub struct UploadsQuery;

#[Object]
impl UploadsQuery {
    /// One of your uploads.
    pub(crate) async fn upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upload's id.")] id: ID,
    ) -> Result<Option<Upload>> {
        let id = id_arg("id", &id)?;
        let state = state(ctx)?;
        crate::cache::uncacheable();
        match uploads::own(&state.db, viewer(ctx), id).await {
            Ok(row) => Ok(Some(Upload { row, readable: true })),
            Err(crate::error::AppError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

#[derive(Default)]
pub struct UploadsMutation;

#[Object]
impl UploadsMutation {
    /// Starts an upload: the file's bytes go to the returned URL, not through GraphQL. Then call
    /// `completeUpload`.
    async fn create_upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What the file is for, its name, type and size.")] input: CreateUploadInput,
    ) -> Result<UploadTicket> {
        let state = state(ctx)?;
        let input = NewUpload {
            purpose: input.purpose,
            content_type: input.content_type,
            byte_size: input.byte_size,
            file_name: input.file_name,
        };
        let user_id = viewer(ctx).require()?;
        let input = uploads::validate(input)?;
        crate::admission::limits::upload(state, user_id, input.byte_size()).await?;
        let (row, target) = uploads::create(&state.db, &state.storage, user_id, input).await?;
        let ttl = chrono::Duration::from_std(state.storage.upload_ttl()).unwrap_or_default();
        Ok(UploadTicket {
            expires_at: row.created_at + ttl,
            upload: Upload { row, readable: true },
            url: target.url,
            method: target.method.to_string(),
            headers: target.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
        })
    }

    /// Checks what arrived (size, the real type from the bytes, image dimensions) and makes the
    /// upload READY, or REJECTED with `rejectReason`. Calling it again returns the result.
    async fn complete_upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The upload whose bytes were sent to its ticket's URL.")] id: ID,
    ) -> Result<Upload> {
        let id = id_arg("id", &id)?;
        let state = state(ctx)?;
        let row = uploads::complete(&state.db, &state.storage, viewer(ctx), id).await?;
        Ok(Upload { row, readable: true })
    }
}
