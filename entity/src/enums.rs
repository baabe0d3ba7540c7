//! The closed status sets of the database design, stored as the design's lowercase words.
//!
//! Each enum is a sea-orm `ActiveEnum` backed by a `VARCHAR(20)`, mirrored by a CHECK constraint in the
//! migrations. With the `graphql` feature they double as the GraphQL enums (SCREAMING_CASE values).

use sea_orm::entity::prelude::*;
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $value)] $variant),+
        }

        impl $name {
            /// Every stored value, in declaration order (used by the CHECK constraints).
            pub const VALUES: &'static [&'static str] = &[$($value),+];

            /// The stored lowercase word.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $value),+ }
            }
        }
    };
}

status_enum!(
/// Account state: only active users can log in.
UserStatus {
    /// Can log in and use the platform.
    Active = "active",
    /// Deactivated by an administrator: cannot log in until activated again.
    Inactive = "inactive",
    /// Banned by an administrator: cannot log in, and cannot be messaged.
    Banned = "banned",
});
status_enum!(
/// Platform role; admins verify masters and manage domains.
UserRole {
    /// Everyone.
    User = "user",
    /// Platform administrators: review applications, moderate, configure.
    Admin = "admin",
});
status_enum!(
/// The two kinds of identity a user can hold in a domain.
IdentityType {
    /// A mentor: teaches courses, takes appointments; verified by an administrator.
    Master = "master",
    /// A learner in the domain.
    Apprentice = "apprentice",
});
status_enum!(
/// Lifecycle of an identity.
IdentityStatus {
    /// Applied, waiting for an administrator.
    Pending = "pending",
    /// Approved (apprentices are active at once).
    Active = "active",
    /// A master taken off the platform for now: not listed, found or bookable.
    Suspended = "suspended",
    /// The application was turned down (`rejectionReason` says why); apply again to retry.
    Rejected = "rejected",
});
status_enum!(
/// Verification of a master's documents.
VerificationStatus {
    /// No documents checked (apprentices).
    Unverified = "unverified",
    /// Documents sent, waiting for an administrator.
    Pending = "pending",
    /// An administrator checked the documents.
    Verified = "verified",
    /// The documents were not accepted.
    Rejected = "rejected",
});
status_enum!(
/// Course difficulty.
Difficulty {
    /// No prior knowledge needed.
    Beginner = "beginner",
    /// Builds on the basics.
    Intermediate = "intermediate",
    /// For practitioners.
    Advanced = "advanced",
});
status_enum!(
/// Course lifecycle: draft -> published -> archived (and back to published).
CourseStatus {
    /// Being written: only its master sees it.
    Draft = "draft",
    /// In the catalogue: students can enroll.
    Published = "published",
    /// Out of the catalogue; enrolled students keep their access.
    Archived = "archived",
});
status_enum!(
/// Kind of a course content item.
ContentType {
    /// A video (`contentUrl`).
    Video = "video",
    /// A text lesson (`contentText`).
    Text = "text",
    /// A quiz.
    Quiz = "quiz",
    /// An assignment to hand in.
    Assignment = "assignment",
});
status_enum!(
/// A student's state in a course.
LearningStatus {
    /// Enrolled, nothing studied yet.
    Enrolled = "enrolled",
    /// Studying: some progress recorded.
    Learning = "learning",
    /// Every content item completed.
    Completed = "completed",
    /// The student left the course (enrolling again resumes it).
    Dropped = "dropped",
});
status_enum!(
/// Circle lifecycle.
CircleStatus {
    /// Open: members post and join.
    Active = "active",
    /// Paused by its admins: readable, nobody joins or posts.
    Inactive = "inactive",
    /// Closed for good: out of lists and search.
    Archived = "archived",
});
status_enum!(
/// A member's role inside a circle.
MemberRole {
    /// Reads, posts, comments, votes.
    Member = "member",
    /// Also pins, marks essence, hides content and removes members.
    Moderator = "moderator",
    /// Also edits the circle and sets roles.
    Admin = "admin",
});
status_enum!(
/// Kind of a post.
PostType {
    /// Text only.
    Text = "text",
    /// With images (`mediaUrls`).
    Image = "image",
    /// With a video (`mediaUrls`).
    Video = "video",
    /// Sharing a link (`mediaUrls`).
    Link = "link",
    /// A poll (`poll`), with 2 to 10 options.
    Poll = "poll",
});
status_enum!(
/// Visibility of user content (posts, comments, reviews); deleted is a soft delete.
ContentStatus {
    /// Visible.
    Active = "active",
    /// Hidden by a moderator: out of lists and counts, can be brought back.
    Hidden = "hidden",
    /// Deleted by its author (the row stays, nobody sees it).
    Deleted = "deleted",
});
status_enum!(
/// How an appointment is held.
MeetingType {
    /// A video call.
    Video = "video",
    /// A voice call.
    Voice = "voice",
    /// A text chat.
    Text = "text",
});
status_enum!(
/// Appointment state machine.
AppointmentStatus {
    /// Booked, waiting for the mentor to confirm.
    Pending = "pending",
    /// Confirmed by the mentor (with a meeting id).
    Confirmed = "confirmed",
    /// Held; the student may review it.
    Completed = "completed",
    /// Cancelled by either side before it was held.
    Cancelled = "cancelled",
    /// The student did not come (marked by the mentor).
    NoShow = "no_show",
});
status_enum!(
/// What a review is about.
ReviewType {
    /// A course the reviewer is enrolled in.
    Course = "course",
    /// A mentor the reviewer had a completed appointment with.
    Mentor = "mentor",
    /// One completed appointment.
    Appointment = "appointment",
});
status_enum!(
/// Kind of a message.
MessageType {
    /// Plain text.
    Text = "text",
    /// An image (the content is its URL).
    Image = "image",
    /// A file (the content is its URL).
    File = "file",
    /// Sent by the platform itself.
    System = "system",
});
status_enum!(
/// Type of a system configuration value.
ConfigType {
    /// A string.
    String = "string",
    /// A number.
    Number = "number",
    /// true or false.
    Boolean = "boolean",
    /// Any JSON value.
    Json = "json",
});

/// A list of strings stored as a JSON array (JSONB on PostgreSQL): tags, skills, media URLs, documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct StringList(pub Vec<String>);

impl From<Vec<String>> for StringList {
    fn from(items: Vec<String>) -> Self {
        Self(items)
    }
}
status_enum!(
/// What an upload is for: decides its size and type limits, its image sizes and who may read it.
UploadPurpose {
    /// A profile picture (public; 64 and 256 px sizes).
    Avatar = "avatar",
    /// A circle's picture (public).
    CircleAvatar = "circle_avatar",
    /// A course's cover image (public; 1280 px).
    CourseCover = "course_cover",
    /// A course content's video or file (private: signed URLs for those the content is open to).
    CourseMedia = "course_media",
    /// An image of a post (public).
    PostImage = "post_image",
    /// A master's verification document (private: its owner and admins, through signed URLs).
    IdentityDocument = "identity_document",
    /// A file sent in a message (private: the message's parties, through signed URLs).
    MessageFile = "message_file",
});
status_enum!(
/// PENDING until `completeUpload` checks the stored bytes; then READY, or REJECTED with a reason.
UploadStatus {
    /// Waiting for the bytes and `completeUpload`.
    Pending = "pending",
    /// Checked and usable.
    Ready = "ready",
    /// Failed the checks (`rejectReason`).
    Rejected = "rejected",
});
