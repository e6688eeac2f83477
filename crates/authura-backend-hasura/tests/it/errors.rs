//! Hasura's errors and failures as domain errors, each leaving nothing half-written; and what
//! the stand-in refuses, as Hasura refuses it.

use std::time::{Duration, Instant};

use authura_core::types::{Email, NewUser, PasswordHash, Role, TenantId, UserChanges};
use authura_core::{StoreError, UserStore};
use authura_standins::hasura::{Failure, HasuraStandin};
use serde_json::{Value, json};

use crate::{fresh, store_with};

fn new_user(address: &str) -> NewUser {
    NewUser {
        email: Email::parse(address).unwrap(),
        role: Role::parse("user").unwrap(),
        tenant: Some(TenantId::parse("acme").unwrap()),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$x"),
        verified_at: None,
    }
}

/// Every call of the store, as (name, result mapped to `Result<(), StoreError>`).
async fn every_call(store: &dyn UserStore) -> Vec<(&'static str, Result<(), StoreError>)> {
    let tenant = TenantId::parse("acme").unwrap();
    let id = authura_core::types::UserId::Int(1);
    let email = Email::parse("someone@example.com").unwrap();
    let change = UserChanges {
        role: Some(Role::parse("admin").unwrap()),
        ..UserChanges::default()
    };
    vec![
        (
            "find_by_email",
            store.find_by_email(Some(&tenant), &email).await.map(drop),
        ),
        (
            "find_by_id",
            store.find_by_id(Some(&tenant), &id).await.map(drop),
        ),
        (
            "create",
            store.create(new_user("new@example.com")).await.map(drop),
        ),
        (
            "update",
            store.update(Some(&tenant), &id, change).await.map(drop),
        ),
        ("ping", store.ping().await),
    ]
}

#[tokio::test]
async fn a_wrong_or_missing_admin_secret_is_a_backend_error() {
    let standin = HasuraStandin::start().unwrap();
    for secret in ["wrong", ""] {
        let store = store_with(&standin, secret, Duration::from_secs(10));
        for (call, result) in every_call(&store).await {
            match result {
                Err(StoreError::Backend(message)) => {
                    assert!(message.contains("access-denied"), "{call}: {message}");
                    assert!(
                        !message.contains(standin.admin_secret()),
                        "{call}: {message}"
                    );
                }
                other => panic!("{call} with secret {secret:?}: got {other:?}"),
            }
        }
    }
    assert_eq!(standin.user_count().unwrap(), 0);
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_and_writes_nothing() {
    let (store, standin) = fresh();
    store.create(new_user("taken@example.com")).await.unwrap();
    let again = store.create(new_user("Taken@Example.com")).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "got {again:?}");
    assert_eq!(standin.user_count().unwrap(), 1);
}

#[tokio::test]
async fn server_errors_are_unavailable_and_write_nothing() {
    let (store, standin) = fresh();
    standin.fail_with(Failure::ServerError);
    for (call, result) in every_call(&*store).await {
        assert!(
            matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("500")),
            "{call}: got {result:?}"
        );
    }
    standin.fail_with(Failure::None);
    assert_eq!(standin.user_count().unwrap(), 0);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_connection_cut_mid_answer_is_unavailable_and_writes_nothing() {
    let (store, standin) = fresh();
    standin.fail_with(Failure::CutOff);
    for (call, result) in every_call(&*store).await {
        assert!(
            matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("lost the connection")),
            "{call}: got {result:?}"
        );
    }
    standin.fail_with(Failure::None);
    assert_eq!(standin.user_count().unwrap(), 0);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_hung_hasura_times_out_as_unavailable() {
    let standin = HasuraStandin::start().unwrap();
    let store = store_with(&standin, standin.admin_secret(), Duration::from_millis(500));
    standin.fail_with(Failure::Hang);
    let started = Instant::now();
    let result = store.create(new_user("slow@example.com")).await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("timed out")),
        "got {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let ping = store.ping().await;
    assert!(
        matches!(ping, Err(StoreError::Unavailable(_))),
        "got {ping:?}"
    );
    assert_eq!(standin.user_count().unwrap(), 0);
}

