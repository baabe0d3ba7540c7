//! When a master can be booked: a weekly schedule in the master's own time zone (an IANA name),
//! exceptions by local date, a buffer kept free around appointments and a minimum notice. Slots
//! are computed in UTC from the tz database, so a window at 09:00 New York time is 14:00 UTC in
//! winter and 13:00 UTC in summer, and the days the clocks change are what the wall clock says: a
//! window ending in the hour that repeats ends at its second occurrence, a time in the hour that
//! is skipped means the moment the clocks jump.
//!
//! Without a schedule a master can be booked at any time (only clashes are refused); once one is
//! set, a booking or a reschedule must fit it. Setting a schedule first writes the master's user
//! row, as bookings do, so a booking and a schedule change of one master run one after the other.

use super::write;
use crate::error::{AppError, AppResult, Checks};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use entity::mentor_availability::{self as table, Exception, Exceptions, Weekly, WeeklyWindow};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Set, TransactionTrait};
use uuid::Uuid;

pub const MAX_WINDOWS: usize = 70;
pub const MAX_EXCEPTIONS: usize = 400;
pub const MAX_BUFFER_MINUTES: i32 = 240;
pub const MAX_NOTICE_HOURS: i32 = 24 * 30;
/// The longest range `availableSlots` answers for.
pub const MAX_RANGE_DAYS: i64 = 62;
const DAY_MINUTES: u16 = 24 * 60;

/// A schedule as the client sends it; times are `HH:MM` (24:00 ends a day).
pub struct ScheduleInput {
    pub time_zone: String,
    pub weekly: Vec<WindowInput>,
    pub exceptions: Vec<ExceptionInput>,
    pub buffer_minutes: i32,
    pub min_notice_hours: i32,
}

pub struct WindowInput {
    /// 1..=7, Monday first.
    pub weekday: u8,
    pub start: String,
    pub end: String,
}

pub struct ExceptionInput {
    pub date: NaiveDate,
    pub start: Option<String>,
    pub end: Option<String>,
    pub available: bool,
}

