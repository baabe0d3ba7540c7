//! Paid one-to-one appointments: booking without double booking, the status machine with its
//! history, and who may see what.
//!
//! No person is ever booked twice at once among pending/confirmed appointments, whichever side they
//! are on: a person is busy while they teach through any of their master identities and while they
//! learn as a student. A booking's transaction first writes both people's user rows (the mentor's
//! user and the student), in id order, which row-locks both on PostgreSQL (one lock order, so no
//! deadlock) and takes the write lock on SQLite; concurrent bookings touching either person run one
//! after another and each sees the others. The same booking sent again returns the one it made.

use super::availability::{Schedule, Span};
use super::notify::{self, Kind, Notice};
use super::pagination::{keyset, Direction, Page, PageRequest, SortKey};
use super::values::{optional_text, url};
use super::write;
use crate::auth::Viewer;
use crate::error::{AppError, AppResult, Checks};
use chrono::{DateTime, Duration, Utc};
use entity::enums::{AppointmentStatus, MeetingType};
use entity::{appointment_status_logs, appointments, user_identities, user_profiles, users};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Select, Set, TransactionTrait,
};
use uuid::Uuid;

pub const MIN_MINUTES: i32 = 15;
pub const MAX_MINUTES: i32 = 240;
/// How far ahead an appointment may be booked or moved.
pub const MAX_DAYS_AHEAD: i64 = 366;
const ACTIVE: [AppointmentStatus; 2] = [AppointmentStatus::Pending, AppointmentStatus::Confirmed];

pub struct Booking {
    pub mentor_id: Uuid,
    pub appointment_time: DateTime<Utc>,
    pub duration_minutes: i32,
    pub meeting_type: MeetingType,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Student,
    Mentor,
}

/// The appointment's mentor identity and the two users involved.
pub struct Parties {
    pub appointment: appointments::Model,
    pub mentor_user: Uuid,
}

impl Parties {
    pub fn side_of(&self, user_id: Uuid) -> Option<Side> {
        if self.appointment.student_id == user_id {
            Some(Side::Student)
        } else if self.mentor_user == user_id {
            Some(Side::Mentor)
        } else {
            None
        }
    }
}

pub async fn parties(db: &(impl ConnectionTrait + TransactionTrait), id: Uuid) -> AppResult<Option<Parties>> {
    let Some(appointment) = appointments::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
    let identity =
        super::identities::find(db, appointment.mentor_id).await?.ok_or_else(|| AppError::not_found("identity"))?;
    Ok(Some(Parties { appointment, mentor_user: identity.user_id }))
}

/// Whether the viewer sees an appointment: one of its two sides, or an admin.
pub fn visible_to(viewer: &Viewer, parties: &Parties) -> bool {
    viewer.user_id().is_some_and(|user_id| parties.side_of(user_id).is_some()) || super::is_admin(viewer)
}

fn price(rate: Decimal, minutes: i32) -> Decimal {
    super::values::scale2(rate * Decimal::from(minutes) / Decimal::from(60))
}

pub(super) async fn touch_user(txn: &DatabaseTransaction, id: Uuid) -> AppResult<()> {
    write::update_many(
        txn,
        users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, Expr::col(users::Column::UpdatedAt).into())
            .filter(users::Column::Id.eq(id)),
    )
    .await?;
    Ok(())
}

/// The appointments `person` takes part in: as the student, or as the mentor through any of their
/// identities.
fn involving(person: Uuid) -> Condition {
    let identities = sea_orm::sea_query::Query::select()
        .column(user_identities::Column::Id)
        .from(user_identities::Entity)
        .and_where(user_identities::Column::UserId.eq(person))
        .to_owned();
    Condition::any()
        .add(appointments::Column::StudentId.eq(person))
        .add(appointments::Column::MentorId.in_subquery(identities))
}

