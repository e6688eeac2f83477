//! Password hashing: Argon2id (OWASP parameters) for new hashes; Argon2id, bcrypt and the Authaus
//! scrypt format verified, with a flag saying when a stored hash should be rewritten. Passwords
//! are normalised to NFC before hashing and checking (SPEC §3). The `PasswordHasher` trait lets a
//! server run the work on a bounded pool off its async executor.

mod authaus;

use std::borrow::Cow;
use std::sync::OnceLock;

use argon2::{Argon2, Params};
use async_trait::async_trait;
use unicode_normalization::{UnicodeNormalization as _, is_nfc};

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
    /// A new Argon2id hash of `password`'s NFC form.
    ///
    /// # Errors
    /// `CoreError::Overloaded` when the hasher's queue is full.
    async fn hash(&self, password: Secret) -> Result<PasswordHash, CoreError>;

    /// Checks `password` against `hash` as [`verify_password`] does. With `None` it checks
    /// against a dummy hash and answers invalid, so that an unknown user costs the same work as
    /// a known one.
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

/// `password` in Unicode Normalization Form C (SPEC §3), borrowed when it already is: the form
/// new hashes are computed over and the password policy counts.
pub fn nfc(password: &str) -> Cow<'_, str> {
    if is_nfc(password) {
        Cow::Borrowed(password)
    } else {
        Cow::Owned(password.nfc().collect())
    }
}

/// Hashes a password's NFC form with Argon2id at [`params`] and a random salt, as a PHC string.
///
/// # Errors
/// `CoreError::Internal` if the system random source fails.
pub fn hash_password(password: &str) -> Result<PasswordHash, CoreError> {
    use base64::Engine as _;
    // PHC's B64: the standard alphabet without padding.
    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;
    let failed =
        |e: &dyn std::fmt::Display| CoreError::Internal(format!("argon2 hashing failed: {e}"));
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
    let params = params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    // Into this thread's reused working memory, as verification does: a fresh 19 MiB per new
    // hash made glibc keep hundreds of MiB after a burst of sign-ups.
    BLOCKS
        .with(|cell| {
            let mut blocks = cell.borrow_mut();
            let needed = params.block_count();
            if blocks.len() < needed {
                blocks.resize(needed, argon2::Block::default());
            }
            Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                params.clone(),
            )
            .hash_password_into_with_memory(
                nfc(password).as_bytes(),
                &salt,
                &mut out,
                &mut blocks[..needed],
            )
        })
        .map_err(|e| failed(&e))?;
    Ok(PasswordHash::new(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        B64.encode(salt),
        B64.encode(out)
    )))
}

