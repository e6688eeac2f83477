//! The `UserStore` conformance suite: one set of cases that every backend must pass (SQLite,
//! the in-memory store, and later PostgreSQL, Hasura, HTTP and LDAP).
//!
//! A backend's integration test runs the whole suite with one macro call that says how to make
//! a fresh, empty store; each case becomes its own `#[tokio::test]`, so a failure names the case:
//!
//! ```no_run
//! authura_testkit::conformance_tests!(async {
//!     std::sync::Arc::new(authura_core::memory::MemoryStore::new())
//!         as std::sync::Arc<dyn authura_core::UserStore>
//! });
//! ```
//!
//! Backends over SQL tables add `extra_columns: <expression>` (see [`conformance_tests!`](crate::conformance_tests)).
//!
//! When the store lives in something that must outlive the test (a temporary directory, a
//! server process), return `(store, guard)`: the guard is dropped after the case.
//!
//! The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//! The cases are also public functions, for a backend that needs to run one by hand.

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use authura_core::store::id_order;
use authura_core::types::{
    Email, NewUser, PasswordHash, Role, TenantId, User, UserChanges, UserId,
};
use authura_core::{StoreError, UserPage, UserQuery, UserStore};
use futures_util::StreamExt as _;

/// Expands to one `#[tokio::test]` per conformance case. The argument is an expression, usually
/// an `async` block, evaluated once per case, that yields a fresh, empty store: either an
/// `Arc<dyn UserStore>` or a tuple `(Arc<dyn UserStore>, guard)` whose guard lives as long as the
/// case (see [`Fixture`]).
///
/// A backend over SQL tables also passes `extra_columns: <expression>`, a store over a users
/// table that already has columns Authura does not know (nullable, or with a default): every
/// case then runs a second time on it, in a module `extra_columns`, so an operator's wider table
/// is held to the same contract.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr, extra_columns: $extra:expr $(,)?) => {
        $crate::conformance_tests!($make);
        /// The same cases over a table with columns the store does not know.
        mod extra_columns {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!($extra);
        }
    };
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases ($make)
            create_then_find_round_trips_every_field,
            find_misses_are_none,
            emails_are_case_insensitive_on_lookup,
            email_and_tenant_are_unique,
            email_is_unique_without_tenant,
            same_email_in_two_tenants_and_none_are_distinct_users,
            lookups_never_cross_tenants,
            update_each_field_alone,
            update_all_fields_together,
            update_without_changes_returns_the_current_record,
            update_to_a_taken_email_conflicts_and_changes_nothing,
            update_of_a_missing_user_is_not_found,
            ids_are_distinct,
            concurrent_creates_of_one_email_give_one_success,
            conditional_update_writes_when_the_user_is_as_expected,
            conditional_update_of_a_changed_user_is_refused_and_changes_nothing,
            conditional_update_of_a_missing_user_is_not_found,
            concurrent_conditional_updates_give_one_success,
            list_pages_through_every_user_once_while_users_are_created,
            list_filters_by_email_text_or_id,
            list_pages_are_limited_and_end_without_a_cursor,
            delete_removes_only_that_user_in_its_tenant,
            ping_works,
            create_with_id_keeps_the_id_or_is_unsupported,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $crate::conformance::Fixture::from($make.await);
                $crate::conformance::$case(fixture.store()).await;
            }
        )*
    };
}

/// A store under test and whatever must stay alive while it is used. `S` is the store's trait
/// object: `dyn UserStore` here, `dyn SessionStore` in the state suite.
pub struct Fixture<S: ?Sized + Send + Sync + 'static = dyn UserStore> {
    // Fields drop in order: the store (and its connections) before the guard (its files).
    store: Arc<S>,
    _guard: Box<dyn Any + Send>,
}

impl<S: ?Sized + Send + Sync + 'static> Fixture<S> {
    /// The store, to hand to a case.
    pub fn store(&self) -> Arc<S> {
        Arc::clone(&self.store)
    }
}

impl<S: ?Sized + Send + Sync + 'static> std::fmt::Debug for Fixture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixture")
    }
}

impl<S: ?Sized + Send + Sync + 'static> From<Arc<S>> for Fixture<S> {
    fn from(store: Arc<S>) -> Self {
        Fixture {
            store,
            _guard: Box::new(()),
        }
    }
}