#[tokio::test]
async fn a_stopped_hasura_is_unavailable() {
    let (store, standin) = fresh();
    let created = store.create(new_user("kept@example.com")).await.unwrap();
    standin.stop().await;
    for (call, result) in every_call(&*store).await {
        assert!(
            matches!(&result, Err(StoreError::Unavailable(_))),
            "{call}: got {result:?}"
        );
    }
    assert_eq!(standin.user_count().unwrap(), 1);
    drop(created);
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = authura_backend_hasura::HasuraStore::new(&authura_backend_hasura::HasuraSettings {
        url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        admin_secret: authura_core::Secret::new("x"),
        timeout: Duration::from_secs(2),
        extra_ca_pem: None,
    })
    .unwrap();
    let ping = store.ping().await;
    assert!(
        matches!(&ping, Err(StoreError::Unavailable(m)) if m.contains("connect")),
        "got {ping:?}"
    );
}

#[tokio::test]
async fn delete_removes_only_a_user_of_the_tenant() {
    let (store, standin) = fresh();
    let user = store.create(new_user("gone@example.com")).await.unwrap();
    let other = TenantId::parse("globex").unwrap();
    assert!(!store.delete(Some(&other), &user.id).await.unwrap());
    assert!(!store.delete(None, &user.id).await.unwrap());
    assert!(store.delete(user.tenant.as_ref(), &user.id).await.unwrap());
    assert!(!store.delete(user.tenant.as_ref(), &user.id).await.unwrap());
    assert_eq!(standin.user_count().unwrap(), 0);
}

/// Posts raw GraphQL to the stand-in with the right admin secret.
async fn post(standin: &HasuraStandin, body: Value) -> Value {
    reqwest::Client::new()
        .post(standin.url())
        .header("x-hasura-admin-secret", standin.admin_secret())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What Hasura refuses, the stand-in refuses in Hasura's error shape: unknown fields,
/// arguments and types, and values of the wrong type.
#[tokio::test]
async fn the_standin_refuses_what_hasura_refuses() {
    let standin = HasuraStandin::start().unwrap();
    let refused = [
        json!({"query": "query { users { id nickname } }"}),
        json!({"query": "query { users(wherever: {}) { id } }"}),
        json!({"query": "query { users(where: {email: {_like: \"%\"}}) { id } }"}),
        json!({"query": "query { user_by_pk(id: 1) { id } }"}),
        json!({"query": "query Q($id: Int!) { users_by_pk(id: $id) { id } }", "variables": {"id": "one"}}),
        json!({"query": "mutation Q($o: user_insert_input!) { insert_users_one(object: $o) { id } }", "variables": {"o": {}}}),
        json!({"query": "mutation { update_users_by_pk(pk_columns: {id: 1}, _set: {nickname: \"x\"}) { id } }"}),
    ];
    for body in refused {
        let answer = post(&standin, body.clone()).await;
        let error = &answer["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "validation-failed",
            "{body}: {answer}"
        );
        assert!(error["message"].is_string(), "{body}: {answer}");
        assert!(answer.get("data").is_none(), "{body}: {answer}");
    }
    // And what Authura sends is accepted, with Hasura's field names.
    let answer = post(
        &standin,
        json!({
            "query": "mutation M($o: users_insert_input!) { insert_users_one(object: $o) { id email tenant_id verified_at } }",
            "variables": {"o": {"email": "a@example.com", "role": "user", "password": "x", "verified_at": "2026-01-01T00:00:00.5Z"}}
        }),
    )
    .await;
    assert_eq!(
        answer,
        json!({"data": {"insert_users_one": {"id": 1, "email": "a@example.com", "tenant_id": null, "verified_at": "2026-01-01T00:00:00.500+00:00"}}})
    );
    let answer = post(
        &standin,
        json!({"query": "mutation { insert_users_one(object: {email: \"a@example.com\", role: \"user\", password: \"y\"}) { id } }"}),
    )
    .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "constraint-violation",
        "{answer}"
    );
    assert_eq!(
        answer["errors"][0]["extensions"]["path"], "$.selectionSet.insert_users_one",
        "{answer}"
    );
}