/// `HH:MM` as minutes after midnight; `24:00` only where a window may end.
fn minutes(field: &str, text: &str, end: bool) -> AppResult<u16> {
    let invalid = || AppError::bad_input(field, "must be a time of day as HH:MM (00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(invalid)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(invalid());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| invalid())?, m.parse().map_err(|_| invalid())?);
    let total = h * 60 + m;
    if m >= 60 || total > DAY_MINUTES || (total == DAY_MINUTES && !end) {
        return Err(invalid());
    }
    Ok(total)
}

pub fn format_minutes(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn time_zone(field: &str, name: &str) -> AppResult<Tz> {
    name.parse::<Tz>().map_err(|_| AppError::bad_input(field, "must be an IANA time zone name, e.g. Asia/Shanghai"))
}

fn span(field: &str, start: &str, end: &str) -> AppResult<(u16, u16)> {
    let start_minutes = minutes(&format!("{field}.start"), start, false)?;
    let end_minutes = minutes(&format!("{field}.end"), end, true)?;
    if end_minutes <= start_minutes {
        return Err(AppError::bad_input(format!("{field}.end"), "must be after start"));
    }
    Ok((start_minutes, end_minutes))
}

/// The stored form of a valid schedule.
pub struct ValidSchedule {
    time_zone: String,
    weekly: Vec<WeeklyWindow>,
    exceptions: Vec<Exception>,
    buffer_minutes: i32,
    min_notice_hours: i32,
}

/// Every field of a schedule checked, all bad ones reported at once.
pub fn validate(input: ScheduleInput) -> AppResult<ValidSchedule> {
    let mut c = Checks::default();
    let tz = c.on(time_zone("input.timeZone", input.time_zone.trim()).map(Some));
    if input.weekly.len() > MAX_WINDOWS {
        c.fail("input.weekly", format!("at most {MAX_WINDOWS} windows"));
    }
    if input.exceptions.len() > MAX_EXCEPTIONS {
        c.fail("input.exceptions", format!("at most {MAX_EXCEPTIONS} exceptions"));
    }
    if !(0..=MAX_BUFFER_MINUTES).contains(&input.buffer_minutes) {
        c.fail("input.bufferMinutes", format!("must be between 0 and {MAX_BUFFER_MINUTES}"));
    }
    if !(0..=MAX_NOTICE_HOURS).contains(&input.min_notice_hours) {
        c.fail("input.minNoticeHours", format!("must be between 0 and {MAX_NOTICE_HOURS}"));
    }
    let mut weekly = Vec::with_capacity(input.weekly.len());
    for (i, window) in input.weekly.iter().enumerate().take(MAX_WINDOWS) {
        let field = format!("input.weekly[{i}]");
        if let Some((start, end)) = c.on(span(&field, &window.start, &window.end).map(Some)) {
            weekly.push(WeeklyWindow { weekday: window.weekday, start, end });
        }
    }
    weekly.sort_by_key(|w| (w.weekday, w.start, w.end));
    weekly.dedup();
    let mut exceptions = Vec::with_capacity(input.exceptions.len());
    for (i, exception) in input.exceptions.iter().enumerate().take(MAX_EXCEPTIONS) {
        let field = format!("input.exceptions[{i}]");
        let (start, end) = match (&exception.start, &exception.end) {
            (Some(start), Some(end)) => match c.on(span(&field, start, end).map(Some)) {
                Some((start, end)) => (Some(start), Some(end)),
                None => continue,
            },
            (None, None) if !exception.available => (None, None),
            (None, None) => {
                c.fail(format!("{field}.start"), "extra hours need a start and an end");
                continue;
            }
            (None, Some(_)) => {
                c.fail(format!("{field}.start"), "give both start and end");
                continue;
            }
            (Some(_), None) => {
                c.fail(format!("{field}.end"), "give both start and end");
                continue;
            }
        };
        exceptions.push(Exception { date: exception.date, start, end, available: exception.available });
    }
    exceptions.sort_by_key(|e| (e.date, e.start, e.end, e.available));
    exceptions.dedup();
    c.finish()?;
    let Some(tz) = tz else { return Err(AppError::bad_input("input.timeZone", "is required")) };
    Ok(ValidSchedule {
        time_zone: tz.name().to_string(),
        weekly,
        exceptions,
        buffer_minutes: input.buffer_minutes,
        min_notice_hours: input.min_notice_hours,
    })
}

/// Replaces the identity's schedule (`identity_id` is an active master identity of `user_id`).
pub async fn set(
    db: &DatabaseConnection,
    user_id: Uuid,
    identity_id: Uuid,
    schedule: ValidSchedule,
) -> AppResult<table::Model> {
    let txn = db.begin().await?;
    // The master's user row first, as a booking does: the two serialize.
    super::appointments::touch_user(&txn, user_id).await?;
    let row = table::ActiveModel {
        identity_id: Set(identity_id),
        time_zone: Set(schedule.time_zone),
        weekly: Set(Weekly(schedule.weekly)),
        exceptions: Set(Exceptions(schedule.exceptions)),
        buffer_minutes: Set(schedule.buffer_minutes),
        min_notice_hours: Set(schedule.min_notice_hours),
        updated_at: Set(Utc::now()),
    };
    let saved = if table::Entity::find_by_id(identity_id).one(&txn).await?.is_some() {
        write::update(&txn, row).await?
    } else {
        write::insert(&txn, row).await?
    };
    txn.commit().await?;
    Ok(saved)
}

pub async fn find(db: &impl ConnectionTrait, identity_id: Uuid) -> AppResult<Option<table::Model>> {
    Ok(table::Entity::find_by_id(identity_id).one(db).await?)
}

/// Refuses a slot query that is empty, longer than [`MAX_RANGE_DAYS`], further ahead than a
/// booking may be, or for a duration no booking may have.
pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>, duration_minutes: i32) -> AppResult<()> {
    use super::appointments::{MAX_MINUTES, MIN_MINUTES};
    if to <= from {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::bad_input("to", format!("at most {MAX_RANGE_DAYS} days after from")));
    }
    if to > Utc::now() + Duration::days(super::appointments::MAX_DAYS_AHEAD) {
        return Err(AppError::bad_input("to", "bookings are taken at most a year ahead"));
    }
    if !(MIN_MINUTES..=MAX_MINUTES).contains(&duration_minutes) {
        return Err(AppError::bad_input("durationMinutes", format!("must be between {MIN_MINUTES} and {MAX_MINUTES}")));
    }
    Ok(())
}

/// The free slots in `[from, to)` of the master whose schedule is `row` and whose user is
/// `mentor_user` (busy through any of their identities or as a student); `busy` reads the times
/// they are booked in a range (batched by the caller). Check the range first ([`check_range`]).
pub async fn slots<F, Fut>(
    row: &table::Model,
    mentor_user: Uuid,
    (from, to): Span,
    duration_minutes: i32,
    busy: F,
) -> AppResult<Vec<Span>>
where
    F: FnOnce(super::appointments::BusyKey) -> Fut,
    Fut: std::future::Future<Output = AppResult<Vec<Span>>>,
{
    let schedule = Schedule::new(row)?;
    let open = schedule.open(from, to);
    let (Some(first), Some(last)) = (open.first(), open.last()) else { return Ok(Vec::new()) };
    let busy = busy((mentor_user, first.0 - schedule.buffer, last.1 + schedule.buffer)).await?;
    let duration = Duration::minutes(duration_minutes.into());
    Ok(schedule.slots(&open, &busy, (from, to), duration, Utc::now()))
}

