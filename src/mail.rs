//! Outgoing mail: [`queue`] writes a mail into `mail_outbox` in the caller's transaction (so a
//! mail exists exactly when the change that sends it committed); the sender ([`spawn_sender`])
//! delivers queued mail in order, through SMTP when `SMTP_URL` is set, otherwise as one `.eml`
//! file per mail under `MAIL_DIR` (the embedded mode's mailbox, which tests read). A failed
//! delivery is retried with backoff; a mail is marked sent once delivered. Delivery is at least
//! once: a crash between the SMTP server's acceptance and the mark sends it again, with the same
//! `Message-ID` (the row's id), which receivers use to drop the copy.

use chrono::Utc;
use entity::mail_outbox;
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

/// Settings: `SMTP_URL` (`smtp://user:password@host:587?tls=required`, `smtps://…`, or
/// `smtp://host:25` for a local relay), `MAIL_FROM`, `MAIL_DIR` (default `DATA_DIR/mail`).
#[derive(Clone, Debug)]
pub struct MailSettings {
    pub smtp_url: Option<String>,
    pub from: String,
    pub dir: PathBuf,
}

/// Mail was queued (the sender also polls, for other instances' mail).
static QUEUED: Notify = Notify::const_new();

/// How often the sender looks for mail it was not woken for.
const POLL: Duration = Duration::from_secs(1);
/// Deliveries tried before a mail is left for an operator (its `last_error` says why): with the
/// backoff capped at [`MAX_BACKOFF_SECS`], about a day of outage.
const MAX_ATTEMPTS: i32 = 300;
const MAX_BACKOFF_SECS: i64 = 300;
/// How long an instance holds a mail it is sending before another may try it.
const LEASE_SECS: i64 = 120;

