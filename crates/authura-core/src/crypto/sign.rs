//! The signers and verifiers built once from the keys: [`Key`] for refresh and verification
//! tokens (HS256), [`AccessSigner`] and [`Verifier`] for access tokens (HS256 or a private key
//! parsed once, and the public keys that check them), all over the [`jws`] compact encoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::jws::{self, Compact, Expected, Hs256};
use crate::crypto::keys::{AccessKey, Algorithm, KeyError, PreviousKey, PrivateKey, PublicKey};
use crate::error::CoreError;
use crate::types::Secret;

/// The header of refresh and verification tokens, as every Authura version has written it
/// (`{"typ":"JWT","alg":"HS256"}`), base64url.
pub(crate) const HS256_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

/// A refresh or verification token key: HS256, its key schedule computed once.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    mac: Hs256,
}

impl Key {
    pub(crate) fn new(secret: &Secret) -> Self {
        Key {
            mac: Hs256::new(secret.expose().as_bytes()),
        }
    }

    /// HMAC-SHA256 of `parts` under this key, base64url, for state fingerprints.
    pub(crate) fn fingerprint(&self, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(&self.mac.mac_parts(parts)[..16])
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CoreError> {
        signed(HS256_HEADER, claims, |token| {
            self.mac.sign_into(token);
            Ok(())
        })
    }

    /// The claims of a token this key signed. Its header must be HS256 (byte for byte the one
    /// Authura writes, or one that decodes to `alg` HS256 and no `kid` of another key).
    pub(crate) fn decode<T: DeserializeOwned>(&self, token: &str, expect: &Expected) -> Option<T> {
        let c = Compact::split(token)?;
        if c.header != HS256_HEADER {
            let header = c.decode_header()?;
            if header.alg != "HS256" {
                return None;
            }
        }
        if !self.mac.verifies(&c) {
            return None;
        }
        c.claims(expect)
    }
}

/// `base64url(header) . base64url(claims)`, then the signature `sign` appends.
fn signed<T: Serialize>(
    header: &str,
    claims: &T,
    sign: impl FnOnce(&mut String) -> Result<(), KeyError>,
) -> Result<String, CoreError> {
    let payload = serde_json::to_vec(claims)
        .map_err(|e| CoreError::Internal(format!("token signing failed: {e}")))?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 360);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    sign(&mut token).map_err(|e| CoreError::Internal(format!("token signing failed: {e}")))?;
    Ok(token)
}

/// Signs access tokens: the encoded header (with `kid`) is made once, and the key is parsed once
/// (jsonwebtoken would re-parse a PEM key on every token).
#[derive(Clone)]
pub(crate) struct AccessSigner {
    /// `base64url(header)`.
    header: String,
    key: Signer,
}

#[derive(Clone)]
enum Signer {
    Hmac(Hs256),
    Private(PrivateKey),
}

impl std::fmt::Debug for AccessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessSigner([redacted])")
    }
}

impl AccessSigner {
    pub(crate) fn new(key: &AccessKey) -> Self {
        let signer = match key {
            AccessKey::Hs256(s) => Signer::Hmac(Hs256::new(s.expose().as_bytes())),
            AccessKey::Private(k) => Signer::Private(k.clone()),
        };
        AccessSigner {
            header: access_header(key.algorithm(), &key.kid()),
            key: signer,
        }
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CoreError> {
        signed(&self.header, claims, |token| match &self.key {
            Signer::Hmac(mac) => {
                mac.sign_into(token);
                Ok(())
            }
            Signer::Private(k) => {
                let signature = k.sign(token.as_bytes())?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(&signature, token);
                Ok(())
            }
        })
    }
}

/// `base64url` of the header Authura writes on access tokens of this key.
fn access_header(algorithm: Algorithm, kid: &str) -> String {
    let header = serde_json::json!({
        "alg": algorithm.as_str(),
        "typ": "JWT",
        "kid": kid,
    });
    jws::encoded_header(&header.to_string())
}

/// One key that verifies access tokens, prepared once: HS256 keys with their key schedule,
/// public keys parsed once (aws-lc-rs).
#[derive(Clone)]
pub(crate) struct Verifier {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    /// `base64url` of the header Authura writes with this key: a token carrying exactly it
    /// needs no header decoding.
    pub(crate) header: String,
    check: Check,
}

#[derive(Clone)]
enum Check {
    Hmac(Hs256),
    /// The signature is checked with the key parsed once (aws-lc-rs); the claims as for HS256.
    Public(PublicKey),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({}, kid {})", self.algorithm, self.kid)
    }
}

impl Verifier {
    pub(crate) fn new(key: &PreviousKey) -> Self {
        let algorithm = key.algorithm();
        let kid = key.kid();
        Verifier {
            header: access_header(algorithm, &kid),
            kid,
            algorithm,
            check: match key {
                PreviousKey::Hs256(s) => Check::Hmac(Hs256::new(s.expose().as_bytes())),
                PreviousKey::Public(k) => Check::Public(k.clone()),
            },
        }
    }

    /// The claims of `c` if this key signed it (the header was checked by the caller). The
    /// issuer, audience and payload are checked in one place, [`Compact::claims`], whatever the
    /// algorithm.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        c: &Compact<'_>,
        expect: &Expected,
    ) -> Option<T> {
        let signed = match &self.check {
            Check::Hmac(mac) => mac.verifies(c),
            Check::Public(key) => URL_SAFE_NO_PAD
                .decode(c.signature)
                .is_ok_and(|signature| key.verifies(c.signing_input.as_bytes(), &signature)),
        };
        signed.then(|| c.claims(expect)).flatten()
    }
}
