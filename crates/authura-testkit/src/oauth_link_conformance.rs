//! The OAuth link store's conformance suite (SPEC §9, §13): the cases every `OAuthLinkStore`
//! must pass (the in-memory store, SQLite, PostgreSQL). One macro call says how to make a fresh,
//! empty store, as [`permit_conformance_tests!`](crate::permit_conformance_tests):
//!
//! ```no_run
//! authura_testkit::oauth_link_conformance_tests!(async {
//!     std::sync::Arc::new(authura_core::memory::MemorySessionStore::new())
//!         as std::sync::Arc<dyn authura_core::state::OAuthLinkStore>
//! });
//! ```

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

use authura_core::StoreError;
use authura_core::state::{OAuthLink, OAuthLinkStore};
use authura_core::types::{TenantId, UserId};

/// Expands to one `#[tokio::test]` per OAuth link conformance case. The argument yields a
/// fresh, empty store: an `Arc<dyn OAuthLinkStore>` or a tuple `(Arc<dyn OAuthLinkStore>, guard)`.
#[macro_export]
macro_rules! oauth_link_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::oauth_link_conformance_tests!(@cases ($make)
            links_round_trip_by_subject_and_by_user,
            a_subject_links_to_one_user,
            a_user_links_to_one_subject_per_provider,
            tenants_and_id_kinds_are_distinct,
            racing_first_links_have_one_winner,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture<dyn authura_core::state::OAuthLinkStore> =
                    $crate::conformance::Fixture::from($make.await);
                $crate::oauth_link_conformance::$case(fixture.store()).await;
            }
        )*
    };
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

/// A time as stored (microseconds), so round trips compare equal.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn link(tenant: Option<&TenantId>, provider: &str, subject: &str, user: UserId) -> OAuthLink {
    OAuthLink {
        provider: provider.to_owned(),
        subject: subject.to_owned(),
        tenant: tenant.cloned(),
        user_id: user,
        created_at: now(),
    }
}

/// A link reads back whole, by its subject and by its user; other providers and subjects miss.
pub async fn links_round_trip_by_subject_and_by_user(store: Arc<dyn OAuthLinkStore>) {
    let user = UserId::Text("5f0c6d1e-8d1a-4c3e-9a57-0b7e0d1f2a3b".into());
    let l = link(None, "google", "108234567890", user.clone());
    store.create_oauth_link(l.clone()).await.unwrap();
    assert_eq!(
        store
            .find_oauth_link(None, "google", "108234567890")
            .await
            .unwrap(),
        Some(l.clone())
    );
    assert_eq!(
        store
            .find_user_oauth_link(None, "google", &user)
            .await
            .unwrap(),
        Some(l)
    );
    assert_eq!(
        store
            .find_oauth_link(None, "github", "108234567890")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_oauth_link(None, "google", "108").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .find_user_oauth_link(None, "microsoft", &user)
            .await
            .unwrap(),
        None
    );
}

/// A subject linked to one user is never linked to another: `Conflict`, and the first link
/// stays.
pub async fn a_subject_links_to_one_user(store: Arc<dyn OAuthLinkStore>) {
    let first = link(None, "oidc", "sub-1", UserId::Int(1));
    store.create_oauth_link(first.clone()).await.unwrap();
    let second = link(None, "oidc", "sub-1", UserId::Int(2));
    assert!(matches!(
        store.create_oauth_link(second).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.find_oauth_link(None, "oidc", "sub-1").await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store
            .find_user_oauth_link(None, "oidc", &UserId::Int(2))
            .await
            .unwrap(),
        None
    );
}

/// A user has one subject per provider (`Conflict` for a second), and one with each provider.
pub async fn a_user_links_to_one_subject_per_provider(store: Arc<dyn OAuthLinkStore>) {
    let user = UserId::Int(7);
    store
        .create_oauth_link(link(None, "github", "583231", user.clone()))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_oauth_link(link(None, "github", "999999", user.clone()))
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store
            .find_oauth_link(None, "github", "999999")
            .await
            .unwrap(),
        None
    );
    store
        .create_oauth_link(link(None, "google", "g-7", user.clone()))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_user_oauth_link(None, "google", &user)
            .await
            .unwrap()
            .map(|l| l.subject),
        Some("g-7".to_owned())
    );
}

/// The same subject in two tenants (and in none) is three links; a numeric id and the text of
/// its digits are two users.
pub async fn tenants_and_id_kinds_are_distinct(store: Arc<dyn OAuthLinkStore>) {
    let (a, b) = (tenant("acme"), tenant("globex"));
    for (t, user) in [
        (None, UserId::Int(5)),
        (Some(&a), UserId::Int(5)),
        (Some(&b), UserId::Text("5".into())),
    ] {
        store
            .create_oauth_link(link(t, "oidc", "shared-subject", user))
            .await
            .unwrap();
    }
    let found = |t: Option<TenantId>| {
        let store = Arc::clone(&store);
        async move {
            store
                .find_oauth_link(t.as_ref(), "oidc", "shared-subject")
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(found(None).await.tenant, None);
    assert_eq!(found(Some(a.clone())).await.tenant, Some(a.clone()));
    let in_b = found(Some(b.clone())).await;
    assert_eq!(in_b.user_id, UserId::Text("5".into()));
    assert_eq!(
        store
            .find_user_oauth_link(Some(&b), "oidc", &UserId::Int(5))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_user_oauth_link(Some(&tenant("initech")), "oidc", &UserId::Int(5))
            .await
            .unwrap(),
        None
    );
}

/// Twenty first sign-ins of one subject, each for another user, at once: exactly one links.
pub async fn racing_first_links_have_one_winner(store: Arc<dyn OAuthLinkStore>) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .create_oauth_link(link(None, "google", "racer", UserId::Int(100 + i)))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => won.push(100 + i as i64),
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("a racing link failed otherwise: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one first link wins");
    let stored = store
        .find_oauth_link(None, "google", "racer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.user_id, UserId::Int(won[0]));
}
