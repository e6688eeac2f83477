//! Session keys (SPEC §8): 256 random bits, base64url without padding (43 characters). Only the
//! SHA-256 of a key is ever stored or looked up; the key itself lives in the cookie or the
//! client's hands.

use authura_core::Secret;
use authura_core::state::KeyHash;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Random bytes in a key.
pub const KEY_BYTES: usize = 32;

/// Characters in a key's text: base64url of [`KEY_BYTES`] without padding.
pub const KEY_CHARS: usize = 43;

/// Characters in an Authaus session key (`[a-zA-Z0-9]{30}`), kept by the Authaus import.
pub const AUTHAUS_KEY_CHARS: usize = 30;

/// A session key's text. Its `Debug` prints `[redacted]`.
#[derive(Clone, Debug)]
pub struct SessionKey(Secret);

impl SessionKey {
    /// A new key from the operating system's random source.
    ///
    /// # Errors
    /// When the operating system has no random source (a key is never made of anything weaker).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(SessionKey(Secret::new(URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// A presented key, strictly: exactly [`KEY_CHARS`] characters of base64url without padding
    /// that decode to [`KEY_BYTES`] bytes in their one canonical encoding (the unused low bits of
    /// the last character are zero). Anything else (forged, truncated, over-long, padded, standard
    /// base64, other characters) is `None`, which callers answer like an unknown key.
    ///
    /// Also a key that Authaus issued and `authura import authaus --sessions` carried over
    /// (SPEC §12): exactly [`AUTHAUS_KEY_CHARS`] ASCII letters and digits. Its hash is looked up
    /// like any other; only an imported session has one.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() == AUTHAUS_KEY_CHARS && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Some(SessionKey(Secret::new(text)));
        }
        if text.len() != KEY_CHARS {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(KEY_BYTES) => Some(SessionKey(Secret::new(text))),
            _ => None,
        }
    }

    /// The key's text, to hand to the client once.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The key's SHA-256, what the store keeps and looks up.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(self.0.expose().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::{KEY_CHARS, SessionKey};

    #[test]
    fn a_generated_key_is_43_base64url_characters_and_parses_back_to_the_same_hash() {
        let key = SessionKey::generate().unwrap();
        assert_eq!(key.expose().len(), KEY_CHARS);
        assert!(
            key.expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{}",
            key.expose()
        );
        let parsed = SessionKey::parse(key.expose()).unwrap();
        assert_eq!(parsed.hash(), key.hash());
        assert_ne!(SessionKey::generate().unwrap().hash(), key.hash());
        assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_text() {
        // SHA-256 of 43 'A's, computed independently (`printf %s AAA… | sha256sum`).
        let key = SessionKey::parse(&"A".repeat(43)).unwrap();
        let hex: String = key
            .hash()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
    }

    #[test]
    fn only_canonical_base64url_of_32_bytes_parses() {
        let good = SessionKey::generate().unwrap().expose().to_owned();
        let cases: Vec<(String, bool)> = vec![
            (good.clone(), true),
            ("A".repeat(43), true),
            // Truncated and over-long.
            (good[..42].to_owned(), false),
            (format!("{good}A"), false),
            (String::new(), false),
            // Padded.
            (format!("{}=", &good[..42]), false),
            // Standard base64's alphabet.
            (format!("{}+", &good[..42]), false),
            (format!("{}/", &good[..42]), false),
            // Not base64 at all, and not ASCII (43 bytes, fewer characters).
            (format!("{}!", &good[..42]), false),
            (format!("{}é", &good[..41]), false),
            (" ".repeat(43), false),
            // The last character carries two unused bits: only zeros are canonical.
            (format!("{}B", "A".repeat(42)), false),
            (format!("{}E", "A".repeat(42)), true),
            // An Authaus key: 30 letters and digits, and nothing near it.
            ("aZ09".repeat(8)[..30].to_owned(), true),
            ("aZ09".repeat(8)[..29].to_owned(), false),
            ("aZ09".repeat(8)[..31].to_owned(), false),
            (format!("{}-", &"aZ09".repeat(8)[..29]), false),
            (format!("{}_", &"aZ09".repeat(8)[..29]), false),
        ];
        for (text, ok) in cases {
            assert_eq!(SessionKey::parse(&text).is_some(), ok, "{text:?}");
        }
    }
}
