//! A master's availability over GraphQL: the weekly schedule in their time zone, exceptions,
//! buffer and notice (`setAvailability`, `Mentor.availability`) and the free slots in UTC
//! (`Mentor.availableSlots`).

use super::context::{loaders, state, viewer};
use super::id_arg;
use crate::domain::availability::{self, format_minutes, ExceptionInput, ScheduleInput, WindowInput};
use crate::error::AppError;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use entity::mentor_availability as table;

/// A day of the week.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// A day of the week.
impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// ISO number, Monday 1.
    fn number(self) -> u8 {
        Self::ALL.iter().position(|d| *d == self).map(|i| i as u8 + 1).unwrap_or(1)
    }

    fn from_number(n: u8) -> Self {
        Self::ALL.get(usize::from(n.saturating_sub(1))).copied().unwrap_or(Weekday::Monday)
    }
}

/// One weekly window, in the schedule's time zone.
#[derive(InputObject)]
pub struct AvailabilityWindowInput {
    /// The local day of the week.
    pub weekday: Weekday,
    /// Local time of day, `HH:MM`.
    pub start: String,
    /// Local time of day, `HH:MM`, after `start` (`24:00` ends the day).
    pub end: String,
}

/// An override of one local date: a day off (`available: false`, no times), hours off
/// (`available: false` with times) or extra hours (`available: true` with times).
#[derive(InputObject)]
pub struct AvailabilityExceptionInput {
    /// The local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local start `HH:MM`: extra hours, or the time off (omit start and end for a whole day off).
    pub start: Option<String>,
    /// Local end `HH:MM` (after `start`).
    pub end: Option<String>,
    /// True for extra hours, false (default) for time off.
    #[graphql(default = false)]
    pub available: bool,
}

/// Input of `setAvailability`: the whole schedule (it replaces the one before).
#[derive(InputObject)]
pub struct SetAvailabilityInput {
    /// An IANA time zone name, e.g. `Asia/Shanghai` or `America/New_York`.
    pub time_zone: String,
    /// Up to 70 windows; overlapping ones are joined.
    pub weekly: Vec<AvailabilityWindowInput>,
    /// Up to 400 dated overrides.
    #[graphql(default)]
    pub exceptions: Vec<AvailabilityExceptionInput>,
    /// Minutes kept free before and after each appointment, 0..240.
    #[graphql(default = 0)]
    pub buffer_minutes: i32,
    /// How long before its start a slot can still be booked, in hours (0..720).
    #[graphql(default = 0)]
    pub min_notice_hours: i32,
}

/// A weekly window as stored.
#[derive(SimpleObject)]
pub struct AvailabilityWindow {
    /// The local day of the week.
    pub weekday: Weekday,
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local.
    pub end: String,
}

/// A dated override as stored.
#[derive(SimpleObject)]
pub struct AvailabilityException {
    /// `YYYY-MM-DD`, local.
    pub date: String,
    /// Local start `HH:MM` of extra hours (null for a day off).
    pub start: Option<String>,
    /// Local end `HH:MM` of extra hours (null for a day off).
    pub end: Option<String>,
    /// True: extra hours on that date; false: time off (the whole day when no start and end).
    pub available: bool,
}

/// When a master can be booked, in their own time zone.
pub struct Availability(pub table::Model);

