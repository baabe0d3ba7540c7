//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane).
//!
//! Hashing is CPU-bound, so it runs on dedicated threads and never stalls the async workers; at
//! most `PASSWORD_HASH_CONCURRENCY` hashes run at once (one per core by default), so a sign-in flood
//! queues instead of taking every core and 19 MiB per attempt. A caller that waits longer than
//! `PASSWORD_HASH_QUEUE_SECS` for a slot is told RATE_LIMITED.

use crate::error::{AppError, AppResult};
use anyhow::anyhow;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Hashing runs on a few dedicated threads, one per slot: each keeps the memory of its last hash
/// (19 MiB) for the next instead of a new blocking-pool thread growing a malloc arena of its own,
/// so a flood of sign-ins costs `concurrency` x 19 MiB, not hundreds of MiB.
struct Hashers {
    slots: Arc<Semaphore>,
    queue: Duration,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

static SETTINGS: OnceLock<(usize, Duration)> = OnceLock::new();
static HASHERS: OnceLock<Hashers> = OnceLock::new();

/// Sizes the hashing slots (the first call wins; the server calls it before serving).
pub fn configure(concurrency: usize, queue: Duration) {
    let _ = SETTINGS.set((concurrency.max(1), queue));
}

fn hashers() -> &'static Hashers {
    HASHERS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let (concurrency, queue) = *SETTINGS.get_or_init(|| (cores, Duration::from_secs(5)));
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..concurrency {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{index}")).spawn(move || loop {
                let job = match receiver.lock() {
                    Ok(receiver) => receiver.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(error) = spawned {
                tracing::error!(error = %error, "cannot start a hashing thread");
            }
        }
        Hashers { slots: Arc::new(Semaphore::new(concurrency)), queue, jobs: Mutex::new(sender) }
    })
}

/// Runs `work` on a hashing thread once a slot is free; RATE_LIMITED after queueing too long.
async fn with_slot<T: Send + 'static>(work: impl FnOnce() -> AppResult<T> + Send + 'static) -> AppResult<T> {
    let hashers = hashers();
    // The permit travels with the job: a caller that gives up (timeout, disconnect) frees its slot
    // only when the hash it started is done, so the slots bound the work actually running.
    let permit = match tokio::time::timeout(hashers.queue, hashers.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(AppError::Internal(anyhow!("hashing slots closed"))),
        Err(_) => {
            metrics::counter!("password_hash_queue_timeouts_total").increment(1);
            return Err(AppError::RateLimited { retry_after_secs: 1 });
        }
    };
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // Nobody waits for it any more: skip the work.
        if !done.is_closed() {
            let _ = done.send(work());
        }
        drop(permit);
    });
    hashers
        .jobs
        .lock()
        .map_err(|_| AppError::Internal(anyhow!("hashing queue poisoned")))?
        .send(job)
        .map_err(|_| AppError::Internal(anyhow!("hashing threads stopped")))?;
    result.await.map_err(|_| AppError::Internal(anyhow!("a hashing job was dropped")))?
}

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// A password that met the policy (8..128 characters).
pub struct Password(String);

impl Password {
    pub fn parse(raw: String, field: &str) -> AppResult<Self> {
        let chars = raw.chars().count();
        if chars < MIN_LEN {
            return Err(AppError::bad_input(field, format!("password must be at least {MIN_LEN} characters")));
        }
        if chars > MAX_LEN {
            return Err(AppError::bad_input(field, format!("password must be at most {MAX_LEN} characters")));
        }
        if raw.trim().is_empty() {
            return Err(AppError::bad_input(field, "password must not be blank"));
        }
        Ok(Self(raw))
    }
}

pub async fn hash(password: Password) -> AppResult<String> {
    with_slot(move || hash_blocking(&password.0)).await
}

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::Internal(anyhow!("argon2 hash: {error}")))
}

/// Checks `password` against `stored`; with no stored hash (unknown user) it checks a dummy hash so
/// both failures take the same time and the response does not reveal which emails exist.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    with_slot(move || {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored,
            None => dummy_hash()?.to_string(),
        };
        let parsed = PasswordHash::new(&stored).map_err(|error| AppError::Internal(anyhow!("stored hash: {error}")))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(known && matches)
    })
    .await
}

fn dummy_hash() -> AppResult<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_blocking("not-a-real-password-only-for-timing")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds() {
        assert!(Password::parse("short".into(), "p").is_err());
        assert!(Password::parse("x".repeat(129), "p").is_err());
        assert!(Password::parse("        ".into(), "p").is_err());
        assert!(Password::parse("long enough".into(), "p").is_ok());
    }

    #[tokio::test]
    async fn hash_and_verify() -> AppResult<()> {
        let hashed = hash(Password::parse("correct horse".into(), "p")?).await?;
        assert!(hashed.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(hashed.clone())).await?);
        assert!(!verify("wrong horse".into(), Some(hashed)).await?);
        assert!(!verify("correct horse".into(), None).await?);
        Ok(())
    }
}
