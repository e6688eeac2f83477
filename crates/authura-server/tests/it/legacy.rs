//! Legacy Authaus password hashes over HTTP (SPEC §8): made by Python's `hashlib.scrypt`, written
//! into the backend, verified at `/token` and `/change-password`, rewritten as Argon2id at login.

use authura_core::types::{PasswordHash, UserChanges};
use authura_core::{Email, User};
use authura_testkit::python::authaus_hashes;
use serde_json::json;

use crate::harness::{PW, TestServer, both_backends, s};

/// Signs `email` up with [`PW`], then replaces its hash with an Authaus hash of `password`;
/// returns the user and the access token from the sign-up.
async fn authaus_user(srv: &TestServer, email: &str, password: &str) -> (User, String) {
    let signed = srv.sign_up(email, PW).await;
    let access = s(&signed["tokens"]["access_token"]).to_owned();
    let [hash] = <[String; 1]>::try_from(authaus_hashes(&[password])).unwrap();
    let store = &srv.state.ctx().store;
    let email = Email::parse(email).unwrap();
    let user = store.find_by_email(None, &email).await.unwrap().unwrap();
    let changes = UserChanges {
        password_hash: Some(PasswordHash::new(hash.clone())),
        ..UserChanges::default()
    };
    let user = store.update(None, &user.id, changes).await.unwrap();
    assert_eq!(user.password_hash.as_str(), hash);
    (user, access)
}

async fn stored_hash(srv: &TestServer, user: &User) -> PasswordHash {
    let store = &srv.state.ctx().store;
    let user = store.find_by_id(None, &user.id).await.unwrap().unwrap();
    user.password_hash
}

both_backends!(an_authaus_hash_logs_in_and_becomes_argon2id);
async fn an_authaus_hash_logs_in_and_becomes_argon2id() {
    let srv = TestServer::start().await;
    // Typed with surrounding whitespace: Authaus hashed it trimmed.
    let typed = " Pässwörd-1! ";
    let (user, _) = authaus_user(&srv, "legacy@example.com", typed).await;
    let before = stored_hash(&srv, &user).await;

    // A wrong password is the same answer as an unknown user, and keeps the hash.
    for (email, password) in [
        ("legacy@example.com", "Pässwörd-1?"),
        ("legacy@example.com", PW),
        ("nobody@example.com", typed),
    ] {
        srv.post("/token", json!({"email": email, "password": password}))
            .await
            .expect(401, "invalid_credentials");
    }
    assert_eq!(stored_hash(&srv, &user).await, before);

    let tokens = srv.login("legacy@example.com", typed).await;
    let me = srv.get("/user", Some(s(&tokens["access_token"]))).await;
    assert_eq!(me.ok()["user"]["email"], "legacy@example.com");
    let upgraded = stored_hash(&srv, &user).await;
    assert!(
        upgraded
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "not upgraded"
    );
    // The same password again, now against Argon2id; the hash is not rewritten twice.
    srv.login("legacy@example.com", typed).await;
    assert_eq!(stored_hash(&srv, &user).await, upgraded);
    srv.post(
        "/token",
        json!({"email": "legacy@example.com", "password": "Pässwörd-1?"}),
    )
    .await
    .expect(401, "invalid_credentials");
}

both_backends!(change_password_checks_the_old_password_against_an_authaus_hash);
async fn change_password_checks_the_old_password_against_an_authaus_hash() {
    let srv = TestServer::start().await;
    let old = "Auth4us-old!";
    let (user, access) = authaus_user(&srv, "changer@example.com", old).await;
    let new = "N3w-passw0rd!";
    let change = |old: &str| {
        srv.post_as(
            "/change-password",
            &access,
            json!({"old_password": old, "new_password": new}),
        )
    };
    change("Auth4us-old?")
        .await
        .expect(401, "invalid_credentials");
    change(old).await.ok();
    assert!(
        stored_hash(&srv, &user)
            .await
            .as_str()
            .starts_with("$argon2id$")
    );
    srv.post(
        "/token",
        json!({"email": "changer@example.com", "password": old}),
    )
    .await
    .expect(401, "invalid_credentials");
    srv.login("changer@example.com", new).await;
}