impl<S: ?Sized + Send + Sync + 'static, G: Send + 'static> From<(Arc<S>, G)> for Fixture<S> {
    fn from((store, guard): (Arc<S>, G)) -> Self {
        Fixture {
            store,
            _guard: Box::new(guard),
        }
    }
}

/// Creating a user returns it as stored, and both lookups return the same record: every field,
/// `verified_at` to the microsecond, and a missing `verified_at`.
pub async fn create_then_find_round_trips_every_field(store: Arc<dyn UserStore>) {
    let verified = new_user("ada@example.com", Some("acme"))
        .role("admin")
        .hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")
        .verified(at(1_767_225_600, 123_456));
    let unverified = new_user("bob@example.com", None)
        .role("user")
        .hash("$2b$10$abcdefghijk");

    for new in [verified, unverified].map(NewUser::from) {
        let created = store.create(new.clone()).await.expect("create");
        assert_matches_new(&created, &new);
        check_found(&*store, &created).await;
    }
}

/// `create_with_id` (the Authaus import's): either `Unsupported`, storing nothing, or the user
/// is stored under the given id, found by it, a taken id or (email, tenant) is `Conflict`, and
/// ids `create` assigns afterwards are above every given id.
pub async fn create_with_id_keeps_the_id_or_is_unsupported(store: Arc<dyn UserStore>) {
    let first = NewUser::from(new_user("kept@example.com", None).hash("$argon2id$kept"));
    let created = match store
        .create_with_id(&UserId::Int(4_000), first.clone())
        .await
    {
        Err(StoreError::Unsupported(_)) => {
            let none = store.find_by_email(None, &first.email).await.expect("find");
            assert_eq!(none, None, "an unsupported create stores nothing");
            return;
        }
        other => other.expect("create_with_id"),
    };
    assert_eq!(created.id, UserId::Int(4_000));
    assert_matches_new(&created, &first);
    check_found(&*store, &created).await;
    let tenanted = NewUser::from(new_user("kept@example.com", Some("acme")));
    let other = store
        .create_with_id(&UserId::Int(17), tenanted)
        .await
        .expect("a lower id, the same email in a tenant");
    assert_eq!(other.id, UserId::Int(17));
    check_found(&*store, &other).await;
    let again = NewUser::from(new_user("another@example.com", None));
    assert!(
        matches!(
            store
                .create_with_id(&UserId::Int(4_000), again.clone())
                .await,
            Err(StoreError::Conflict)
        ),
        "a taken id conflicts"
    );
    assert!(
        matches!(
            store
                .create_with_id(&UserId::Int(4_001), first.clone())
                .await,
            Err(StoreError::Conflict)
        ),
        "a taken (email, tenant) conflicts"
    );
    assert_eq!(
        store
            .find_by_id(None, &UserId::Int(4_001))
            .await
            .expect("find"),
        None
    );
    let assigned = store.create(again).await.expect("create after");
    match assigned.id {
        UserId::Int(n) => assert!(n > 4_000, "assigned {n} after a given 4000"),
        UserId::Text(t) => panic!("a store that keeps numeric ids assigned {t:?}"),
    }
}

/// Lookups of what is not there find nothing: an unknown email, an unknown numeric id, and a
/// textual id no backend issued.
pub async fn find_misses_are_none(store: Arc<dyn UserStore>) {
    let user = create(&*store, new_user("here@example.com", None)).await;
    let missing = email("gone@example.com");
    assert_eq!(
        store.find_by_email(None, &missing).await.expect("find"),
        None
    );
    for id in [
        UserId::Int(i64::MAX),
        UserId::Int(-1),
        UserId::Text("no-such-user".into()),
    ] {
        assert_ne!(id, user.id);
        assert_eq!(
            store.find_by_id(None, &id).await.expect("find"),
            None,
            "id {id:?}"
        );
    }
}

/// An address created in one case is found in any other, and stored lower-case.
pub async fn emails_are_case_insensitive_on_lookup(store: Arc<dyn UserStore>) {
    let tenant = tenant("acme");
    let created = create(&*store, new_user("Grace.Hopper@Example.COM", Some("acme"))).await;
    assert_eq!(created.email.as_str(), "grace.hopper@example.com");
    for spelling in [
        "grace.hopper@example.com",
        "GRACE.HOPPER@EXAMPLE.COM",
        "Grace.Hopper@example.com",
    ] {
        let found = store
            .find_by_email(Some(&tenant), &email(spelling))
            .await
            .expect("find");
        assert_eq!(found.as_ref(), Some(&created), "looked up as {spelling}");
    }
}

