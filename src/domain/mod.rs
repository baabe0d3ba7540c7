//! Business rules and transactions, one module per area. Functions here take the `Viewer` and
//! decide permissions themselves; no GraphQL types in this layer.

pub mod accounts;
pub mod audit;
pub mod seed;
pub mod values;
