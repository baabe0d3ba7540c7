//! Notifications: every domain event that tells a user something goes through `send`, inside the
//! transaction of the change that caused it (so a rolled-back change notifies nobody), and is
//! pushed to the user's live subscription after the commit.

use super::write;
use chrono::Utc;
use entity::notifications;
use sea_orm::TransactionTrait;
use sea_orm::{ConnectionTrait, DbErr, Set};
use uuid::Uuid;

/// The kinds of notification the platform sends (stored in `notification_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IdentityApproved,
    IdentityRejected,
    PostCommented,
    CommentReplied,
    PostLiked,
    RoleChanged,
    AppointmentBooked,
    AppointmentConfirmed,
    AppointmentCancelled,
    AppointmentRescheduled,
    Reviewed,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::IdentityApproved => "identity_approved",
            Self::IdentityRejected => "identity_rejected",
            Self::PostCommented => "post_commented",
            Self::CommentReplied => "comment_replied",
            Self::PostLiked => "post_liked",
            Self::RoleChanged => "role_changed",
            Self::AppointmentBooked => "appointment_booked",
            Self::AppointmentConfirmed => "appointment_confirmed",
            Self::AppointmentCancelled => "appointment_cancelled",
            Self::AppointmentRescheduled => "appointment_rescheduled",
            Self::Reviewed => "reviewed",
        }
    }
}

pub struct Notice {
    pub user_id: Uuid,
    pub kind: Kind,
    pub title: String,
    pub content: Option<String>,
    pub related_id: Option<Uuid>,
}

/// Like [`send`], unless the same kind of notice about the same object reached the user within
/// `window` and is still unread (e.g. a burst of likes makes one notification, not one per like).
pub async fn send_collapsed(
    db: &(impl ConnectionTrait + TransactionTrait),
    notice: Notice,
    window: chrono::Duration,
) -> Result<Option<notifications::Model>, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let recent = notifications::Entity::find()
        .filter(notifications::Column::UserId.eq(notice.user_id))
        .filter(notifications::Column::NotificationType.eq(notice.kind.as_str()))
        .filter(notifications::Column::RelatedId.eq(notice.related_id))
        .filter(notifications::Column::IsRead.eq(false))
        .filter(notifications::Column::CreatedAt.gt(Utc::now() - window))
        .one(db)
        .await?;
    if recent.is_some() {
        return Ok(None);
    }
    send(db, notice).await.map(Some)
}

pub async fn send(
    db: &(impl ConnectionTrait + TransactionTrait),
    notice: Notice,
) -> Result<notifications::Model, DbErr> {
    let notification = write::insert(
        db,
        notifications::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(notice.user_id),
            title: Set(notice.title.chars().take(200).collect()),
            content: Set(notice.content),
            notification_type: Set(notice.kind.as_str().to_string()),
            related_id: Set(notice.related_id),
            is_read: Set(false),
            read_at: Set(None),
            created_at: Set(Utc::now()),
        },
    )
    .await?;
    // Delivered live once the surrounding mutation commits (see `events::capture`).
    crate::events::emit(crate::events::Event::Notification(notification.clone()));
    Ok(notification)
}
