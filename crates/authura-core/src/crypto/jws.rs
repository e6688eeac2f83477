//! The parts of compact JWS (RFC 7515) that HS256 tokens need, on keys prepared once.
//!
//! Every authorized request verifies a token, so this path is kept short: the HMAC key schedule
//! is computed when the keys are loaded (not per token), a token whose header is byte for byte
//! one Authura writes is not decoded again, and the payload is decoded once, into the caller's
//! type. The rules are RFC 8725's: the algorithm comes from the key, never from the token; a
//! `crit` header is refused (no extension is understood); signatures are compared in constant
//! time; base64url must be unpadded and canonical.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// Longest token accepted, in bytes: bounds the work an attacker's input can cause.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// HMAC-SHA256 under one secret, with the key schedule computed once.
#[derive(Clone)]
pub(crate) struct Hs256(hmac::Hmac<sha2::Sha256>);

impl std::fmt::Debug for Hs256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hs256([redacted])")
    }
}

impl Hs256 {
    pub(crate) fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
        let mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Hs256(mac)
    }

    /// The MAC of `parts`, each followed by a NUL byte (for fingerprints).
    pub(crate) fn mac_parts(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }

    /// `signing_input` + `.` + the base64url signature, appended to `token`, which holds the
    /// signing input.
    pub(crate) fn sign_into(&self, token: &mut String) {
        let mut mac = self.0.clone();
        mac.update(token.as_bytes());
        let signature = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, token);
    }

    /// Whether `signature` (base64url) is this key's MAC of the token's signing input, compared
    /// in constant time.
    pub(crate) fn verifies(&self, token: &Compact<'_>) -> bool {
        let mut signature = [0_u8; 32];
        // A MAC is 32 bytes, 43 characters; anything else cannot match (and is not decoded).
        if token.signature.len() != 43
            || URL_SAFE_NO_PAD
                .decode_slice(token.signature, &mut signature)
                .ok()
                != Some(32)
        {
            return false;
        }
        let mut mac = self.0.clone();
        mac.update(token.signing_input.as_bytes());
        mac.verify_slice(&signature).is_ok()
    }
}

/// A compact token split into its three parts, still encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compact<'t> {
    /// The base64url header.
    pub header: &'t str,
    /// The base64url payload.
    pub payload: &'t str,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'t str,
    /// The base64url signature.
    pub signature: &'t str,
}

impl<'t> Compact<'t> {
    /// Splits a token of exactly three parts; `None` for anything else or an oversized one.
    pub(crate) fn split(token: &'t str) -> Option<Self> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        if payload.contains('.') || header.is_empty() || payload.is_empty() {
            return None;
        }
        Some(Compact {
            header,
            payload,
            signing_input,
            signature,
        })
    }

    /// The decoded header; `None` when it is malformed or names a critical extension.
    pub(crate) fn decode_header(&self) -> Option<JoseHeader> {
        let bytes = URL_SAFE_NO_PAD.decode(self.header).ok()?;
        let header: JoseHeader = serde_json::from_slice(&bytes).ok()?;
        // RFC 7515 §4.1.11: a recipient must refuse a `crit` it does not understand, and
        // Authura understands none.
        header.crit.is_none().then_some(header)
    }

    /// The payload decoded into `T`, after the registered claims `expect` names are checked.
    pub(crate) fn claims<T: DeserializeOwned>(&self, expect: &Expected) -> Option<T> {
        let bytes = URL_SAFE_NO_PAD.decode(self.payload).ok()?;
        if !expect.is_empty() {
            let registered: Registered<'_> = serde_json::from_slice(&bytes).ok()?;
            if !expect.accepts(&registered) {
                return None;
            }
        }
        serde_json::from_slice(&bytes).ok()
    }
}

