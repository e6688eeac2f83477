//! Password hashing: Argon2id (OWASP parameters) for new hashes; Argon2id, bcrypt and the Authaus
//! scrypt format verified, with a flag saying when a stored hash should be rewritten. The
//! `PasswordHasher` trait lets a server run the work on a bounded pool off its async executor.

mod authaus;

use std::sync::OnceLock;

use argon2::{Argon2, Params, PasswordHasher as _};
use async_trait::async_trait;

use crate::error::CoreError;
use crate::types::{PasswordHash, Secret};

/// The outcome of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub valid: bool,
    /// The hash uses another algorithm or weaker parameters: rewrite it as Argon2id.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords; implementations decide where the CPU work runs.
#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug + 'static {
    /// A new Argon2id hash of `password`.
    ///
    /// # Errors
    /// `CoreError::Overloaded` when the hasher's queue is full.
    async fn hash(&self, password: Secret) -> Result<PasswordHash, CoreError>;

    /// Checks `password` against `hash`. With `None` it checks against a dummy hash and answers
    /// invalid, so that an unknown user costs the same work as a known one.
    ///
    /// # Errors
    /// `CoreError::Overloaded` when the hasher's queue is full.
    async fn verify(
        &self,
        password: Secret,
        hash: Option<PasswordHash>,
    ) -> Result<Verification, CoreError>;
}

/// Runs the hashing on the calling task. For tests and for embedders whose runtime may block;
/// `authura-server` uses a bounded thread pool instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct InlineHasher;

#[async_trait]
impl PasswordHasher for InlineHasher {
    async fn hash(&self, password: Secret) -> Result<PasswordHash, CoreError> {
        hash_password(password.expose())
    }

    async fn verify(
        &self,
        password: Secret,
        hash: Option<PasswordHash>,
    ) -> Result<Verification, CoreError> {
        Ok(verify_or_dummy(password.expose(), hash.as_ref()))
    }
}

/// The Argon2id parameters new hashes use (OWASP: m=19 MiB, t=2, p=1).
pub fn params() -> Params {
    Params::default()
}

/// Hashes a password with Argon2id at [`params`] and a random salt, as a PHC string.
///
/// # Errors
/// `CoreError::Internal` if the system random source fails.
pub fn hash_password(password: &str) -> Result<PasswordHash, CoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| PasswordHash::new(h.to_string()))
        .map_err(|e| CoreError::Internal(format!("argon2 hashing failed: {e}")))
}

/// Verifies a password against an Argon2 (any variant), bcrypt or Authaus hash. Unknown formats
/// never match. An Authaus hash is checked against the password trimmed, its NFC form and both as
/// given (see `docs/upgrading.md`), then Argon2id work against the dummy hash is done as well:
/// the scrypt check alone costs about a millisecond, and a wrong password must not tell an
/// account that still has an Authaus hash from an unknown one.
pub fn verify_password(password: &str, hash: &PasswordHash) -> Verification {
    let stored = hash.as_str();
    if stored.starts_with("$argon2") {
        let Ok(parsed) = argon2::PasswordHash::new(stored) else {
            return Verification {
                valid: false,
                needs_rehash: false,
            };
        };
        let valid = argon2_matches(password.as_bytes(), &parsed);
        let current = params();
        let needs_rehash = parsed.algorithm.as_str() != "argon2id"
            || Params::try_from(&parsed).map_or(true, |p| {
                p.m_cost() < current.m_cost()
                    || p.t_cost() < current.t_cost()
                    || p.p_cost() < current.p_cost()
            });
        Verification {
            valid,
            needs_rehash,
        }
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        let valid = bcrypt::verify(password, stored).unwrap_or(false);
        Verification {
            valid,
            needs_rehash: true,
        }
    } else if let Some(authaus) = authaus::AuthausHash::parse(stored) {
        let valid = authaus.matches(password);
        let _ = verify_password(password, dummy_hash());
        Verification {
            valid,
            needs_rehash: true,
        }
    } else {
        Verification {
            valid: false,
            needs_rehash: false,
        }
    }
}

/// Largest Argon2 memory cost a stored hash may ask for (KiB): a hash from the database must
/// not make one login allocate gigabytes.
const MAX_M_COST_KIB: u32 = 256 * 1024;

