//! Access-token keys (SPEC §2, §4): the HS256 secret or the asymmetric private key that signs
//! access tokens, and the previous keys still accepted while keys rotate. Every key carries its
//! own algorithm (taken from its type, never from a token) and a `kid`; keys are parsed once.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::token::MIN_SECRET_BYTES;
use crate::types::Secret;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// What is wrong with a key, an algorithm name or `JWT_PREVIOUS_KEYS`: each message is a
/// sentence an operator can act on (the caller names the variable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected HS256, RS256, ES256 or EdDSA, got {0:?}")]
    UnknownAlgorithm(String),
    #[error("a PEM BEGIN line is not closed with -----")]
    UnclosedBegin,
    #[error("the PEM block {label} has no -----END {label}----- line")]
    NoEnd { label: String },
    #[error(
        "the PEM block {label} has headers (an encrypted legacy key?); convert it with: openssl pkey -in key.pem -out plain.pem"
    )]
    PemHeaders { label: String },
    #[error("the PEM block {label} is not valid base64")]
    Base64 { label: String },
    #[error("a PEM END line has no BEGIN line")]
    EndWithoutBegin,
    #[error("expected only a PEM private key, found other text around it")]
    TextAroundPrivateKey,
    #[error("expected a PEM private key (-----BEGIN PRIVATE KEY-----)")]
    NoPrivateKey,
    #[error("expected one PEM private key, found several blocks")]
    SeveralPrivateKeys,
    #[error("expected exactly one PEM public key")]
    NotOnePublicKey,
    #[error("a {label} block is not a private key")]
    NotAPrivateKey { label: String },
    #[error("a {label} block is not a public key")]
    NotAPublicKey { label: String },
    #[error(
        "the private key is encrypted; decrypt it with: openssl pkey -in key.pem -out plain.pem"
    )]
    EncryptedPrivateKey,
    #[error("the EC private key is not a valid P-256 key (only P-256 is supported)")]
    InvalidEcPrivateKey,
    #[error("the key is a P-384 EC key; only P-256 is supported (ES256)")]
    P384,
    #[error("the private key is not an RSA, P-256 EC or Ed25519 key")]
    UnsupportedPrivateKey,
    #[error("the public key is not an RSA, P-256 EC or Ed25519 key")]
    UnsupportedPublicKey,
    #[error("not a valid RSA public key")]
    InvalidRsaPublicKey,
    #[error("not a valid RSA private key")]
    InvalidRsaPrivateKey,
    #[error("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    RsaBits { bits: usize },
    #[error("the RSA key is too small; at least {MIN_RSA_BITS} bits are required")]
    RsaTooSmall,
    #[error("the RSA public key is not usable: {0}")]
    UnusableRsaPublicKey(String),
    #[error("the EC public key is not a valid P-256 point")]
    InvalidEcPoint,
    #[error("the EC public key is not an uncompressed P-256 point")]
    CompressedEcPoint,
    #[error("the Ed25519 public key is not valid")]
    InvalidEd25519PublicKey,
    #[error("{0} signing failed")]
    SigningFailed(&'static str),
    /// A problem with one PEM block of `JWT_PREVIOUS_KEYS` (numbered from 1).
    #[error("PEM block {n} ({label}): {problem}")]
    InBlock {
        n: usize,
        label: String,
        problem: Box<KeyError>,
    },
    /// A secret of `JWT_PREVIOUS_KEYS` (numbered from 1) is too short.
    #[error(
        "secret {n} is shorter than {MIN_SECRET_BYTES} bytes (secrets are split on commas and newlines)"
    )]
    ShortPreviousSecret { n: usize },
}

/// The algorithms an access token may be signed with (`JWT_ALGORITHM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA256 with a shared secret (the default).
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of at least 2048 bits.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in the order documentation lists them.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The kind of key this algorithm needs, for messages ("a P-256 EC key").
    pub fn key_kind(self) -> &'static str {
        match self {
            Algorithm::HS256 => "a secret",
            Algorithm::RS256 => "an RSA key",
            Algorithm::ES256 => "a P-256 EC key",
            Algorithm::EdDSA => "an Ed25519 key",
        }
    }

    /// Whether the algorithm signs with a private key and verifies with a public one.
    pub fn is_asymmetric(self) -> bool {
        self != Algorithm::HS256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// Parses a JOSE name, exactly as written (`EdDSA`, not `EDDSA`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| KeyError::UnknownAlgorithm(s.to_owned()))
    }
}

/// The key access tokens are signed with.
#[derive(Clone, Debug)]
pub enum AccessKey {
    /// HS256 with this secret (`JWT_SECRET`).
    Hs256(Secret),
    /// RS256, ES256 or EdDSA, as the key's type says (`JWT_PRIVATE_KEY`).
    Private(PrivateKey),
}

