//! Failed logins per account (SPEC §3, `LOGIN_FAILURES_PER_ACCOUNT`): after `max` failures within
//! `window`, further attempts on that account are refused until the window ends, before any
//! password is checked. Sans I/O: every call takes the current [`Instant`] (the flows read it
//! from their [`Clock`](crate::clock::Clock)).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::types::{Email, TenantId};

const SHARDS: usize = 16;
/// Accounts tracked per shard at most; the memory a flood of made-up addresses can take.
const MAX_ACCOUNTS: usize = 4096;

/// Counts failed logins per account. Keys are the submitted (tenant, email), whether or not such
/// a user exists, so the answers reveal nothing about existence. A correct password clears the
/// count. Memory is bounded: when a shard is full, expired entries go first, then the oldest.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    shards: Vec<Mutex<HashMap<String, Failures>>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl FailureLimiter {
    /// `max` failures per `window` (`max` 0 = off).
    pub fn new(max: u32, window: Duration) -> Self {
        FailureLimiter {
            max,
            window,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether the account may try now.
    ///
    /// # Errors
    /// How long until it may, while the account is locked.
    pub fn check(
        &self,
        tenant: Option<&TenantId>,
        email: &Email,
        now: Instant,
    ) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let key = account_key(tenant, email);
        let shard = self.shard(&key);
        match shard.get(&key) {
            Some(f)
                if f.count >= self.max && now.saturating_duration_since(f.since) < self.window =>
            {
                Err(self.window - now.saturating_duration_since(f.since))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt on the account.
    pub fn fail(&self, tenant: Option<&TenantId>, email: &Email, now: Instant) {
        if self.max == 0 {
            return;
        }
        let window = self.window;
        let key = account_key(tenant, email);
        let mut shard = self.shard(&key);
        if shard.len() >= MAX_ACCOUNTS && !shard.contains_key(&key) {
            shard.retain(|_, f| now.saturating_duration_since(f.since) < window);
            if shard.len() >= MAX_ACCOUNTS
                && let Some(oldest) = shard
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(k, _)| k.clone())
            {
                shard.remove(&oldest);
            }
        }
        let f = shard.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(f.since) >= window {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count += 1;
    }

    /// A correct password: the account's count starts over.
    pub fn succeed(&self, tenant: Option<&TenantId>, email: &Email) {
        if self.max > 0 {
            let key = account_key(tenant, email);
            self.shard(&key).remove(&key);
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Failures>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.shards[(h.finish() as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tenant and the address, separated by a NUL (which neither may contain), so that the same
/// address in two tenants is two accounts.
fn account_key(tenant: Option<&TenantId>, email: &Email) -> String {
    format!(
        "{}\u{0}{}",
        tenant.map_or("", TenantId::as_str),
        email.as_str()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ann() -> Email {
        Email::parse("ann@example.com").unwrap()
    }

    #[test]
    fn locks_after_max_failures_for_the_window() {
        let l = FailureLimiter::new(3, Duration::from_secs(900));
        let bob = Email::parse("bob@example.com").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(None, &ann(), t0).is_ok());
            l.fail(None, &ann(), t0);
        }
        assert_eq!(l.check(None, &ann(), t0), Err(Duration::from_secs(900)));
        assert!(l.check(None, &bob, t0).is_ok());
        assert_eq!(
            l.check(None, &ann(), t0 + Duration::from_secs(600)),
            Err(Duration::from_secs(300))
        );
        assert!(l.check(None, &ann(), t0 + Duration::from_secs(900)).is_ok());
        // A new window starts counting afresh.
        l.fail(None, &ann(), t0 + Duration::from_secs(901));
        assert!(l.check(None, &ann(), t0 + Duration::from_secs(901)).is_ok());
    }

    #[test]
    fn success_clears_and_zero_is_off() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        l.fail(None, &ann(), t0);
        l.succeed(None, &ann());
        l.fail(None, &ann(), t0);
        assert!(l.check(None, &ann(), t0).is_ok());
        let off = FailureLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.fail(None, &ann(), t0);
        }
        assert!(off.check(None, &ann(), t0).is_ok());
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_oldest() {
        let l = FailureLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..SHARDS * MAX_ACCOUNTS + 100 {
            let email = Email::parse(&format!("u{i}@example.com")).unwrap();
            l.fail(None, &email, t0 + Duration::from_millis(i as u64));
        }
        let tracked: usize = l
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        assert!(tracked <= SHARDS * MAX_ACCOUNTS, "{tracked}");
    }
}
