//! The Authaus password-hash format (SPEC §8): standard base64, padded, of 65 bytes: a version
//! byte 1, a 32-byte salt, and scrypt(password, salt, N=256, r=8, p=1) of 32 bytes. Parsed
//! strictly, so that no other stored string is taken for it, and checked in constant time.

use std::fmt;

use base64::Engine as _;

use crate::hash::nfc;

/// The only version byte Authaus writes.
const VERSION: u8 = 1;
/// Bytes of salt and of derived key.
const PART: usize = 32;
/// The decoded length: the version byte, the salt and the key.
const DECODED: usize = 1 + 2 * PART;
/// The encoded length: standard base64 of 65 bytes, padded.
const ENCODED: usize = DECODED.div_ceil(3) * 4;
/// scrypt's cost: N = 2^8 = 256, r = 8, p = 1.
const LOG_N: u8 = 8;
const R: u32 = 8;
const P: u32 = 1;

/// A stored Authaus hash, parsed: its salt and the key derived from the password.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct AuthausHash {
    salt: [u8; PART],
    key: [u8; PART],
}

impl fmt::Debug for AuthausHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthausHash([redacted])")
    }
}

impl AuthausHash {
    /// Parses `stored` if it is exactly the Authaus format: 88 characters of canonical, padded
    /// standard base64 that decode to 65 bytes starting with version 1. Anything else (another
    /// length, URL-safe or unpadded base64, non-zero trailing bits, another version) is `None`.
    /// Argon2 and bcrypt strings start with `$`, which base64 never contains.
    pub(super) fn parse(stored: &str) -> Option<Self> {
        if stored.len() != ENCODED {
            return None;
        }
        // 88 characters without padding decode to 66 bytes: room for them, to refuse them below.
        let mut bytes = [0u8; DECODED + 1];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(stored, &mut bytes)
            .ok()?;
        if n != DECODED || bytes[0] != VERSION {
            return None;
        }
        let mut salt = [0u8; PART];
        let mut key = [0u8; PART];
        salt.copy_from_slice(&bytes[1..=PART]);
        key.copy_from_slice(&bytes[1 + PART..DECODED]);
        Some(AuthausHash { salt, key })
    }

    /// Whether `password` matches in any of the forms [`forms`] lists. Every distinct form is
    /// computed, matched or not, so the time depends on the password given, not on the hash.
    pub(super) fn matches(&self, password: &str) -> bool {
        let nfc = nfc(password);
        let mut matched = false;
        for form in forms(password, &nfc) {
            matched |= self.matches_exactly(form.as_bytes());
        }
        matched
    }

    /// Recomputes the key from exactly these bytes and compares it in constant time.
    fn matches_exactly(&self, password: &[u8]) -> bool {
        let mut out = [0u8; PART];
        derive(password, &self.salt, &mut out)
            && subtle::ConstantTimeEq::ct_eq(&out[..], &self.key[..]).into()
    }
}

