//! Time as the flows see it, so expiry can be tested without waiting.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Now on the monotonic clock, for intervals (a login lockout's window) that a change of
    /// the wall clock must not shorten or stretch.
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved, for tests of expiry. Its wall-clock and monotonic
/// readings move together.
#[derive(Debug)]
pub struct ManualClock(Mutex<(DateTime<Utc>, Instant)>);

impl ManualClock {
    /// A clock showing `at` (its monotonic reading starts at the moment it is made).
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new((at, Instant::now())))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.lock();
        t.0 += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        t.1 = t.1.checked_add(by).unwrap_or(t.1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (DateTime<Utc>, Instant)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().0
    }

    fn instant(&self) -> Instant {
        self.lock().1
    }
}
