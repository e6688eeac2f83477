//! Go durations (`15m`, `1h30m`, `1.5s`, …): parsing never panics, and what parses formats
//! (in whole seconds, as `duration::format` prints configuration) to text that parses back to
//! the same whole seconds.
#![no_main]

use authura_core::duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse(text) {
        let formatted = duration::format(d);
        assert_eq!(
            duration::parse(&formatted),
            Ok(std::time::Duration::from_secs(d.as_secs())),
            "{text:?} → {formatted:?}"
        );
    }
});
