//! The three token kinds (SPEC §4): access, refresh and verification, each with its own key and a
//! `purpose` claim that its verifier alone accepts. Refresh and verification tokens carry
//! fingerprints of the user's state, so a password change revokes the former and a used link is
//! refused, without server-side storage. Access tokens are signed with HS256 or an asymmetric key
//! (see [`crate::crypto::keys`]) and name their key in the header's `kid`; refresh and verification
//! tokens, which only Authura reads, stay HS256 under their own secrets.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::crypto::jws::{Compact, Expected};
use crate::crypto::keys::{AccessKey, Algorithm, PreviousKey};
use crate::crypto::sign::{AccessSigner, Key, Verifier};
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
    /// An OAuth sign-in's `state` (SPEC §9), signed with the verification key.
    #[serde(rename = "oauth_state")]
    OAuthState,
}

/// How long an OAuth sign-in's `state` holds (SPEC §9).
pub const OAUTH_STATE_TTL: Duration = Duration::from_secs(600);

/// An OAuth sign-in's `state` (SPEC §9): stateless, signed with `JWT_VERIFY_SECRET`'s key
/// under its own purpose, valid for [`OAUTH_STATE_TTL`]. It is bound to the browser that
/// started the sign-in by `bind`, the SHA-256 of the value of a short-lived `HttpOnly` cookie
/// (which also is the PKCE verifier), and carries the `nonce` the ID token must echo.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OAuthStateClaims {
    /// The provider's name (`google`, …).
    pub provider: String,
    /// Where the browser goes afterwards (validated when the sign-in started).
    pub redirect_url: String,
    /// `session` for `mode=session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The OpenID nonce sent to the provider.
    pub nonce: String,
    /// base64url SHA-256 of the browser cookie's value.
    pub bind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub purpose: Purpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The settings tokens are made with.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// What access tokens are signed with (`JWT_SECRET` or `JWT_PRIVATE_KEY`).
    pub access_key: AccessKey,
    /// Keys that still verify access tokens but sign nothing (`JWT_PREVIOUS_KEYS`).
    pub previous_keys: Vec<PreviousKey>,
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
    /// The session the token is bound to (SPEC §8), only when sessions are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
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
    /// The session the token is bound to, when sessions are on.
    #[serde(default)]
    pub sid: Option<String>,
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
    /// The session the token is bound to (SPEC §8), only when sessions are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The session's refresh generation when issued, only when sessions are on.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "gen")]
    pub generation: Option<i64>,
}

/// A fresh random `jti`, hyphenated, written into `buf`.
fn new_jti(buf: &mut [u8; 36]) -> &str {
    uuid::Uuid::new_v4().hyphenated().encode_lower(buf)
}

/// What `issue_pair` serializes as an access token: `AccessClaims` borrowing from the user.
#[derive(Serialize)]
struct AccessOut<'a> {
    sub: &'a str,
    email: &'a str,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: &'a str,
    purpose: Purpose,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hook_data: Option<&'a HookData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<ActorOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(flatten)]
    extensions: Extensions<'a>,
}

#[derive(Serialize)]
struct ActorOut<'a> {
    sub: &'a str,
}

/// The extension namespaces, each built as it is serialized.
struct Extensions<'a> {
    list: &'a [Arc<dyn ClaimsExtension>],
    input: &'a ClaimsInput<'a>,
}

impl Serialize for Extensions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.list.len()))?;
        for e in self.list {
            map.serialize_entry(e.namespace(), &e.claims(self.input))?;
        }
        map.end()
    }
}

/// What `issue_pair` serializes as a refresh token: `RefreshClaims` borrowing from the user.
#[derive(Serialize)]
struct RefreshOut<'a> {
    sub: &'a str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: &'a str,
    purpose: Purpose,
    pwd: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "gen")]
    generation: Option<i64>,
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

/// What binds a token pair to a session (SPEC §8): its id (`sid` in both tokens) and its refresh
/// generation (`gen` in the refresh token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionBinding {
    pub sid: uuid::Uuid,
    pub generation: i64,
}

/// The state fingerprint of "no user".
pub const ABSENT: &str = "absent";

