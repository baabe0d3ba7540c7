//! `mentor_availability` (added to the design): when one master identity can be booked. Times are
//! minutes after local midnight in `time_zone` (an IANA name); the weekly windows repeat, the
//! exceptions override one local date.

use sea_orm::entity::prelude::*;
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "mentor_availability")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub identity_id: Uuid,
    pub time_zone: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub weekly: Weekly,
    #[sea_orm(column_type = "JsonBinary")]
    pub exceptions: Exceptions,
    pub buffer_minutes: i32,
    pub min_notice_hours: i32,
    pub updated_at: DateTimeUtc,
}

/// One weekly window: `weekday` 1..=7 (ISO, Monday is 1), `[start, end)` in minutes of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    pub weekday: u8,
    pub start: u16,
    pub end: u16,
}

/// One local date's override: with `available` false a day off (no times) or hours off; with
/// `available` true extra hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub date: chrono::NaiveDate,
    pub start: Option<u16>,
    pub end: Option<u16>,
    pub available: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct Weekly(pub Vec<WeeklyWindow>);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct Exceptions(pub Vec<Exception>);

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
