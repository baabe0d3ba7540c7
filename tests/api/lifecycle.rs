//! The account lifecycle through the real server: a ban or an ended session refuses the very next
//! request (on another instance too), password change ends the other sessions, password reset and
//! email verification through the mailbox (the `.eml` files of the embedded mode, and a real SMTP
//! server started by the test), phone changes, sessions and their revocation.

use crate::helpers::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ME: &str = "{ me { id email emailVerified phone } }";

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(
        "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken user { id } } }",
        json!({ "i": { "email": email, "password": password } }),
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> Value {
    app.gql("mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }", json!({ "t": token })).await
}

/// The mails in `dir` (the embedded mode's `.eml` files, or a maildir's `new/`), oldest first.
fn mails(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|path| !path.file_name().and_then(|n| n.to_str()).unwrap_or(".").starts_with('.'));
    files.sort();
    files.iter().filter_map(|path| std::fs::read_to_string(path).ok()).collect()
}

/// Waits until `dir` holds `n` mails; returns them.
async fn wait_for_mails(dir: &Path, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = mails(dir);
        if found.len() >= n {
            assert_eq!(found.len(), n, "more mail than expected: {found:?}");
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {n} mails arrived in {}",
            found.len(),
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The code a mail carries ("paste this code into the app: CODE").
fn code_in(mail: &str) -> String {
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    let at = unfolded.find("paste this code into the app: ").expect("a code in the mail") + 30;
    unfolded[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

#[tokio::test]
async fn a_ban_refuses_the_users_next_request_even_a_kept_response_and_on_another_instance() {
    let (redis, fleet) = redis_fleet("the second-instance half of the ban test");
    let shared = borrowed(&fleet);
    let app = spawn_app_with(&shared).await;
    let admin = app.admin("admin@example.com").await;
    let user = app.register("user@example.com").await;
    let other = if redis { Some(spawn_sibling(&app, &shared).await) } else { None };
    // Read twice on each instance: the second answer is a kept response.
    for instance in std::iter::once(&app).chain(other.as_ref()) {
        for _ in 0..2 {
            let body = instance.gql_as(&user.access, ME, json!({})).await;
            assert_eq!(data(&body)["me"]["id"], user.user_id.as_str(), "{body}");
        }
    }
    let body = app
        .gql_as(
            &admin.access,
            "mutation($u: ID!) { setUserStatus(userId: $u, status: BANNED, reason: \"spam\") { status } }",
            json!({ "u": user.user_id }),
        )
        .await;
    assert_eq!(data(&body)["setUserStatus"]["status"], "BANNED", "{body}");
    let body = app.gql_as(&user.access, ME, json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "the very next request: {body}");
    let body = app.gql_as(&user.access, "{ notifications(first: 5) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    if let Some(other) = &other {
        let started = Instant::now();
        loop {
            let body = other.gql_as(&user.access, ME, json!({})).await;
            if error_code(&body) == "FORBIDDEN" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "the other instance still answers: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // A logged-out session's access token is refused at once too.
    let second = app.register("second@example.com").await;
    assert_eq!(data(&app.gql_as(&second.access, ME, json!({})).await)["me"]["id"], second.user_id.as_str());
    let body = app.gql("mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": second.refresh })).await;
    assert_eq!(data(&body)["logout"], true, "{body}");
    let body = app.gql_as(&second.access, ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let first = app.register("pat@example.com").await;
    let other = login(&app, "pat@example.com", PASSWORD).await;
    let other_access = data(&other)["login"]["accessToken"].as_str().expect("access").to_string();
    let other_refresh = data(&other)["login"]["refreshToken"].as_str().expect("refresh").to_string();
    let sessions = "{ sessions { id current startedAt lastActiveAt expiresAt } }";
    let body = app.gql_as(&first.access, sessions, json!({})).await;
    let listed = data(&body)["sessions"].as_array().expect("sessions").clone();
    assert_eq!(listed.len(), 2, "{body}");
    assert_eq!(listed.iter().filter(|s| s["current"] == true).count(), 1, "{body}");
    let change = "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }";
    let before = app.snapshot("users").await;
    for (input, field) in [
        (json!({ "currentPassword": "wrong password", "newPassword": "a brand new secret" }), "input.currentPassword"),
        (json!({ "currentPassword": PASSWORD, "newPassword": "short" }), "input.newPassword"),
    ] {
        let body = app.gql_as(&first.access, change, json!({ "i": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    assert_eq!(app.snapshot("users").await, before, "refused changes write nothing");
    let body =
        app.gql(change, json!({ "i": { "currentPassword": PASSWORD, "newPassword": "a brand new secret" } })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let body = app
        .gql_as(
            &first.access,
            change,
            json!({ "i": { "currentPassword": PASSWORD, "newPassword": "a brand new secret" } }),
        )
        .await;
    assert_eq!(data(&body)["changePassword"], true, "{body}");
    // The other session: its access token refused at once, its refresh token revoked.
    assert_eq!(error_code(&app.gql_as(&other_access, ME, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(error_code(&refresh(&app, &other_refresh).await), "UNAUTHENTICATED");
    // This session goes on; the old password no longer signs in, the new one does.
    assert_eq!(data(&app.gql_as(&first.access, ME, json!({})).await)["me"]["email"], "pat@example.com");
    assert!(data(&refresh(&app, &first.refresh).await)["refreshToken"]["accessToken"].is_string());
    assert_eq!(error_code(&login(&app, "pat@example.com", PASSWORD).await), "UNAUTHENTICATED");
    let third = login(&app, "pat@example.com", "a brand new secret").await;
    assert!(data(&third)["login"]["accessToken"].is_string(), "{third}");
    // Revoking a session by id (from `sessions`) ends it; another user's id is false.
    let third_access = data(&third)["login"]["accessToken"].as_str().expect("access").to_string();
    let body = app.gql_as(&third_access, sessions, json!({})).await;
    let listed = data(&body)["sessions"].as_array().expect("sessions").clone();
    assert_eq!(listed.len(), 2, "the first and the third: {body}");
    let current = listed.iter().find(|s| s["current"] == true).expect("current")["id"].clone();
    let stranger = app.register("stranger@example.com").await;
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    assert_eq!(data(&app.gql_as(&stranger.access, revoke, json!({ "id": current })).await)["revokeSession"], false);
    assert_eq!(data(&app.gql_as(&first.access, revoke, json!({ "id": current })).await)["revokeSession"], true);
    assert_eq!(error_code(&app.gql_as(&third_access, ME, json!({})).await), "UNAUTHENTICATED");
    let audited = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM audit_logs WHERE table_name = 'users' AND CAST(new_data AS TEXT) LIKE '%{}%changed%'",
            first.user_id
        ))
        .await;
    assert_eq!(audited, 1, "the change is audited (no hash in it)");
}

#[tokio::test]
async fn a_password_reset_goes_through_the_mailbox_once_and_never_tells_who_has_an_account() {
    let app = spawn_app_with(&[("RATE_RESET_ACCOUNT", "3/1h"), ("RATE_RESET_IP", "1000/1h")]).await;
    let mailbox = app.data_dir.join("mail");
    let user = app.register("reset.me@example.com").await;
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    for email in ["Reset.Me@example.com", "nobody@example.com"] {
        let body = app.gql(request, json!({ "e": email })).await;
        assert_eq!(data(&body)["requestPasswordReset"], true, "{email}: {body}");
    }
    let found = wait_for_mails(&mailbox, 1).await;
    let mail = &found[0];
    assert!(mail.contains("To: reset.me@example.com"), "{mail}");
    assert!(mail.contains("Message-ID: <"), "{mail}");
    let code = code_in(mail);
    assert!(code.len() >= 32, "{code}");
    let reset =
        "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { accessToken user { email emailVerified } } }";
    let body = app.gql(reset, json!({ "i": { "token": code, "newPassword": "x" } })).await;
    assert_eq!(error_field(&body), "input.newPassword", "a bad password spends nothing: {body}");
    let body = app.gql(reset, json!({ "i": { "token": code, "newPassword": "forgotten no more" } })).await;
    assert_eq!(data(&body)["resetPassword"]["user"]["email"], "reset.me@example.com", "{body}");
    assert_eq!(data(&body)["resetPassword"]["user"]["emailVerified"], true, "the mailbox is proven");
    let body = app.gql(reset, json!({ "i": { "token": code, "newPassword": "and once more" } })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "single use: {body}");
    assert_eq!(error_field(&body), "input.token");
    assert_eq!(error_code(&app.gql_as(&user.access, ME, json!({})).await), "UNAUTHENTICATED", "old sessions end");
    assert_eq!(error_code(&refresh(&app, &user.refresh).await), "UNAUTHENTICATED");
    assert!(data(&login(&app, "reset.me@example.com", "forgotten no more").await)["login"]["accessToken"].is_string());
    // The per-account budget counts unknown addresses alike (3 an hour here; 2 spent above on
    // this address's spelling and one more now).
    let body = app.gql(request, json!({ "e": "reset.me@example.com" })).await;
    assert_eq!(data(&body)["requestPasswordReset"], true, "{body}");
    let _ = app.gql(request, json!({ "e": "reset.me@example.com" })).await;
    let body = app.gql_full(None, request, json!({ "e": "reset.me@example.com" })).await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
    assert!(body["errors"][0]["extensions"]["retryAfter"].as_u64().is_some(), "{body}");
    let body = app.gql(request, json!({ "e": "not an email" })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_reset_code_expires() {
    let app = spawn_app_with(&[("PASSWORD_RESET_TTL_SECS", "1")]).await;
    app.register("late@example.com").await;
    let body = app.gql("mutation { requestPasswordReset(email: \"late@example.com\") }", json!({})).await;
    assert_eq!(data(&body)["requestPasswordReset"], true);
    let code = code_in(&wait_for_mails(&app.data_dir.join("mail"), 1).await[0]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let body = app
        .gql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { accessToken } }",
            json!({ "i": { "token": code, "newPassword": "too late for this" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.token");
    assert!(data(&login(&app, "late@example.com", PASSWORD).await)["login"]["accessToken"].is_string());
}

#[tokio::test]
async fn email_verification_and_phone_changes() {
    let app = spawn_app().await;
    let user = app.register("verify@example.com").await;
    let body = app.gql_as(&user.access, "mutation { requestEmailVerification }", json!({})).await;
    assert_eq!(data(&body)["requestEmailVerification"], true, "{body}");
    let code = code_in(&wait_for_mails(&app.data_dir.join("mail"), 1).await[0]);
    let verify = "mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }";
    let body = app.gql(verify, json!({ "t": code })).await;
    assert_eq!(data(&body)["verifyEmail"]["emailVerified"], true, "{body}");
    assert_eq!(error_code(&app.gql(verify, json!({ "t": code })).await), "BAD_USER_INPUT", "single use");
    let phone = "mutation($p: String) { updatePhone(phone: $p) { phone } }";
    let body = app.gql_as(&user.access, phone, json!({ "p": "+86 138 0013 8000" })).await;
    assert!(data(&body)["updatePhone"]["phone"].is_string(), "{body}");
    let body = app.gql_as(&user.access, phone, json!({ "p": "call me maybe" })).await;
    assert_eq!(error_field(&body), "phone", "{body}");
    let body = app.gql_as(&user.access, phone, json!({ "p": null })).await;
    assert!(data(&body)["updatePhone"]["phone"].is_null(), "{body}");
    assert_eq!(error_code(&app.gql(phone, json!({ "p": null })).await), "UNAUTHENTICATED");
}

/// A real SMTP server (Python's aiosmtpd, which scripts/test installs from PyPI) started here:
/// the reset mail arrives through SMTP, and nothing is written to the file mailbox.
#[tokio::test]
async fn mail_goes_out_through_smtp_when_configured() {
    let probe = std::process::Command::new("python3").args(["-c", "import aiosmtpd"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        assert!(std::env::var("CI").is_err(), "CI must have aiosmtpd (scripts/test installs it)");
        eprintln!("SKIPPED the SMTP mail test: python3 -m pip install aiosmtpd to run it");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let maildir = std::env::temp_dir().join(format!("mg-smtp-{}", uuid::Uuid::new_v4()));
    let mut smtp = std::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .expect("start aiosmtpd");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "aiosmtpd never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[("SMTP_URL", &url), ("MAIL_FROM", "Master Guide <mail@masterguide.test>")]).await;
    app.register("smtp.user@example.com").await;
    let body = app.gql("mutation { requestPasswordReset(email: \"smtp.user@example.com\") }", json!({})).await;
    assert_eq!(data(&body)["requestPasswordReset"], true);
    let arrived = wait_for_mails(&maildir.join("new"), 1).await;
    assert!(arrived[0].contains("From: \"Master Guide\" <mail@masterguide.test>"), "{}", arrived[0]);
    assert!(arrived[0].contains("X-RcptTo: smtp.user@example.com"), "{}", arrived[0]);
    assert!(code_in(&arrived[0]).len() >= 32);
    assert!(mails(&app.data_dir.join("mail")).is_empty(), "no file mail beside SMTP");
    let started = Instant::now();
    while app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the mail was never marked sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM mail_outbox WHERE body <> ''").await,
        0,
        "a delivered mail's body (its one-time code) is not kept"
    );
    smtp.kill().ok();
    smtp.wait().ok();
    let _ = std::fs::remove_dir_all(maildir);
}

/// A refresh racing a logout of its own session (real concurrent clients, thirty rounds): whichever
/// wins, no token of the session is left live in the database.
#[tokio::test]
async fn a_refresh_racing_a_logout_leaves_no_live_token() {
    const LIVE: &str = "SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NULL";
    let app = spawn_app().await;
    let user = app.register("racer@example.com").await;
    let body = app.gql("mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": user.refresh })).await;
    assert_eq!(data(&body)["logout"], true);
    for round in 0..30 {
        let session = login(&app, "racer@example.com", PASSWORD).await;
        let token = data(&session)["login"]["refreshToken"].as_str().expect("refresh").to_string();
        assert_eq!(app.scalar(LIVE).await, 1, "the one live session (the only user here)");
        let logout = app.gql("mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": token.clone() }));
        let (_, rotated) = tokio::join!(logout, refresh(&app, &token));
        // A rotation that won hands out a new token of the same session: logging it out too is
        // what a client does; either way nothing of the session may stay live.
        match rotated["data"]["refreshToken"]["accessToken"].as_str() {
            Some(next) => assert!(!next.is_empty()),
            None => assert_eq!(error_code(&rotated), "UNAUTHENTICATED", "round {round}: {rotated}"),
        }
        let live = app.scalar(LIVE).await;
        assert_eq!(live, 0, "round {round}: a token outlived its session's logout");
    }
}