/// The forms a password is checked in against an Authaus hash, without repeats: Authaus trims
/// whitespace (Go's `strings.TrimSpace`: Unicode `White_Space`, as Rust's `str::trim`) before
/// hashing, so the trimmed password first; then its NFC form (SPEC §3 normalises passwords to
/// NFC); then both untrimmed, as given ("legacy hashes are also checked as stored"), for hashes
/// of this format that some other tool wrote without trimming.
fn forms<'a>(password: &'a str, nfc: &'a str) -> Vec<&'a str> {
    let mut forms: Vec<&str> = Vec::with_capacity(4);
    for form in [password.trim(), nfc.trim(), password, nfc] {
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    forms
}

/// scrypt at Authaus's cost into `out`; false only if the parameters were refused, which
/// these constant ones never are.
fn derive(password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    scrypt::Params::new(LOG_N, R, P)
        .is_ok_and(|params| scrypt::scrypt(password, salt, &params, out).is_ok())
}

/// An Authaus hash of `password` as given (no trimming), with `salt`.
#[cfg(test)]
pub(super) fn encode(version: u8, salt: [u8; PART], password: &str) -> String {
    let mut bytes = vec![version];
    bytes.extend_from_slice(&salt);
    let mut key = [0u8; PART];
    assert!(derive(password.as_bytes(), &salt, &mut key));
    bytes.extend_from_slice(&key);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lengths_are_authaus_s() {
        assert_eq!(DECODED, 65);
        assert_eq!(ENCODED, 88);
        let h = encode(1, [7; PART], "pw");
        assert_eq!(h.len(), 88);
        assert!(h.ends_with('=') && !h.ends_with("=="));
    }

    #[test]
    fn a_well_formed_hash_parses_into_its_salt_and_key() {
        let h = encode(1, [7; PART], "pw");
        let parsed = AuthausHash::parse(&h).expect("a well-formed hash");
        assert_eq!(parsed.salt, [7; PART]);
        let mut key = [0u8; PART];
        assert!(derive(b"pw", &[7; PART], &mut key));
        assert_eq!(parsed.key, key);
        assert_eq!(format!("{parsed:?}"), "AuthausHash([redacted])");
    }

    #[test]
    fn nothing_else_parses() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
        let good = encode(1, [0xfb; PART], "pw");
        let bytes = STANDARD.decode(&good).unwrap();
        assert_eq!(bytes.len(), 65);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes.clone();
            f(&mut b);
            STANDARD.encode(b)
        };
        let refused = [
            // Another version.
            with(&|b| b[0] = 0),
            with(&|b| b[0] = 2),
            // 64 and 66 bytes (66 encode to 88 characters too, without padding).
            with(&|b| {
                b.pop();
            }),
            with(&|b| b.push(0)),
            // No padding, URL-safe alphabet (0xfb salt bytes encode to '+' and '/' otherwise).
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            // Whitespace, a stray character, a truncated string.
            format!(" {}", &good[1..]),
            format!("{}\n", &good[..87]),
            format!("{}*=", &good[..86]),
            good[..84].to_owned(),
            String::new(),
            // Non-zero trailing bits: the last character before '=' has 2 unused bits.
            format!("{}{}=", &good[..86], non_canonical(&good[86..87])),
            // Other stored formats.
            "$2b$10$abcdefghijklmnopqrstuu".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA".to_owned(),
        ];
        for s in &refused {
            assert!(AuthausHash::parse(s).is_none(), "{s:?} parsed");
        }
    }

    /// The base64 character with the same data bits as `c` and its 2 unused bits not zero.
    fn non_canonical(c: &str) -> char {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = ALPHABET
            .iter()
            .position(|a| c.as_bytes().first() == Some(a))
            .unwrap();
        char::from(ALPHABET[i | 1])
    }

    #[test]
    fn passwords_match_trimmed_normalised_or_as_given() {
        // Authaus hashes the trimmed password.
        let h = AuthausHash::parse(&encode(1, [3; PART], "Secret pw")).unwrap();
        for ok in ["Secret pw", "  Secret pw\t", "\u{a0}Secret pw\n"] {
            assert!(h.matches(ok), "{ok:?}");
        }
        for bad in ["Secret  pw", "secret pw", "Secret pw.", "", " "] {
            assert!(!h.matches(bad), "{bad:?}");
        }
        // A hash of the NFC form matches the decomposed input; one of the decomposed form
        // matches it as given, and not its NFC form's other spellings.
        let nfc = AuthausHash::parse(&encode(1, [4; PART], "Caf\u{e9}")).unwrap();
        assert!(nfc.matches("Cafe\u{301}") && nfc.matches("Caf\u{e9} "));
        let nfd = AuthausHash::parse(&encode(1, [5; PART], "Cafe\u{301}")).unwrap();
        assert!(nfd.matches("Cafe\u{301}") && !nfd.matches("Caf\u{e9}"));
        // A hash of an untrimmed password (not what Authaus writes) matches as given.
        let raw = AuthausHash::parse(&encode(1, [6; PART], " pad ")).unwrap();
        assert!(raw.matches(" pad ") && !raw.matches("pad"));
    }

    /// A wrong password against an Authaus hash costs at least the Argon2id work an unknown
    /// user costs (the scrypt check alone is some 30 times cheaper): the fastest of a few runs
    /// each, taken in turns, so that other work on the machine does not decide it.
    #[test]
    fn a_wrong_password_costs_what_an_unknown_user_costs() {
        use crate::hash::tests::fastest_in_turns;
        use crate::hash::{dummy_hash, verify_or_dummy, verify_password};
        let _ = dummy_hash();
        let stored = crate::PasswordHash::new(encode(1, [9; PART], "Right-pw1"));
        let [legacy, unknown] = fastest_in_turns(
            [
                &|| assert!(!verify_password("Wrong-pw1", &stored).valid),
                &|| assert!(!verify_or_dummy("Wrong-pw1", None).valid),
            ],
            3,
        );
        assert!(
            legacy * 2 >= unknown,
            "an Authaus check took {legacy:?}, an unknown user {unknown:?}"
        );
    }

    #[test]
    fn forms_are_listed_once_each() {
        assert_eq!(forms("pw", "pw"), ["pw"]);
        assert_eq!(forms(" pw ", " pw "), ["pw", " pw "]);
        assert_eq!(
            forms(" e\u{301}", " \u{e9}"),
            ["e\u{301}", "\u{e9}", " e\u{301}", " \u{e9}"]
        );
    }
}
