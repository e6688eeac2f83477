//! Password normalisation over HTTP (SPEC §3): a password signed up with decomposed accents logs
//! in spelled either way, and is hashed over its NFC form.

use authura_core::Email;
use authura_core::hash::{Verification, verify_password};
use serde_json::json;

use crate::harness::{TestServer, both_backends, s};

/// The same password, in NFC and decomposed (as some keyboards and platforms send it).
const NFC: &str = "Caf\u{e9}-\u{c5}\u{fc}-Pa55!";
const NFD: &str = "Cafe\u{301}-A\u{30a}u\u{308}-Pa55!";

both_backends!(a_password_signed_up_decomposed_logs_in_in_either_spelling);
async fn a_password_signed_up_decomposed_logs_in_in_either_spelling() {
    assert_ne!(NFC, NFD);
    let srv = TestServer::start().await;
    let email = "accents@example.com";
    let signed = srv.sign_up(email, NFD).await;
    assert_eq!(signed["user"]["email"], email);

    // Stored over the NFC form: the NFC spelling verifies without a rewrite.
    let store = &srv.state.ctx().store;
    let user = store
        .find_by_email(None, &Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        verify_password(NFC, &user.password_hash),
        Verification {
            valid: true,
            needs_rehash: false
        }
    );

    for password in [NFC, NFD, NFD, NFC] {
        let tokens = srv.login(email, password).await;
        let me = srv.get("/user", Some(s(&tokens["access_token"]))).await;
        assert_eq!(me.ok()["user"]["email"], email, "{password:?}");
    }
    for wrong in [
        "Cafe\u{300}-A\u{30a}u\u{308}-Pa55!",
        "Caf\u{e8}-\u{c5}\u{fc}-Pa55!",
    ] {
        srv.post("/token", json!({"email": email, "password": wrong}))
            .await
            .expect(401, "invalid_credentials");
    }
    let after = store
        .find_by_id(None, &user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert_eq!(after, user.password_hash, "nothing to rewrite");
}