/// A pending or confirmed appointment overlapping [start, end) that `person` takes part in, other
/// than `except` (the one being moved).
async fn clash(
    txn: &DatabaseTransaction,
    person: Uuid,
    (start, end): Span,
    except: Option<Uuid>,
) -> AppResult<Option<appointments::Model>> {
    let mut select = active_overlapping(person, start, end);
    if let Some(id) = except {
        select = select.filter(appointments::Column::Id.ne(id));
    }
    Ok(select.one(txn).await?)
}

/// The pending or confirmed appointments of `person` overlapping [start, end).
fn active_overlapping(person: Uuid, start: DateTime<Utc>, end: DateTime<Utc>) -> Select<appointments::Entity> {
    appointments::Entity::find()
        .filter(involving(person))
        .filter(appointments::Column::Status.is_in(ACTIVE.iter().map(|s| s.as_str())))
        .filter(appointments::Column::AppointmentTime.lt(end))
        .filter(appointments::Column::EndsAt.gt(start))
}

/// A person and a time range whose busy times are asked for.
pub type BusyKey = (Uuid, DateTime<Utc>, DateTime<Utc>);

/// The times people are taken in ranges (their pending and confirmed appointments), for many
/// people and ranges at once (a page of mentors with their free slots): two statements, the people's identities and every active appointment of theirs overlapping the
/// union of the ranges, shared out in memory.
pub async fn busy_many(db: &impl ConnectionTrait, keys: &[BusyKey]) -> Result<Vec<(BusyKey, Vec<Span>)>, DbErr> {
    let (Some(start), Some(end)) = (keys.iter().map(|k| k.1).min(), keys.iter().map(|k| k.2).max()) else {
        return Ok(Vec::new());
    };
    let people: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let identities: Vec<(Uuid, Uuid)> = user_identities::Entity::find()
        .select_only()
        .columns([user_identities::Column::Id, user_identities::Column::UserId])
        .filter(user_identities::Column::UserId.is_in(people.clone()))
        .into_tuple()
        .all(db)
        .await?;
    let user_of: std::collections::HashMap<Uuid, Uuid> = identities.iter().copied().collect();
    let rows = appointments::Entity::find()
        .filter(
            Condition::any()
                .add(appointments::Column::StudentId.is_in(people))
                .add(appointments::Column::MentorId.is_in(identities.iter().map(|(id, _)| *id))),
        )
        .filter(appointments::Column::Status.is_in(ACTIVE.iter().map(|s| s.as_str())))
        .filter(appointments::Column::AppointmentTime.lt(end))
        .filter(appointments::Column::EndsAt.gt(start))
        .all(db)
        .await?;
    Ok(keys
        .iter()
        .map(|&(person, from, to)| {
            let spans = rows
                .iter()
                .filter(|a| a.student_id == person || user_of.get(&a.mentor_id) == Some(&person))
                .filter(|a| a.appointment_time < to && a.ends_at > from)
                .map(|a| (a.appointment_time, a.ends_at))
                .collect();
            ((person, from, to), spans)
        })
        .collect())
}

/// Checks `[start, end)` against the master identity's schedule, if it has one, and gives the
/// buffer to keep around the master's other appointments. Read inside the booking's transaction,
/// after its locks, so a schedule being replaced is seen whole, before or after.
async fn against_schedule(
    txn: &DatabaseTransaction,
    identity_id: Uuid,
    (start, end): Span,
    now: DateTime<Utc>,
) -> AppResult<Duration> {
    let Some(row) = super::availability::find(txn, identity_id).await? else { return Ok(Duration::zero()) };
    let schedule = Schedule::new(&row)?;
    if start < now + schedule.notice {
        return Err(AppError::Conflict {
            field: Some("input.appointmentTime".into()),
            message: format!("this mentor needs {} hours' notice", row.min_notice_hours),
        });
    }
    if !schedule.fits(start, end) {
        return Err(AppError::Conflict {
            field: Some("input.appointmentTime".into()),
            message: "outside the mentor's availability; pick one of Mentor.availableSlots".into(),
        });
    }
    Ok(schedule.buffer)
}

