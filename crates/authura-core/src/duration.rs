//! Go duration syntax (`90s`, `5m`, `1h30m`, `720h`, `1.5h`), as the seed's variables use it.

use std::time::Duration;

/// Parses a Go duration string. Negative durations are refused.
///
/// # Errors
/// A message saying what was expected.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let expected =
        || format!("{input:?} is not a duration (expected Go syntax such as 90s, 5m, 1h30m)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(expected());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(expected());
        }
        let value: f64 = num.parse().map_err(|_| expected())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(expected()),
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(expected());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a whole number of days (`90d`, as SPEC writes the audit log's retention) or, failing
/// that, a Go duration ([`parse`]). Go has no day unit, so only variables that SPEC gives in
/// days take this form.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_days_or_go(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    match s.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .filter(|secs| *secs <= 1_000_000_000_000)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{input:?} is too many days")),
        _ => parse(input).map_err(|_| {
            format!(
                "{input:?} is not a duration (expected days such as 90d, or Go syntax such as 720h)"
            )
        }),
    }
}

/// Formats a duration in Go syntax with whole seconds (`1h30m0s`), for printing configuration.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<u64>) {
        assert_eq!(
            parse(input).ok().map(|d| d.as_millis() as u64),
            expected,
            "input {input:?}"
        );
    }

    #[test]
    fn go_durations() {
        check("90s", Some(90_000));
        check("5m", Some(300_000));
        check("1h30m", Some(5_400_000));
        check("720h", Some(2_592_000_000));
        check("1.5h", Some(5_400_000));
        check("500ms", Some(500));
        check("0", Some(0));
        check("1h2m3s4ms", Some(3_723_004));
        check("", None);
        check("5", None);
        check("-5m", None);
        check("5 m", None);
        check("5d", None);
        check("m", None);
        check("1e400h", None);
    }

    #[test]
    fn days_or_go_durations() {
        let days = |input: &str| parse_days_or_go(input).ok().map(|d| d.as_secs());
        assert_eq!(days("90d"), Some(90 * 86_400));
        assert_eq!(days(" 1d "), Some(86_400));
        assert_eq!(days("0d"), Some(0));
        assert_eq!(days("2160h"), Some(90 * 86_400));
        assert_eq!(days("0"), Some(0));
        for bad in [
            "d",
            "1.5d",
            "-1d",
            "1d2h",
            "5",
            "99999999999999999999d",
            "90 d",
        ] {
            assert_eq!(days(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["5m0s", "720h0m0s", "1h30m0s", "45s"] {
            assert_eq!(format(parse(s).unwrap_or_default()), s);
        }
    }
}
