//! The three token kinds (SPEC §4): access, refresh and verification, each with its own key and a
//! `purpose` claim that its verifier alone accepts. Refresh and verification tokens carry
//! fingerprints of the user's state, so a password change revokes the former and a used link is
//! refused, without server-side storage.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::CoreError;
use crate::extension::{ClaimsExtension, ClaimsInput};
use crate::hook::HookData;
use crate::mail::Action;
use crate::types::{PasswordHash, Role, Secret, TenantId, User, UserId, format_time};

/// Shortest secret accepted for any token kind, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Leeway for `exp` and `nbf`, bounded as RFC 8725 advises.
pub const LEEWAY_SECS: i64 = 30;

/// What a token is for; verifiers accept only their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Access,
    Refresh,
    Verify,
}

/// The settings tokens are made with.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub access_secret: Secret,
    pub refresh_secret: Secret,
    pub verify_secret: Secret,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub verify_ttl: Duration,
    /// `iss`, set on output and required on input.
    pub issuer: Option<String>,
    /// `aud`, set on output and required on input.
    pub audience: Option<String>,
    pub extensions: Vec<Arc<dyn ClaimsExtension>>,
}

/// The pair `/token`, `/refresh` and `/verify-email` answer with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// The impersonator, RFC 8693's `act` claim.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
}

/// An access token's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub email: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Not before; never set by Authura, but honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub purpose: Purpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_data: Option<HookData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Extension namespaces.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

/// What authorizing a request needs from an access token, decoded without the extension
/// namespaces (`AccessClaims` keeps those in a `serde(flatten)` map, which buffers every claim).
#[derive(Clone, Debug, Deserialize)]
pub struct AccessToken {
    pub sub: String,
    #[serde(default)]
    pub tid: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub purpose: Purpose,
    pub jti: String,
    /// The impersonating admin, when there is one.
    #[serde(default)]
    pub act: Option<Actor>,
}

/// A refresh token's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub sub: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Not before; never set by Authura, but honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub purpose: Purpose,
    /// Fingerprint of the password hash when issued.
    pub pwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// A verification (mail link) token's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerifyClaims {
    /// The user the link acts on (reset, change-email); absent when there is no user yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The address the link was sent to (for change-email: the new address).
    pub email: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The invited role (invites only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Fingerprint of the user's state when issued ("absent" when no user existed).
    pub state: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Not before; never set by Authura, but honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub purpose: Purpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// What a verification token is issued for.
#[derive(Clone, Debug)]
pub struct VerifyRequest<'a> {
    pub action: Action,
    pub email: &'a crate::types::Email,
    pub tenant: Option<&'a TenantId>,
    /// The user the link acts on, if one exists (its state is fingerprinted).
    pub user: Option<&'a User>,
    pub role: Option<&'a Role>,
}

/// The state fingerprint of "no user".
pub const ABSENT: &str = "absent";

#[derive(Clone)]
struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    secret: Secret,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

impl Key {
    fn new(secret: &Secret) -> Self {
        Key {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            secret: secret.clone(),
        }
    }

    /// HMAC-SHA256 of `parts` under this key, base64url, for state fingerprints.
    fn fingerprint(&self, parts: &[&str]) -> String {
        use base64::Engine as _;
        let Ok(mut mac) =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret.expose().as_bytes())
        else {
            return String::new();
        };
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(&[0]);
        }
        let digest = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

/// Signs and verifies the three token kinds.
#[derive(Debug, Clone)]
pub struct Tokens {
    access: Key,
    refresh: Key,
    verify: Key,
    settings: Arc<TokenSettings>,
}