impl AccessKey {
    /// The algorithm tokens signed with this key carry.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            AccessKey::Hs256(_) => Algorithm::HS256,
            AccessKey::Private(k) => k.algorithm(),
        }
    }

    /// The `kid` tokens signed with this key carry (see [`hs256_kid`] for secrets).
    pub fn kid(&self) -> String {
        match self {
            AccessKey::Hs256(s) => hs256_kid(s),
            AccessKey::Private(k) => k.public_key().kid().to_owned(),
        }
    }
}

/// A key that is no longer used for signing but still verifies access tokens
/// (`JWT_PREVIOUS_KEYS`), so a rotation logs nobody out.
#[derive(Clone, Debug)]
pub enum PreviousKey {
    /// An old HS256 secret.
    Hs256(Secret),
    /// An old public key (RS256, ES256 or EdDSA by its type); published in the JWKS.
    Public(PublicKey),
}

impl PreviousKey {
    /// The algorithm tokens verified with this key must carry.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PreviousKey::Hs256(_) => Algorithm::HS256,
            PreviousKey::Public(k) => k.algorithm(),
        }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> String {
        match self {
            PreviousKey::Hs256(s) => hs256_kid(s),
            PreviousKey::Public(k) => k.kid().to_owned(),
        }
    }
}

/// A parsed RSA (≥ 2048 bits), P-256 or Ed25519 private key, with its public half.
#[derive(Clone)]
pub struct PrivateKey(Arc<PrivateInner>);

struct PrivateInner {
    pair: Pair,
    public: PublicKey,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, kid {}, [redacted])",
            self.algorithm(),
            self.public_key().kid()
        )
    }
}

impl PrivateKey {
    /// Parses one PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) of any supported type, PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, an `EC PARAMETERS` block before
    /// it is allowed). Nothing else may be in `pem`.
    ///
    /// # Errors
    /// A [`KeyError`] saying what is wrong with the key (the caller names the variable).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let parsed = pem_blocks(pem)?;
        if !parsed.outside.iter().all(|t| t.trim().is_empty()) {
            return Err(KeyError::TextAroundPrivateKey);
        }
        let mut keys = parsed.blocks.iter().filter(|b| b.label != "EC PARAMETERS");
        match (keys.next(), keys.next()) {
            (Some(block), None) => PrivateKey::from_block(&block.label, &block.der),
            (None, _) => Err(KeyError::NoPrivateKey),
            (Some(_), Some(_)) => Err(KeyError::SeveralPrivateKeys),
        }
    }

    /// Parses DER under its PEM label.
    fn from_block(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        let pair = match label {
            "PRIVATE KEY" => pkcs8_pair(der)?,
            "RSA PRIVATE KEY" => Pair::Rsa(
                rsa_pair(RsaKeyPair::from_der(der))?.ok_or(KeyError::InvalidRsaPrivateKey)?,
            ),
            "EC PRIVATE KEY" => Pair::Ec(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::InvalidEcPrivateKey)?,
            ),
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::EncryptedPrivateKey),
            other => {
                return Err(KeyError::NotAPrivateKey {
                    label: other.to_owned(),
                });
            }
        };
        let public = match &pair {
            Pair::Rsa(k) => PublicKey::rsa(k.public_key())?,
            Pair::Ec(k) => PublicKey::ec_point(k.public_key().as_ref())?,
            Pair::Ed(k) => PublicKey::ed25519(k.public_key().as_ref())?,
        };
        Ok(PrivateKey(Arc::new(PrivateInner { pair, public })))
    }

    /// The algorithm this key signs with, from its type.
    pub fn algorithm(&self) -> Algorithm {
        self.0.public.algorithm()
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.0.public
    }

    /// Signs `message` (a JWS signing input), in the JWS signature encoding.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.0.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| KeyError::SigningFailed("RSA"))?;
                Ok(sig)
            }
            Pair::Ec(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::SigningFailed("ECDSA")),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// A parsed RSA, P-256 or Ed25519 public key: its algorithm, `kid` (the RFC 7638 thumbprint) and
/// JWK, and the verifier built from it once.
#[derive(Clone)]
pub struct PublicKey(Arc<PublicInner>);

struct PublicInner {
    algorithm: Algorithm,
    kid: String,
    jwk: Map<String, Value>,
    /// Parsed once; checks the signatures of tokens with this key's `alg`.
    verifier: ParsedPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, kid {})", self.algorithm(), self.kid())
    }
}

