//! Request bodies, through the server's own parsing (`authura_server::fuzzing::parse_bodies`):
//! the first byte chooses JSON or a form, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&kind, body)) = data.split_first() {
        authura_server::fuzzing::parse_bodies(kind & 1 == 0, body);
    }
});
