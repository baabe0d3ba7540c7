//! Uploads through the real server: a ticket, the bytes sent to its URL, the check, the file
//! served; refusals (a lie about the type, too big, anonymous, someone else's upload, a bad or
//! expired signature) and the sweeper. Checked in the database and in the store. On the local
//! store in every run; on an S3-protocol server (a bucket per test) when `TEST_S3_URL` is set
//! (scripts/test starts moto for it).

use crate::helpers::*;
use serde_json::{json, Value};

const CREATE: &str = "mutation($i: CreateUploadInput!) { createUpload(input: $i) {
    url method headers { name value } expiresAt upload { id status } } }";
const COMPLETE: &str = "mutation($id: ID!) { completeUpload(id: $id) {
    id status contentType byteSize width height url rejectReason variants { size url } } }";
const PROFILE: &str =
    "mutation($id: ID!, $i: UpdateProfileInput!) { updateProfile(identityId: $id, input: $i) { avatar } }";

/// A `width`×`height` PNG.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

/// A JPEG carrying an EXIF segment (an empty TIFF directory) right after its start marker.
fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 90, 200]));
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .expect("jpeg");
    let tiff: &[u8] = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0";
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(tiff);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A server on the local store, or on `TEST_S3_URL`'s S3 server.
async fn spawn_storage(overrides: &[(&str, &str)]) -> TestApp {
    let storage = storage_env().await;
    let mut all: Vec<(&str, &str)> = borrowed(&storage);
    all.extend_from_slice(overrides);
    spawn_app_with(&all).await
}

impl TestApp {
    async fn ticket(&self, token: &str, purpose: &str, content_type: &str, size: usize) -> Value {
        self.ticket_named(token, purpose, content_type, size, "file").await
    }

    /// A ticket for a file named `name` (SQL below finds uploads by name: ids are BLOBs on SQLite).
    async fn ticket_named(&self, token: &str, purpose: &str, content_type: &str, size: usize, name: &str) -> Value {
        let input = json!({ "purpose": purpose, "contentType": content_type, "byteSize": size, "fileName": name });
        data(&self.gql_as(token, CREATE, json!({ "i": input })).await)["createUpload"].clone()
    }

    /// Sends `bytes` as the ticket says; the HTTP status.
    async fn send(&self, ticket: &Value, bytes: Vec<u8>) -> u16 {
        assert_eq!(ticket["method"], "PUT");
        let mut request = self.http.put(ticket["url"].as_str().expect("url"));
        for header in ticket["headers"].as_array().expect("headers") {
            request = request.header(header["name"].as_str().unwrap(), header["value"].as_str().unwrap());
        }
        request.body(bytes).send().await.expect("upload").status().as_u16()
    }

    /// A ticket, the bytes sent, then completed: the upload.
    async fn uploaded(&self, token: &str, purpose: &str, content_type: &str, bytes: Vec<u8>) -> Value {
        self.uploaded_named(token, purpose, content_type, bytes, "file").await
    }

    async fn uploaded_named(
        &self,
        token: &str,
        purpose: &str,
        content_type: &str,
        bytes: Vec<u8>,
        name: &str,
    ) -> Value {
        let ticket = self.ticket_named(token, purpose, content_type, bytes.len(), name).await;
        assert_eq!(self.send(&ticket, bytes).await, 200);
        let body = self.gql_as(token, COMPLETE, json!({ "id": ticket["upload"]["id"] })).await;
        data(&body)["completeUpload"].clone()
    }

    async fn fetch(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("get")
    }
}

