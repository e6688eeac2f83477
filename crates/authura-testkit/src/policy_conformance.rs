//! The policy stores' conformance suite (SPEC §11, §13): the cases every `AccountStore` and
//! `AuditStore` must pass (the in-memory store, SQLite, PostgreSQL), through one
//! `Arc<dyn PolicyStore>`:
//!
//! ```no_run
//! authura_testkit::policy_conformance_tests!(async {
//!     std::sync::Arc::new(authura_core::memory::MemoryPolicyStore::new())
//!         as std::sync::Arc<dyn authura_core::state::PolicyStore>
//! });
//! ```

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use authura_core::state::{
    AccountChange, AccountState, AccountStore, AuditEvent, AuditQuery, AuditStore, PolicyStore,
};
use authura_core::types::{PasswordHash, TenantId, UserId};

/// Expands to one `#[tokio::test]` per policy conformance case. The argument is an expression,
/// usually an `async` block, evaluated once per case, that yields a fresh, empty store: an
/// `Arc<dyn PolicyStore>` or a tuple `(Arc<dyn PolicyStore>, guard)`.
#[macro_export]
macro_rules! policy_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::policy_conformance_tests!(@cases ($make)
            an_unseen_account_has_the_default_state,
            account_changes_round_trip_every_field_per_user_and_tenant,
            racing_failures_lock_once,
            history_keeps_the_newest_per_user,
            forgetting_removes_state_and_history,
            audit_events_round_trip_and_list_newest_first,
            audit_filters_and_cursor_pages,
            audit_prune_removes_exactly_the_old,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture<dyn authura_core::state::PolicyStore> =
                    $crate::conformance::Fixture::from($make.await);
                $crate::policy_conformance::$case(fixture.store()).await;
            }
        )*
    };
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap()
}

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, nanos).unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// A user never seen reads as the default state.
pub async fn an_unseen_account_has_the_default_state(store: Arc<dyn PolicyStore>) {
    let accounts: Arc<dyn AccountStore> = store;
    let state = accounts.account_state(None, &UserId::Int(1)).await.unwrap();
    assert_eq!(state, AccountState::default());
}

/// Every field written reads back (to the microsecond), and each (tenant, user id) pair, with
/// numeric and textual ids kept apart, is its own account.
pub async fn account_changes_round_trip_every_field_per_user_and_tenant(
    store: Arc<dyn PolicyStore>,
) {
    let accounts: Arc<dyn AccountStore> = store;
    let acme = tenant("acme");
    let user = UserId::Int(5);
    let changes = [
        AccountChange::Lock {
            at: at(1, 123_456_789),
            until: Some(at(900, 1_000)),
        },
        AccountChange::Archive { at: at(2, 5_000) },
        AccountChange::PasswordChanged {
            at: at(3, 0),
            unlock: false,
        },
        AccountChange::LoginSucceeded { at: at(4, 999_999) },
    ];
    let mut expected = AccountState::default();
    for change in &changes {
        let (before, after) = accounts
            .update_account(Some(&acme), &user, change)
            .await
            .unwrap();
        assert_eq!(before, expected);
        expected = change.apply(expected);
        assert_eq!(after, expected);
    }
    assert!(expected.is_locked(t(5)) && expected.is_archived());
    assert_eq!(
        accounts.account_state(Some(&acme), &user).await.unwrap(),
        expected
    );
    // The same id elsewhere is another account.
    for (tenant, id) in [
        (None, UserId::Int(5)),
        (Some(&acme), UserId::Text("5".into())),
        (Some(&tenant("globex")), UserId::Int(5)),
    ] {
        assert_eq!(
            accounts.account_state(tenant, &id).await.unwrap(),
            AccountState::default(),
            "{tenant:?} {id:?}"
        );
    }
    // Failures count up to a lock without end.
    let other = UserId::Text("u-1".into());
    for i in 0..3 {
        let change = AccountChange::LoginFailed {
            at: t(i),
            threshold: 3,
            lock_until: None,
        };
        accounts
            .update_account(None, &other, &change)
            .await
            .unwrap();
    }
    let locked = accounts.account_state(None, &other).await.unwrap();
    assert_eq!((locked.locked_at, locked.locked_until), (Some(t(2)), None));
    assert!(locked.is_locked(t(1_000_000)));
}