impl PublicKey {
    /// Parses one PEM public key: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// A [`KeyError`] saying what is wrong with the key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let parsed = pem_blocks(pem)?;
        match parsed.blocks.as_slice() {
            [block] if parsed.outside.iter().all(|t| t.trim().is_empty()) => {
                PublicKey::from_block(&block.label, &block.der)
            }
            _ => Err(KeyError::NotOnePublicKey),
        }
    }

    fn from_block(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        match label {
            "PUBLIC KEY" => {
                if let Some(point) = der.strip_prefix(P256_SPKI_PREFIX) {
                    PublicKey::ec_point(point)
                } else if let Some(x) = der.strip_prefix(ED25519_SPKI_PREFIX) {
                    PublicKey::ed25519(x)
                } else {
                    PublicKey::rsa_der(der)?.ok_or(KeyError::UnsupportedPublicKey)
                }
            }
            "RSA PUBLIC KEY" => PublicKey::rsa_der(der)?.ok_or(KeyError::InvalidRsaPublicKey),
            other => Err(KeyError::NotAPublicKey {
                label: other.to_owned(),
            }),
        }
    }

    /// The algorithm tokens verified with this key must carry.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` of tokens it verifies.
    pub fn kid(&self) -> &str {
        &self.0.kid
    }

    /// The key as a JWK (RFC 7517) with `kty`, `kid`, `alg`, `use: "sig"` and its parameters.
    pub fn jwk(&self) -> Value {
        Value::Object(self.0.jwk.clone())
    }

    /// Whether `signature` (decoded) is this key's signature of `signing_input`, under the
    /// key's own algorithm.
    pub(crate) fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        self.0.verifier.verify_sig(signing_input, signature).is_ok()
    }

    /// `RSAPublicKey` or RSA SPKI DER; `None` when the DER is not RSA at all.
    fn rsa_der(der: &[u8]) -> Result<Option<Self>, KeyError> {
        match aws_lc_rs::rsa::PublicKey::from_der(der) {
            Ok(key) => PublicKey::rsa(&key).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn rsa(key: &aws_lc_rs::rsa::PublicKey) -> Result<Self, KeyError> {
        let (n, e) = (
            key.modulus().big_endian_without_leading_zero(),
            key.exponent().big_endian_without_leading_zero(),
        );
        let bits = n.len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaBits { bits });
        }
        let (n, e) = (URL_SAFE_NO_PAD.encode(n), URL_SAFE_NO_PAD.encode(e));
        let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        // `as_ref` is the key's RSAPublicKey DER.
        let verifier = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.as_ref())
            .map_err(|e| KeyError::UnusableRsaPublicKey(e.to_string()))?;
        Ok(PublicKey::new(
            Algorithm::RS256,
            &thumbprint,
            json!({"kty": "RSA", "n": n, "e": e}),
            verifier,
        ))
    }

    /// An uncompressed P-256 point (`04 || x || y`).
    fn ec_point(point: &[u8]) -> Result<Self, KeyError> {
        // Checks the point is on the curve.
        let verifier = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|_| KeyError::InvalidEcPoint)?;
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(KeyError::CompressedEcPoint),
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Ok(PublicKey::new(
            Algorithm::ES256,
            &thumbprint,
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            verifier,
        ))
    }

    fn ed25519(raw: &[u8]) -> Result<Self, KeyError> {
        let verifier =
            ParsedPublicKey::new(&ED25519, raw).map_err(|_| KeyError::InvalidEd25519PublicKey)?;
        let x = URL_SAFE_NO_PAD.encode(raw);
        let thumbprint = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        Ok(PublicKey::new(
            Algorithm::EdDSA,
            &thumbprint,
            json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            verifier,
        ))
    }

    fn new(algorithm: Algorithm, thumbprint: &str, jwk: Value, verifier: ParsedPublicKey) -> Self {
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(thumbprint.as_bytes()));
        let mut jwk = match jwk {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        jwk.insert("kid".into(), Value::String(kid.clone()));
        jwk.insert("alg".into(), Value::String(algorithm.as_str().into()));
        jwk.insert("use".into(), Value::String("sig".into()));
        PublicKey(Arc::new(PublicInner {
            algorithm,
            kid,
            jwk,
            verifier,
        }))
    }
}

/// The `kid` of an HS256 secret: the first 12 bytes of HMAC-SHA256 of a fixed label under the
/// secret, base64url. It names the secret without revealing anything about it (guessing the
/// secret from it is no easier than from any token's signature).
pub fn hs256_kid(secret: &Secret) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(b"authura access token key id");
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12])
}