/// The JOSE header fields Authura reads.
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The issuer and audience a token must name, when configured (present, not merely right when
/// present).
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl Expected {
    fn is_empty(&self) -> bool {
        self.issuer.is_none() && self.audience.is_none()
    }

    fn accepts(&self, claims: &Registered<'_>) -> bool {
        let issuer = self
            .issuer
            .as_deref()
            .is_none_or(|iss| claims.iss.as_deref() == Some(iss));
        let audience = self
            .audience
            .as_deref()
            .is_none_or(|aud| match &claims.aud {
                Some(Audience::One(one)) => one == aud,
                Some(Audience::Many(many)) => many.iter().any(|a| a == aud),
                None => false,
            });
        issuer && audience
    }
}

#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(default, borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    aud: Option<Audience<'a>>,
}

/// RFC 7519 §4.1.3: one audience or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

/// `base64url(header)` for a header serialized as given.
pub(crate) fn encoded_header(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str, key: &Hs256) -> String {
        let mut t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        key.sign_into(&mut t);
        t
    }

    #[test]
    fn signatures_verify_only_under_their_key_and_input() {
        let key = Hs256::new(b"0123456789abcdef0123456789abcdef");
        let other = Hs256::new(b"0123456789abcdef0123456789abcdeF");
        let t = token(r#"{"alg":"HS256"}"#, r#"{"a":1}"#, &key);
        let c = Compact::split(&t).unwrap();
        assert!(key.verifies(&c));
        assert!(!other.verifies(&c));
        // The same signature over another payload.
        let sig = t.rsplit_once('.').unwrap().1;
        let forged = format!(
            "{}.{}.{sig}",
            c.header,
            URL_SAFE_NO_PAD.encode(r#"{"a":2}"#)
        );
        assert!(!key.verifies(&Compact::split(&forged).unwrap()));
        // Padded, truncated or non-canonical signatures.
        let last = if sig.ends_with('A') { 'B' } else { 'A' };
        for bad in [
            format!("{sig}="),
            sig[..42].to_owned(),
            format!("{}{last}", &sig[..42]),
        ] {
            let t = format!("{}.{bad}", c.signing_input);
            if let Some(c) = Compact::split(&t) {
                assert!(!key.verifies(&c), "{bad}");
            }
        }
    }

    #[test]
    fn only_three_part_tokens_of_bounded_size_split() {
        assert!(Compact::split("a.b.c").is_some());
        assert!(Compact::split("a.b.").is_some());
        for bad in ["", "a.b", "a.b.c.d", ".b.c", "a..c", "abc"] {
            assert!(Compact::split(bad).is_none(), "{bad}");
        }
        let big = format!("a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert!(Compact::split(&big).is_none());
    }

    #[test]
    fn critical_headers_are_refused() {
        let key = Hs256::new(b"k");
        let t = token(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, "{}", &key);
        assert!(Compact::split(&t).unwrap().decode_header().is_none());
        let t = token(r#"{"alg":"HS256","kid":"x","typ":"JWT"}"#, "{}", &key);
        let h = Compact::split(&t).unwrap().decode_header().unwrap();
        assert_eq!((h.alg.as_str(), h.kid.as_deref()), ("HS256", Some("x")));
    }

    #[test]
    fn issuer_and_audience_are_required_when_expected() {
        #[derive(Deserialize, Debug)]
        struct C {
            n: i64,
        }
        let key = Hs256::new(b"k");
        let expect = Expected {
            issuer: Some("https://auth".into()),
            audience: Some("api".into()),
        };
        let cases = [
            (r#"{"n":1,"iss":"https://auth","aud":"api"}"#, true),
            (r#"{"n":1,"iss":"https://auth","aud":["x","api"]}"#, true),
            (r#"{"n":1,"iss":"https://auth","aud":["x"]}"#, false),
            (r#"{"n":1,"iss":"https://auth"}"#, false),
            (r#"{"n":1,"aud":"api"}"#, false),
            (r#"{"n":1,"iss":"https://other","aud":"api"}"#, false),
            (r#"{"n":1,"iss":1,"aud":"api"}"#, false),
        ];
        for (payload, ok) in cases {
            let t = token("{}", payload, &key);
            let c = Compact::split(&t).unwrap();
            assert_eq!(c.claims::<C>(&expect).is_some(), ok, "{payload}");
            // Nothing expected: only the caller's type decides.
            assert_eq!(c.claims::<C>(&Expected::default()).map(|c| c.n), Some(1));
        }
    }
}
