//! `circles`, `circle_members`, `posts`, `comments`, `post_likes`, `comment_likes` (design 3.3).

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const CONTENT_STATUS: &[&str] = &["active", "hidden", "deleted"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(n("circles"))
                    .col(pk())
                    .col(string("name", 100))
                    .col(text_null("description"))
                    .col(string("domain", 100))
                    .col(uuid("created_by"))
                    .col(status("status", &["active", "inactive", "archived"], "active"))
                    .col(int("member_count", 0).check(Expr::col(n("member_count")).gte(0)))
                    .col(int("post_count", 0).check(Expr::col(n("post_count")).gte(0)))
                    .col(string_null("avatar", 500))
                    .col(text_null("rules"))
                    .col(json_null("tags"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    // The design gives no ON DELETE here: an identity that created a circle cannot be
                    // deleted while the circle exists.
                    .foreign_key(&mut fk("circles", "created_by", "user_identities", ForeignKeyAction::NoAction))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "circles", &[&["domain"], &["status"], &["created_by"], &["member_count"]]).await?;
        create_gin_indexes(manager, "circles", &["tags"]).await?;

        manager
            .create_table(
                Table::create()
                    .table(n("circle_members"))
                    .col(pk())
                    .col(uuid("circle_id"))
                    .col(uuid("user_id"))
                    .col(uuid("identity_id"))
                    .col(status("role", &["member", "moderator", "admin"], "member"))
                    .col(timestamp_now("joined_at"))
                    .col(boolean("is_active", true))
                    .foreign_key(&mut fk("circle_members", "circle_id", "circles", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("circle_members", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("circle_members", "identity_id", "user_identities", ForeignKeyAction::Cascade))
                    .index(&mut unique("circle_members", &["circle_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "circle_members", &[&["circle_id"], &["user_id"], &["role"]]).await?;

        manager
            .create_table(
                Table::create()
                    .table(n("posts"))
                    .col(pk())
                    .col(uuid("user_id"))
                    .col(uuid("identity_id"))
                    .col(uuid("circle_id"))
                    .col(text("content"))
                    .col(json_null("media_urls"))
                    .col(status("post_type", &["text", "image", "video", "link", "poll"], "text"))
                    .col(status("status", CONTENT_STATUS, "active"))
                    .col(int("like_count", 0).check(Expr::col(n("like_count")).gte(0)))
                    .col(int("comment_count", 0).check(Expr::col(n("comment_count")).gte(0)))
                    .col(int("share_count", 0))
                    .col(int("view_count", 0))
                    .col(boolean("is_top", false))
                    .col(boolean("is_essence", false))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("posts", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("posts", "identity_id", "user_identities", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("posts", "circle_id", "circles", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            "posts",
            &[
                &["circle_id"],
                &["user_id"],
                &["identity_id"],
                &["status"],
                &["-created_at"],
                &["-like_count"],
                &["post_type"],
                // Feed pages: a circle's active posts newest first, keyset on (created_at, id).
                &["circle_id", "status", "-created_at", "-id"],
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(n("comments"))
                    .col(pk())
                    .col(uuid("post_id"))
                    .col(uuid("user_id"))
                    .col(uuid("identity_id"))
                    .col(text("content"))
                    .col(uuid_null("parent_id"))
                    .col(uuid_null("reply_to_user_id"))
                    .col(int("like_count", 0).check(Expr::col(n("like_count")).gte(0)))
                    .col(status("status", CONTENT_STATUS, "active"))
                    .col(timestamp_now("created_at"))
                    .col(timestamp_now("updated_at"))
                    .foreign_key(&mut fk("comments", "post_id", "posts", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("comments", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("comments", "identity_id", "user_identities", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("comments", "parent_id", "comments", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("comments", "reply_to_user_id", "users", ForeignKeyAction::NoAction))
                    .to_owned(),
            )
            .await?;
        create_indexes(manager, "comments", &[&["post_id"], &["user_id"], &["parent_id"], &["created_at"]]).await?;

        for (table, target) in [("post_likes", "posts"), ("comment_likes", "comments")] {
            let target_col = format!("{}_id", &target[..target.len() - 1]);
            manager
                .create_table(
                    Table::create()
                        .table(n(table))
                        .col(pk())
                        .col(uuid(&target_col))
                        .col(uuid("user_id"))
                        .col(timestamp_now("created_at"))
                        .foreign_key(&mut fk(table, &target_col, target, ForeignKeyAction::Cascade))
                        .foreign_key(&mut fk(table, "user_id", "users", ForeignKeyAction::Cascade))
                        .index(&mut unique(table, &[&target_col, "user_id"]))
                        .to_owned(),
                )
                .await?;
            create_indexes(manager, table, &[&[&target_col], &["user_id"]]).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["comment_likes", "post_likes", "comments", "posts", "circle_members", "circles"]).await
    }
}