async fn log(
    db: &(impl ConnectionTrait + TransactionTrait),
    appointment: Uuid,
    from: Option<AppointmentStatus>,
    to: AppointmentStatus,
    reason: Option<String>,
    by: Uuid,
) -> AppResult<()> {
    write::insert(
        db,
        appointment_status_logs::ActiveModel {
            id: Set(Uuid::new_v4()),
            appointment_id: Set(appointment),
            from_status: Set(from),
            to_status: Set(to),
            reason: Set(reason),
            changed_by: Set(Some(by)),
            created_at: Set(Utc::now()),
        },
    )
    .await?;
    Ok(())
}

#[tracing::instrument(name = "appointments.book", skip_all)]
pub async fn book(db: &DatabaseConnection, viewer: &Viewer, input: Booking) -> AppResult<appointments::Model> {
    let mut c = Checks::default();
    if !(MIN_MINUTES..=MAX_MINUTES).contains(&input.duration_minutes) {
        c.fail("input.durationMinutes", format!("must be between {MIN_MINUTES} and {MAX_MINUTES}"));
    }
    let now = Utc::now();
    if input.appointment_time <= now {
        c.fail("input.appointmentTime", "must be in the future");
    } else if input.appointment_time > now + Duration::days(MAX_DAYS_AHEAD) {
        c.fail("input.appointmentTime", "at most a year ahead");
    }
    let notes = c.on(optional_text("input.notes", input.notes, 2000));
    c.finish()?;
    let student = super::active_user(db, viewer).await?;
    let mentor = super::mentors::get(db, input.mentor_id).await?.ok_or_else(|| AppError::not_found("mentor"))?;
    if mentor.user_id == student.id {
        return Err(AppError::forbidden("you cannot book yourself"));
    }
    let rate = user_profiles::Entity::find()
        .filter(user_profiles::Column::IdentityId.eq(mentor.id))
        .one(db)
        .await?
        .and_then(|p| p.hourly_rate)
        .ok_or_else(|| AppError::Conflict {
            field: Some("input.mentorId".into()),
            message: "this mentor has no hourly rate yet".into(),
        })?;
    let start = input.appointment_time;
    let end = start + Duration::minutes(input.duration_minutes.into());

    let txn = db.begin().await?;
    let (first, second) =
        if mentor.user_id < student.id { (mentor.user_id, student.id) } else { (student.id, mentor.user_id) };
    touch_user(&txn, first).await?;
    touch_user(&txn, second).await?;
    if let Some(existing) = clash(&txn, student.id, (start, end), None).await? {
        // The same booking sent again (a retry, a double tap): the one it made.
        let same = existing.student_id == student.id
            && existing.mentor_id == mentor.id
            && existing.appointment_time == start
            && existing.duration_minutes == input.duration_minutes
            && existing.meeting_type == input.meeting_type;
        if same {
            return Ok(existing);
        }
        let message = if existing.student_id == student.id {
            "you already have an appointment then"
        } else {
            "you are teaching an appointment then"
        };
        return Err(AppError::Conflict { field: Some("input.appointmentTime".into()), message: message.into() });
    }
    let buffer = against_schedule(&txn, mentor.id, (start, end), now).await?;
    if clash(&txn, mentor.user_id, (start - buffer, end + buffer), None).await?.is_some() {
        return Err(AppError::Conflict {
            field: Some("input.appointmentTime".into()),
            message: "the mentor is already booked then".into(),
        });
    }
    let appointment = write::insert(
        &txn,
        appointments::ActiveModel {
            id: Set(Uuid::new_v4()),
            student_id: Set(student.id),
            mentor_id: Set(mentor.id),
            appointment_time: Set(start),
            ends_at: Set(end),
            duration_minutes: Set(input.duration_minutes),
            meeting_type: Set(input.meeting_type),
            status: Set(AppointmentStatus::Pending),
            price: Set(price(rate, input.duration_minutes)),
            notes: Set(notes),
            meeting_url: Set(None),
            meeting_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        },
    )
    .await?;
    log(&txn, appointment.id, None, AppointmentStatus::Pending, None, student.id).await?;
    notify::send(
        &txn,
        Notice {
            user_id: mentor.user_id,
            kind: Kind::AppointmentBooked,
            title: "New appointment request".into(),
            content: Some(format!("{} for {} minutes", start.format("%Y-%m-%d %H:%M UTC"), input.duration_minutes)),
            related_id: Some(appointment.id),
        },
    )
    .await?;
    txn.commit().await?;
    metrics::counter!("business_bookings_total").increment(1);
    Ok(appointment)
}