/// A second user with the same (email, tenant) is a `Conflict`, in any spelling of the email,
/// and the first user is untouched.
pub async fn email_and_tenant_are_unique(store: Arc<dyn UserStore>) {
    check_unique(&*store, Some("acme")).await;
}

/// Uniqueness holds for users without a tenant too (a plain SQL `UNIQUE (email, tenant_id)`
/// would let any number of NULL-tenant rows share an email).
pub async fn email_is_unique_without_tenant(store: Arc<dyn UserStore>) {
    check_unique(&*store, None).await;
}

/// One address in two tenants and in no tenant is three users, each found in its own tenant.
pub async fn same_email_in_two_tenants_and_none_are_distinct_users(store: Arc<dyn UserStore>) {
    let address = "shared@example.com";
    let mut users = Vec::new();
    for t in [Some("acme"), Some("globex"), None] {
        users.push(create(&*store, new_user(address, t).role(t.unwrap_or("none"))).await);
    }
    assert_distinct_ids(&users);
    for user in &users {
        check_found(&*store, user).await;
    }
}

/// A user is found only in its own tenant: not in another, not in "no tenant", and a user
/// without a tenant is not found in a tenant.
pub async fn lookups_never_cross_tenants(store: Arc<dyn UserStore>) {
    let in_acme = create(&*store, new_user("a@example.com", Some("acme"))).await;
    let in_none = create(&*store, new_user("n@example.com", None)).await;
    let acme = tenant("acme");
    let globex = tenant("globex");

    for (user, elsewhere) in [
        (&in_acme, vec![Some(&globex), None]),
        (&in_none, vec![Some(&acme), Some(&globex)]),
    ] {
        for t in elsewhere {
            let by_id = store.find_by_id(t, &user.id).await.expect("find by id");
            assert_eq!(by_id, None, "{:?} found by id in tenant {t:?}", user.email);
            let by_email = store
                .find_by_email(t, &user.email)
                .await
                .expect("find by email");
            assert_eq!(
                by_email, None,
                "{:?} found by email in tenant {t:?}",
                user.email
            );
        }
    }
}

/// Each field can be changed on its own; the others keep their values.
pub async fn update_each_field_alone(store: Arc<dyn UserStore>) {
    let original = create(
        &*store,
        new_user("alone@example.com", Some("acme"))
            .role("user")
            .hash("$argon2id$old"),
    )
    .await;
    let t = tenant("acme");
    let changes = [
        UserChanges {
            email: Some(email("Renamed@Example.com")),
            ..UserChanges::default()
        },
        UserChanges {
            role: Some(role("admin")),
            ..UserChanges::default()
        },
        UserChanges {
            password_hash: Some(PasswordHash::new("$argon2id$new")),
            ..UserChanges::default()
        },
        UserChanges {
            verified_at: Some(at(1_767_225_600, 654_321)),
            ..UserChanges::default()
        },
    ];
    let mut expected = original;
    for change in changes {
        change.apply_to(&mut expected);
        let updated = store
            .update(Some(&t), &expected.id, change.clone())
            .await
            .expect("update");
        assert_eq!(updated, expected, "after {change:?}");
        check_found(&*store, &expected).await;
    }
    assert_eq!(expected.email.as_str(), "renamed@example.com");
    let old = email("alone@example.com");
    assert_eq!(
        store.find_by_email(Some(&t), &old).await.expect("find"),
        None,
        "old email"
    );
}

/// All fields changed at once, on a user without a tenant.
pub async fn update_all_fields_together(store: Arc<dyn UserStore>) {
    let mut expected = create(&*store, new_user("all@example.com", None)).await;
    let change = UserChanges {
        email: Some(email("everything@example.com")),
        role: Some(role("auditor")),
        password_hash: Some(PasswordHash::new("$2b$12$replaced")),
        verified_at: Some(at(1_800_000_000, 1)),
    };
    change.apply_to(&mut expected);
    let updated = store
        .update(None, &expected.id, change)
        .await
        .expect("update");
    assert_eq!(updated, expected);
    check_found(&*store, &expected).await;
}