impl Tokens {
    /// Checks the secrets (each ≥ 32 bytes, pairwise different) and prepares the keys once.
    ///
    /// # Errors
    /// A message naming the variable at fault.
    pub fn new(settings: TokenSettings) -> Result<Self, String> {
        let mut problems = secret_problems([
            ("JWT_SECRET", &settings.access_secret),
            ("JWT_REFRESH_SECRET", &settings.refresh_secret),
            ("JWT_VERIFY_SECRET", &settings.verify_secret),
        ]);
        problems.extend(extension_problems(&settings.extensions));
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Tokens {
            access: Key::new(&settings.access_secret),
            refresh: Key::new(&settings.refresh_secret),
            verify: Key::new(&settings.verify_secret),
            settings: Arc::new(settings),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Issues an access and refresh token for `user`.
    ///
    /// # Errors
    /// `CoreError::Internal` if signing fails.
    pub fn issue_pair(
        &self,
        user: &User,
        hook_data: Option<&HookData>,
        actor: Option<&UserId>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, CoreError> {
        let s = &self.settings;
        let iat = now.timestamp();
        let input = ClaimsInput { user, hook_data };
        let extensions = s
            .extensions
            .iter()
            .map(|e| (e.namespace().to_owned(), e.claims(&input)))
            .collect();
        let access = AccessClaims {
            sub: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            role: user.role.as_str().to_owned(),
            tid: user.tenant.as_ref().map(|t| t.as_str().to_owned()),
            iat,
            exp: iat + secs(s.access_ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            purpose: Purpose::Access,
            nbf: None,
            verified_at: user.verified_at.as_ref().map(format_time),
            hook_data: hook_data.cloned(),
            act: actor.map(|a| Actor { sub: a.to_string() }),
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            extensions,
        };
        let refresh = RefreshClaims {
            sub: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            tid: user.tenant.as_ref().map(|t| t.as_str().to_owned()),
            iat,
            exp: iat + secs(s.refresh_ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            purpose: Purpose::Refresh,
            nbf: None,
            pwd: self.password_fingerprint(&user.password_hash),
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
        };
        Ok(TokenPair {
            access_token: sign(&self.access, &access)?,
            refresh_token: sign(&self.refresh, &refresh)?,
            token_type: "Bearer".into(),
            expires_in: s.access_ttl.as_secs(),
        })
    }

    /// Issues a verification token (a mail link's).
    ///
    /// # Errors
    /// `CoreError::Internal` if signing fails.
    pub fn issue_verify(
        &self,
        req: &VerifyRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let s = &self.settings;
        let iat = now.timestamp();
        let claims = VerifyClaims {
            sub: req.user.map(|u| u.id.to_string()),
            email: req.email.as_str().to_owned(),
            action: req.action.as_str().to_owned(),
            tid: req.tenant.map(|t| t.as_str().to_owned()),
            role: req.role.map(|r| r.as_str().to_owned()),
            state: self.state_fingerprint(req.user),
            iat,
            exp: iat + secs(s.verify_ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            purpose: Purpose::Verify,
            nbf: None,
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
        };
        sign(&self.verify, &claims)
    }

    /// Verifies an access token.
    ///
    /// # Errors
    /// `CoreError::InvalidToken` for any fault.
    pub fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, CoreError> {
        self.verified(
            &self.access,
            token,
            now,
            Purpose::Access,
            CoreError::InvalidToken,
        )
    }

    /// Verifies an access token for authorizing a request: the same checks as
    /// [`Tokens::verify_access`], decoding only what authorization needs.
    ///
    /// # Errors
    /// `CoreError::InvalidToken` for any fault.
    pub fn verify_bearer(&self, token: &str, now: DateTime<Utc>) -> Result<AccessToken, CoreError> {
        self.verified(
            &self.access,
            token,
            now,
            Purpose::Access,
            CoreError::InvalidToken,
        )
    }

    /// Verifies a refresh token (signature, purpose, expiry; the fingerprint is the caller's).
    ///
    /// # Errors
    /// `CoreError::InvalidToken` for any fault.
    pub fn verify_refresh(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshClaims, CoreError> {
        self.verified(
            &self.refresh,
            token,
            now,
            Purpose::Refresh,
            CoreError::InvalidToken,
        )
    }

    /// Verifies a verification token (the state fingerprint is the caller's).
    ///
    /// # Errors
    /// `CoreError::InvalidVerificationToken` for any fault.
    pub fn verify_verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifyClaims, CoreError> {
        self.verified(
            &self.verify,
            token,
            now,
            Purpose::Verify,
            CoreError::InvalidVerificationToken,
        )
    }

    /// The fingerprint a refresh token carries: changes whenever the password hash does.
    pub fn password_fingerprint(&self, hash: &PasswordHash) -> String {
        self.refresh.fingerprint(&["password", hash.as_str()])
    }

    /// The fingerprint a verification token carries: changes with the password hash, the email
    /// or `verified_at`; [`ABSENT`] when there is no user.
    pub fn state_fingerprint(&self, user: Option<&User>) -> String {
        match user {
            None => ABSENT.to_owned(),
            Some(u) => {
                let verified = u.verified_at.as_ref().map(format_time).unwrap_or_default();
                self.verify.fingerprint(&[
                    "state",
                    &u.id.to_string(),
                    u.password_hash.as_str(),
                    u.email.as_str(),
                    &verified,
                ])
            }
        }
    }

    /// Decodes `token` with `key` and checks its purpose and times; `err` for any fault.
    fn verified<T: DeserializeOwned + Timed>(
        &self,
        key: &Key,
        token: &str,
        now: DateTime<Utc>,
        purpose: Purpose,
        err: CoreError,
    ) -> Result<T, CoreError> {
        match self.decode::<T>(key, token, now) {
            Some(c) if check_times(c.purpose(), purpose, c.exp(), c.nbf(), now).is_some() => Ok(c),
            _ => Err(err),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        key: &Key,
        token: &str,
        _now: DateTime<Utc>,
    ) -> Option<T> {
        let mut v = Validation::new(Algorithm::HS256);
        // Expiry is checked against our clock with our leeway (see `check_times`).
        v.validate_exp = false;
        v.validate_nbf = false;
        // A configured issuer or audience must be present, not merely right when present.
        let mut required = vec!["exp"];
        if self.settings.issuer.is_some() {
            required.push("iss");
        }
        if self.settings.audience.is_some() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        match &self.settings.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.settings.issuer {
            v.set_issuer(&[iss]);
        }
        jsonwebtoken::decode::<T>(token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// Claims every access token carries itself; an extension may not take their names.
pub const RESERVED_CLAIMS: &[&str] = &[
    "sub",
    "email",
    "role",
    "tid",
    "iat",
    "exp",
    "nbf",
    "jti",
    "purpose",
    "verified_at",
    "hook_data",
    "act",
    "iss",
    "aud",
];

/// Every problem with the three secrets: each at least [`MIN_SECRET_BYTES`], all different.
pub fn secret_problems(named: [(&str, &Secret); 3]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, secret) in named {
        if secret.expose().len() < MIN_SECRET_BYTES {
            problems.push(format!(
                "{name} must be at least {MIN_SECRET_BYTES} bytes (generate one with: openssl rand -base64 48)"
            ));
        }
    }
    for (i, (a, sa)) in named.iter().enumerate() {
        for (b, sb) in &named[i + 1..] {
            if sa.ct_eq(sb) {
                problems.push(format!("{a} and {b} must be different secrets"));
            }
        }
    }
    problems
}

/// Every problem with the extensions' namespaces: a reserved claim name, or two extensions
/// writing the same claim (either would make tokens with duplicate keys that nobody accepts).
pub fn extension_problems(extensions: &[Arc<dyn ClaimsExtension>]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, e) in extensions.iter().enumerate() {
        let ns = e.namespace();
        if RESERVED_CLAIMS.contains(&ns) {
            problems.push(format!("the claims namespace {ns:?} is a standard claim of Authura's tokens; choose another"));
        }
        if extensions[..i].iter().any(|other| other.namespace() == ns) {
            problems.push(format!("two claims extensions use the namespace {ns:?}"));
        }
    }
    problems
}

/// Compares two fingerprints in constant time.
pub fn fingerprints_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn sign<T: Serialize>(key: &Key, claims: &T) -> Result<String, CoreError> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key.encoding)
        .map_err(|e| CoreError::Internal(format!("token signing failed: {e}")))
}

/// The claims every token kind's checks read.
trait Timed {
    fn purpose(&self) -> Purpose;
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
}

macro_rules! timed {
    ($($t:ty),*) => {$(
        impl Timed for $t {
            fn purpose(&self) -> Purpose { self.purpose }
            fn exp(&self) -> i64 { self.exp }
            fn nbf(&self) -> Option<i64> { self.nbf }
        }
    )*};
}

timed!(AccessClaims, AccessToken, RefreshClaims, VerifyClaims);

fn check_times(
    purpose: Purpose,
    expected: Purpose,
    exp: i64,
    nbf: Option<i64>,
    now: DateTime<Utc>,
) -> Option<()> {
    let now = now.timestamp();
    let started = nbf.is_none_or(|nbf| now >= nbf.saturating_sub(LEEWAY_SECS));
    (purpose == expected && started && now <= exp.saturating_add(LEEWAY_SECS)).then_some(())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}