#[tokio::test]
async fn an_avatar_goes_up_is_checked_resized_served_and_used_in_a_profile() {
    let app = spawn_storage(&[]).await;
    let _world = app.world().await;
    let me = app.register("me@example.com").await;
    let identity = app.apply(&me, "APPRENTICE", "software").await;

    let ticket = app.ticket(&me.access, "AVATAR", "image/png", png(600, 400).len()).await;
    assert_eq!(ticket["upload"]["status"], "PENDING");
    assert!(ticket["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "Content-Type" && h["value"] == "image/png"));
    // Before the bytes arrive, completing says so and changes nothing.
    let early = app.gql_as(&me.access, COMPLETE, json!({ "id": ticket["upload"]["id"] })).await;
    assert_eq!(error_code(&early), "BAD_USER_INPUT", "{early}");
    assert_eq!(app.send(&ticket, png(600, 400)).await, 200);
    let body = app.gql_as(&me.access, COMPLETE, json!({ "id": ticket["upload"]["id"] })).await;
    let upload = data(&body)["completeUpload"].clone();
    assert_eq!(upload["status"], "READY", "{body}");
    assert_eq!((upload["width"].as_i64(), upload["height"].as_i64()), (Some(600), Some(400)));
    assert_eq!(upload["contentType"], "image/png");
    let sizes: Vec<i64> = upload["variants"].as_array().unwrap().iter().map(|v| v["size"].as_i64().unwrap()).collect();
    assert_eq!(sizes, [64, 256]);

    let url = upload["url"].as_str().expect("a public URL").to_string();
    assert!(!url.contains("sig="), "a public file has a stable URL: {url}");
    let served = app.fetch(&url).await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert!(served.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let bytes = served.bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 600);
    let small = app.fetch(upload["variants"][1]["url"].as_str().unwrap()).await.bytes().await.unwrap();
    let small = image::load_from_memory(&small).unwrap();
    assert_eq!((small.width(), small.height()), (256, 171), "the 256 px copy keeps the aspect ratio");

    // My profile takes my READY avatar; another user cannot use it.
    let body = app.gql_as(&me.access, PROFILE, json!({ "id": identity, "i": { "name": "Me", "avatar": url } })).await;
    assert_eq!(data(&body)["updateProfile"]["avatar"], url.as_str(), "{body}");
    let other = app.register("other@example.com").await;
    let theirs = app.apply(&other, "APPRENTICE", "software").await;
    let body =
        app.gql_as(&other.access, PROFILE, json!({ "id": theirs, "i": { "name": "Other", "avatar": url } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.avatar");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM user_profiles WHERE name = 'Other'").await, 0, "nothing written");
    let upload_query = "query($id: ID!) { upload(id: $id) { id } }";
    let body = app.gql_as(&other.access, upload_query, json!({ "id": upload["id"] })).await;
    assert!(data(&body)["upload"].is_null(), "someone else's upload is not found: {body}");
    // An external URL stays allowed, as before uploads.
    let body = app
        .gql_as(
            &other.access,
            PROFILE,
            json!({ "id": theirs, "i": { "name": "Other", "avatar": "https://img.example.com/o.png" } }),
        )
        .await;
    assert_eq!(data(&body)["updateProfile"]["avatar"], "https://img.example.com/o.png");

    // A JPEG loses its EXIF when it is checked.
    let photo = jpeg_with_exif(320, 200);
    assert!(photo.windows(4).any(|w| w == b"Exif"));
    let upload = app.uploaded(&me.access, "POST_IMAGE", "image/jpeg", photo).await;
    assert_eq!(upload["status"], "READY", "{upload}");
    let stored = app.fetch(upload["url"].as_str().unwrap()).await.bytes().await.unwrap();
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF (and any location in it) is gone");
    assert_eq!(image::load_from_memory(&stored).unwrap().width(), 320);
}

#[tokio::test]
async fn lies_oversize_anonymous_and_bad_upload_urls_are_refused() {
    let app = spawn_storage(&[]).await;
    let me = app.register("me@example.com").await;

    // Text declared as a PNG: REJECTED, and the bytes are deleted.
    let upload = app.uploaded(&me.access, "AVATAR", "image/png", b"hello, I am text".to_vec()).await;
    assert_eq!(upload["status"], "REJECTED", "{upload}");
    assert!(upload["rejectReason"].as_str().unwrap().contains("not any of"), "{upload}");
    assert!(upload["url"].is_null());
    let key = format!("public/avatar/{}/original.png", upload["id"].as_str().unwrap());
    assert_eq!(app.fetch(&app.url(&format!("/media/{key}"))).await.status().as_u16(), 404, "never published");
    if s3_url().is_none() {
        let staged = app.data_dir.join("media/private/incoming").join(upload["id"].as_str().unwrap());
        assert!(!staged.exists(), "the refused bytes are deleted: {}", staged.display());
    }
    // A real PNG declared as JPEG: REJECTED too (the type comes from the bytes).
    let upload = app.uploaded(&me.access, "AVATAR", "image/jpeg", png(10, 10)).await;
    assert_eq!(upload["status"], "REJECTED");
    assert!(upload["rejectReason"].as_str().unwrap().contains("image/png"), "{upload}");

    // Refused at createUpload: too big for an avatar, a type the purpose does not take, anonymous.
    let before = app.count("uploads").await;
    let input = |size: i64, content_type: &str| json!({ "i": { "purpose": "AVATAR", "contentType": content_type, "byteSize": size, "fileName": "a.png" } });
    let body = app.gql_as(&me.access, CREATE, input(6 * 1024 * 1024, "image/png")).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.byteSize"), "{body}");
    let body = app.gql_as(&me.access, CREATE, input(100, "application/pdf")).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.contentType"), "{body}");
    let body = app.gql(CREATE, input(100, "image/png")).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(app.count("uploads").await, before, "nothing was written");

    // More bytes than declared: the local upload route refuses them; an S3 presigned PUT takes
    // them, and the check then rejects the upload.
    let ticket = app.ticket(&me.access, "AVATAR", "image/png", 100).await;
    let url = ticket["url"].as_str().unwrap().to_string();
    let status = app.http.put(&url).body(vec![0u8; 101]).send().await.unwrap().status().as_u16();
    if s3_url().is_none() {
        assert_eq!(status, 413);
        // The local upload URL's own signature: the size it allows and the signature itself.
        let forged = url.replace("size=100", "size=100000");
        assert_eq!(app.http.put(&forged).body(vec![0u8; 1000]).send().await.unwrap().status().as_u16(), 403);
        let unsigned = url.split('?').next().unwrap();
        assert_eq!(app.http.put(unsigned).body(vec![0u8; 10]).send().await.unwrap().status().as_u16(), 403);
    } else {
        assert_eq!(status, 200, "the S3 server took the bytes");
        let body = app.gql_as(&me.access, COMPLETE, json!({ "id": ticket["upload"]["id"] })).await;
        let upload = &data(&body)["completeUpload"];
        assert_eq!(upload["status"], "REJECTED", "{body}");
        assert!(upload["rejectReason"].as_str().unwrap().contains("101 bytes arrived"), "{body}");
        // (moto does not check presigned signatures; the store's own URLs are its to refuse.)
    }
}

#[tokio::test]
async fn a_private_document_is_read_through_a_signed_url_only_and_not_for_long() {
    let app = spawn_storage(&[("PRIVATE_URL_TTL_SECS", "2")]).await;
    let me = app.register("me@example.com").await;
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let upload = app.uploaded(&me.access, "IDENTITY_DOCUMENT", "application/pdf", pdf.clone()).await;
    assert_eq!(upload["status"], "READY", "{upload}");
    let url = upload["url"].as_str().expect("a signed URL for its owner").to_string();
    assert!(url.contains("sig="), "{url}");
    let served = app.fetch(&url).await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "application/pdf");
    assert!(served.headers()["cache-control"].to_str().unwrap().contains("no-store"));
    assert_eq!(served.bytes().await.unwrap().to_vec(), pdf);

    let (base, query) = url.split_once('?').unwrap();
    let tampered = {
        let last = query.chars().last().unwrap();
        let swap = if last == '0' { '1' } else { '0' };
        format!("{base}?{}{swap}", &query[..query.len() - 1])
    };
    assert_eq!(app.fetch(&tampered).await.status().as_u16(), 403, "signature changed");
    assert_eq!(app.fetch(base).await.status().as_u16(), 403, "no signature");
    let longer = url.replace("expires=", "expires=9");
    assert_eq!(app.fetch(&longer).await.status().as_u16(), 403, "expiry changed");
    // Another user gets no URL for it at all.
    let other = app.register("other@example.com").await;
    let body =
        app.gql_as(&other.access, "query($id: ID!) { upload(id: $id) { url } }", json!({ "id": upload["id"] })).await;
    assert!(data(&body)["upload"].is_null(), "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(app.fetch(&url).await.status().as_u16(), 403, "expired");
}

#[tokio::test]
async fn the_sweeper_deletes_stale_and_unused_uploads_and_keeps_used_ones() {
    let app = spawn_storage(&[("UPLOAD_SWEEP_SECS", "1")]).await;
    let _world = app.world().await;
    let me = app.register("me@example.com").await;
    let identity = app.apply(&me, "APPRENTICE", "software").await;
    let used = app.uploaded_named(&me.access, "AVATAR", "image/png", png(100, 100), "used").await;
    data(
        &app.gql_as(&me.access, PROFILE, json!({ "id": identity, "i": { "name": "Me", "avatar": used["url"] } })).await,
    );
    let unused = app.uploaded_named(&me.access, "AVATAR", "image/png", png(100, 100), "unused").await;
    app.ticket_named(&me.access, "AVATAR", "image/png", 10, "pending").await;
    app.ticket_named(&me.access, "AVATAR", "image/png", 10, "fresh").await;
    app.exec(
        "UPDATE uploads SET created_at = '2000-01-01 00:00:00+00:00' WHERE file_name IN ('used', 'unused', 'pending')",
    )
    .await;
    let left = |name: &str| format!("SELECT COUNT(*) FROM uploads WHERE file_name = '{name}'");
    assert_eq!(app.scalar(&left("pending")).await, 1);
    let mut waited = 0;
    while app.scalar(&left("unused")).await + app.scalar(&left("pending")).await > 0 {
        assert!(waited < 100, "the sweeper did not run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(app.scalar(&left("used")).await, 1, "a used upload stays");
    assert_eq!(app.scalar(&left("fresh")).await, 1, "a fresh pending upload stays");
    assert_eq!(app.fetch(unused["url"].as_str().unwrap()).await.status().as_u16(), 404, "its file is gone");
    assert_eq!(app.fetch(used["url"].as_str().unwrap()).await.status().as_u16(), 200);
}

#[tokio::test]
async fn identity_documents_covers_and_circle_avatars_take_uploads_for_their_purpose_only() {
    let app = spawn_storage(&[]).await;
    let world = app.world().await;
    let me = app.register("applicant@example.com").await;
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\ntrailer << >>\n%%EOF\n".to_vec();
    let document = app.uploaded(&me.access, "IDENTITY_DOCUMENT", "application/pdf", pdf.clone()).await;
    let avatar = app.uploaded(&me.access, "AVATAR", "image/png", png(80, 80)).await;
    let apply = "mutation($i: ApplyIdentityInput!) { applyIdentity(input: $i) { id } }";
    // An avatar is not an identity document.
    let body = app
        .gql_as(&me.access, apply, json!({ "i": { "identityType": "MASTER", "domain": "software", "verificationDocuments": [avatar["url"]] } }))
        .await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.verificationDocuments.0"), "{body}");
    let body = app
        .gql_as(&me.access, apply, json!({ "i": { "identityType": "MASTER", "domain": "software", "verificationDocuments": [document["url"]] } }))
        .await;
    let identity = data(&body)["applyIdentity"]["id"].as_str().unwrap().to_string();
    // The admin reviewing it gets a fresh signed URL that reads the document; nobody else sees it.
    let admin = &world.admin;
    let read = "query($id: ID!) { identity(id: $id) { verificationDocuments } }";
    let body = app.gql_as(&admin.access, read, json!({ "id": identity })).await;
    let url = data(&body)["identity"]["verificationDocuments"][0].as_str().expect("a document").to_string();
    assert!(url.contains("sig="), "{url}");
    assert_eq!(app.fetch(&url).await.bytes().await.unwrap().to_vec(), pdf);
    assert_eq!(app.fetch(url.split('?').next().unwrap()).await.status().as_u16(), 403);
    // Its owner gets one too.
    let mine = "{ me { identities { verificationDocuments } } }";
    let body = app.gql_as(&me.access, mine, json!({})).await;
    let owned = data(&body)["me"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["verificationDocuments"][0].as_str().map(str::to_string))
        .expect("the owner reads their document");
    assert_eq!(app.fetch(&owned).await.status().as_u16(), 200, "{owned}");

    // A master's course cover: a COURSE_COVER upload of their own.
    let master = app.master(&world, "master@example.com", "software").await;
    let cover = app.uploaded(&master.session.access, "COURSE_COVER", "image/png", png(1600, 900)).await;
    let sizes: Vec<i64> = cover["variants"].as_array().unwrap().iter().map(|v| v["size"].as_i64().unwrap()).collect();
    assert_eq!(sizes, [320, 1280]);
    let course = app.course(&master, None, 0, false).await;
    let update = "mutation($id: ID!, $i: UpdateCourseInput!) { updateCourse(id: $id, input: $i) { coverImage } }";
    let body =
        app.gql_as(&master.session.access, update, json!({ "id": course, "i": { "coverImage": cover["url"] } })).await;
    assert_eq!(data(&body)["updateCourse"]["coverImage"], cover["url"], "{body}");
    let theirs = app.uploaded(&me.access, "COURSE_COVER", "image/png", png(400, 300)).await;
    let body =
        app.gql_as(&master.session.access, update, json!({ "id": course, "i": { "coverImage": theirs["url"] } })).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.coverImage"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("not an upload of yours"), "{body}");
    let mine = app.uploaded(&master.session.access, "AVATAR", "image/png", png(90, 90)).await;
    let body =
        app.gql_as(&master.session.access, update, json!({ "id": course, "i": { "coverImage": mine["url"] } })).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("course_cover"), "no avatar as a cover: {body}");

    // A circle's avatar: a CIRCLE_AVATAR upload, not a personal avatar.
    let identity = app.apply(&me, "APPRENTICE", "software").await;
    let create = "mutation($i: CreateCircleInput!) { createCircle(input: $i) { avatar } }";
    let input = |avatar: &Value| json!({ "i": { "identityId": identity, "name": "Pics", "domain": "software", "avatar": avatar } });
    let body = app.gql_as(&me.access, create, input(&avatar["url"])).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.avatar"), "{body}");
    assert_eq!(app.count("circles").await, 0, "nothing written");
    let picture = app.uploaded(&me.access, "CIRCLE_AVATAR", "image/png", png(300, 300)).await;
    let body = app.gql_as(&me.access, create, input(&picture["url"])).await;
    assert_eq!(data(&body)["createCircle"]["avatar"], picture["url"], "{body}");
}

#[tokio::test]
async fn bytes_sent_again_after_the_check_change_nothing_served_and_checks_do_not_overlap() {
    let app = spawn_storage(&[]).await;
    let me = app.register("me@example.com").await;
    let picture = png(200, 100);
    let ticket = app.ticket(&me.access, "POST_IMAGE", "image/png", picture.len()).await;
    assert_eq!(app.send(&ticket, picture.clone()).await, 200);
    // Two checks at once: one checks, the other is told so (or reads its result); never both.
    let id = ticket["upload"]["id"].clone();
    let (a, b) = tokio::join!(
        app.gql_as(&me.access, COMPLETE, json!({ "id": id })),
        app.gql_as(&me.access, COMPLETE, json!({ "id": id }))
    );
    let ready: Vec<&Value> =
        [&a, &b].into_iter().filter(|r| r["data"]["completeUpload"]["status"] == "READY").collect();
    assert!(!ready.is_empty(), "{a} {b}");
    for other in [&a, &b] {
        if other["data"]["completeUpload"].is_null() {
            assert_eq!(error_code(other), "CONFLICT", "{other}");
        }
    }
    let url = ready[0]["data"]["completeUpload"]["url"].as_str().unwrap().to_string();
    let served = app.fetch(&url).await.bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&served).unwrap().width(), 200);
    // The ticket's URL still takes bytes until it expires, but they land in the staging area:
    // what is served is the checked file.
    assert_eq!(app.send(&ticket, vec![b'x'; picture.len()]).await, 200);
    assert_eq!(app.fetch(&url).await.bytes().await.unwrap(), served, "the checked file is unchanged");
    let body = app.gql_as(&me.access, COMPLETE, json!({ "id": id })).await;
    assert_eq!(data(&body)["completeUpload"]["status"], "READY", "a READY upload stays as it is: {body}");
    assert_eq!(data(&body)["completeUpload"]["width"], 200);
}

#[tokio::test]
async fn a_users_daily_uploads_are_counted_in_the_rate_limits() {
    let app = spawn_storage(&[("RATE_UPLOAD_USER", "2/1d"), ("RATE_UPLOAD_MB_USER", "12/1d")]).await;
    let me = app.register("me@example.com").await;
    let create = |size: i64| json!({ "i": { "purpose": "POST_IMAGE", "contentType": "image/png", "byteSize": size, "fileName": "a.png" } });
    data(&app.gql_as(&me.access, CREATE, create(100)).await);
    data(&app.gql_as(&me.access, CREATE, create(100)).await);
    let before = app.count("uploads").await;
    let body = app.gql_as(&me.access, CREATE, create(100)).await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "the third upload of the day: {body}");
    assert!(body["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap_or(0) > 0, "{body}");
    assert_eq!(app.count("uploads").await, before, "nothing written");
    // Bytes count too: 12 MB a day is one 10 MB image, not two.
    let other = app.register("other@example.com").await;
    data(&app.gql_as(&other.access, CREATE, create(10 * 1024 * 1024)).await);
    let body = app.gql_as(&other.access, CREATE, create(10 * 1024 * 1024)).await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
    // Bad input is refused as such, before the quota is looked at.
    let body = app
        .gql_as(
            &me.access,
            CREATE,
            json!({ "i": { "purpose": "AVATAR", "contentType": "text/html", "byteSize": 1, "fileName": "x" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

/// FILE and IMAGE messages take the sender's READY MESSAGE_FILE upload (private): the parties read
/// it through a fresh signed URL; another person's upload, a pending one, another purpose or
/// something that is not a URL is refused and sends nothing.
#[tokio::test]
async fn file_messages_carry_private_uploads_the_parties_read_through_signed_urls() {
    let app = spawn_storage(&[]).await;
    let ann = app.register("ann@example.com").await;
    let bob = app.register("bob@example.com").await;
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let upload = app.uploaded(&ann.access, "MESSAGE_FILE", "application/pdf", pdf.clone()).await;
    assert_eq!(upload["status"], "READY", "{upload}");
    let url = upload["url"].as_str().expect("url").to_string();
    let send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id content messageType } }";
    let file = |content: &str| json!({ "i": { "toUserId": bob.user_id, "content": content, "messageType": "FILE" } });
    let body = app.gql_as(&ann.access, send, file(&url)).await;
    assert_eq!(data(&body)["sendMessage"]["messageType"], "FILE", "{body}");
    let read = "query($u: ID!) { messages(withUserId: $u) { edges { node { content messageType } } } }";
    let body = app.gql_as(&bob.access, read, json!({ "u": ann.user_id })).await;
    let content = data(&body)["messages"]["edges"][0]["node"]["content"].as_str().expect("content").to_string();
    assert!(content.contains("sig="), "the recipient gets a signed URL: {content}");
    let served = app.fetch(&content).await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), pdf);
    let (unsigned, _) = content.split_once('?').expect("query");
    assert_eq!(app.fetch(unsigned).await.status().as_u16(), 403, "not without the signature");

    let before = app.count("messages").await;
    let bobs = app.uploaded(&bob.access, "MESSAGE_FILE", "application/pdf", pdf.clone()).await;
    let body = app.gql_as(&ann.access, send, file(bobs["url"].as_str().expect("url"))).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.content"), "{body}");
    let avatar = app.uploaded(&ann.access, "AVATAR", "image/png", png(80, 80)).await;
    let body = app.gql_as(&ann.access, send, file(avatar["url"].as_str().expect("url"))).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.content"), "another purpose: {body}");
    let body = app.gql_as(&ann.access, send, file("not a url")).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.content"), "{body}");
    assert_eq!(app.count("messages").await, before, "nothing sent");
    // An external file link stays allowed, as elsewhere.
    let body = app.gql_as(&ann.access, send, file("https://files.example.com/notes.pdf")).await;
    assert_eq!(data(&body)["sendMessage"]["content"], "https://files.example.com/notes.pdf", "{body}");
}

/// A course content's media is a READY COURSE_MEDIA upload of the course's master (private): the
/// master and enrolled students read it through a signed URL, others get nothing while it is
/// locked; another person's upload is refused.
#[tokio::test]
async fn course_media_is_read_through_signed_urls_by_those_the_content_is_open_to() {
    let app = spawn_storage(&[]).await;
    let world = app.world().await;
    let ada = app.master(&world, "ada@example.com", "software").await;
    let course = app.course(&ada, None, 1, true).await;
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let upload = app.uploaded(&ada.session.access, "COURSE_MEDIA", "application/pdf", pdf.clone()).await;
    assert_eq!(upload["status"], "READY", "{upload}");
    let add =
        "mutation($c: ID!, $i: AddCourseContentInput!) { addCourseContent(courseId: $c, input: $i) { id contentUrl } }";
    let input =
        |url: &str| json!({ "c": course, "i": { "title": "Slides", "contentType": "ASSIGNMENT", "contentUrl": url } });
    let body = app.gql_as(&ada.session.access, add, input(upload["url"].as_str().expect("url"))).await;
    let content = data(&body)["addCourseContent"]["id"].as_str().expect("content").to_string();
    let own = data(&body)["addCourseContent"]["contentUrl"].as_str().expect("the master reads it").to_string();
    assert!(own.contains("sig="), "{own}");

    let read = "query($id: ID!) { node(id: $id) { ... on CourseContent { contentUrl } } }";
    let student = app.register("student@example.com").await;
    let body = app.gql_as(&student.access, read, json!({ "id": content })).await;
    assert!(data(&body)["node"]["contentUrl"].is_null(), "locked before enrolling: {body}");
    data(
        &app.gql_as(&student.access, "mutation($c: ID!) { enroll(courseId: $c) { id } }", json!({ "c": course })).await,
    );
    let body = app.gql_as(&student.access, read, json!({ "id": content })).await;
    let url = data(&body)["node"]["contentUrl"].as_str().expect("open once enrolled").to_string();
    let served = app.fetch(&url).await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), pdf);
    let (unsigned, _) = url.split_once('?').expect("signed");
    assert_eq!(app.fetch(unsigned).await.status().as_u16(), 403, "not without the signature");

    // A free item's media: a stable, cacheable URL for anyone, while the item stays free.
    let free_input = json!({ "c": course, "i": { "title": "Trailer", "contentType": "VIDEO", "contentUrl": upload["url"], "isFree": true } });
    let body = app.gql_as(&ada.session.access, add, free_input).await;
    let free = data(&body)["addCourseContent"]["id"].as_str().expect("free content").to_string();
    let body = app.gql(read, json!({ "id": free })).await;
    let stable = data(&body)["node"]["contentUrl"].as_str().expect("open to anyone").to_string();
    assert!(stable.contains(&format!("free={free}")) && !stable.contains("sig="), "{stable}");
    let again = app.gql(read, json!({ "id": free })).await;
    assert_eq!(data(&again)["node"]["contentUrl"], stable.as_str(), "the same URL every time");
    let served = app.fetch(&stable).await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["cache-control"], "public, max-age=600");
    assert_eq!(served.bytes().await.unwrap().to_vec(), pdf);
    // Not for another upload's file, not as another content's (paid) media, not once the item is paid.
    let another = app.uploaded(&ada.session.access, "COURSE_MEDIA", "application/pdf", pdf.clone()).await;
    let another_key = another["url"].as_str().unwrap().split_once("/media/").unwrap().1.split_once('?').unwrap().0;
    let (base, _) = stable.split_once("/media/").unwrap();
    let foreign = format!("{base}/media/{another_key}?free={free}");
    assert_eq!(app.fetch(&foreign).await.status().as_u16(), 403, "a file the free content does not hold");
    let as_paid = stable.replace(&free, &content);
    assert_eq!(app.fetch(&as_paid).await.status().as_u16(), 403, "the paid content is not free");
    let update =
        "mutation($id: ID!, $i: UpdateCourseContentInput!) { updateCourseContent(id: $id, input: $i) { isFree } }";
    data(&app.gql_as(&ada.session.access, update, json!({ "id": free, "i": { "isFree": false } })).await);
    assert_eq!(app.fetch(&stable).await.status().as_u16(), 403, "no longer free");

    let theirs = app.uploaded(&student.access, "COURSE_MEDIA", "application/pdf", pdf).await;
    let before = app.count("course_contents").await;
    let body = app.gql_as(&ada.session.access, add, input(theirs["url"].as_str().expect("url"))).await;
    assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.contentUrl"), "{body}");
    assert_eq!(app.count("course_contents").await, before);
}

#[tokio::test]
async fn files_are_served_in_byte_ranges_for_players_and_resumed_downloads() {
    let app = spawn_storage(&[]).await;
    let me = app.register("me@example.com").await;
    let pdf: Vec<u8> = [&b"%PDF-1.4\n"[..], &(0..200u32).map(|n| (n % 251) as u8).collect::<Vec<_>>()].concat();
    let upload = app.uploaded(&me.access, "IDENTITY_DOCUMENT", "application/pdf", pdf.clone()).await;
    assert_eq!(upload["status"], "READY", "{upload}");
    let url = upload["url"].as_str().unwrap().to_string();
    let ranged = |range: &str| app.http.get(&url).header("range", range.to_string()).send();
    let size = pdf.len();

    let whole = app.fetch(&url).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let part = ranged("bytes=0-9").await.unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 0-9/{size}").as_str());
    assert_eq!(part.headers()["content-length"], "10");
    assert_eq!(part.headers()["content-type"], "application/pdf");
    assert_eq!(part.bytes().await.unwrap().to_vec(), pdf[..10]);
    let middle = ranged("bytes=100-").await.unwrap();
    assert_eq!(middle.status().as_u16(), 206);
    assert_eq!(middle.headers()["content-range"], format!("bytes 100-{}/{size}", size - 1).as_str());
    assert_eq!(middle.bytes().await.unwrap().to_vec(), pdf[100..]);
    let tail = ranged("bytes=-7").await.unwrap();
    assert_eq!(tail.bytes().await.unwrap().to_vec(), pdf[size - 7..]);
    let past_end = ranged("bytes=10-100000").await.unwrap();
    assert_eq!(past_end.status().as_u16(), 206, "a last byte past the end is the end");
    assert_eq!(past_end.bytes().await.unwrap().to_vec(), pdf[10..]);

    let none = ranged(&format!("bytes={size}-")).await.unwrap();
    assert_eq!(none.status().as_u16(), 416);
    assert_eq!(none.headers()["content-range"], format!("bytes */{size}").as_str());
    // Several ranges, another unit, or a Range under If-Range: the whole file.
    for range in ["bytes=0-1,5-6", "items=0-1"] {
        let whole = ranged(range).await.unwrap();
        assert_eq!(whole.status().as_u16(), 200, "{range}");
        assert_eq!(whole.bytes().await.unwrap().to_vec(), pdf, "{range}");
    }
    let conditional = app.http.get(&url).header("range", "bytes=0-9").header("if-range", "\"x\"").send().await;
    assert_eq!(conditional.unwrap().status().as_u16(), 200);
    // A range of a private file still needs its signature.
    let unsigned = url.split_once('?').unwrap().0.to_string();
    let refused = app.http.get(&unsigned).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
}

#[tokio::test]
async fn a_replaced_avatar_or_post_image_is_swept_unless_another_row_still_holds_it() {
    let app = spawn_storage(&[("UPLOAD_SWEEP_SECS", "1")]).await;
    let _world = app.world().await;
    let me = app.register("me@example.com").await;
    let identity = app.apply(&me, "APPRENTICE", "software").await;
    let named = |name: &'static str, purpose: &'static str| {
        let (app, token) = (&app, me.access.clone());
        async move { app.uploaded_named(&token, purpose, "image/png", png(60, 60), name).await }
    };
    let (old, new) = (named("old", "AVATAR").await, named("new", "AVATAR").await);
    let (image, lone, swapped) =
        (named("image", "POST_IMAGE").await, named("lone", "POST_IMAGE").await, named("swapped", "POST_IMAGE").await);
    let set_avatar = |avatar: &Value| {
        let variables = json!({ "id": identity, "i": { "name": "Me", "avatar": avatar } });
        let (app, token) = (&app, me.access.clone());
        async move { app.gql_as(&token, PROFILE, variables).await }
    };
    data(&set_avatar(&old["url"]).await);
    let circle = data(
        &app.gql_as(
            &me.access,
            "mutation($i: CreateCircleInput!) { createCircle(input: $i) { id } }",
            json!({ "i": { "identityId": identity, "name": "Photos", "domain": "software" } }),
        )
        .await,
    )["createCircle"]["id"]
        .clone();
    let post_with = |media: &Value| {
        let input = json!({ "i": { "circleId": circle, "identityId": identity, "content": "look", "postType": "IMAGE", "mediaUrls": [media] } });
        let (app, token) = (&app, me.access.clone());
        async move {
            let body =
                app.gql_as(&token, "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }", input).await;
            data(&body)["createPost"]["id"].clone()
        }
    };
    // One image in two posts; another in one.
    let (first, _second, third) =
        (post_with(&image["url"]).await, post_with(&image["url"]).await, post_with(&lone["url"]).await);
    // A claim holds its file for a minute against releases; these were set long ago.
    app.exec("UPDATE uploads SET created_at = '2000-01-01 00:00:00+00:00'").await;
    app.exec("UPDATE uploads SET attached_at = '2000-01-01 00:00:00+00:00' WHERE attached_at IS NOT NULL").await;

    data(&set_avatar(&new["url"]).await);
    let update = "mutation($id: ID!, $i: UpdatePostInput!) { updatePost(id: $id, input: $i) { mediaUrls } }";
    for post in [&first, &third] {
        let body = app.gql_as(&me.access, update, json!({ "id": post, "i": { "mediaUrls": [swapped["url"]] } })).await;
        assert_eq!(data(&body)["updatePost"]["mediaUrls"][0], swapped["url"], "{body}");
    }
    // Someone else's upload is refused in updatePost as in createPost, and under another host too.
    let other = app.register("other@example.com").await;
    let theirs = app.uploaded_named(&other.access, "POST_IMAGE", "image/png", png(50, 50), "theirs").await;
    let url = theirs["url"].as_str().unwrap().to_string();
    let elsewhere = format!("https://cdn.example.net/media/{}", url.split_once("/media/").unwrap().1);
    for url in [url, elsewhere] {
        let body = app.gql_as(&me.access, update, json!({ "id": first, "i": { "mediaUrls": [url] } })).await;
        assert_eq!((error_code(&body), error_field(&body)), ("BAD_USER_INPUT", "input.mediaUrls.0"), "{body}");
    }
    app.exec("UPDATE uploads SET created_at = '2000-01-01 00:00:00+00:00' WHERE file_name = 'theirs'").await;

    let left = |name: &str| format!("SELECT COUNT(*) FROM uploads WHERE file_name = '{name}'");
    let mut waited = 0;
    // `theirs` was never used: it goes too, which shows a sweep ran after the releases.
    while app.scalar(&left("old")).await + app.scalar(&left("lone")).await + app.scalar(&left("theirs")).await > 0 {
        assert!(waited < 100, "the sweeper did not delete the released uploads");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    for (name, upload) in [("old", &old), ("lone", &lone)] {
        assert_eq!(app.fetch(upload["url"].as_str().unwrap()).await.status().as_u16(), 404, "{name}'s file is gone");
    }
    for (name, upload) in [("new", &new), ("image", &image), ("swapped", &swapped)] {
        assert_eq!(app.scalar(&left(name)).await, 1, "{name} is still held by a row");
        assert_eq!(app.fetch(upload["url"].as_str().unwrap()).await.status().as_u16(), 200, "{name}");
    }
    // The shared image was released, then kept: marked used again by the sweep.
    let marked = "SELECT COUNT(*) FROM uploads WHERE file_name = 'image' AND attached_at > '2001-01-01'";
    assert_eq!(app.scalar(marked).await, 1, "the image another post holds was looked at and kept");
}
