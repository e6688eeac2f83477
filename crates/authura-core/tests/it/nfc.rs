//! Password normalisation (SPEC §3) as data: hashes over the NFC form, hashes from before over
//! the typed form, and bcrypt hashes, each checked with the NFC, the decomposed and wrong
//! spellings; and a login that rewrites an old hash so that both spellings log in after it.

use argon2::PasswordHasher as _;
use authura_core::hash::{Verification, hash_password, verify_password};
use authura_core::{CoreError, Email, NewUser, PasswordHash, Role, Secret, UserStore as _, flows};

use crate::flows::world;

/// Passwords in NFC and as some keyboards and platforms type them (not NFC), pairwise.
const PAIRS: [(&str, &str); 4] = [
    // A precomposed letter, and the letter with a combining accent.
    ("Caf\u{e9}-Pa55!", "Cafe\u{301}-Pa55!"),
    // A Hangul syllable, and its jamo.
    ("\u{ac00}-Pa55word!", "\u{1100}\u{1161}-Pa55word!"),
    // The Angstrom sign, a singleton that NFC replaces by Å.
    ("\u{c5}ngstr\u{f6}m-1!", "\u{212b}ngstr\u{f6}m-1!"),
    // Two marks out of canonical order, the first of which composes.
    ("\u{1ea1}\u{301}-Pa55!", "a\u{301}\u{323}-Pa55!"),
];

/// How the stored hash was made.
#[derive(Clone, Copy, Debug)]
enum Stored {
    /// By today's hasher (over the NFC form), from this spelling.
    Hashed(&'static str),
    /// By the hasher before normalisation: Argon2id over exactly these bytes.
    TypedArgon2(&'static str),
    /// bcrypt over exactly these bytes.
    Bcrypt(&'static str),
}

impl Stored {
    fn hash(self) -> PasswordHash {
        match self {
            Stored::Hashed(pw) => hash_password(pw).unwrap(),
            Stored::TypedArgon2(pw) => PasswordHash::new(
                argon2::Argon2::default()
                    .hash_password(pw.as_bytes())
                    .unwrap()
                    .to_string(),
            ),
            Stored::Bcrypt(pw) => PasswordHash::new(bcrypt::hash(pw, 4).unwrap()),
        }
    }
}

const CURRENT: Verification = Verification {
    valid: true,
    needs_rehash: false,
};
const REHASH: Verification = Verification {
    valid: true,
    needs_rehash: true,
};

/// A wrong password for `pw`: its first letter changed, its accents kept.
fn wrong(pw: &str) -> String {
    let mut chars = pw.chars();
    let first = chars.next().unwrap();
    let other = if first == 'Z' { 'Y' } else { 'Z' };
    std::iter::once(other).chain(chars).collect()
}

/// `typed` against `stored`: the verification expected, or `None` for "does not verify".
fn check(stored: Stored, typed: &str, expected: Option<Verification>) {
    let got = verify_password(typed, &stored.hash());
    match expected {
        Some(v) => assert_eq!(got, v, "{typed:?} against {stored:?}"),
        None => assert!(!got.valid, "{typed:?} verified against {stored:?}"),
    }
}

#[test]
fn either_spelling_verifies_against_a_hash_of_either() {
    for (nfc, nfd) in PAIRS {
        for made_from in [nfc, nfd] {
            let stored = Stored::Hashed(made_from);
            check(stored, nfc, Some(CURRENT));
            check(stored, nfd, Some(CURRENT));
            check(stored, &wrong(nfc), None);
            check(stored, &wrong(nfd), None);
            // The other pairs' passwords, in both spellings.
            for (other_nfc, other_nfd) in PAIRS.iter().filter(|(o, _)| *o != nfc) {
                check(stored, other_nfc, None);
                check(stored, other_nfd, None);
            }
        }
    }
}

/// Hashes written before normalisation are over the password as typed: typed so again, it
/// verifies and is flagged for rewriting; the NFC spelling of a password first typed
/// decomposed is another string to that hash. An old hash of an NFC password is a current one.
#[test]
fn old_hashes_over_the_typed_form_verify_as_typed_and_ask_for_a_rehash() {
    for (nfc, nfd) in PAIRS {
        check(Stored::TypedArgon2(nfd), nfd, Some(REHASH));
        check(Stored::TypedArgon2(nfd), nfc, None);
        check(Stored::TypedArgon2(nfd), &wrong(nfd), None);
        check(Stored::TypedArgon2(nfc), nfc, Some(CURRENT));
        check(Stored::TypedArgon2(nfc), nfd, Some(CURRENT));
        check(Stored::TypedArgon2(nfc), &wrong(nfc), None);
    }
}

/// bcrypt: the NFC form and the form as typed, as for Argon2 (and always a rehash).
#[test]
fn bcrypt_hashes_verify_in_the_same_two_forms() {
    for (nfc, nfd) in PAIRS {
        check(Stored::Bcrypt(nfc), nfc, Some(REHASH));
        check(Stored::Bcrypt(nfc), nfd, Some(REHASH));
        check(Stored::Bcrypt(nfd), nfd, Some(REHASH));
        check(Stored::Bcrypt(nfd), nfc, None);
        check(Stored::Bcrypt(nfc), &wrong(nfd), None);
        check(Stored::Bcrypt(nfd), &wrong(nfd), None);
    }
}

/// A user whose hash is from before normalisation, over a decomposed password: a login with it
/// succeeds and rewrites the hash over the NFC form, after which both spellings log in and
/// nothing is rewritten again; wrong passwords fail throughout and change nothing.
#[tokio::test]
async fn a_login_rewrites_an_old_hash_and_then_both_spellings_log_in() {
    let w = world();
    let (nfc, nfd) = PAIRS[0];
    let old = Stored::TypedArgon2(nfd).hash();
    let email = Email::parse("decomposed@example.com").unwrap();
    let user = w
        .store
        .create(NewUser {
            email: email.clone(),
            role: Role::parse("user").unwrap(),
            tenant: None,
            password_hash: old.clone(),
            verified_at: Some(chrono::Utc::now()),
        })
        .await
        .unwrap();
    let stored = || async { w.store.find_by_id(None, &user.id).await.unwrap().unwrap() };
    let login = |pw: String| flows::login(&w.ctx, None, &email, Secret::new(pw));

    for bad in [wrong(nfd), wrong(nfc)] {
        let got = login(bad).await;
        assert!(matches!(got, Err(CoreError::InvalidCredentials)), "{got:?}");
    }
    assert_eq!(stored().await.password_hash, old, "a failure keeps it");

    login(nfd.to_owned()).await.unwrap();
    let rewritten = stored().await.password_hash;
    assert_ne!(rewritten, old);
    for pw in [nfc, nfd] {
        assert_eq!(verify_password(pw, &rewritten), CURRENT, "{pw:?}");
        login(pw.to_owned()).await.unwrap();
    }
    assert_eq!(stored().await.password_hash, rewritten, "rewritten once");
    let got = login(wrong(nfd)).await;
    assert!(matches!(got, Err(CoreError::InvalidCredentials)), "{got:?}");
}
