//! Authaus's permit blob and permission list, as bytes and as base64 text (what an imported
//! Authaus table, a `PUT /permits` body or a client hands over): decoding never panics; what
//! decodes re-encodes, in ascending order without repeats, to bytes that decode to the same set;
//! a length that is not a multiple of 4 (a list: 2) is refused; group names parse or refuse
//! without panicking, and what parses is its own trimmed form.
#![no_main]

use std::collections::BTreeSet;

use authura_core::permit::{
    GroupName, Permit, decode_permissions, encode_permissions, permissions_from_base64,
    permissions_to_base64,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Permit::from_blob(data) {
        Ok(permit) => {
            assert!(data.len().is_multiple_of(4));
            let groups: BTreeSet<u32> = data
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(permit.groups().map(|g| g.0).collect::<BTreeSet<_>>(), groups);
            let blob = permit.to_blob();
            assert_eq!(blob.len(), groups.len() * 4);
            assert_eq!(Permit::from_blob(&blob), Ok(permit.clone()));
            assert_eq!(Permit::from_base64(&permit.to_base64()), Ok(permit));
        }
        Err(_) => assert!(!data.len().is_multiple_of(4)),
    }
    match decode_permissions(data) {
        Ok(set) => {
            assert!(data.len().is_multiple_of(2));
            let list = encode_permissions(&set);
            assert_eq!(decode_permissions(&list), Ok(set.clone()));
            assert_eq!(permissions_from_base64(&permissions_to_base64(&set)), Ok(set));
        }
        Err(_) => assert!(!data.len().is_multiple_of(2)),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(permit) = Permit::from_base64(text) {
            assert_eq!(Permit::from_base64(&permit.to_base64()), Ok(permit));
        }
        if let Ok(set) = permissions_from_base64(text) {
            assert_eq!(permissions_from_base64(&permissions_to_base64(&set)), Ok(set));
        }
        if let Ok(name) = GroupName::parse(text) {
            assert_eq!(name.as_str().trim(), text);
            assert!(!text.is_empty() && text.chars().count() <= 128);
        }
    }
});
