//! The free space of the filesystem the database lives on, for readiness: with the disk full
//! every write fails (`SQLITE_FULL`, answered 503) while reads still work, so the instance is
//! reported not ready until space is freed, whether or not a write has failed yet.

use std::path::Path;

use authura_core::StoreError;

/// Below this many bytes free to unprivileged writers, the database's filesystem counts as
/// full: a write appends at least a few 4 KiB pages to the WAL, and its checkpoint more.
pub(crate) const MIN_FREE_BYTES: u64 = 1 << 20;

/// `Unavailable` when the filesystem holding the database at `path` (a path or a `file:` URI)
/// has less than [`MIN_FREE_BYTES`] free. A filesystem whose space cannot be read (another
/// platform, a vanished directory) is not judged here: the query that follows reports it.
pub(crate) fn check(path: &str) -> Result<(), StoreError> {
    match free_bytes(path) {
        Some(free) if free < MIN_FREE_BYTES => Err(StoreError::Unavailable(format!(
            "the database's filesystem is full ({free} bytes free, {MIN_FREE_BYTES} needed)"
        ))),
        _ => Ok(()),
    }
}

/// The bytes an unprivileged writer may still use on the filesystem holding `path`.
#[cfg(unix)]
fn free_bytes(path: &str) -> Option<u64> {
    let file = path
        .strip_prefix("file:")
        .map_or(path, |uri| uri.split(['?', '#']).next().unwrap_or(uri));
    let dir = match Path::new(file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &str) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_with_room_is_not_full_and_an_unknown_one_is_not_judged() {
        let dir = std::env::temp_dir().join("authura.db");
        let path = dir.to_str().unwrap();
        assert!(free_bytes(path).is_some_and(|free| free > 0));
        assert!(free_bytes(&format!("file:{path}?mode=rwc")).is_some());
        assert!(check("/no/such/directory/authura.db").is_ok());
    }
}