/// An update that changes nothing returns the record as stored.
pub async fn update_without_changes_returns_the_current_record(store: Arc<dyn UserStore>) {
    let user = create(&*store, new_user("same@example.com", Some("acme"))).await;
    let t = tenant("acme");
    let updated = store
        .update(Some(&t), &user.id, UserChanges::default())
        .await
        .expect("update");
    assert_eq!(updated, user);
    // And an empty update still names a user that exists in that tenant.
    let missing = store.update(None, &user.id, UserChanges::default()).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "got {missing:?}"
    );
}

/// Changing an email to one taken in the same tenant is a `Conflict` and changes nothing (not
/// even the other fields of the same update). Keeping one's own email, or taking an address used
/// in another tenant, is fine.
pub async fn update_to_a_taken_email_conflicts_and_changes_nothing(store: Arc<dyn UserStore>) {
    let t = tenant("acme");
    let taken = create(&*store, new_user("taken@example.com", Some("acme"))).await;
    let other = create(
        &*store,
        new_user("other@example.com", Some("acme")).role("user"),
    )
    .await;
    let elsewhere = create(&*store, new_user("elsewhere@example.com", Some("globex"))).await;

    let change = UserChanges {
        email: Some(email("TAKEN@example.com")),
        role: Some(role("admin")),
        ..UserChanges::default()
    };
    let result = store.update(Some(&t), &other.id, change).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "got {result:?}"
    );
    check_found(&*store, &other).await;
    check_found(&*store, &taken).await;

    let own = UserChanges {
        email: Some(other.email.clone()),
        ..UserChanges::default()
    };
    let kept = store
        .update(Some(&t), &other.id, own)
        .await
        .expect("keep own email");
    assert_eq!(kept, other);

    let from_other_tenant = UserChanges {
        email: Some(elsewhere.email.clone()),
        ..UserChanges::default()
    };
    let moved = store
        .update(Some(&t), &other.id, from_other_tenant)
        .await
        .expect("update");
    assert_eq!(moved.email, elsewhere.email);
    check_found(&*store, &elsewhere).await;
}

/// Updating a user that is not there (unknown id, a textual id, a user of another tenant) is
/// `NotFound`, and creates nothing.
pub async fn update_of_a_missing_user_is_not_found(store: Arc<dyn UserStore>) {
    let user = create(&*store, new_user("present@example.com", Some("acme"))).await;
    let change = UserChanges {
        role: Some(role("admin")),
        ..UserChanges::default()
    };
    let acme = tenant("acme");
    let globex = tenant("globex");
    let attempts = [
        (Some(&acme), UserId::Int(i64::MAX)),
        (Some(&acme), UserId::Text("no-such-user".into())),
        (Some(&globex), user.id.clone()),
        (None, user.id.clone()),
    ];
    for (t, id) in attempts {
        let result = store.update(t, &id, change.clone()).await;
        assert!(
            matches!(result, Err(StoreError::NotFound)),
            "{t:?} {id:?}: got {result:?}"
        );
    }
    check_found(&*store, &user).await;
}

/// Every created user gets its own id, and each id finds its own user.
pub async fn ids_are_distinct(store: Arc<dyn UserStore>) {
    let mut users = Vec::new();
    for i in 0..12 {
        let t = [Some("acme"), Some("globex"), None][i % 3];
        users.push(create(&*store, new_user(&format!("user{i}@example.com"), t)).await);
    }
    assert_distinct_ids(&users);
    for user in &users {
        check_found(&*store, user).await;
    }
}

