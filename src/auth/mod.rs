//! Authentication: argon2id passwords, JWT access tokens with rotating refresh tokens, and the
//! `Viewer` every request carries.

pub mod password;
pub mod tokens;
pub mod viewer;

pub use viewer::Viewer;