/// Signs and verifies the three token kinds.
#[derive(Debug, Clone)]
pub struct Tokens {
    access: AccessSigner,
    /// The current key first, then the previous ones.
    access_verifiers: Arc<[Verifier]>,
    refresh: Key,
    verify: Key,
    /// The issuer and audience every token must carry, when configured.
    expected: Expected,
    /// [`Tokens::jwks`], serialized once.
    jwks: Arc<str>,
    settings: Arc<TokenSettings>,
}

impl Tokens {
    /// Checks the keys (secrets ≥ 32 bytes and pairwise different, previous keys distinct from
    /// the current one and from the refresh and verification secrets) and prepares them once.
    ///
    /// # Errors
    /// A message naming the variable at fault.
    pub fn new(settings: TokenSettings) -> Result<Self, String> {
        let mut problems = key_problems(
            &settings.access_key,
            &settings.previous_keys,
            &settings.refresh_secret,
            &settings.verify_secret,
        );
        problems.extend(extension_problems(&settings.extensions));
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let current = match &settings.access_key {
            AccessKey::Hs256(s) => PreviousKey::Hs256(s.clone()),
            AccessKey::Private(k) => PreviousKey::Public(k.public_key().clone()),
        };
        let access_verifiers = std::iter::once(&current)
            .chain(&settings.previous_keys)
            .map(Verifier::new)
            .collect();
        let jwks = jwks(&settings).to_string().into();
        Ok(Tokens {
            access: AccessSigner::new(&settings.access_key),
            jwks,
            access_verifiers,
            refresh: Key::new(&settings.refresh_secret),
            verify: Key::new(&settings.verify_secret),
            expected: Expected {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
            },
            settings: Arc::new(settings),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The JSON Web Key Set (RFC 7517) of every public key that verifies access tokens: the
    /// current one (when it is asymmetric) and the previous ones. Secrets are never published, so
    /// with HS256 and no previous public keys the set is empty.
    pub fn jwks(&self) -> Value {
        jwks(&self.settings)
    }

    /// [`Tokens::jwks`] as JSON text, serialized once when the keys were loaded.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
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
        self.issue_pair_with(user, hook_data, actor, now, None, None, None)
    }

    /// [`Tokens::issue_pair`] for a sign-in bound to a session (SPEC §8): `sid` in both tokens,
    /// `gen` in the refresh token.
    ///
    /// # Errors
    /// `CoreError::Internal` if signing fails.
    pub fn issue_bound_pair(
        &self,
        user: &User,
        hook_data: Option<&HookData>,
        actor: Option<&UserId>,
        now: DateTime<Utc>,
        session: &SessionBinding,
    ) -> Result<TokenPair, CoreError> {
        self.issue_pair_with(user, hook_data, actor, now, None, Some(session), None)
    }

    /// [`Tokens::issue_pair`], with `user`'s password fingerprint when the caller has just
    /// computed it (a refresh compares it with the old token's), so it is not computed twice,
    /// and the session the pair is bound to when sessions are on, and the user's role group
    /// names for the extensions (`HASURA_ROLES_FROM_GROUPS`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue_pair_with(
        &self,
        user: &User,
        hook_data: Option<&HookData>,
        actor: Option<&UserId>,
        now: DateTime<Utc>,
        fingerprint: Option<String>,
        session: Option<&SessionBinding>,
        groups: Option<&[String]>,
    ) -> Result<TokenPair, CoreError> {
        let s = &self.settings;
        let iat = now.timestamp();
        let input = ClaimsInput {
            user,
            hook_data,
            groups,
        };
        let sub = user.id.to_string();
        let verified_at = user.verified_at.as_ref().map(format_time);
        let actor = actor.map(ToString::to_string);
        let (mut access_jti, mut refresh_jti) = ([0u8; 36], [0u8; 36]);
        let mut sid_buf = [0u8; 36];
        let sid = session.map(|b| &*b.sid.hyphenated().encode_lower(&mut sid_buf));
        let pwd = fingerprint.unwrap_or_else(|| self.password_fingerprint(&user.password_hash));
        // Serialized straight from borrowed fields: the same JSON as `AccessClaims` and
        // `RefreshClaims` (field for field, in the same order; tests decode into those).
        let access = AccessOut {
            sub: &sub,
            email: user.email.as_str(),
            role: user.role.as_str(),
            tid: user.tenant.as_ref().map(TenantId::as_str),
            iat,
            exp: iat + secs(s.access_ttl),
            jti: new_jti(&mut access_jti),
            purpose: Purpose::Access,
            verified_at: verified_at.as_deref(),
            hook_data,
            act: actor.as_deref().map(|sub| ActorOut { sub }),
            iss: s.issuer.as_deref(),
            aud: s.audience.as_deref(),
            sid,
            extensions: Extensions {
                list: &s.extensions,
                input: &input,
            },
        };
        let refresh = RefreshOut {
            sub: &sub,
            email: user.email.as_str(),
            tid: user.tenant.as_ref().map(TenantId::as_str),
            iat,
            exp: iat + secs(s.refresh_ttl),
            jti: new_jti(&mut refresh_jti),
            purpose: Purpose::Refresh,
            pwd: &pwd,
            iss: s.issuer.as_deref(),
            aud: s.audience.as_deref(),
            sid,
            generation: session.map(|b| b.generation),
        };
        Ok(TokenPair {
            access_token: self.access.sign(&access)?,
            refresh_token: self.refresh.sign(&refresh)?,
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
        self.issue_verify_for(req, now, self.settings.verify_ttl)
    }

    /// [`Tokens::issue_verify`] with its own lifetime instead of `JWT_VERIFY_EXPIRATION` (the
    /// `password_expired` answer's 10-minute reset token).
    ///
    /// # Errors
    /// As [`Tokens::issue_verify`].
    pub fn issue_verify_for(
        &self,
        req: &VerifyRequest<'_>,
        now: DateTime<Utc>,
        ttl: Duration,
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
            exp: iat + secs(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            purpose: Purpose::Verify,
            nbf: None,
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
        };
        self.verify.sign(&claims)
    }

    /// Verifies an access token: the key is the one its header's `kid` names (current or
    /// previous), and the header's `alg` must be that key's own algorithm. A token without `kid`
    /// (issued before Authura set one) is tried against the HS256 secrets only.
    ///
    /// # Errors
    /// `CoreError::InvalidToken` for any fault.
    pub fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, CoreError> {
        checked(
            self.decode_access(token),
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
        checked(
            self.decode_access(token),
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
        checked(
            self.refresh.decode(token, &self.expected),
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
        checked(
            self.verify.decode(token, &self.expected),
            now,
            Purpose::Verify,
            CoreError::InvalidVerificationToken,
        )
    }

    /// Signs an OAuth `state` (the caller fills every field but the times, `jti`, `purpose`,
    /// `iss` and `aud`, which are set here).
    ///
    /// # Errors
    /// `CoreError::Internal` if signing fails.
    pub fn issue_oauth_state(
        &self,
        mut claims: OAuthStateClaims,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let iat = now.timestamp();
        claims.iat = iat;
        claims.exp = iat + secs(OAUTH_STATE_TTL);
        claims.jti = uuid::Uuid::new_v4().to_string();
        claims.nbf = None;
        claims.purpose = Purpose::OAuthState;
        claims.iss.clone_from(&self.settings.issuer);
        claims.aud.clone_from(&self.settings.audience);
        self.verify.sign(&claims)
    }

    /// Verifies an OAuth `state` (signature, purpose, expiry; the browser binding is the
    /// caller's).
    ///
    /// # Errors
    /// `CoreError::InvalidState` for any fault.
    pub fn verify_oauth_state(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<OAuthStateClaims, CoreError> {
        checked(
            self.verify.decode(token, &self.expected),
            now,
            Purpose::OAuthState,
            CoreError::InvalidState,
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

    /// Decodes an access token with the key its `kid` selects (RFC 8725 §3.1: the algorithm is
    /// the key's, never the token's choice).
    fn decode_access<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        let c = Compact::split(token)?;
        let decode = |v: &Verifier| v.decode(&c, &self.expected);
        // The header Authura wrote with one of the keys: its `alg` and `kid` are that key's.
        if let Some(v) = self
            .access_verifiers
            .iter()
            .find(|v| *v.header == *c.header)
        {
            return decode(v);
        }
        let header = c.decode_header()?;
        match header.kid.as_deref() {
            Some(kid) => {
                let v = self.access_verifiers.iter().find(|v| v.kid == kid)?;
                if header.alg != v.algorithm.as_str() {
                    return None;
                }
                decode(v)
            }
            None if header.alg == Algorithm::HS256.as_str() => self
                .access_verifiers
                .iter()
                .filter(|v| v.algorithm == Algorithm::HS256)
                .find_map(decode),
            None => None,
        }
    }
}

/// Every problem with the keys: the current access secret (if HS256) and the refresh and
/// verification secrets each at least [`MIN_SECRET_BYTES`] and all different; every previous
/// secret long enough and none of them a refresh or verification secret; no previous key equal
/// to the current key or to another previous key.
pub fn key_problems(
    access: &AccessKey,
    previous: &[PreviousKey],
    refresh: &Secret,
    verify: &Secret,
) -> Vec<String> {
    let mut named = vec![
        ("JWT_REFRESH_SECRET", refresh),
        ("JWT_VERIFY_SECRET", verify),
    ];
    let current_name = match access {
        AccessKey::Hs256(s) => {
            named.insert(0, ("JWT_SECRET", s));
            "JWT_SECRET"
        }
        AccessKey::Private(_) => "JWT_PRIVATE_KEY",
    };
    let mut problems = secret_problems(&named);
    let mut kids = vec![(access.kid(), current_name.to_owned())];
    for (i, key) in previous.iter().enumerate() {
        let n = i + 1;
        if let PreviousKey::Hs256(s) = key {
            if s.expose().len() < MIN_SECRET_BYTES {
                problems.push(format!(
                    "JWT_PREVIOUS_KEYS: secret {n} must be at least {MIN_SECRET_BYTES} bytes"
                ));
            }
            for (name, other) in [
                ("JWT_REFRESH_SECRET", refresh),
                ("JWT_VERIFY_SECRET", verify),
            ] {
                if s.ct_eq(other) {
                    problems.push(format!(
                        "JWT_PREVIOUS_KEYS: key {n} is {name}; access tokens must not share a key with other tokens"
                    ));
                }
            }
        }
        let kid = key.kid();
        if let Some((_, same)) = kids.iter().find(|(k, _)| *k == kid) {
            problems.push(format!(
                "JWT_PREVIOUS_KEYS: key {n} is the same key as {same}"
            ));
        }
        kids.push((kid, format!("key {n} of JWT_PREVIOUS_KEYS")));
    }
    problems
}

fn jwks(settings: &TokenSettings) -> Value {
    let current = match &settings.access_key {
        AccessKey::Private(k) => Some(k.public_key().jwk()),
        AccessKey::Hs256(_) => None,
    };
    let previous = settings.previous_keys.iter().filter_map(|k| match k {
        PreviousKey::Public(p) => Some(p.jwk()),
        PreviousKey::Hs256(_) => None,
    });
    let keys: Vec<Value> = current.into_iter().chain(previous).collect();
    serde_json::json!({ "keys": keys })
}

/// Checks a decoded token's purpose and times; `err` for any fault.
fn checked<T: Timed>(
    decoded: Option<T>,
    now: DateTime<Utc>,
    purpose: Purpose,
    err: CoreError,
) -> Result<T, CoreError> {
    match decoded {
        Some(c) if check_times(c.purpose(), purpose, c.exp(), c.nbf(), now).is_some() => Ok(c),
        _ => Err(err),
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
    "sid",
];

/// Every problem with named secrets: each at least [`MIN_SECRET_BYTES`], all different.
pub fn secret_problems(named: &[(&str, &Secret)]) -> Vec<String> {
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

timed!(
    AccessClaims,
    AccessToken,
    RefreshClaims,
    VerifyClaims,
    OAuthStateClaims
);

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
