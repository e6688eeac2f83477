//! Role groups and permits (SPEC §8a), as Authaus has them: a [`RoleGroup`] is a numbered
//! ([`GroupId`], u32), named ([`GroupName`]) set of [`Permission`]s (u16); a user's [`Permit`] is
//! the set of groups they hold, and their permissions are the union over those groups (a group
//! that no longer exists is skipped: Authaus's best effort, see [`Access::resolve`]).
//!
//! The wire encodings are Authaus's, so its clients keep decoding them: a permit blob is the
//! group ids as big-endian u32s, concatenated ([`Permit::to_blob`], [`Permit::from_blob`]); a
//! group's permission list is big-endian u16s ([`encode_permissions`],
//! [`decode_permissions`]); both travel as standard (padded) base64.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A role group's number (Authaus's `authgroup.id`, a u32 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A permission's number (Authaus's u16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission(pub u16);

/// The most characters a group name has.
pub const GROUP_NAME_MAX_CHARS: usize = 128;

/// A role group's name: non-empty, equal to its own trimmed form (no leading or trailing
/// white space, as Go's `strings.TrimSpace` sees it: Unicode's `White_Space`), at most
/// [`GROUP_NAME_MAX_CHARS`] characters, and free of control characters (so it fits a header
/// and a log line; Authaus has no such rule, but a name with one could not travel in
/// `X-Authura-Groups`). Compared exactly: case-sensitive, as Authaus.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

/// Why a text is not a [`GroupName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGroupName {
    /// The empty text (or only white space).
    #[error("a group name cannot be empty")]
    Empty,
    /// White space before or after.
    #[error("a group name cannot begin or end with white space")]
    Untrimmed,
    /// Over [`GROUP_NAME_MAX_CHARS`].
    #[error("a group name has at most 128 characters")]
    TooLong,
    /// A control character.
    #[error("a group name cannot contain control characters")]
    BadCharacter,
}

impl GroupName {
    /// Checks `name` (never trims it: a name that is not its own trimmed form is refused).
    ///
    /// # Errors
    /// [`InvalidGroupName`] saying which rule failed.
    pub fn parse(name: &str) -> Result<GroupName, InvalidGroupName> {
        if name.trim().is_empty() {
            return Err(InvalidGroupName::Empty);
        }
        if name.trim() != name {
            return Err(InvalidGroupName::Untrimmed);
        }
        if name.chars().count() > GROUP_NAME_MAX_CHARS {
            return Err(InvalidGroupName::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidGroupName::BadCharacter);
        }
        Ok(GroupName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGroup {
    /// Its number.
    pub id: GroupId,
    /// Its unique name.
    pub name: GroupName,
    /// What it grants, in ascending order, without repeats.
    pub permissions: BTreeSet<Permission>,
}

/// A user's permit: the groups they hold, in ascending order, without repeats (Authaus keeps
/// an ordered blob; Authura keeps the set and writes it in ascending order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permit {
    groups: BTreeSet<GroupId>,
}

/// A blob or list whose length is not a multiple of its item size, or text that is not
/// standard base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEncoding {
    /// Not standard (padded) base64.
    #[error("not standard base64")]
    Base64,
    /// A permit blob's length is not a multiple of 4, or a permission list's of 2.
    #[error("the length is not a multiple of the item size")]
    Length,
}

impl Permit {
    /// The permit holding `groups`.
    pub fn new(groups: impl IntoIterator<Item = GroupId>) -> Self {
        Permit {
            groups: groups.into_iter().collect(),
        }
    }

    /// The groups, ascending.
    pub fn groups(&self) -> impl ExactSizeIterator<Item = GroupId> + '_ {
        self.groups.iter().copied()
    }

    /// Whether it holds `group`.
    pub fn holds(&self, group: GroupId) -> bool {
        self.groups.contains(&group)
    }

    /// Whether it holds no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Authaus's permit blob: every group id as a big-endian u32, concatenated.
    pub fn to_blob(&self) -> Vec<u8> {
        self.groups.iter().flat_map(|g| g.0.to_be_bytes()).collect()
    }

    /// Reads a permit blob (repeated ids count once).
    ///
    /// # Errors
    /// `Length` when its length is not a multiple of 4.
    pub fn from_blob(blob: &[u8]) -> Result<Permit, InvalidEncoding> {
        if !blob.len().is_multiple_of(4) {
            return Err(InvalidEncoding::Length);
        }
        Ok(Permit::new(blob.chunks_exact(4).map(|c| {
            GroupId(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        })))
    }

    /// The blob in standard base64, as `/check` and Authaus's tables carry it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_blob())
    }

