//! Account state and password history (SPEC §11, §13): what the lockout, expiry and archive
//! policies keep per user, in the state store, never in the operator's users table.
//!
//! A store keeps one [`AccountState`] per (tenant, user) and applies an [`AccountChange`] to it
//! atomically ([`AccountStore::update_account`]): the rules of every change live here, in
//! [`AccountChange::apply`], so every store behaves alike and a store only has to read the row
//! under a lock, apply, and write it back.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::store::StoreError;
use crate::types::{PasswordHash, TenantId, UserId};

/// What the policies know of one account. A user the store has never seen has the default:
/// not locked, not archived, no failures, no times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// When the account was locked (by failed logins or an admin); `None` = not locked.
    pub locked_at: Option<DateTime<Utc>>,
    /// When the lock ends by itself; `None` with `locked_at` set = until an admin unlocks (or a
    /// password reset).
    pub locked_until: Option<DateTime<Utc>>,
    /// When the account was archived; `None` = not archived.
    pub archived_at: Option<DateTime<Utc>>,
    /// Consecutive failed logins since the last success, lock or unlock.
    pub failed_logins: u32,
    /// When the password was last written, or when the expiry policy first saw it.
    pub password_changed_at: Option<DateTime<Utc>>,
    /// The last successful sign-in with a password.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl AccountState {
    /// Whether the account is locked at `now` (a lock whose `locked_until` has passed is over).
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_at.is_some() && self.locked_until.is_none_or(|until| until > now)
    }

    /// Whether the account is archived.
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// The state with every time truncated to the microsecond, as stores keep it.
    pub fn truncated(mut self) -> Self {
        for t in [
            &mut self.locked_at,
            &mut self.locked_until,
            &mut self.archived_at,
            &mut self.password_changed_at,
            &mut self.last_login_at,
        ] {
            *t = t.map(|t| t.trunc_subsecs(6));
        }
        self
    }

    /// Whether this is the state of an account never seen (a store need keep no row for it).
    pub fn is_default(&self) -> bool {
        *self == AccountState::default()
    }
}

/// A change to an account's state; [`AccountChange::apply`] says what each does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// A wrong password. While the account is locked nothing changes (a locked account counts
    /// nothing). Otherwise the count goes up (an expired lock is cleared first, and counting
    /// starts again), and reaching `threshold` (> 0) locks the account from `at` until
    /// `lock_until` (`None` = until unlocked), the count back at 0.
    LoginFailed {
        at: DateTime<Utc>,
        threshold: u32,
        lock_until: Option<DateTime<Utc>>,
    },
    /// A correct password: the count back at 0, an expired lock cleared, `last_login_at` set.
    LoginSucceeded { at: DateTime<Utc> },
    /// An admin's lock, from `at` until `until` (`None` = until unlocked).
    Lock {
        at: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
    /// An admin's unlock: no lock, no failures.
    Unlock,
    /// Archived at `at` (an archived account stays archived at its first time).
    Archive { at: DateTime<Utc> },
    /// Back from the archive, as it was.
    Restore,
    /// The password was written at `at`; `unlock` clears a lock and the count too (a completed
    /// password reset).
    PasswordChanged { at: DateTime<Utc>, unlock: bool },
    /// The expiry policy sees the account: its clock starts at `at` unless it runs already.
    FirstSeen { at: DateTime<Utc> },
}

impl AccountChange {
    /// The state after the change.
    pub fn apply(&self, mut s: AccountState) -> AccountState {
        match *self {
            AccountChange::LoginFailed {
                at,
                threshold,
                lock_until,
            } => {
                if s.is_locked(at) {
                    return s;
                }
                if s.locked_at.is_some() {
                    s.locked_at = None;
                    s.locked_until = None;
                    s.failed_logins = 0;
                }
                s.failed_logins = s.failed_logins.saturating_add(1);
                if threshold > 0 && s.failed_logins >= threshold {
                    s.locked_at = Some(at);
                    s.locked_until = lock_until;
                    s.failed_logins = 0;
                }
            }
            AccountChange::LoginSucceeded { at } => {
                if s.locked_at.is_some() && !s.is_locked(at) {
                    s.locked_at = None;
                    s.locked_until = None;
                }
                s.failed_logins = 0;
                s.last_login_at = Some(at);
            }
            AccountChange::Lock { at, until } => {
                s.locked_at = Some(at);
                s.locked_until = until;
                s.failed_logins = 0;
            }
            AccountChange::Unlock => {
                s.locked_at = None;
                s.locked_until = None;
                s.failed_logins = 0;
            }
            AccountChange::Archive { at } => {
                s.archived_at.get_or_insert(at);
            }
            AccountChange::Restore => s.archived_at = None,
            AccountChange::PasswordChanged { at, unlock } => {
                s.password_changed_at = Some(at);
                if unlock {
                    s.locked_at = None;
                    s.locked_until = None;
                    s.failed_logins = 0;
                }
            }
            AccountChange::FirstSeen { at } => {
                s.password_changed_at.get_or_insert(at);
            }
        }
        s.truncated()
    }
}

