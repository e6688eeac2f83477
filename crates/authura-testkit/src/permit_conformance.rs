//! The permit store's conformance suite (SPEC §8a): the cases every `PermitStore` must pass
//! (the in-memory store, SQLite, PostgreSQL). One macro call says how to make a fresh, empty
//! store, as [`state_conformance_tests!`](crate::state_conformance_tests):
//!
//! ```no_run
//! authura_testkit::permit_conformance_tests!(async {
//!     std::sync::Arc::new(authura_core::memory::MemorySessionStore::new())
//!         as std::sync::Arc<dyn authura_core::state::PermitStore>
//! });
//! ```

// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use authura_core::StoreError;
use authura_core::permit::{Access, GroupId, GroupName, Permission, Permit, RoleGroup};
use authura_core::state::PermitStore;
use authura_core::types::{TenantId, UserId};

/// Expands to one `#[tokio::test]` per permit conformance case. The argument yields a fresh,
/// empty store: an `Arc<dyn PermitStore>` or a tuple `(Arc<dyn PermitStore>, guard)`.
#[macro_export]
macro_rules! permit_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::permit_conformance_tests!(@cases ($make)
            groups_round_trip_and_list_by_id,
            names_are_unique_and_case_sensitive,
            assigned_ids_are_never_reused,
            given_ids_are_kept_and_conflict,
            update_replaces_name_and_permissions,
            permits_are_per_user_and_tenant,
            deleting_a_group_removes_it_from_every_permit,
            access_resolves_what_exists,
            racing_creates_of_one_name_have_one_winner,
        );
    };
    (@cases ($make:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture<dyn authura_core::state::PermitStore> =
                    $crate::conformance::Fixture::from($make.await);
                $crate::permit_conformance::$case(fixture.store()).await;
            }
        )*
    };
}

fn name(n: &str) -> GroupName {
    GroupName::parse(n).unwrap()
}

fn perms(p: &[u16]) -> BTreeSet<Permission> {
    p.iter().map(|&n| Permission(n)).collect()
}

fn permit(ids: &[u32]) -> Permit {
    Permit::new(ids.iter().map(|&i| GroupId(i)))
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

/// A created group reads back by id and in the list (ascending by id), with every permission
/// number from 0 to 65535 kept.
pub async fn groups_round_trip_and_list_by_id(store: Arc<dyn PermitStore>) {
    assert_eq!(store.list_groups().await.unwrap(), vec![]);
    assert_eq!(store.find_group(GroupId(1)).await.unwrap(), None);
    let a = store
        .create_group(None, &name("Ops ünï"), &perms(&[0, 7, u16::MAX]))
        .await
        .unwrap();
    let b = store
        .create_group(None, &name("empty"), &perms(&[]))
        .await
        .unwrap();
    assert_eq!(a.name, name("Ops ünï"));
    assert_eq!(a.permissions, perms(&[0, 7, u16::MAX]));
    assert!(b.id > a.id);
    assert_eq!(store.find_group(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.find_group(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.list_groups().await.unwrap(), vec![a, b]);
}

/// A second group of a name is a conflict, on create and on rename; names differing in case
/// are two groups.
pub async fn names_are_unique_and_case_sensitive(store: Arc<dyn PermitStore>) {
    let a = store
        .create_group(None, &name("admins"), &perms(&[1]))
        .await
        .unwrap();
    let err = store
        .create_group(None, &name("admins"), &perms(&[2]))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Conflict)), "{err:?}");
    let b = store
        .create_group(None, &name("Admins"), &perms(&[2]))
        .await
        .unwrap();
    let renamed = RoleGroup {
        name: name("admins"),
        ..b.clone()
    };
    let err = store.update_group(&renamed).await.err();
    assert!(matches!(err, Some(StoreError::Conflict)), "{err:?}");
    assert_eq!(store.list_groups().await.unwrap(), vec![a, b]);
}

/// Assigned ids go up and a deleted group's id is not given again.
pub async fn assigned_ids_are_never_reused(store: Arc<dyn PermitStore>) {
    let a = store
        .create_group(None, &name("a"), &perms(&[]))
        .await
        .unwrap();
    let b = store
        .create_group(None, &name("b"), &perms(&[]))
        .await
        .unwrap();
    assert!(store.delete_group(b.id).await.unwrap());
    let c = store
        .create_group(None, &name("c"), &perms(&[]))
        .await
        .unwrap();
    assert!(c.id > b.id && b.id > a.id, "{a:?} {b:?} {c:?}");
}

/// A given id (the import) is kept, conflicts when taken, and later assigned ids are above it.
pub async fn given_ids_are_kept_and_conflict(store: Arc<dyn PermitStore>) {
    let g = store
        .create_group(Some(GroupId(40)), &name("imported"), &perms(&[3]))
        .await
        .unwrap();
    assert_eq!(g.id, GroupId(40));
    let err = store
        .create_group(Some(GroupId(40)), &name("other"), &perms(&[]))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Conflict)), "{err:?}");
    let big = store
        .create_group(Some(GroupId(u32::MAX - 1)), &name("big"), &perms(&[]))
        .await
        .unwrap();
    assert_eq!(big.id, GroupId(u32::MAX - 1));
    let next = store
        .create_group(None, &name("next"), &perms(&[]))
        .await
        .unwrap();
    assert_eq!(next.id, GroupId(u32::MAX));
    assert_eq!(
        store.find_group(GroupId(40)).await.unwrap().map(|g| g.name),
        Some(name("imported"))
    );
}