/// Parses `JWT_PREVIOUS_KEYS`: any number of PEM blocks (public keys, or private keys of which
/// only the public half is kept) and HS256 secrets (the text outside PEM blocks, split on commas
/// and newlines, trimmed, each at least [`MIN_SECRET_BYTES`]).
///
/// # Errors
/// Every problem found, each naming the entry (the caller names the variable).
pub fn parse_previous_keys(text: &str) -> Result<Vec<PreviousKey>, Vec<KeyError>> {
    let parsed = pem_blocks(text).map_err(|e| vec![e])?;
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (i, block) in parsed.blocks.iter().enumerate() {
        let n = i + 1;
        let key = match block.label.as_str() {
            "EC PARAMETERS" => continue,
            "PUBLIC KEY" | "RSA PUBLIC KEY" => PublicKey::from_block(&block.label, &block.der),
            _ => PrivateKey::from_block(&block.label, &block.der).map(|k| k.public_key().clone()),
        };
        match key {
            Ok(k) => keys.push(PreviousKey::Public(k)),
            Err(e) => problems.push(KeyError::InBlock {
                n,
                label: block.label.clone(),
                problem: Box::new(e),
            }),
        }
    }
    let secrets = parsed
        .outside
        .iter()
        .flat_map(|t| t.split([',', '\n']))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    for (i, s) in secrets.enumerate() {
        if s.len() < MIN_SECRET_BYTES {
            problems.push(KeyError::ShortPreviousSecret { n: i + 1 });
        } else {
            keys.push(PreviousKey::Hs256(Secret::new(s)));
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

fn pkcs8_pair(der: &[u8]) -> Result<Pair, KeyError> {
    if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
        return Ok(Pair::Ed(k));
    }
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        return Ok(Pair::Ec(k));
    }
    if EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der).is_ok() {
        return Err(KeyError::P384);
    }
    rsa_pair(RsaKeyPair::from_pkcs8(der))?
        .map(Pair::Rsa)
        .ok_or(KeyError::UnsupportedPrivateKey)
}

/// `None` when the DER is not an RSA key at all.
fn rsa_pair(
    parsed: Result<RsaKeyPair, aws_lc_rs::error::KeyRejected>,
) -> Result<Option<RsaKeyPair>, KeyError> {
    match parsed {
        Ok(k) if k.public_modulus_len() * 8 >= MIN_RSA_BITS => Ok(Some(k)),
        Ok(k) => Err(KeyError::RsaBits {
            bits: k.public_modulus_len() * 8,
        }),
        Err(e) if e.description_() == "TooSmall" => Err(KeyError::RsaTooSmall),
        Err(_) => Ok(None),
    }
}

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1), before the point.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (id-Ed25519), before the 32-byte key.
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

struct PemBlock {
    label: String,
    der: Vec<u8>,
}

struct Pem {
    blocks: Vec<PemBlock>,
    /// The text between blocks.
    outside: Vec<String>,
}

/// Splits text into PEM blocks and the text around them. Markers are found anywhere (not only at
/// line starts), and a literal `\n` inside a block is ignored, so a key pasted into one line of
/// an environment file still parses.
fn pem_blocks(text: &str) -> Result<Pem, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut blocks = Vec::new();
    let mut outside = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        outside.push(rest[..start].to_owned());
        let after = &rest[start + BEGIN.len()..];
        let label_end = after.find(DASHES).ok_or(KeyError::UnclosedBegin)?;
        let label = after[..label_end].trim().to_owned();
        let body = &after[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body.find(&end_marker).ok_or_else(|| KeyError::NoEnd {
            label: label.clone(),
        })?;
        let b64: String = body[..body_end]
            .replace("\\n", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if b64.contains(':') {
            return Err(KeyError::PemHeaders { label });
        }
        let der = match STANDARD.decode(b64.as_bytes()) {
            Ok(der) => der,
            Err(_) => return Err(KeyError::Base64 { label }),
        };
        blocks.push(PemBlock { label, der });
        rest = &body[body_end + end_marker.len()..];
    }
    if rest.contains("-----END ") {
        return Err(KeyError::EndWithoutBegin);
    }
    outside.push(rest.to_owned());
    Ok(Pem { blocks, outside })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_and_outside_text() {
        let text = "s1,\n-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\ns2";
        let pem = pem_blocks(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pem.blocks.len(), 1);
        assert_eq!(pem.blocks[0].label, "PUBLIC KEY");
        assert_eq!(pem.blocks[0].der, vec![0, 1, 2]);
        assert_eq!(pem.outside, vec!["s1,\n".to_owned(), "\ns2".to_owned()]);
        let one_line = "-----BEGIN PUBLIC KEY-----\\nAAEC\\n-----END PUBLIC KEY-----";
        assert_eq!(
            pem_blocks(one_line).map(|p| p.blocks[0].der.clone()),
            Ok(vec![0, 1, 2])
        );
        assert!(pem_blocks("-----BEGIN PUBLIC KEY-----\nAAEC\n").is_err());
    }

    #[test]
    fn algorithm_names_are_exact() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
        assert!("none".parse::<Algorithm>().is_err());
        assert!("EDDSA".parse::<Algorithm>().is_err());
    }
}