thread_local! {
    /// Argon2's working memory, kept per thread: 19 MiB allocated and freed per login made the
    /// allocator hold on to hundreds of MiB under load, and cost page faults every time.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes an Argon2 hash with the stored parameters and salt into reused memory, and
/// compares it in constant time.
fn argon2_matches(password: &[u8], parsed: &argon2::PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::new(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let blocks_needed = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let hashed = BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < blocks_needed {
            blocks.resize(blocks_needed, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            &mut blocks[..blocks_needed],
        )
    });
    hashed.is_ok() && subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into()
}

/// [`verify_password`], or with `None` the same work against a dummy hash, always invalid.
pub fn verify_or_dummy(password: &str, hash: Option<&PasswordHash>) -> Verification {
    match hash {
        Some(hash) => verify_password(password, hash),
        None => {
            let _ = verify_password(password, dummy_hash());
            Verification {
                valid: false,
                needs_rehash: false,
            }
        }
    }
}

/// An Argon2id hash of a random value at the current parameters, made once per process.
pub fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = random_token(24);
        hash_password(&random).unwrap_or_else(|_| {
            // The random source failing here means it failed for salts too; a fixed, well-formed
            // hash still costs the same to verify.
            PasswordHash::new(
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                 3Y7Dc2Xn6lV7m7Kc3S1m3j4n0u8Yq2vB8m2pQq1xZ0c",
            )
        })
    })
}

/// `bytes` random bytes from the OS, base64url without padding (for passwords and ids).
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    // getrandom only fails when the OS has no entropy source at all; the hasher's salts would
    // fail first and loudly, so an all-zero buffer here never reaches a user unnoticed.
    let _ = getrandom::fill(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip_at_owasp_parameters() {
        let h = hash_password("Str0ng!pw").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            h.as_str()
        );
        assert_eq!(
            verify_password("Str0ng!pw", &h),
            Verification {
                valid: true,
                needs_rehash: false
            }
        );
        assert_eq!(
            verify_password("Str0ng!pX", &h),
            Verification {
                valid: false,
                needs_rehash: false
            }
        );
    }

    #[test]
    fn weaker_or_legacy_hashes_ask_for_a_rehash() {
        // Argon2i, and Argon2id below the OWASP memory cost.
        let weak = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap_or_default(),
        )
        .hash_password(b"pw")
        .map(|h| PasswordHash::new(h.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_password("pw", &weak),
            Verification {
                valid: true,
                needs_rehash: true
            }
        );

        let bcrypt_hash = bcrypt::hash("Go-Passw0rd!", 4).unwrap_or_default();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = PasswordHash::new(format!("{prefix}{}", &bcrypt_hash[4..]));
            assert_eq!(
                verify_password("Go-Passw0rd!", &h),
                Verification {
                    valid: true,
                    needs_rehash: true
                }
            );
            assert!(!verify_password("wrong", &h).valid);
        }
    }

    #[test]
    fn other_argon2_shapes_verify_and_absurd_costs_are_refused() {
        // Argon2i with a 64-byte output: still verified, and flagged for rehashing.
        let params = Params::new(8192, 3, 1, Some(64)).unwrap();
        let h = Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
            .hash_password(b"Passw0rd!")
            .map(|h| PasswordHash::new(h.to_string()))
            .unwrap();
        assert_eq!(
            verify_password("Passw0rd!", &h),
            Verification {
                valid: true,
                needs_rehash: true
            }
        );
        assert!(!verify_password("Passw0rd?", &h).valid);
        // A stored hash asking for 4 GiB of memory is never computed.
        let greedy = PasswordHash::new(
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Y7Dc2Xn6lV7m7Kc3S1m3j4n0u8Yq2vB8m2pQq1xZ0c",
        );
        assert!(!verify_password("x", &greedy).valid);
    }

    #[test]
    fn unknown_formats_and_dummies_never_match() {
        assert!(!verify_password("x", &PasswordHash::new("plaintext")).valid);
        assert!(!verify_password("", &PasswordHash::new("")).valid);
        assert!(!verify_or_dummy("anything", None).valid);
        assert!(
            dummy_hash()
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }
}