/// When a master can be booked, in their own time zone.
#[Object]
impl Availability {
    /// The IANA time zone the times are in.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// The weekly windows, by weekday and start.
    async fn weekly(&self) -> Vec<AvailabilityWindow> {
        self.0
            .weekly
            .0
            .iter()
            .map(|w| AvailabilityWindow {
                weekday: Weekday::from_number(w.weekday),
                start: format_minutes(w.start),
                end: format_minutes(w.end),
            })
            .collect()
    }
    /// The dated overrides, by date.
    async fn exceptions(&self) -> Vec<AvailabilityException> {
        self.0
            .exceptions
            .0
            .iter()
            .map(|e| AvailabilityException {
                date: e.date.to_string(),
                start: e.start.map(format_minutes),
                end: e.end.map(format_minutes),
                available: e.available,
            })
            .collect()
    }
    /// Minutes kept free around each appointment.
    async fn buffer_minutes(&self) -> i32 {
        self.0.buffer_minutes
    }
    /// Hours of notice a booking needs.
    async fn min_notice_hours(&self) -> i32 {
        self.0.min_notice_hours
    }
    /// When the schedule was last set.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A bookable interval, in UTC.
#[derive(SimpleObject)]
pub struct TimeSlot {
    /// When it starts (UTC).
    pub start: DateTime<Utc>,
    /// When it ends (UTC).
    pub end: DateTime<Utc>,
}

/// `Mentor.availability`: the schedule, null until the master sets one.
pub async fn of_mentor(ctx: &Context<'_>, identity_id: uuid::Uuid) -> Result<Option<Availability>> {
    let row = loaders(ctx)?.availability.load_one(identity_id).await.map_err(AppError::from)?;
    Ok(row.map(Availability))
}

/// `Mentor.availableSlots`.
pub async fn slots_of_mentor(
    ctx: &Context<'_>,
    identity_id: uuid::Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration_minutes: i32,
) -> Result<Vec<TimeSlot>> {
    availability::check_range(from, to, duration_minutes)?;
    let loaders = loaders(ctx)?;
    let Some(row) = loaders.availability.load_one(identity_id).await.map_err(AppError::from)? else {
        return Ok(Vec::new());
    };
    let Some(identity) = loaders.identities.load_one(identity_id).await.map_err(AppError::from)? else {
        return Ok(Vec::new());
    };
    let busy = |key| async move {
        let spans = loaders.busy_times.load_one(key).await.map_err(AppError::from)?;
        Ok(spans.unwrap_or_default())
    };
    let slots = availability::slots(&row, identity.user_id, (from, to), duration_minutes, busy).await?;
    Ok(slots.into_iter().map(|(start, end)| TimeSlot { start, end }).collect())
}

#[derive(Default)]
pub struct AvailabilityMutation;

#[Object]
impl AvailabilityMutation {
    /// Replaces the schedule of one of your active master identities. Once set, bookings and
    /// reschedules must fit it (CONFLICT otherwise).
    async fn set_availability(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Your master identity the schedule is for.")] identity_id: ID,
        #[graphql(desc = "The whole schedule; it replaces the previous one.")] input: SetAvailabilityInput,
    ) -> Result<Availability> {
        let identity_id = id_arg("identityId", &identity_id)?;
        let mut exceptions = Vec::with_capacity(input.exceptions.len());
        for (i, e) in input.exceptions.into_iter().enumerate() {
            let date = NaiveDate::parse_from_str(&e.date, "%Y-%m-%d").map_err(|_| {
                AppError::bad_input(format!("input.exceptions[{i}].date"), "must be a date as YYYY-MM-DD")
            })?;
            exceptions.push(ExceptionInput { date, start: e.start, end: e.end, available: e.available });
        }
        let schedule = availability::validate(ScheduleInput {
            time_zone: input.time_zone,
            weekly: input
                .weekly
                .into_iter()
                .map(|w| WindowInput { weekday: w.weekday.number(), start: w.start, end: w.end })
                .collect(),
            exceptions,
            buffer_minutes: input.buffer_minutes,
            min_notice_hours: input.min_notice_hours,
        })?;
        let db = &state(ctx)?.db;
        let user = crate::domain::active_user(db, viewer(ctx)).await?;
        let mentor = crate::domain::mentors::get(db, identity_id)
            .await?
            .filter(|identity| identity.user_id == user.id)
            .ok_or_else(|| AppError::not_found("master identity"))?;
        Ok(Availability(availability::set(db, user.id, mentor.id, schedule).await?))
    }
}
