//! Added to the design for the account lifecycle:
//! - `account_tokens`: single-use, expiring tokens mailed to a user (password reset, email
//!   verification), stored as SHA-256 hashes like refresh tokens; `used_at` is set by a
//!   conditional update, so a token works once even when presented twice at the same moment.
//! - `mail_outbox`: every mail the server sends, written in the transaction of the change that
//!   sends it and delivered by a background sender (SMTP, or `.eml` files), so a mail is never
//!   lost; its id is the message's `Message-ID`, so a redelivery after a crash is recognisable.

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("account_tokens"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(status("purpose", &["password_reset", "email_verification"], "password_reset"))
                    .col(string("token_hash", 64).unique_key())
                    .col(timestamp("expires_at"))
                    .col(timestamp_null("used_at"))
                    .col(timestamp_now("created_at"))
                    .foreign_key(&mut fk("account_tokens", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "account_tokens", &[&["user_id", "purpose"]]).await?;
        manager
            .create_table(
                Table::create()
                    .table(n("mail_outbox"))
                    .col(pk())
                    .col(string("to_address", 255))
                    .col(string("subject", 300))
                    .col(text("body"))
                    .col(int("attempts", 0))
                    .col(text_null("last_error"))
                    .col(timestamp_now("next_attempt_at"))
                    .col(timestamp_null("sent_at"))
                    .col(timestamp_now("created_at"))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "mail_outbox", &[&["sent_at", "next_attempt_at"]]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["mail_outbox", "account_tokens"]).await
    }
}