    /// Reads a standard-base64 permit blob (the empty text is the empty permit).
    ///
    /// # Errors
    /// `Base64` or `Length`.
    pub fn from_base64(text: &str) -> Result<Permit, InvalidEncoding> {
        let blob = STANDARD.decode(text).map_err(|_| InvalidEncoding::Base64)?;
        Permit::from_blob(&blob)
    }
}

/// Authaus's permission list: every number as a big-endian u16, concatenated.
pub fn encode_permissions<'a>(permissions: impl IntoIterator<Item = &'a Permission>) -> Vec<u8> {
    permissions
        .into_iter()
        .flat_map(|p| p.0.to_be_bytes())
        .collect()
}

/// Reads a permission list (repeated numbers count once).
///
/// # Errors
/// `Length` when its length is odd.
pub fn decode_permissions(list: &[u8]) -> Result<BTreeSet<Permission>, InvalidEncoding> {
    if !list.len().is_multiple_of(2) {
        return Err(InvalidEncoding::Length);
    }
    Ok(list
        .chunks_exact(2)
        .map(|c| Permission(u16::from_be_bytes([c[0], c[1]])))
        .collect())
}

/// A permission list in standard base64 (Authaus's `authgroup.permlist`).
pub fn permissions_to_base64<'a>(permissions: impl IntoIterator<Item = &'a Permission>) -> String {
    STANDARD.encode(encode_permissions(permissions))
}

/// Reads a standard-base64 permission list.
///
/// # Errors
/// `Base64` or `Length`.
pub fn permissions_from_base64(text: &str) -> Result<BTreeSet<Permission>, InvalidEncoding> {
    let list = STANDARD.decode(text).map_err(|_| InvalidEncoding::Base64)?;
    decode_permissions(&list)
}

/// What a permit grants once resolved against the groups that exist: the groups (those of the
/// permit that exist, ascending by id), the union of their permissions, and the permit itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The permit's groups that exist: (id, name), ascending by id.
    pub groups: Vec<(GroupId, GroupName)>,
    /// The union of their permissions.
    pub permissions: BTreeSet<Permission>,
    /// The permit as stored (a group since deleted stays in it until rewritten).
    pub permit: Permit,
}

impl Access {
    /// Resolves `permit` against `groups` (every group there is, or at least the permit's):
    /// a group of the permit that does not exist is skipped, never an error (Authaus's best
    /// effort).
    pub fn resolve<'a>(permit: Permit, groups: impl IntoIterator<Item = &'a RoleGroup>) -> Access {
        let mut held = Vec::new();
        let mut permissions = BTreeSet::new();
        for group in groups {
            if permit.holds(group.id) {
                held.push((group.id, group.name.clone()));
                permissions.extend(group.permissions.iter().copied());
            }
        }
        held.sort_by_key(|(id, _)| *id);
        held.dedup_by_key(|(id, _)| *id);
        Access {
            groups: held,
            permissions,
            permit,
        }
    }

    /// Whether the permissions include `permission`.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

/// `PERMISSION_NAMES`: names for permission numbers (a name names one number; a number may
/// have several names, the first in name order is the one shown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionNames {
    by_name: BTreeMap<String, Permission>,
}

impl PermissionNames {
    /// The names given.
    pub fn new(names: impl IntoIterator<Item = (String, Permission)>) -> Self {
        PermissionNames {
            by_name: names.into_iter().collect(),
        }
    }

    /// Whether no name is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The number a name stands for (exact, case-sensitive).
    pub fn number(&self, name: &str) -> Option<Permission> {
        self.by_name.get(name).copied()
    }