/// Queues a mail in the caller's transaction.
#[allow(clippy::disallowed_methods)] // the mail outbox feeds no cache entry (see `domain::write`)
pub async fn queue(db: &impl ConnectionTrait, to: &str, subject: &str, body: &str) -> Result<Uuid, DbErr> {
    let id = Uuid::new_v4();
    let now = Utc::now();
    mail_outbox::Entity::insert(mail_outbox::ActiveModel {
        id: Set(id),
        to_address: Set(to.to_string()),
        subject: Set(subject.to_string()),
        body: Set(body.to_string()),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(now),
        sent_at: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    QUEUED.notify_waiters();
    Ok(id)
}

enum Transport {
    Files(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Checks the settings (a bad `SMTP_URL` or `MAIL_FROM` stops the start) and starts the sender.
pub fn spawn_sender(
    settings: &MailSettings,
    db: DatabaseConnection,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let from: Mailbox = settings.from.parse().map_err(|e| anyhow::anyhow!("MAIL_FROM: {e}"))?;
    let transport = match &settings.smtp_url {
        Some(url) => Transport::Smtp(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                .timeout(Some(Duration::from_secs(30)))
                .build(),
        ),
        None => Transport::Files(settings.dir.clone()),
    };
    Ok(tokio::spawn(crate::db::background(send_forever(db, transport, from, stopping))))
}

async fn send_forever(
    db: DatabaseConnection,
    transport: Transport,
    from: Mailbox,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        if let Err(error) = send_due(&db, &transport, &from).await {
            tracing::warn!(error = %error, "mail outbox unreadable; retrying");
        }
        if *stopping.borrow() {
            return;
        }
        tokio::select! {
            _ = QUEUED.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
            _ = tokio::time::sleep(POLL) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Delivers every mail that is due, oldest first.
async fn send_due(db: &DatabaseConnection, transport: &Transport, from: &Mailbox) -> Result<(), DbErr> {
    loop {
        let due = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::SentAt.is_null())
            .filter(mail_outbox::Column::NextAttemptAt.lte(Utc::now()))
            .filter(mail_outbox::Column::Attempts.lt(MAX_ATTEMPTS))
            .order_by_asc(mail_outbox::Column::CreatedAt)
            .limit(50)
            .all(db)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        for mail in due {
            // Claimed first (a conditional update), so two instances never send the same mail.
            let claim = mail_outbox::Entity::update_many()
                .col_expr(
                    mail_outbox::Column::NextAttemptAt,
                    Expr::value(Utc::now() + chrono::Duration::seconds(LEASE_SECS)),
                )
                .filter(mail_outbox::Column::Id.eq(mail.id))
                .filter(mail_outbox::Column::SentAt.is_null())
                .filter(mail_outbox::Column::NextAttemptAt.eq(mail.next_attempt_at));
            if crate::domain::write::update_many(db, claim).await? != 1 {
                continue;
            }
            let outcome = deliver(transport, from, &mail).await;
            let update = mail_outbox::Entity::update_many().filter(mail_outbox::Column::Id.eq(mail.id));
            let update = match &outcome {
                Ok(()) => {
                    metrics::counter!("mail_sent_total").increment(1);
                    // The body may carry a one-time code: not kept once delivered.
                    update
                        .col_expr(mail_outbox::Column::SentAt, Expr::value(Utc::now()))
                        .col_expr(mail_outbox::Column::Body, Expr::value(""))
                }
                Err(error) => {
                    metrics::counter!("mail_errors_total").increment(1);
                    tracing::warn!(mail = %mail.id, error = %error, "mail delivery failed; retrying later");
                    let wait = 2i64.saturating_pow(mail.attempts.clamp(0, 12) as u32).min(MAX_BACKOFF_SECS);
                    update
                        .col_expr(
                            mail_outbox::Column::Attempts,
                            // A mail that can never be sent is left for an operator at once.
                            Expr::value(match error {
                                Failure::Message(_) => MAX_ATTEMPTS,
                                Failure::Transport(_) => mail.attempts + 1,
                            }),
                        )
                        .col_expr(mail_outbox::Column::LastError, Expr::value(error.to_string()))
                        .col_expr(
                            mail_outbox::Column::NextAttemptAt,
                            Expr::value(Utc::now() + chrono::Duration::seconds(wait)),
                        )
                }
            };
            crate::domain::write::update_many(db, update).await?;
            if matches!(&outcome, Err(Failure::Transport(_))) {
                // The transport is failing: let the backoff pace the rest.
                return Ok(());
            }
        }
    }
}

fn message(from: &Mailbox, mail: &mail_outbox::Model) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .message_id(Some(format!("<{}@master-guide>", mail.id)))
        .from(from.clone())
        .to(mail.to_address.parse()?)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())?)
}

/// Why a delivery failed: this mail cannot be sent (bad address), or the transport failed.
#[derive(Debug)]
enum Failure {
    Message(anyhow::Error),
    Transport(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Message(e) => write!(f, "unsendable: {e}"),
            Failure::Transport(e) => write!(f, "{e}"),
        }
    }
}

async fn deliver(transport: &Transport, from: &Mailbox, mail: &mail_outbox::Model) -> Result<(), Failure> {
    let message = message(from, mail).map_err(Failure::Message)?;
    send(transport, message, mail).await.map_err(Failure::Transport)
}

async fn send(transport: &Transport, message: Message, mail: &mail_outbox::Model) -> anyhow::Result<()> {
    match transport {
        Transport::Smtp(smtp) => {
            smtp.send(message).await?;
        }
        Transport::Files(dir) => {
            tokio::fs::create_dir_all(dir).await?;
            // Named by time then id, so a listing is in sending order; rewriting one is harmless.
            let name = format!("{}-{}.eml", mail.created_at.format("%Y%m%dT%H%M%S%.6f"), mail.id);
            let partial = dir.join(format!(".{name}.partial"));
            tokio::fs::write(&partial, message.formatted()).await?;
            tokio::fs::rename(&partial, dir.join(name)).await?;
        }
    }
    Ok(())
}