/// Many tasks creating one (email, tenant) at the same time: exactly one succeeds, every other
/// gets `Conflict` (not a lock error), and the winner is what is stored. With and without tenant.
pub async fn concurrent_creates_of_one_email_give_one_success(store: Arc<dyn UserStore>) {
    const TASKS: usize = 16;
    for t in [Some("acme"), None] {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks = (0..TASKS)
            .map(|i| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                let new = new_user("race@example.com", t).role(&format!("r{i}"));
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.create(new.into()).await
                })
            })
            .collect::<Vec<_>>();
        let mut winners = Vec::new();
        for task in futures_util::future::join_all(tasks).await {
            match task.expect("task panicked") {
                Ok(user) => winners.push(user),
                Err(StoreError::Conflict) => {}
                Err(other) => panic!("tenant {t:?}: expected Conflict, got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "tenant {t:?}: winners {winners:?}");
        check_found(&*store, &winners[0]).await;
    }
}

/// `update_if` with the record as read writes the changes and returns the record as stored,
/// also with no changes; a new email taken by another user is still a `Conflict`.
pub async fn conditional_update_writes_when_the_user_is_as_expected(store: Arc<dyn UserStore>) {
    for t in [Some("acme"), None] {
        let tid = t.map(tenant);
        let user = create(&*store, new_user("cas@example.com", t)).await;
        let same = store
            .update_if(tid.as_ref(), &user, UserChanges::default())
            .await
            .expect("update_if without changes");
        assert_eq!(same, user);
        let change = UserChanges {
            password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$next")),
            verified_at: Some(at(1_767_225_600, 654_321)),
            ..UserChanges::default()
        };
        let mut expected = user.clone();
        change.apply_to(&mut expected);
        let updated = store
            .update_if(tid.as_ref(), &user, change)
            .await
            .expect("update_if");
        assert_eq!(updated, expected);
        check_found(&*store, &expected).await;
        // The email changes too, compared as stored (lower-case).
        let moved = UserChanges {
            email: Some(email("Cas.Moved@example.com")),
            ..UserChanges::default()
        };
        let moved = store
            .update_if(tid.as_ref(), &updated, moved)
            .await
            .expect("update_if of the email");
        assert_eq!(moved.email, email("cas.moved@example.com"));
        let taken = create(&*store, new_user("cas.taken@example.com", t)).await;
        let to_taken = UserChanges {
            email: Some(taken.email.clone()),
            ..UserChanges::default()
        };
        let result = store.update_if(tid.as_ref(), &moved, to_taken).await;
        assert!(
            matches!(result, Err(StoreError::Conflict)),
            "got {result:?}"
        );
        check_found(&*store, &moved).await;
    }
}

/// `update_if` with a record whose password hash or email has changed since (a stale read) is
/// `Changed`, and writes nothing: not even fields the stale record agrees on.
pub async fn conditional_update_of_a_changed_user_is_refused_and_changes_nothing(
    store: Arc<dyn UserStore>,
) {
    let t = tenant("acme");
    let stale = create(&*store, new_user("stale@example.com", Some("acme"))).await;
    let new_hash = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$changed")),
        ..UserChanges::default()
    };
    let current = store
        .update(Some(&t), &stale.id, new_hash)
        .await
        .expect("update");
    let attempt = UserChanges {
        password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$late")),
        role: Some(role("admin")),
        verified_at: Some(at(1_767_225_600, 1)),
        ..UserChanges::default()
    };
    let result = store.update_if(Some(&t), &stale, attempt.clone()).await;
    assert!(matches!(result, Err(StoreError::Changed)), "got {result:?}");
    check_found(&*store, &current).await;
    let empty = store
        .update_if(Some(&t), &stale, UserChanges::default())
        .await;
    assert!(matches!(empty, Err(StoreError::Changed)), "got {empty:?}");

    // The email changed since: also `Changed`.
    let moved = store
        .update(
            Some(&t),
            &current.id,
            UserChanges {
                email: Some(email("moved@example.com")),
                ..UserChanges::default()
            },
        )
        .await
        .expect("update");
    let result = store.update_if(Some(&t), &current, attempt).await;
    assert!(matches!(result, Err(StoreError::Changed)), "got {result:?}");
    check_found(&*store, &moved).await;
}

/// `update_if` of a user that is gone, or of another tenant, is `NotFound`.
pub async fn conditional_update_of_a_missing_user_is_not_found(store: Arc<dyn UserStore>) {
    let user = create(&*store, new_user("cas.present@example.com", Some("acme"))).await;
    let change = UserChanges {
        role: Some(role("admin")),
        ..UserChanges::default()
    };
    let globex = tenant("globex");
    let mut unknown = user.clone();
    unknown.id = UserId::Int(i64::from(i32::MAX) - 7);
    for (t, expected) in [(Some(&globex), &user), (None, &user)] {
        let result = store.update_if(t, expected, change.clone()).await;
        assert!(
            matches!(result, Err(StoreError::NotFound)),
            "{t:?}: got {result:?}"
        );
    }
    let result = store
        .update_if(Some(&tenant("acme")), &unknown, change)
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "got {result:?}"
    );
    check_found(&*store, &user).await;
}