/// The transitions: who may move which status to which, and when.
#[derive(Debug, Clone)]
pub enum Transition {
    Confirm { meeting_url: String },
    Cancel { reason: String },
    Complete,
    NoShow,
}

impl Transition {
    fn target(&self) -> AppointmentStatus {
        match self {
            Self::Confirm { .. } => AppointmentStatus::Confirmed,
            Self::Cancel { .. } => AppointmentStatus::Cancelled,
            Self::Complete => AppointmentStatus::Completed,
            Self::NoShow => AppointmentStatus::NoShow,
        }
    }

    fn from(&self) -> &'static [AppointmentStatus] {
        match self {
            Self::Confirm { .. } => &[AppointmentStatus::Pending],
            Self::Cancel { .. } => &ACTIVE,
            Self::Complete | Self::NoShow => &[AppointmentStatus::Confirmed],
        }
    }

    fn allowed_side(&self, side: Side) -> bool {
        match self {
            Self::Cancel { .. } => true,
            _ => side == Side::Mentor,
        }
    }
}

#[tracing::instrument(name = "appointments.transition", skip_all, fields(appointment = %id))]
pub async fn transition(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    transition: Transition,
) -> AppResult<appointments::Model> {
    let transition = match transition {
        Transition::Confirm { meeting_url } => {
            Transition::Confirm { meeting_url: url("meetingUrl", &meeting_url, 500)? }
        }
        Transition::Cancel { reason } => Transition::Cancel {
            reason: optional_text("reason", Some(reason), 1000)?
                .ok_or_else(|| AppError::bad_input("reason", "a cancellation needs a reason"))?,
        },
        other => other,
    };
    let user = super::active_user(db, viewer).await?;
    let parties = parties(db, id).await?.ok_or_else(|| AppError::not_found("appointment"))?;
    let side = parties.side_of(user.id).ok_or_else(|| AppError::not_found("appointment"))?;
    if !transition.allowed_side(side) {
        return Err(AppError::forbidden("only the mentor can do that"));
    }
    let current = parties.appointment;
    let target = transition.target();
    if current.status == target {
        return Ok(current);
    }
    if !transition.from().contains(&current.status) {
        return Err(AppError::Conflict {
            field: None,
            message: format!("a {} appointment cannot become {}", current.status.as_str(), target.as_str()),
        });
    }
    let now = Utc::now();
    match &transition {
        Transition::Cancel { .. } if now >= current.appointment_time => {
            return Err(AppError::Conflict {
                field: None,
                message: "the appointment has started; it can no longer be cancelled".into(),
            });
        }
        Transition::Complete | Transition::NoShow if now < current.appointment_time => {
            return Err(AppError::Conflict { field: None, message: "the appointment has not started yet".into() });
        }
        _ => {}
    }
    let txn = db.begin().await?;
    let mut update = appointments::Entity::update_many()
        .col_expr(appointments::Column::Status, Expr::value(target.as_str()))
        .col_expr(appointments::Column::UpdatedAt, Expr::value(now))
        .filter(appointments::Column::Id.eq(id))
        .filter(appointments::Column::Status.eq(current.status.as_str()));
    if let Transition::Confirm { meeting_url } = &transition {
        update = update
            .col_expr(appointments::Column::MeetingUrl, Expr::value(meeting_url.clone()))
            .col_expr(appointments::Column::MeetingId, Expr::value(new_meeting_id()));
    }
    if write::update_many(&txn, update).await? != 1 {
        return Err(AppError::Conflict { field: None, message: "the appointment changed meanwhile; try again".into() });
    }
    let reason = match &transition {
        Transition::Cancel { reason } => Some(reason.clone()),
        _ => None,
    };
    log(&txn, id, Some(current.status), target, reason.clone(), user.id).await?;
    let (other, kind, title) = match (&transition, side) {
        (Transition::Confirm { .. }, _) => {
            (Some(current.student_id), Kind::AppointmentConfirmed, "Your appointment is confirmed")
        }
        (Transition::Cancel { .. }, Side::Student) => {
            (Some(parties.mentor_user), Kind::AppointmentCancelled, "An appointment was cancelled")
        }
        (Transition::Cancel { .. }, Side::Mentor) => {
            (Some(current.student_id), Kind::AppointmentCancelled, "Your appointment was cancelled")
        }
        _ => (None, Kind::AppointmentConfirmed, ""),
    };
    if let Some(user_id) = other {
        notify::send(&txn, Notice { user_id, kind, title: title.into(), content: reason, related_id: Some(id) })
            .await?;
    }
    let updated =
        appointments::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("appointment"))?;
    txn.commit().await?;
    Ok(updated)
}