/// An interval of a local day, `[start, end)` in minutes after midnight.
type Minutes = (u16, u16);

/// An interval `[start, end)` in UTC.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// A stored schedule, ready to answer questions about time.
pub struct Schedule {
    tz: Tz,
    weekly: Vec<WeeklyWindow>,
    exceptions: Vec<Exception>,
    pub buffer: Duration,
    pub notice: Duration,
}

impl Schedule {
    pub fn new(row: &table::Model) -> AppResult<Self> {
        let tz = row
            .time_zone
            .parse::<Tz>()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("stored time zone {} is unknown", row.time_zone)))?;
        Ok(Self {
            tz,
            weekly: row.weekly.0.clone(),
            exceptions: row.exceptions.0.clone(),
            buffer: Duration::minutes(row.buffer_minutes.into()),
            notice: Duration::hours(row.min_notice_hours.into()),
        })
    }

    /// One local date's open minutes (the weekly windows of its weekday plus extra hours) and its
    /// minutes off (a day off is the whole day), each merged. They are taken apart in UTC (see
    /// [`Schedule::open`]), so hours off in a repeated hour remove both of its occurrences.
    fn day(&self, date: NaiveDate) -> (Vec<Minutes>, Vec<Minutes>) {
        let weekday = date.weekday().number_from_monday() as u8;
        let mut open: Vec<(u16, u16)> =
            self.weekly.iter().filter(|w| w.weekday == weekday).map(|w| (w.start, w.end)).collect();
        let today: Vec<&Exception> = self.exceptions.iter().filter(|e| e.date == date).collect();
        open.extend(today.iter().filter(|e| e.available).filter_map(|e| Some((e.start?, e.end?))));
        let off = today
            .iter()
            .filter(|e| !e.available)
            .map(|e| match (e.start, e.end) {
                (Some(start), Some(end)) => (start, end),
                _ => (0, DAY_MINUTES),
            })
            .collect();
        (merge(open), merge(off))
    }

    /// Local midnight plus `minutes` as a UTC instant (see the module's note on DST days).
    fn instant(&self, date: NaiveDate, minutes: u16, is_end: bool) -> DateTime<Utc> {
        let local: NaiveDateTime = date.and_time(chrono::NaiveTime::MIN) + Duration::minutes(minutes.into());
        let resolved = self.tz.from_local_datetime(&local);
        if let Some(at) = if is_end { resolved.latest() } else { resolved.earliest() } {
            return at.with_timezone(&Utc);
        }
        // In the skipped hour: the first local minute that exists.
        (1..=24 * 60)
            .find_map(|m| self.tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&local))
    }

    /// The open intervals touching `[from, to)`, in UTC, merged across midnights.
    pub fn open(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Span> {
        let first = from.with_timezone(&self.tz).date_naive() - Duration::days(1);
        let last = to.with_timezone(&self.tz).date_naive() + Duration::days(1);
        let (mut open, mut off) = (Vec::new(), Vec::new());
        let mut date = first;
        while date <= last {
            let (day_open, day_off) = self.day(date);
            let utc = |(start, end): (u16, u16)| (self.instant(date, start, false), self.instant(date, end, true));
            open.extend(day_open.into_iter().map(utc));
            off.extend(day_off.into_iter().map(utc));
            date += Duration::days(1);
        }
        subtract(&merge(open), &merge(off)).into_iter().filter(|(start, end)| *end > from && *start < to).collect()
    }

    /// Whether `[start, end)` lies inside one open interval.
    pub fn fits(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.open(start, end).iter().any(|(a, b)| *a <= start && end <= *b)
    }

    /// The free slots of `duration` starting in `[from, to)` and ending by `to`: `open` (this
    /// schedule's [`Schedule::open`] for the range) minus
    /// `busy` (each widened by the buffer), laid end to end from the start of each free stretch,
    /// none sooner than the notice allows.
    pub fn slots(
        &self,
        open: &[Span],
        busy: &[Span],
        (from, to): Span,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Vec<Span> {
        let widened: Vec<Span> = busy.iter().map(|(a, b)| (*a - self.buffer, *b + self.buffer)).collect();
        // A stretch the notice cuts into starts its slots at the next quarter hour after it.
        let bookable = quarter_hour_after(now + self.notice);
        let mut slots = Vec::new();
        for (start, end) in subtract(open, &merge(widened)) {
            let mut at = start.max(bookable);
            while at + duration <= end {
                if at >= from && at + duration <= to {
                    slots.push((at, at + duration));
                }
                at += duration;
            }
        }
        slots
    }
}

/// `at` rounded up to a quarter hour (a whole one stays).
fn quarter_hour_after(at: DateTime<Utc>) -> DateTime<Utc> {
    const QUARTER: i64 = 15 * 60;
    let seconds = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    let rounded = (seconds + QUARTER - 1).div_euclid(QUARTER) * QUARTER;
    DateTime::from_timestamp(rounded, 0).unwrap_or(at)
}

/// Sorted, overlapping or touching intervals joined.
fn merge<T: Ord + Copy>(mut spans: Vec<(T, T)>) -> Vec<(T, T)> {
    spans.sort();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `spans` without `holes` (both sorted and merged).
fn subtract<T: Ord + Copy>(spans: &[(T, T)], holes: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::new();
    for &(start, end) in spans {
        let mut cursor = start;
        for &(hole_start, hole_end) in holes {
            if hole_end <= cursor || hole_start >= end {
                continue;
            }
            if hole_start > cursor {
                out.push((cursor, hole_start));
            }
            cursor = cursor.max(hole_end);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(tz: &str, weekly: Vec<WeeklyWindow>, exceptions: Vec<Exception>) -> Schedule {
        Schedule {
            tz: tz.parse().unwrap_or(Tz::UTC),
            weekly,
            exceptions,
            buffer: Duration::zero(),
            notice: Duration::zero(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn the_skipped_and_the_repeated_hour() {
        // 2027-03-14 (spring forward) and 2027-11-07 (fall back) in New York, both Sundays.
        let s = schedule("America/New_York", vec![WeeklyWindow { weekday: 7, start: 90, end: 180 }], vec![]);
        // 01:30-03:00 local on the spring day: 02:00-03:00 does not exist, so it is 06:30-07:00 UTC.
        assert_eq!(
            s.open(at("2027-03-14T00:00:00Z"), at("2027-03-15T00:00:00Z")),
            vec![(at("2027-03-14T06:30:00Z"), at("2027-03-14T07:00:00Z"))]
        );
        // 01:30-03:00 on the autumn day: 01:30 EDT (05:30 UTC) to 03:00 EST (08:00 UTC).
        assert_eq!(
            s.open(at("2027-11-07T00:00:00Z"), at("2027-11-08T00:00:00Z")),
            vec![(at("2027-11-07T05:30:00Z"), at("2027-11-07T08:00:00Z"))]
        );
    }

    #[test]
    fn hours_off_in_the_repeated_hour_remove_both_occurrences() {
        // 2027-11-07, New York falls back: 01:00-02:00 happens twice (05:00-06:00Z EDT, 06:00-07:00Z EST).
        let date = NaiveDate::from_ymd_opt(2027, 11, 7).unwrap_or_default();
        let s = schedule(
            "America/New_York",
            vec![WeeklyWindow { weekday: 7, start: 0, end: 180 }],
            vec![Exception { date, start: Some(60), end: Some(120), available: false }],
        );
        assert_eq!(
            s.open(at("2027-11-07T00:00:00Z"), at("2027-11-08T00:00:00Z")),
            vec![
                (at("2027-11-07T04:00:00Z"), at("2027-11-07T05:00:00Z")),
                (at("2027-11-07T07:00:00Z"), at("2027-11-07T08:00:00Z"))
            ]
        );
    }

    #[test]
    fn exceptions_add_and_remove_hours() {
        let date = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap_or_default(); // a Monday
        let s = schedule(
            "UTC",
            vec![WeeklyWindow { weekday: 1, start: 540, end: 720 }],
            vec![
                Exception { date, start: Some(600), end: Some(660), available: false },
                Exception { date, start: Some(1080), end: Some(1140), available: true },
            ],
        );
        let midnight = Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
        let hours = |a: i64, b: i64| (midnight + Duration::minutes(a), midnight + Duration::minutes(b));
        let day = (midnight, midnight + Duration::days(1));
        assert_eq!(s.open(day.0, day.1), vec![hours(540, 600), hours(660, 720), hours(1080, 1140)]);
        let off = schedule("UTC", s.weekly.clone(), vec![Exception { date, start: None, end: None, available: false }]);
        assert!(off.open(day.0, day.1).is_empty());
    }

    #[test]
    fn subtract_cuts_holes() {
        assert_eq!(subtract(&[(0, 10)], &[(2, 3), (5, 7)]), vec![(0, 2), (3, 5), (7, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), Vec::<(i32, i32)>::new());
        assert_eq!(merge(vec![(5, 7), (0, 2), (2, 4)]), vec![(0, 4), (5, 7)]);
    }
}
