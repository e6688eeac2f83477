//! What the store makes of a service that refuses, fails, hangs, cuts off or is gone: `Backend`
//! (502) for answers outside the contract, `Unavailable` (503) for no usable answer, and never a
//! half-applied write.

use std::time::{Duration, Instant};

use authura_core::types::{Email, NewUser, PasswordHash, Role, UserChanges};
use authura_core::{StoreError, UserStore};
use authura_standins::http::{Failure, HttpStandin};

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        role: Role::parse("user").unwrap(),
        tenant: None,
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        verified_at: None,
    }
}

/// Runs every call of the store and checks each fails as `expected` says.
async fn check(store: &dyn UserStore, expected: fn(&StoreError) -> bool) {
    let email = Email::parse("someone@example.com").unwrap();
    let id = authura_core::UserId::Int(1);
    let results = [
        (
            "find_by_email",
            store.find_by_email(None, &email).await.map(drop),
        ),
        ("find_by_id", store.find_by_id(None, &id).await.map(drop)),
        (
            "create",
            store.create(new_user("new@example.com")).await.map(drop),
        ),
        (
            "update",
            store
                .update(None, &id, UserChanges::default())
                .await
                .map(drop),
        ),
        ("ping", store.ping().await),
    ];
    for (op, result) in results {
        match result {
            Err(e) if expected(&e) => {}
            other => panic!("{op}: got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wrong_or_missing_credential_is_a_backend_error_and_never_leaks() {
    let standin = HttpStandin::start().unwrap();
    let (key, value) = standin.auth();
    for (key, value) in [
        (key, Some("Bearer wrong-secret-value")),
        (key, None),
        ("X-Api-Key", Some(value)),
    ] {
        let store = crate::store_with(standin.url(), key, value, Duration::from_secs(10));
        check(&*store, |e| {
            matches!(e, StoreError::Backend(m) if m.contains("401") && !m.contains("wrong-secret"))
        })
        .await;
        assert!(!format!("{store:?}").contains("wrong-secret"));
    }
}

#[tokio::test]
async fn a_custom_header_name_carries_the_credential() {
    let standin = HttpStandin::start_with_auth("X-Api-Key", "k-0123456789").unwrap();
    let store = crate::store_with(
        standin.url(),
        "x-api-key",
        Some("k-0123456789"),
        Duration::from_secs(10),
    );
    store.ping().await.unwrap();
    let created = store.create(new_user("custom@example.com")).await.unwrap();
    assert_eq!(
        store.find_by_id(None, &created.id).await.unwrap(),
        Some(created)
    );
}

#[tokio::test]
async fn a_taken_address_is_a_conflict_and_a_missing_user_not_found() {
    let standin = HttpStandin::start().unwrap();
    let store = crate::store(&standin);
    let first = store.create(new_user("taken@example.com")).await.unwrap();
    let again = store.create(new_user("TAKEN@example.com")).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let second = store.create(new_user("second@example.com")).await.unwrap();
    let change = UserChanges {
        email: first.email.clone().into(),
        ..UserChanges::default()
    };
    let taken = store.update(None, &second.id, change).await;
    assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
    let gone = store
        .update(
            None,
            &authura_core::UserId::Int(999),
            UserChanges::default(),
        )
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
}

#[tokio::test]
async fn failing_hanging_cut_off_and_absent_services_are_unavailable_and_nothing_is_written() {
    let mut standin = HttpStandin::start().unwrap();
    let (key, value) = standin.auth();
    let timeout = Duration::from_millis(500);
    let store = crate::store_with(standin.url(), key, Some(value), timeout);
    let user = store.create(new_user("kept@example.com")).await.unwrap();

    for failure in [Failure::Status500, Failure::Hang, Failure::CutConnection] {
        standin.fail(failure);
        let started = Instant::now();
        check(&*store, |e| matches!(e, StoreError::Unavailable(_))).await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{failure:?}: took {:?}",
            started.elapsed()
        );
        standin.fail(Failure::None);
        // Nothing the failed calls sent was applied.
        assert_eq!(
            store
                .find_by_email(None, &user.email)
                .await
                .unwrap()
                .as_ref(),
            Some(&user),
            "{failure:?}"
        );
        let new = Email::parse("new@example.com").unwrap();
        assert_eq!(store.find_by_email(None, &new).await.unwrap(), None);
    }

    standin.stop();
    check(&*store, |e| matches!(e, StoreError::Unavailable(_))).await;
}

#[tokio::test]
async fn answers_outside_the_contract_are_backend_errors() {
    let standin = HttpStandin::start().unwrap();
    let (key, value) = standin.auth();
    // A URL the service does not serve: 404 on lookups is "nobody", but creating there is not.
    let wrong = format!("{}/nested/deeper", standin.url());
    let store = crate::store_with(&wrong, key, Some(value), Duration::from_secs(10));
    let result = store.create(new_user("a@example.com")).await;
    assert!(
        matches!(&result, Err(StoreError::Backend(m)) if m.contains("404")),
        "{result:?}"
    );
    // Nothing listens here at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let store = crate::store_with(
        &format!("http://127.0.0.1:{port}/users"),
        key,
        Some(value),
        Duration::from_secs(10),
    );
    check(&*store, |e| matches!(e, StoreError::Unavailable(_))).await;
}

/// A service without the contract's optional calls (the listing answered 404, `DELETE` 405):
/// both are `Unsupported` (501 `not_supported` to an admin client), and the user is still there.
/// Served again, they list and delete.
#[tokio::test]
async fn a_service_without_the_optional_calls_is_unsupported() {
    let standin = HttpStandin::start().unwrap();
    let store = crate::store(&standin);
    let user = store.create(new_user("kept@example.com")).await.unwrap();
    standin.serve_optional_calls(false);
    let query = authura_core::UserQuery {
        tenant: None,
        text: None,
        after: None,
        limit: 50,
    };
    let listed = store.list(&query).await;
    assert!(
        matches!(listed, Err(StoreError::Unsupported(_))),
        "{listed:?}"
    );
    let deleted = store.delete(None, &user.id).await;
    assert!(
        matches!(deleted, Err(StoreError::Unsupported(_))),
        "{deleted:?}"
    );
    assert_eq!(
        store.find_by_id(None, &user.id).await.unwrap(),
        Some(user.clone())
    );

    standin.serve_optional_calls(true);
    let page = store.list(&query).await.unwrap();
    assert_eq!(page.users, vec![user.clone()]);
    assert!(store.delete(None, &user.id).await.unwrap());
    assert!(!store.delete(None, &user.id).await.unwrap());
}
