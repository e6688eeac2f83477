//! Authaus's encodings checked both ways against an independent encoder (Python's `struct` and
//! `base64`): what Python encodes decodes here to the same numbers, and what is encoded here
//! decodes in Python to the same numbers.

use std::collections::BTreeSet;

use authura_core::permit::{
    GroupId, Permission, Permit, permissions_from_base64, permissions_to_base64,
};
use authura_testkit::python::run_json;

/// Python encodes each list of group ids as a permit blob (`>I` each) and each list of
/// permissions as a permission list (`>H` each), both in standard base64.
const ENCODE: &str = "import base64, json, struct, sys\n\
    data = json.load(sys.stdin)\n\
    print(json.dumps({\n\
    'permits': [base64.b64encode(b''.join(struct.pack('>I', g) for g in p)).decode() for p in data['permits']],\n\
    'perms': [base64.b64encode(b''.join(struct.pack('>H', n) for n in p)).decode() for p in data['perms']],\n\
    }))\n";

/// Python decodes each base64 text back into its numbers.
const DECODE: &str = "import base64, json, struct, sys\n\
    data = json.load(sys.stdin)\n\
    def split(text, size, fmt):\n\
    \x20   raw = base64.b64decode(text, validate=True)\n\
    \x20   assert len(raw) % size == 0\n\
    \x20   return [struct.unpack(fmt, raw[i:i + size])[0] for i in range(0, len(raw), size)]\n\
    print(json.dumps({\n\
    'permits': [split(t, 4, '>I') for t in data['permits']],\n\
    'perms': [split(t, 2, '>H') for t in data['perms']],\n\
    }))\n";

#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    permits: Vec<String>,
    perms: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Numbers {
    permits: Vec<Vec<u32>>,
    perms: Vec<Vec<u16>>,
}

/// Ascending, without repeats: the form Authura writes (and Python is given).
fn cases() -> Numbers {
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut permits = vec![
        vec![],
        vec![0],
        vec![1],
        vec![u32::MAX],
        vec![1, 255, 256, 65_535, 65_536, 16_777_216],
    ];
    let mut perms = vec![vec![], vec![0], vec![u16::MAX], vec![1, 255, 256, 4_660]];
    for len in 1..=20 {
        let p: BTreeSet<u32> = (0..len).map(|_| next() as u32).collect();
        permits.push(p.into_iter().collect());
        let q: BTreeSet<u16> = (0..len * 3).map(|_| next() as u16).collect();
        perms.push(q.into_iter().collect());
    }
    Numbers { permits, perms }
}

#[test]
fn python_encodings_decode_here() {
    let numbers = cases();
    let input = serde_json::to_vec(&numbers).unwrap();
    let encoded: Encoded = run_json(ENCODE, &[], &input).unwrap();
    for (ids, text) in numbers.permits.iter().zip(&encoded.permits) {
        let permit = Permit::from_base64(text).unwrap();
        assert_eq!(permit.groups().map(|g| g.0).collect::<Vec<_>>(), *ids);
        // And the same text comes out again.
        assert_eq!(&permit.to_base64(), text);
    }
    for (nums, text) in numbers.perms.iter().zip(&encoded.perms) {
        let set = permissions_from_base64(text).unwrap();
        assert_eq!(set.iter().map(|p| p.0).collect::<Vec<_>>(), *nums);
        assert_eq!(&permissions_to_base64(&set), text);
    }
}

#[test]
fn encodings_made_here_decode_in_python() {
    let numbers = cases();
    let encoded = Encoded {
        permits: numbers
            .permits
            .iter()
            .map(|ids| Permit::new(ids.iter().map(|&i| GroupId(i))).to_base64())
            .collect(),
        perms: numbers
            .perms
            .iter()
            .map(|nums| {
                let set: BTreeSet<Permission> = nums.iter().map(|&n| Permission(n)).collect();
                permissions_to_base64(&set)
            })
            .collect(),
    };
    let input = serde_json::to_vec(&encoded).unwrap();
    let decoded: Numbers = run_json(DECODE, &[], &input).unwrap();
    assert_eq!(decoded, numbers);
}