/// Of many concurrent failed logins past the threshold, exactly one locks the account and the
/// rest count nothing.
pub async fn racing_failures_lock_once(store: Arc<dyn PolicyStore>) {
    let accounts: Arc<dyn AccountStore> = store;
    let user = UserId::Int(9);
    let change = AccountChange::LoginFailed {
        at: t(0),
        threshold: 5,
        lock_until: Some(t(900)),
    };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (accounts, user, change) = (Arc::clone(&accounts), user.clone(), change.clone());
            tokio::spawn(async move { accounts.update_account(None, &user, &change).await })
        })
        .collect();
    let mut locks = 0;
    for task in tasks {
        let (before, after) = task.await.unwrap().unwrap();
        if !before.is_locked(t(0)) && after.is_locked(t(0)) {
            locks += 1;
        }
    }
    assert_eq!(locks, 1);
    let state = accounts.account_state(None, &user).await.unwrap();
    assert_eq!((state.locked_until, state.failed_logins), (Some(t(900)), 0));
}

/// History keeps the newest `keep` hashes of each user, newest first.
pub async fn history_keeps_the_newest_per_user(store: Arc<dyn PolicyStore>) {
    let accounts: Arc<dyn AccountStore> = store;
    let (a, b) = (UserId::Int(1), UserId::Text("1".into()));
    for i in 0..6 {
        let hash = PasswordHash::new(format!("$argon2id$a{i}"));
        accounts
            .push_password_history(None, &a, &hash, t(i), 4)
            .await
            .unwrap();
    }
    accounts
        .push_password_history(None, &b, &PasswordHash::new("$b"), t(0), 4)
        .await
        .unwrap();
    let text = |hashes: Vec<PasswordHash>| -> Vec<String> {
        hashes.iter().map(|h| h.as_str().to_owned()).collect()
    };
    assert_eq!(
        text(accounts.password_history(None, &a, 10).await.unwrap()),
        [
            "$argon2id$a5",
            "$argon2id$a4",
            "$argon2id$a3",
            "$argon2id$a2"
        ]
    );
    assert_eq!(
        text(accounts.password_history(None, &a, 2).await.unwrap()),
        ["$argon2id$a5", "$argon2id$a4"]
    );
    assert_eq!(
        text(accounts.password_history(None, &b, 10).await.unwrap()),
        ["$b"]
    );
    assert!(
        accounts
            .password_history(Some(&tenant("acme")), &a, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Forgetting an account removes its state and history, and only its own.
pub async fn forgetting_removes_state_and_history(store: Arc<dyn PolicyStore>) {
    let accounts: Arc<dyn AccountStore> = store;
    let (gone, kept) = (UserId::Int(1), UserId::Int(2));
    for user in [&gone, &kept] {
        accounts
            .update_account(None, user, &AccountChange::Archive { at: t(0) })
            .await
            .unwrap();
        accounts
            .push_password_history(None, user, &PasswordHash::new("$h"), t(0), 3)
            .await
            .unwrap();
    }
    accounts.forget_account(None, &gone).await.unwrap();
    assert_eq!(
        accounts.account_state(None, &gone).await.unwrap(),
        AccountState::default()
    );
    assert!(
        accounts
            .password_history(None, &gone, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        accounts
            .account_state(None, &kept)
            .await
            .unwrap()
            .is_archived()
    );
    assert_eq!(
        accounts
            .password_history(None, &kept, 3)
            .await
            .unwrap()
            .len(),
        1
    );
}

fn event(kind: &str, secs: i64, tenant_id: Option<&str>, user: Option<UserId>) -> AuditEvent {
    let tenant = tenant_id.map(tenant);
    let mut e = AuditEvent::new(kind, at(secs, 0), tenant.as_ref());
    e.user_id = user;
    e
}

fn query(tenant_id: Option<&str>, limit: u32) -> AuditQuery {
    AuditQuery {
        tenant: tenant_id.map(tenant),
        limit,
        ..AuditQuery::default()
    }
}

/// Every field of an event reads back, and a listing is newest first with growing ids.
pub async fn audit_events_round_trip_and_list_newest_first(store: Arc<dyn PolicyStore>) {
    let audit: Arc<dyn AuditStore> = store;
    let mut full = event("user.updated", 0, Some("acme"), Some(UserId::Int(-4)));
    full.at = at(0, 123_456_789);
    full.actor_id = Some(UserId::Text("admin-1".into()));
    full.ip = Some("2001:db8::1".into());
    full.user_agent = Some("curl/8 ünïcode".into());
    full.detail = serde_json::json!({"changes": {"role": {"from": "user", "to": "admin"}}});
    let bare = event("login.failed", 1, Some("acme"), None);
    audit
        .append_audit(&[full.clone(), bare.clone()])
        .await
        .unwrap();
    let listed = audit.list_audit(&query(Some("acme"), 10)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].id > listed[1].id);
    assert_eq!(listed[0].event, bare.truncated());
    assert_eq!(listed[1].event, full.truncated());
    assert!(audit.list_audit(&query(None, 10)).await.unwrap().is_empty());
}

/// Filters by user, event and time combine, and pages by cursor cover every event once.
pub async fn audit_filters_and_cursor_pages(store: Arc<dyn PolicyStore>) {
    let audit: Arc<dyn AuditStore> = store;
    let mut events = Vec::new();
    for i in 0..25 {
        let user = if i % 2 == 0 {
            UserId::Int(1)
        } else {
            UserId::Text("1".into())
        };
        let kind = if i % 5 == 0 {
            "login.failed"
        } else {
            "login.succeeded"
        };
        events.push(event(kind, i, None, Some(user)));
    }
    audit.append_audit(&events).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let q = AuditQuery {
            before_id: cursor,
            ..query(None, 7)
        };
        let page = audit.list_audit(&q).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.id);
        seen.extend(page.into_iter().map(|e| e.event.at));
    }
    let expected: Vec<_> = (0..25).rev().map(|i| at(i, 0)).collect();
    assert_eq!(seen, expected);

    let q = AuditQuery {
        user_id: Some(UserId::Int(1)),
        event: Some("login.failed".into()),
        ..query(None, 100)
    };
    let got: Vec<_> = audit
        .list_audit(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.at)
        .collect();
    assert_eq!(got, [at(20, 0), at(10, 0), at(0, 0)]);
    let q = AuditQuery {
        since: Some(at(10, 0)),
        until: Some(at(13, 0)),
        ..query(None, 100)
    };
    let got: Vec<_> = audit
        .list_audit(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.at)
        .collect();
    assert_eq!(got, [at(12, 0), at(11, 0), at(10, 0)]);
}

/// Pruning removes exactly the events before the given time.
pub async fn audit_prune_removes_exactly_the_old(store: Arc<dyn PolicyStore>) {
    let audit: Arc<dyn AuditStore> = store;
    let events: Vec<_> = (0..10)
        .map(|i| event("login.succeeded", i, None, None))
        .collect();
    audit.append_audit(&events).await.unwrap();
    assert_eq!(audit.prune_audit(at(4, 0)).await.unwrap(), 4);
    let left = audit.list_audit(&query(None, 100)).await.unwrap();
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|e| e.event.at >= at(4, 0)));
    assert_eq!(audit.prune_audit(at(4, 0)).await.unwrap(), 0);
}
