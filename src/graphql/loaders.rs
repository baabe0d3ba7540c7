//! DataLoaders: every relation a list can ask for is fetched in one statement per request and
//! relation, however many parents the list holds.

use async_graphql::dataloader::{DataLoader, Loader};
use entity::user_identities;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// The loaders of the schema; one `DataLoader` per request-independent source, batching the keys
/// asked for within one tick.
pub struct Loaders {
    pub identities_by_user: DataLoader<IdentitiesByUser>,
}

pub fn new(db: DatabaseConnection) -> Loaders {
    Loaders { identities_by_user: DataLoader::new(IdentitiesByUser(db), tokio::spawn) }
}

/// A loader failure, shareable between the fields waiting on the same batch.
#[derive(Clone, Debug)]
pub struct LoadError(pub Arc<sea_orm::DbErr>);

impl From<LoadError> for crate::error::AppError {
    fn from(error: LoadError) -> Self {
        crate::error::AppError::Internal(anyhow::anyhow!(error.0.to_string()))
    }
}

fn load_error(error: sea_orm::DbErr) -> LoadError {
    LoadError(Arc::new(error))
}

/// A user's identities, oldest first.
pub struct IdentitiesByUser(DatabaseConnection);

impl Loader<Uuid> for IdentitiesByUser {
    type Value = Vec<user_identities::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = user_identities::Entity::find()
            .filter(user_identities::Column::UserId.is_in(keys.iter().copied()))
            .order_by_asc(user_identities::Column::CreatedAt)
            .all(&self.0)
            .await
            .map_err(load_error)?;
        let mut grouped: HashMap<Uuid, Self::Value> = HashMap::new();
        for row in rows {
            grouped.entry(row.user_id).or_default().push(row);
        }
        Ok(grouped)
    }
}