/// Where account state and password history live. Every call names the user with its tenant:
/// `None` means "no tenant", never "any tenant". Errors are `StoreError`s: `Unavailable` when
/// the database cannot be reached, `Backend` for the rest.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// The account's state; the default for an account never seen.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn account_state(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<AccountState, StoreError>;

    /// Applies `change` atomically (of racing changes to one account, each sees the other's
    /// result, in this process or another) and returns the state before and after it.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn update_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        change: &AccountChange,
    ) -> Result<(AccountState, AccountState), StoreError>;

    /// Adds a password hash to the user's history at `at` and keeps only the newest `keep`
    /// entries.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn push_password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        hash: &PasswordHash,
        at: DateTime<Utc>,
        keep: u32,
    ) -> Result<(), StoreError>;

    /// The newest `limit` hashes of the user's history, newest first.
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn password_history(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        limit: u32,
    ) -> Result<Vec<PasswordHash>, StoreError>;

    /// Forgets the account: its state and its history (the user is deleted).
    ///
    /// # Errors
    /// `Unavailable`, `Backend`.
    async fn forget_account(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<(), StoreError>;
}

impl std::fmt::Debug for dyn AccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountStore")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap()
    }

    fn fail(state: AccountState, at: i64, threshold: u32) -> AccountState {
        AccountChange::LoginFailed {
            at: t(at),
            threshold,
            lock_until: Some(t(at) + Duration::minutes(15)),
        }
        .apply(state)
    }

    #[test]
    fn failures_lock_at_the_threshold_and_a_lock_counts_nothing() {
        let mut s = AccountState::default();
        for i in 0..2 {
            s = fail(s, i, 3);
            assert!(!s.is_locked(t(i)));
        }
        assert_eq!(s.failed_logins, 2);
        s = fail(s, 2, 3);
        assert!(s.is_locked(t(2)));
        assert_eq!((s.locked_at, s.failed_logins), (Some(t(2)), 0));
        let locked = s.clone();
        assert_eq!(fail(s, 3, 3), locked, "a locked account counts nothing");
        // Once the lock has run out, counting starts again from one.
        let after = fail(locked, 2 + 15 * 60, 3);
        assert_eq!((after.locked_at, after.failed_logins), (None, 1));
    }

    #[test]
    fn threshold_zero_never_locks_and_success_clears_the_count() {
        let mut s = AccountState::default();
        for i in 0..50 {
            s = fail(s, i, 0);
        }
        assert!(!s.is_locked(t(50)));
        let s = AccountChange::LoginSucceeded { at: t(60) }.apply(s);
        assert_eq!((s.failed_logins, s.last_login_at), (0, Some(t(60))));
    }

    #[test]
    fn an_admin_lock_without_end_holds_until_unlock_or_reset() {
        let s = AccountChange::Lock {
            at: t(0),
            until: None,
        }
        .apply(AccountState::default());
        assert!(s.is_locked(t(1_000_000)));
        let ok = AccountChange::LoginSucceeded { at: t(5) }.apply(s.clone());
        assert!(ok.is_locked(t(5)), "a success does not clear a live lock");
        assert!(!AccountChange::Unlock.apply(s.clone()).is_locked(t(5)));
        let reset = AccountChange::PasswordChanged {
            at: t(9),
            unlock: true,
        }
        .apply(s);
        assert!(!reset.is_locked(t(9)));
        assert_eq!(reset.password_changed_at, Some(t(9)));
    }

    #[test]
    fn archive_keeps_its_first_time_and_first_seen_starts_the_clock_once() {
        let s = AccountChange::Archive { at: t(1) }.apply(AccountState::default());
        let s = AccountChange::Archive { at: t(2) }.apply(s);
        assert_eq!(s.archived_at, Some(t(1)));
        assert!(!AccountChange::Restore.apply(s).is_archived());
        let s = AccountChange::FirstSeen { at: t(3) }.apply(AccountState::default());
        let s = AccountChange::FirstSeen { at: t(4) }.apply(s);
        assert_eq!(s.password_changed_at, Some(t(3)));
    }
}