/// Many tasks changing one user's password with the same expected record at the same time
/// (a mail link used twice, one old password sent twice): exactly one succeeds, every other
/// gets `Changed`, and the winner's hash is what is stored.
pub async fn concurrent_conditional_updates_give_one_success(store: Arc<dyn UserStore>) {
    const TASKS: usize = 16;
    for t in [Some("acme"), None] {
        let tid = t.map(tenant);
        let user = create(&*store, new_user("cas.race@example.com", t)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks = (0..TASKS)
            .map(|i| {
                let (store, barrier, user, tid) = (
                    Arc::clone(&store),
                    Arc::clone(&barrier),
                    user.clone(),
                    tid.clone(),
                );
                let change = UserChanges {
                    password_hash: Some(PasswordHash::new(format!(
                        "$argon2id$v=19$m=19456,t=2,p=1$racer{i}"
                    ))),
                    ..UserChanges::default()
                };
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.update_if(tid.as_ref(), &user, change).await
                })
            })
            .collect::<Vec<_>>();
        let mut winners = Vec::new();
        for task in futures_util::future::join_all(tasks).await {
            match task.expect("task panicked") {
                Ok(user) => winners.push(user),
                Err(StoreError::Changed) => {}
                Err(other) => panic!("tenant {t:?}: expected Changed, got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "tenant {t:?}: winners {winners:?}");
        check_found(&*store, &winners[0]).await;
    }
}

/// Paging through 2,000 users of a tenant, 200 at a time (the largest page), while 25 users
/// are created in that tenant, in another and without one between any two pages: every user
/// that existed before the first page is listed exactly once, nothing is repeated, each page is
/// in ascending id order and after the cursor, and no user of another tenant appears.
pub async fn list_pages_through_every_user_once_while_users_are_created(store: Arc<dyn UserStore>) {
    const USERS: usize = 2_000;
    let acme = Some(tenant("acme"));
    let mut existing = HashSet::new();
    let created = futures_util::stream::iter(0..USERS)
        .map(|i| {
            let store = Arc::clone(&store);
            async move {
                // Interleaved with users of another tenant and of none.
                let t = match i % 10 {
                    3 => Some("globex"),
                    7 => None,
                    _ => Some("acme"),
                };
                create(&*store, new_user(&format!("page{i}@example.com"), t)).await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for user in &created {
        if user.tenant == acme {
            existing.insert(user.id.clone());
        }
    }
    let mut seen = HashSet::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let query = UserQuery {
            tenant: acme.clone(),
            text: None,
            after: after.clone(),
            limit: UserQuery::MAX_LIMIT,
        };
        let page = store.list(&query).await.expect("list");
        pages += 1;
        assert!(pages < 100, "the listing does not end");
        assert!(page.users.len() <= UserQuery::MAX_LIMIT);
        let mut previous = after.clone();
        for user in &page.users {
            assert_eq!(user.tenant, acme, "a user of another tenant: {user:?}");
            if let Some(previous) = &previous {
                assert!(
                    id_order(previous, &user.id).is_lt(),
                    "not in id order, or not after the cursor: {previous} then {}",
                    user.id
                );
            }
            previous = Some(user.id.clone());
            assert!(seen.insert(user.id.clone()), "{} listed twice", user.id);
        }
        match page.next {
            None => break,
            Some(next) => {
                assert_eq!(Some(&next), page.users.last().map(|u| &u.id));
                after = Some(next);
            }
        }
        for (i, t) in [Some("acme"), Some("globex"), None]
            .into_iter()
            .cycle()
            .take(25)
            .enumerate()
        {
            create(
                &*store,
                new_user(&format!("late{pages}-{i}@example.com"), t),
            )
            .await;
        }
    }
    let missing = existing.difference(&seen).count();
    assert_eq!(missing, 0, "{missing} users were skipped");
    assert!(pages > 1);
}

/// The filter matches a part of the email, case-insensitively and literally (no wildcards),
/// or the whole id; within the tenant only.
pub async fn list_filters_by_email_text_or_id(store: Arc<dyn UserStore>) {
    let ada = create(&*store, new_user("ada.lovelace@example.com", Some("acme"))).await;
    let bob = create(&*store, new_user("bob_smith@example.org", Some("acme"))).await;
    let _other = create(&*store, new_user("ada@example.net", Some("globex"))).await;
    let none = create(&*store, new_user("ada@example.com", None)).await;
    let list = |t: Option<&str>, text: &str| {
        let store = Arc::clone(&store);
        let query = UserQuery {
            tenant: t.map(tenant),
            text: Some(text.to_owned()),
            after: None,
            limit: 50,
        };
        async move {
            let page = store.list(&query).await.expect("list");
            assert_eq!(page.next, None);
            page.users.into_iter().map(|u| u.email).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Some("acme"), "ADA").await, vec![ada.email.clone()]);
    assert_eq!(
        list(Some("acme"), " lovelace@ ").await,
        vec![ada.email.clone()]
    );
    // In id order, which for textual ids (random ones, some backends) need not be the order
    // of creation.
    let mut both = [&ada, &bob];
    both.sort_by(|a, b| authura_core::store::id_order(&a.id, &b.id));
    assert_eq!(
        list(Some("acme"), "example").await,
        both.iter().map(|u| u.email.clone()).collect::<Vec<_>>()
    );
    assert_eq!(list(Some("acme"), "b_s").await, vec![bob.email.clone()]);
    // `_` and `%` are no wildcards.
    assert_eq!(list(Some("acme"), "a_a").await, Vec::<Email>::new());
    assert_eq!(list(Some("acme"), "%").await, Vec::<Email>::new());
    assert_eq!(list(Some("acme"), "nobody").await, Vec::<Email>::new());
    // The whole id finds the user (their email holds no digit).
    assert_eq!(
        list(Some("acme"), &bob.id.to_string()).await,
        vec![bob.email.clone()]
    );
    assert_eq!(list(None, "ada").await, vec![none.email.clone()]);
    // An empty filter is none.
    assert_eq!(list(None, "  ").await, vec![none.email.clone()]);
}

/// A page holds at most `limit` users (at least one, at most 200); `next` is the last id while
/// more follow and `None` on the last page; a cursor after every user gives an empty page.
pub async fn list_pages_are_limited_and_end_without_a_cursor(store: Arc<dyn UserStore>) {
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(create(&*store, new_user(&format!("limit{i}@example.com"), None)).await);
    }
    users.sort_by(|a, b| id_order(&a.id, &b.id));
    let page = |after: Option<UserId>, limit: usize| {
        let store = Arc::clone(&store);
        async move {
            let query = UserQuery {
                tenant: None,
                text: None,
                after,
                limit,
            };
            store.list(&query).await.expect("list")
        }
    };
    let ids = |page: &UserPage| page.users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    let all = users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();

    let first = page(None, 2).await;
    assert_eq!(ids(&first), all[..2]);
    assert_eq!(first.next, Some(all[1].clone()));
    let second = page(first.next, 2).await;
    assert_eq!(ids(&second), all[2..4]);
    let last = page(second.next, 2).await;
    assert_eq!(ids(&last), all[4..]);
    assert_eq!(last.next, None);
    // Exactly full: no cursor either, since nothing follows.
    let exact = page(None, 5).await;
    assert_eq!((ids(&exact), exact.next), (all.clone(), None));
    // 0 is taken as 1.
    let one = page(None, 0).await;
    assert_eq!(ids(&one), all[..1]);
    assert_eq!(page(Some(all[4].clone()), 50).await, UserPage::default());
    // Users are listed as stored.
    assert_eq!(page(None, 50).await.users, users);
}

/// `delete` removes the user of that id in that tenant only, says whether it did, and frees
/// the address; the same id in another tenant, or an id that names nobody, deletes nothing.
pub async fn delete_removes_only_that_user_in_its_tenant(store: Arc<dyn UserStore>) {
    let acme = create(&*store, new_user("gone@example.com", Some("acme"))).await;
    let keep = create(&*store, new_user("stay@example.com", Some("acme"))).await;
    let none = create(&*store, new_user("gone@example.com", None)).await;
    let acme_id = Some(tenant("acme"));
    assert!(!store.delete(None, &acme.id).await.expect("delete"));
    assert!(
        !store
            .delete(Some(&tenant("globex")), &acme.id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete(acme_id.as_ref(), &UserId::Text("no-such-user".into()))
            .await
            .expect("delete")
    );
    assert!(
        store
            .delete(acme_id.as_ref(), &acme.id)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .find_by_id(acme_id.as_ref(), &acme.id)
            .await
            .expect("find"),
        None
    );
    assert!(
        !store
            .delete(acme_id.as_ref(), &acme.id)
            .await
            .expect("delete")
    );
    check_found(&*store, &keep).await;
    check_found(&*store, &none).await;
    // The address is free again.
    create(&*store, new_user("gone@example.com", Some("acme"))).await;
}

/// `ping` answers for a store that works.
pub async fn ping_works(store: Arc<dyn UserStore>) {
    store.ping().await.expect("ping");
}

// Helpers.

/// A `NewUser` under construction; the cases only spell out the fields they care about.
#[derive(Clone, Debug)]
struct NewUserBuilder(NewUser);

fn new_user(address: &str, tenant_id: Option<&str>) -> NewUserBuilder {
    NewUserBuilder(NewUser {
        email: email(address),
        role: role("user"),
        tenant: tenant_id.map(tenant),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$default"),
        verified_at: None,
    })
}

impl NewUserBuilder {
    fn role(mut self, name: &str) -> Self {
        self.0.role = role(name);
        self
    }

    fn hash(mut self, hash: &str) -> Self {
        self.0.password_hash = PasswordHash::new(hash);
        self
    }

    fn verified(mut self, when: DateTime<Utc>) -> Self {
        self.0.verified_at = Some(when);
        self
    }
}

impl From<NewUserBuilder> for NewUser {
    fn from(builder: NewUserBuilder) -> Self {
        builder.0
    }
}

async fn create(store: &dyn UserStore, new: NewUserBuilder) -> User {
    let new = NewUser::from(new);
    let created = store.create(new.clone()).await.expect("create");
    assert_matches_new(&created, &new);
    created
}

/// Both lookups, in the user's own tenant, return exactly this record.
async fn check_found(store: &dyn UserStore, user: &User) {
    let t = user.tenant.as_ref();
    let by_email = store
        .find_by_email(t, &user.email)
        .await
        .expect("find by email");
    assert_eq!(
        by_email.as_ref(),
        Some(user),
        "find_by_email({t:?}, {})",
        user.email
    );
    let by_id = store.find_by_id(t, &user.id).await.expect("find by id");
    assert_eq!(by_id.as_ref(), Some(user), "find_by_id({t:?}, {})", user.id);
}

async fn check_unique(store: &dyn UserStore, tenant_id: Option<&str>) {
    let first = create(store, new_user("unique@example.com", tenant_id)).await;
    for spelling in ["unique@example.com", "Unique@Example.COM"] {
        let again = new_user(spelling, tenant_id).role("admin");
        let result = store.create(again.into()).await;
        assert!(
            matches!(result, Err(StoreError::Conflict)),
            "{spelling}: got {result:?}"
        );
    }
    check_found(store, &first).await;
}

fn assert_matches_new(user: &User, new: &NewUser) {
    let User {
        id: _,
        email,
        role,
        tenant,
        password_hash,
        verified_at,
    } = user;
    assert_eq!(email, &new.email);
    assert_eq!(role, &new.role);
    assert_eq!(tenant, &new.tenant);
    assert!(password_hash == &new.password_hash, "password hash differs");
    assert_eq!(verified_at, &new.verified_at);
}

fn assert_distinct_ids(users: &[User]) {
    let ids = users.iter().map(|u| u.id.clone()).collect::<HashSet<_>>();
    assert_eq!(
        ids.len(),
        users.len(),
        "ids {:?}",
        users.iter().map(|u| &u.id).collect::<Vec<_>>()
    );
}

fn email(address: &str) -> Email {
    Email::parse(address).expect("valid email")
}

fn role(name: &str) -> Role {
    Role::parse(name).expect("valid role")
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid tenant")
}

/// A UTC time with microsecond precision, which every backend must keep exactly.
fn at(seconds: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, micros * 1000)
        .single()
        .expect("valid time")
}