    /// The names of `permissions` that have one, in the permissions' order (a number with
    /// several names is given by the first in name order).
    pub fn names<'a>(&self, permissions: impl IntoIterator<Item = &'a Permission>) -> Vec<&str> {
        permissions
            .into_iter()
            .filter_map(|p| {
                self.by_name
                    .iter()
                    .find(|(_, n)| *n == p)
                    .map(|(name, _)| name.as_str())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u32]) -> Permit {
        Permit::new(ids.iter().map(|&i| GroupId(i)))
    }

    #[test]
    fn permit_blobs_are_big_endian_u32s() {
        assert_eq!(ids(&[]).to_blob(), Vec::<u8>::new());
        assert_eq!(ids(&[1]).to_blob(), vec![0, 0, 0, 1]);
        assert_eq!(
            ids(&[0x0102_0304, 7, u32::MAX, 0]).to_blob(),
            vec![0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 255, 255, 255, 255]
        );
        assert_eq!(ids(&[1, 2]).to_base64(), "AAAAAQAAAAI=");
        assert_eq!(ids(&[]).to_base64(), "");
    }

    #[test]
    fn permit_blobs_read_back_and_refuse_bad_lengths() {
        for set in [&[][..], &[0], &[1, 2, 3], &[u32::MAX, 65_536, 256]] {
            let p = ids(set);
            assert_eq!(Permit::from_blob(&p.to_blob()), Ok(p.clone()));
            assert_eq!(Permit::from_base64(&p.to_base64()), Ok(p));
        }
        // Repeats and any order read as the set.
        assert_eq!(
            Permit::from_blob(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]),
            Ok(ids(&[1, 2]))
        );
        for len in [1, 2, 3, 5, 7] {
            assert_eq!(
                Permit::from_blob(&vec![0; len]),
                Err(InvalidEncoding::Length)
            );
        }
        assert_eq!(Permit::from_base64("AAA"), Err(InvalidEncoding::Base64));
        assert_eq!(Permit::from_base64("AAAAAQ"), Err(InvalidEncoding::Base64));
        assert_eq!(
            Permit::from_base64("AAAAAAA="),
            Err(InvalidEncoding::Length)
        );
        assert_eq!(Permit::from_base64("_-__"), Err(InvalidEncoding::Base64));
    }

    #[test]
    fn permission_lists_are_big_endian_u16s() {
        let set: BTreeSet<Permission> = [3, 1, 0x1234, u16::MAX].map(Permission).into();
        let list = encode_permissions(&set);
        assert_eq!(list, vec![0, 1, 0, 3, 0x12, 0x34, 255, 255]);
        assert_eq!(decode_permissions(&list), Ok(set.clone()));
        assert_eq!(
            permissions_from_base64(&permissions_to_base64(&set)),
            Ok(set)
        );
        assert_eq!(decode_permissions(&[]), Ok(BTreeSet::new()));
        assert_eq!(decode_permissions(&[0, 1, 0]), Err(InvalidEncoding::Length));
        assert_eq!(permissions_from_base64("AAE"), Err(InvalidEncoding::Base64));
        assert_eq!(
            permissions_from_base64("AAEA"),
            Err(InvalidEncoding::Length)
        );
    }

    #[test]
    fn group_names_follow_the_rules() {
        for good in [
            "admins",
            "A",
            "Ops team",
            "a,b",
            "ünï 密码",
            &"x".repeat(128),
        ] {
            assert_eq!(
                GroupName::parse(good).map(|n| n.as_str().to_owned()),
                Ok(good.to_owned())
            );
        }
        let bad = [
            ("", InvalidGroupName::Empty),
            ("   ", InvalidGroupName::Empty),
            (" admins", InvalidGroupName::Untrimmed),
            ("admins\t", InvalidGroupName::Untrimmed),
            ("admins\u{3000}", InvalidGroupName::Untrimmed),
            ("a\u{7}b", InvalidGroupName::BadCharacter),
            ("a\nb", InvalidGroupName::BadCharacter),
        ];
        for (name, why) in bad {
            assert_eq!(GroupName::parse(name), Err(why), "{name:?}");
        }
        assert_eq!(
            GroupName::parse(&"é".repeat(129)),
            Err(InvalidGroupName::TooLong)
        );
        // Case-sensitive.
        assert_ne!(GroupName::parse("Admins"), GroupName::parse("admins"));
    }

    #[test]
    fn access_skips_missing_groups_and_unites_permissions() {
        let group = |id, name: &str, perms: &[u16]| RoleGroup {
            id: GroupId(id),
            name: GroupName::parse(name).unwrap_or_else(|e| panic!("{e}")),
            permissions: perms.iter().map(|&p| Permission(p)).collect(),
        };
        let groups = [
            group(2, "b", &[2, 3]),
            group(1, "a", &[1, 2]),
            group(3, "c", &[9]),
        ];
        let access = Access::resolve(ids(&[1, 2, 77]), &groups);
        assert_eq!(
            access
                .groups
                .iter()
                .map(|(i, n)| (i.0, n.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "a"), (2, "b")]
        );
        assert_eq!(
            access.permissions,
            [1, 2, 3].map(Permission).into_iter().collect()
        );
        assert!(access.has(Permission(3)) && !access.has(Permission(9)));
        assert_eq!(access.permit, ids(&[1, 2, 77]));
        assert_eq!(Access::resolve(ids(&[]), &groups).groups, vec![]);
    }

    #[test]
    fn permission_names_map_both_ways() {
        let names = PermissionNames::new([
            ("read".to_owned(), Permission(1)),
            ("write".to_owned(), Permission(2)),
            ("also-read".to_owned(), Permission(1)),
        ]);
        assert_eq!(names.number("write"), Some(Permission(2)));
        assert_eq!(names.number("Write"), None);
        let perms: BTreeSet<Permission> = [1, 2, 3].map(Permission).into();
        assert_eq!(names.names(&perms), vec!["also-read", "write"]);
    }
}
