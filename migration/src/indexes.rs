//! Plain indexes added by a migration, as (index name, table, columns): created on the way up,
//! dropped on the way down. The same statements on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub async fn create(manager: &SchemaManager<'_>, indexes: &[(&str, &str, &str)]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, table, columns) in indexes {
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {table} ({columns})")).await?;
    }
    Ok(())
}

pub async fn drop(manager: &SchemaManager<'_>, indexes: &[(&str, &str, &str)]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, _, _) in indexes {
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}")).await?;
    }
    Ok(())
}
