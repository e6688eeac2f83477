//! Authaus password hashes made by an independent implementation (Python's `hashlib.scrypt`)
//! verify through the hasher and are upgraded at login; damaged ones never verify.

use authura_core::hash::{InlineHasher, PasswordHasher as _, Verification, verify_password};
use authura_core::{Email, NewUser, PasswordHash, Role, Secret, UserStore as _};
use authura_testkit::python::authaus_hashes;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::flows::{PW, world};

/// Passwords as users type them, and what Authaus hashed (it trims first).
const PASSWORDS: [&str; 5] = [
    PW,
    "Pässwörd-ünïcödé ✓ 密码 1!",
    "  spaced Out 1! \t",
    "\u{a0}nbsp-and-newline\n",
    "inner  spaces\u{3000}",
];

const LEGACY: Verification = Verification {
    valid: true,
    needs_rehash: true,
};

fn check(password: &str, stored: &str) -> Verification {
    verify_password(password, &PasswordHash::new(stored))
}

#[tokio::test]
async fn python_made_hashes_verify_as_typed_and_trimmed() {
    let hashes = authaus_hashes(&PASSWORDS);
    for (pw, h) in PASSWORDS.iter().zip(&hashes) {
        assert_eq!(h.len(), 88, "{h}");
        assert_eq!(check(pw, h), LEGACY, "{pw:?} as typed");
        assert_eq!(check(pw.trim(), h), LEGACY, "{pw:?} trimmed");
        // Through the trait, as every flow asks.
        let v = InlineHasher
            .verify(Secret::new(*pw), Some(PasswordHash::new(h.clone())))
            .await
            .unwrap();
        assert_eq!(v, LEGACY, "{pw:?} through the hasher");
        // The other passwords' hashes do not take it.
        for other in hashes.iter().filter(|o| *o != h) {
            assert!(!check(pw, other).valid, "{pw:?} against another hash");
        }
    }
}

#[test]
fn wrong_passwords_never_verify() {
    let [h] = <[String; 1]>::try_from(authaus_hashes(&["Correct-H0rse!"])).unwrap();
    for wrong in [
        "correct-h0rse!",
        "Correct-H0rse",
        "Correct-H0rse!!",
        "Correct -H0rse!",
        "",
        " ",
    ] {
        assert!(!check(wrong, &h).valid, "{wrong:?}");
    }
}

#[test]
fn damaged_hashes_never_verify() {
    let [h] = <[String; 1]>::try_from(authaus_hashes(&[PW])).unwrap();
    let bytes = STANDARD.decode(&h).unwrap();
    assert_eq!((bytes.len(), bytes[0]), (65, 1));
    assert_eq!(check(PW, &h), LEGACY);
    let edited = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        STANDARD.encode(b)
    };
    let mut damaged = vec![
        // Another version byte.
        edited(&|b| b[0] = 2),
        edited(&|b| b[0] = 0),
        // One length short, one too many.
        edited(&|b| {
            b.pop();
        }),
        edited(&|b| b.push(0)),
        // Not base64, unpadded, cut short.
        format!("{}*{}", &h[..40], &h[41..]),
        h.trim_end_matches('=').to_owned(),
        h[..80].to_owned(),
        // Surrounding whitespace is not trimmed from the stored hash.
        format!("{h} "),
        // Empty: what a missing password reads as.
        String::new(),
    ];
    // The URL-safe alphabet, when the hash has a character it spells differently.
    let url_safe = URL_SAFE.encode(&bytes);
    if url_safe != h {
        damaged.push(url_safe);
    }
    // One bit flipped in every byte of the salt and the key.
    damaged.extend((1..65).map(|i| edited(&|b| b[i] ^= 0x01)));
    for d in &damaged {
        let v = check(PW, d);
        assert!(!v.valid, "{d:?} verified");
    }
}

/// A login with an Authaus hash succeeds, rewrites the hash as Argon2id, and the same password
/// (surrounding whitespace and all) logs in again; a wrong one never does.
#[tokio::test]
async fn a_login_upgrades_the_hash_to_argon2id() {
    use authura_core::flows;
    let w = world();
    let typed = "  Au7haus-pass! ";
    let [h] = <[String; 1]>::try_from(authaus_hashes(&[typed])).unwrap();
    let email = Email::parse("legacy@example.com").unwrap();
    let user = w
        .store
        .create(NewUser {
            email: email.clone(),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: PasswordHash::new(h.clone()),
            verified_at: Some(chrono::Utc::now()),
        })
        .await
        .unwrap();
    let wrong = flows::login(&w.ctx, None, &email, Secret::new("Au7haus-pass?")).await;
    assert!(matches!(
        wrong,
        Err(authura_core::CoreError::InvalidCredentials)
    ));
    let stored = || async { w.store.find_by_id(None, &user.id).await.unwrap().unwrap() };
    assert_eq!(
        stored().await.password_hash.as_str(),
        h,
        "a failure keeps it"
    );

    flows::login(&w.ctx, None, &email, Secret::new(typed))
        .await
        .unwrap();
    let upgraded = stored().await.password_hash;
    assert!(
        upgraded
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert_eq!(
        verify_password(typed, &upgraded),
        Verification {
            valid: true,
            needs_rehash: false
        }
    );
    flows::login(&w.ctx, None, &email, Secret::new(typed))
        .await
        .unwrap();
    assert_eq!(stored().await.password_hash, upgraded, "rewritten once");
}