/// Verifies a password against an Argon2 (any variant), bcrypt or Authaus hash. Unknown formats
/// never match.
///
/// Argon2 and bcrypt hashes are checked against the password's NFC form and, when the password
/// as typed differs from it and the NFC form did not match, as typed: hashes written before
/// passwords were normalised are over the typed form, and one that matches only so is flagged
/// for rehashing (over the NFC form, by [`hash_password`]). A wrong password thus costs one check
/// per distinct form, whatever the account, and so does the dummy hash, which never matches.
///
/// An Authaus hash is checked against the password trimmed, its NFC form and both as given (see
/// `docs/upgrading.md`), then the Argon2id work of the dummy hash is done as well: the scrypt
/// check alone costs about a millisecond, and a wrong password must not tell an account that
/// still has an Authaus hash from an unknown one.
pub fn verify_password(password: &str, hash: &PasswordHash) -> Verification {
    let stored = hash.as_str();
    if stored.starts_with("$argon2") {
        let Ok(parsed) = argon2::PasswordHash::new(stored) else {
            return Verification {
                valid: false,
                needs_rehash: false,
            };
        };
        let matched = match_forms(password, |form| argon2_matches(form, &parsed));
        let current = params();
        let weaker = parsed.algorithm.as_str() != "argon2id"
            || Params::try_from(&parsed).map_or(true, |p| {
                p.m_cost() < current.m_cost()
                    || p.t_cost() < current.t_cost()
                    || p.p_cost() < current.p_cost()
            });
        Verification {
            valid: matched != Matched::Neither,
            needs_rehash: weaker || matched == Matched::Typed,
        }
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        let matched = match_forms(password, |form| {
            bcrypt::verify(form, stored).unwrap_or(false)
        });
        Verification {
            valid: matched != Matched::Neither,
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

/// Which form of a password matched a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matched {
    /// Its NFC form: what every hash written since SPEC §3's normalisation is over.
    Nfc,
    /// The form as typed, which is not NFC: a hash written before, to be rewritten.
    Typed,
    /// Neither.
    Neither,
}

/// Checks `typed`'s NFC form with `matches`, then, when `typed` is not NFC and its NFC form did
/// not match, `typed` itself. Stopping after a match tells nothing a success does not; a
/// failure always costs one check per distinct form.
fn match_forms(typed: &str, mut matches: impl FnMut(&[u8]) -> bool) -> Matched {
    let nfc = nfc(typed);
    if matches(nfc.as_bytes()) {
        Matched::Nfc
    } else if nfc != typed && matches(typed.as_bytes()) {
        Matched::Typed
    } else {
        Matched::Neither
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

#[cfg(test)]
thread_local! {
    /// How many Argon2 hashes this thread has computed in [`argon2_matches`]: tests compare the
    /// work of two paths exactly, beside their timings.
    static ARGON2_RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
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
    #[cfg(test)]
    ARGON2_RUNS.with(|runs| runs.set(runs.get() + 1));
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

/// Whether `stored` parses as an Authaus hash (the strict parser [`verify_password`] reads it
/// with) and, if it does, whether `password` matches it. For the fuzz targets in `fuzz/`, which
/// reach the parser without the dummy Argon2id work; not an API.
#[doc(hidden)]
pub fn authaus_matches(stored: &str, password: &str) -> Option<bool> {
    authaus::AuthausHash::parse(stored).map(|hash| hash.matches(password))
}

/// Whether `stored` is a hash in Authaus's format (what `authura import authaus` carries over
/// and the next successful login rewrites as Argon2id). Parsing only: no password is checked.
pub fn is_authaus_hash(stored: &str) -> bool {
    authaus::AuthausHash::parse(stored).is_some()
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
    use argon2::PasswordHasher as _;

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

    /// A new hash is a PHC string the argon2 crate's own parser and verifier accept (not only
    /// ours), with a fresh salt each time.
    #[test]
    fn new_hashes_are_standard_phc_strings() {
        use argon2::PasswordVerifier as _;
        let a = hash_password("Caf\u{e9}-Pa55!").unwrap();
        let b = hash_password("Caf\u{e9}-Pa55!").unwrap();
        assert_ne!(a, b, "a fresh salt per hash");
        let parsed = argon2::PasswordHash::new(a.as_str()).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.salt.map(|s| s.len()), Some(16));
        Argon2::default()
            .verify_password("Caf\u{e9}-Pa55!".as_bytes(), &parsed)
            .unwrap();
        assert!(
            Argon2::default()
                .verify_password("Caf\u{e9}-Pa55?".as_bytes(), &parsed)
                .is_err()
        );
        // And a hash made by the argon2 crate verifies with ours.
        let theirs = Argon2::default()
            .hash_password("Caf\u{e9}-Pa55!".as_bytes())
            .unwrap()
            .to_string();
        assert!(verify_password("Caf\u{e9}-Pa55!", &PasswordHash::new(theirs)).valid);
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

    /// The fastest run of each of `paths`, taken in turns and in every rotation, `rounds` times
    /// each, so that the paths are compared with each other and need no threshold of their
    /// own. A run is timed in this thread's CPU time where Linux keeps it (`schedstat`), so that
    /// the other work of a busy machine does not decide it; in wall-clock time elsewhere.
    pub(super) fn fastest_in_turns<const N: usize>(
        paths: [&dyn Fn(); N],
        rounds: usize,
    ) -> [std::time::Duration; N] {
        use std::time::{Duration, Instant};
        let cpu_time = || {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            let nanos = stat.split_whitespace().next()?.parse().ok()?;
            Some(Duration::from_nanos(nanos))
        };
        let time = |path: &dyn Fn()| match cpu_time() {
            Some(start) => {
                path();
                cpu_time().unwrap_or(Duration::MAX).saturating_sub(start)
            }
            None => {
                let start = Instant::now();
                path();
                start.elapsed()
            }
        };
        let mut fastest = [Duration::MAX; N];
        for round in 0..rounds * N {
            for i in (0..N).map(|i| (i + round) % N) {
                fastest[i] = fastest[i].min(time(paths[i]));
            }
        }
        fastest
    }

    /// An Argon2id hash at the current parameters of exactly these bytes: what
    /// [`hash_password`] wrote before passwords were normalised.
    fn typed_hash(password: &str) -> PasswordHash {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| PasswordHash::new(h.to_string()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Argon2 hashes [`verify_or_dummy`] computes for `password` against `hash` on this thread.
    fn argon2_runs(password: &str, hash: Option<&PasswordHash>) -> (Verification, u32) {
        let before = ARGON2_RUNS.with(std::cell::Cell::get);
        let v = verify_or_dummy(password, hash);
        (v, ARGON2_RUNS.with(std::cell::Cell::get) - before)
    }

    /// For every class of input (NFC or not, right or wrong, against a hash over the NFC form,
    /// one over the typed form from before normalisation, an Authaus hash, none), the Argon2
    /// work: a wrong password costs a known user exactly what it costs an unknown one, and that
    /// is one hash per distinct form of the input.
    #[test]
    fn a_wrong_password_costs_a_known_user_what_it_costs_an_unknown_one_exactly() {
        let (nfc, nfd) = ("Caf\u{e9}-Pa55!", "Cafe\u{301}-Pa55!");
        let (wrong_nfc, wrong_nfd) = ("Caf\u{e8}-Pa55!", "Cafe\u{300}-Pa55!");
        let authaus = PasswordHash::new(authaus::encode(1, [8; 32], nfd));
        let hashes = [hash_password(nfd).unwrap(), typed_hash(nfd), authaus];
        // (input, Argon2 hashes a wrong one costs: one per distinct form)
        for (input, forms) in [(nfc, 1), (nfd, 2), (wrong_nfc, 1), (wrong_nfd, 2)] {
            let (unknown, runs) = argon2_runs(input, None);
            assert!(!unknown.valid);
            assert_eq!(runs, forms, "an unknown user, {input:?}");
            for hash in &hashes {
                let (known, runs) = argon2_runs(input, Some(hash));
                if known.valid {
                    // A success may stop early; it tells nothing a success does not.
                    assert!(runs <= forms, "{input:?} against {hash:?}: {runs}");
                } else {
                    assert_eq!(runs, forms, "{input:?} against {hash:?}");
                }
            }
        }
    }

    /// The same, timed end to end: a wrong non-NFC password against a known Argon2id hash
    /// costs what it costs against no user, and more than an NFC one does (the difference the
    /// measurement must be able to tell: twice the work), with a generous margin.
    #[test]
    fn a_wrong_non_nfc_password_takes_as_long_for_a_known_user_as_for_an_unknown_one() {
        let _ = dummy_hash();
        let stored = hash_password("Caf\u{e9}-Pa55!").unwrap();
        let wrong_nfd = "Cafe\u{300}-Pa55!";
        let paths: [&dyn Fn(); 3] = [
            &|| assert!(!verify_or_dummy(wrong_nfd, Some(&stored)).valid),
            &|| assert!(!verify_or_dummy(wrong_nfd, None).valid),
            &|| assert!(!verify_or_dummy("Caf\u{e8}-Pa55!", None).valid),
        ];
        let [known, unknown, unknown_nfc] = fastest_in_turns(paths, 4);
        assert!(
            known * 2 <= unknown * 3 && unknown * 2 <= known * 3,
            "a known user took {known:?}, an unknown one {unknown:?}"
        );
        assert!(
            unknown * 5 >= unknown_nfc * 7,
            "two forms took {unknown:?}, one {unknown_nfc:?}"
        );
    }

    #[test]
    fn nfc_borrows_what_is_already_normalised() {
        for (typed, expected) in [
            ("plain", "plain"),
            ("Caf\u{e9}", "Caf\u{e9}"),
            ("Cafe\u{301}", "Caf\u{e9}"),
            ("\u{212b}", "\u{c5}"),
            ("\u{1100}\u{1161}", "\u{ac00}"),
            ("a\u{301}\u{323}", "\u{1ea1}\u{301}"),
            ("", ""),
        ] {
            let got = nfc(typed);
            assert_eq!(got, expected, "{typed:?}");
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                typed == expected,
                "{typed:?}"
            );
        }
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