/// The meeting room's id, set when the mentor confirms: the design's `meeting_id`, what a video
/// service names the room (`mg-` and twelve random hex digits in groups of four).
fn new_meeting_id() -> String {
    let hex = Uuid::new_v4().simple().to_string();
    format!("mg-{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12])
}

/// Moves a pending or confirmed appointment that has not started to `new_start` (same duration):
/// either side may, into time both people have free and, once the master has a schedule, inside
/// it. The status stays, except that a student moving a confirmed appointment sends it back to
/// PENDING for the mentor to confirm again; the history keeps the move (the old and new times as
/// its reason) and the other side is told.
#[tracing::instrument(name = "appointments.reschedule", skip_all, fields(appointment = %id))]
pub async fn reschedule(
    db: &DatabaseConnection,
    viewer: &Viewer,
    id: Uuid,
    new_start: DateTime<Utc>,
) -> AppResult<appointments::Model> {
    let now = Utc::now();
    if new_start <= now {
        return Err(AppError::bad_input("appointmentTime", "must be in the future"));
    }
    if new_start > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(AppError::bad_input("appointmentTime", "at most a year ahead"));
    }
    let user = super::active_user(db, viewer).await?;
    let parties = parties(db, id).await?.ok_or_else(|| AppError::not_found("appointment"))?;
    let side = parties.side_of(user.id).ok_or_else(|| AppError::not_found("appointment"))?;
    let current = parties.appointment;
    let txn = db.begin().await?;
    let (student, mentor_user) = (current.student_id, parties.mentor_user);
    let (first, second) = if mentor_user < student { (mentor_user, student) } else { (student, mentor_user) };
    touch_user(&txn, first).await?;
    touch_user(&txn, second).await?;
    // Under the locks: the appointment as it is now.
    let current =
        appointments::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("appointment"))?;
    if !ACTIVE.contains(&current.status) {
        return Err(AppError::Conflict {
            field: None,
            message: format!("a {} appointment cannot be rescheduled", current.status.as_str()),
        });
    }
    if now >= current.appointment_time {
        return Err(AppError::Conflict { field: None, message: "the appointment has started".into() });
    }
    if current.appointment_time == new_start {
        return Ok(current);
    }
    if super::mentors::get(&txn, current.mentor_id).await?.is_none() {
        return Err(AppError::Conflict {
            field: Some("appointmentTime".into()),
            message: "this mentor no longer takes appointments".into(),
        });
    }
    let end = new_start + Duration::minutes(current.duration_minutes.into());
    let field = |message: &str| AppError::Conflict { field: Some("appointmentTime".into()), message: message.into() };
    let buffer =
        against_schedule(&txn, current.mentor_id, (new_start, end), now).await.map_err(|error| match error {
            AppError::Conflict { message, .. } => AppError::Conflict { field: Some("appointmentTime".into()), message },
            other => other,
        })?;
    if clash(&txn, student, (new_start, end), Some(id)).await?.is_some() {
        return Err(field("the student has another appointment then"));
    }
    if clash(&txn, mentor_user, (new_start - buffer, end + buffer), Some(id)).await?.is_some() {
        return Err(field("the mentor is already booked then"));
    }
    // A student moving a confirmed appointment asks the mentor again: back to PENDING, without
    // the meeting of the old time.
    let status = match (side, current.status) {
        (Side::Student, AppointmentStatus::Confirmed) => AppointmentStatus::Pending,
        (_, status) => status,
    };
    let mut update = appointments::Entity::update_many()
        .col_expr(appointments::Column::AppointmentTime, Expr::value(new_start))
        .col_expr(appointments::Column::EndsAt, Expr::value(end))
        .col_expr(appointments::Column::Status, Expr::value(status.as_str()))
        .col_expr(appointments::Column::UpdatedAt, Expr::value(now))
        .filter(appointments::Column::Id.eq(id))
        .filter(appointments::Column::Status.eq(current.status.as_str()));
    if status != current.status {
        update = update
            .col_expr(appointments::Column::MeetingUrl, Expr::value(Option::<String>::None))
            .col_expr(appointments::Column::MeetingId, Expr::value(Option::<String>::None));
    }
    let moved = write::update_many(&txn, update).await?;
    if moved != 1 {
        return Err(AppError::Conflict { field: None, message: "the appointment changed meanwhile; try again".into() });
    }
    let reason = format!(
        "rescheduled from {} to {}",
        current.appointment_time.format("%Y-%m-%d %H:%M UTC"),
        new_start.format("%Y-%m-%d %H:%M UTC")
    );
    log(&txn, id, Some(current.status), status, Some(reason.clone()), user.id).await?;
    let other = match side {
        Side::Student => mentor_user,
        Side::Mentor => student,
    };
    notify::send(
        &txn,
        Notice {
            user_id: other,
            kind: Kind::AppointmentRescheduled,
            title: "An appointment was rescheduled".into(),
            content: Some(reason),
            related_id: Some(id),
        },
    )
    .await?;
    let updated =
        appointments::Entity::find_by_id(id).one(&txn).await?.ok_or_else(|| AppError::not_found("appointment"))?;
    txn.commit().await?;
    Ok(updated)
}

/// The viewer's appointments as student or as mentor (any of their master identities), soonest last.
pub async fn mine(
    db: &DatabaseConnection,
    viewer: &Viewer,
    side: Side,
    status: Option<AppointmentStatus>,
    page: &PageRequest,
) -> AppResult<(Page<appointments::Model>, Select<appointments::Entity>)> {
    let user_id = viewer.require()?;
    let mut select = match side {
        Side::Student => appointments::Entity::find().filter(appointments::Column::StudentId.eq(user_id)),
        Side::Mentor => appointments::Entity::find().filter(
            appointments::Column::MentorId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(user_identities::Column::Id)
                    .from(user_identities::Entity)
                    .and_where(user_identities::Column::UserId.eq(user_id))
                    .to_owned(),
            ),
        ),
    };
    if let Some(status) = status {
        select = select.filter(appointments::Column::Status.eq(status.as_str()));
    }
    let counted = select.clone();
    let page = keyset(
        db,
        select,
        &[(appointments::Column::AppointmentTime, Direction::Desc)],
        appointments::Column::Id,
        page,
        |a| (vec![SortKey::Time(a.appointment_time)], a.id),
    )
    .await?;
    Ok((page, counted))
}
