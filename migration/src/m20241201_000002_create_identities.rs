//! `user_identities` and `user_profiles` (design 3.1.2, 3.1.3).

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
                    .table(n("user_identities"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(status("identity_type", &["master", "apprentice"], "apprentice"))
                    .col(string("domain", 100))
                    .col(status("status", &["pending", "active", "suspended", "rejected"], "pending"))
                    .col(status(
                        "verification_status",
                        &["unverified", "pending", "verified", "rejected"],
                        "unverified",
                    ))
                    .col(json_null("verification_documents"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("user_identities", "user_id", "users", ForeignKeyAction::Cascade))
                    .index(&mut unique("user_identities", &["user_id", "domain", "identity_type"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "user_identities",
            &[&["user_id"], &["identity_type", "domain"], &["status"], &["verification_status"]],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("user_profiles"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(uuid("identity_id").unique_key())
                    .col(string("name", 100))
                    .col(string_null("avatar", 500))
                    .col(text_null("bio"))
                    .col(json_null("skills"))
                    .col(int("experience_years", 0))
                    .col(decimal_null("hourly_rate", 10, 2))
                    .col(string_null("location", 200))
                    .col(string_null("website", 500))
                    .col(json_null("social_links"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("user_profiles", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("user_profiles", "identity_id", "user_identities", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "user_profiles", &[&["user_id"], &["name"]]).await?;
        create_gin_indexes(manager, "user_profiles", &["skills"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["user_profiles", "user_identities"]).await
    }
}