/// An update replaces the name and the permissions; an unknown id is `false`.
pub async fn update_replaces_name_and_permissions(store: Arc<dyn PermitStore>) {
    let g = store
        .create_group(None, &name("g"), &perms(&[1, 2]))
        .await
        .unwrap();
    let changed = RoleGroup {
        id: g.id,
        name: name("h"),
        permissions: perms(&[3]),
    };
    assert!(store.update_group(&changed).await.unwrap());
    assert_eq!(store.find_group(g.id).await.unwrap(), Some(changed.clone()));
    // Keeping its own name is no conflict.
    assert!(store.update_group(&changed).await.unwrap());
    let ghost = RoleGroup {
        id: GroupId(g.id.0 + 1000),
        ..changed
    };
    assert!(!store.update_group(&ghost).await.unwrap());
    assert_eq!(store.find_group(ghost.id).await.unwrap(), None);
}

/// A permit is per (tenant, user); `Int(5)` and `Text("5")` are two users; the empty permit is
/// the default and removes one.
pub async fn permits_are_per_user_and_tenant(store: Arc<dyn PermitStore>) {
    let acme = tenant("acme");
    let five = UserId::Int(5);
    let text_five = UserId::Text("5".into());
    assert_eq!(store.permit(None, &five).await.unwrap(), Permit::default());
    store
        .set_permit(None, &five, &permit(&[1, 2]))
        .await
        .unwrap();
    store
        .set_permit(Some(&acme), &five, &permit(&[3]))
        .await
        .unwrap();
    store
        .set_permit(None, &text_five, &permit(&[u32::MAX]))
        .await
        .unwrap();
    assert_eq!(store.permit(None, &five).await.unwrap(), permit(&[1, 2]));
    assert_eq!(
        store.permit(Some(&acme), &five).await.unwrap(),
        permit(&[3])
    );
    assert_eq!(
        store.permit(None, &text_five).await.unwrap(),
        permit(&[u32::MAX])
    );
    store
        .set_permit(None, &five, &permit(&[2, 7]))
        .await
        .unwrap();
    assert_eq!(store.permit(None, &five).await.unwrap(), permit(&[2, 7]));
    store.set_permit(None, &five, &permit(&[])).await.unwrap();
    assert_eq!(store.permit(None, &five).await.unwrap(), Permit::default());
    assert_eq!(
        store.permit(Some(&acme), &five).await.unwrap(),
        permit(&[3])
    );
}

/// Deleting a group removes it from every permit that held it, and only it; deleting an
/// unknown group is `false` and still cleans permits naming it.
pub async fn deleting_a_group_removes_it_from_every_permit(store: Arc<dyn PermitStore>) {
    let a = store
        .create_group(None, &name("a"), &perms(&[1]))
        .await
        .unwrap();
    let b = store
        .create_group(None, &name("b"), &perms(&[2]))
        .await
        .unwrap();
    let (u1, u2, u3) = (UserId::Int(1), UserId::Text("two".into()), UserId::Int(3));
    let acme = tenant("acme");
    store
        .set_permit(None, &u1, &permit(&[a.id.0, b.id.0]))
        .await
        .unwrap();
    store
        .set_permit(Some(&acme), &u2, &permit(&[a.id.0]))
        .await
        .unwrap();
    store
        .set_permit(None, &u3, &permit(&[b.id.0, 999]))
        .await
        .unwrap();
    assert!(store.delete_group(a.id).await.unwrap());
    assert_eq!(store.find_group(a.id).await.unwrap(), None);
    assert_eq!(store.permit(None, &u1).await.unwrap(), permit(&[b.id.0]));
    assert_eq!(
        store.permit(Some(&acme), &u2).await.unwrap(),
        Permit::default()
    );
    assert_eq!(
        store.permit(None, &u3).await.unwrap(),
        permit(&[b.id.0, 999])
    );
    assert!(!store.delete_group(GroupId(999)).await.unwrap());
    assert_eq!(store.permit(None, &u3).await.unwrap(), permit(&[b.id.0]));
    assert_eq!(store.list_groups().await.unwrap(), vec![b]);
}

/// `access` resolves a permit against the groups that exist, skipping the missing.
pub async fn access_resolves_what_exists(store: Arc<dyn PermitStore>) {
    let a = store
        .create_group(None, &name("a"), &perms(&[1, 2]))
        .await
        .unwrap();
    let b = store
        .create_group(None, &name("b"), &perms(&[2, 3]))
        .await
        .unwrap();
    let user = UserId::Int(1);
    assert_eq!(store.access(None, &user).await.unwrap(), Access::default());
    let held = permit(&[a.id.0, b.id.0, 12_345]);
    store.set_permit(None, &user, &held).await.unwrap();
    let access = store.access(None, &user).await.unwrap();
    assert_eq!(access, Access::resolve(held, &[a.clone(), b.clone()]));
    assert_eq!(access.groups, vec![(a.id, a.name), (b.id, b.name)]);
    assert_eq!(access.permissions, perms(&[1, 2, 3]));
}

/// Of several concurrent creates of one name exactly one wins; the others conflict.
pub async fn racing_creates_of_one_name_have_one_winner(store: Arc<dyn PermitStore>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.create_group(None, &name("race"), &perms(&[])).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.list_groups().await.unwrap().len(), 1);
}
