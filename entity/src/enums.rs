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
    UserStatus { Active = "active", Inactive = "inactive", Banned = "banned" });
status_enum!(
    /// Platform role; admins verify masters and manage domains.
    UserRole { User = "user", Admin = "admin" });
status_enum!(
    /// The two kinds of identity a user can hold in a domain.
    IdentityType { Master = "master", Apprentice = "apprentice" });
status_enum!(
    /// Lifecycle of an identity.
    IdentityStatus { Pending = "pending", Active = "active", Suspended = "suspended", Rejected = "rejected" });
status_enum!(
    /// Verification of a master's documents.
    VerificationStatus { Unverified = "unverified", Pending = "pending", Verified = "verified", Rejected = "rejected" });
status_enum!(
    /// Course difficulty.
    Difficulty { Beginner = "beginner", Intermediate = "intermediate", Advanced = "advanced" });
status_enum!(
    /// Course lifecycle: draft -> published -> archived (and back to published).
    CourseStatus { Draft = "draft", Published = "published", Archived = "archived" });
status_enum!(
    /// Kind of a course content item.
    ContentType { Video = "video", Text = "text", Quiz = "quiz", Assignment = "assignment" });
status_enum!(
    /// A student's state in a course.
    LearningStatus { Enrolled = "enrolled", Learning = "learning", Completed = "completed", Dropped = "dropped" });
status_enum!(
    /// Circle lifecycle.
    CircleStatus { Active = "active", Inactive = "inactive", Archived = "archived" });
status_enum!(
    /// A member's role inside a circle.
    MemberRole { Member = "member", Moderator = "moderator", Admin = "admin" });
status_enum!(
    /// Kind of a post.
    PostType { Text = "text", Image = "image", Video = "video", Link = "link", Poll = "poll" });
status_enum!(
    /// Visibility of user content (posts, comments, reviews); deleted is a soft delete.
    ContentStatus { Active = "active", Hidden = "hidden", Deleted = "deleted" });
status_enum!(
    /// How an appointment is held.
    MeetingType { Video = "video", Voice = "voice", Text = "text" });
status_enum!(
    /// Appointment state machine.
    AppointmentStatus { Pending = "pending", Confirmed = "confirmed", Completed = "completed", Cancelled = "cancelled", NoShow = "no_show" });
status_enum!(
    /// What a review is about.
    ReviewType { Course = "course", Mentor = "mentor", Appointment = "appointment" });
status_enum!(
    /// Kind of a message.
    MessageType { Text = "text", Image = "image", File = "file", System = "system" });
status_enum!(
    /// Type of a system configuration value.
    ConfigType { String = "string", Number = "number", Boolean = "boolean", Json = "json" });

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
    Avatar = "avatar",
    CircleAvatar = "circle_avatar",
    CourseCover = "course_cover",
    CourseMedia = "course_media",
    PostImage = "post_image",
    IdentityDocument = "identity_document",
    MessageFile = "message_file",
});
status_enum!(
    /// PENDING until `completeUpload` checks the stored bytes; then READY, or REJECTED with a reason.
    UploadStatus { Pending = "pending", Ready = "ready", Rejected = "rejected" });
