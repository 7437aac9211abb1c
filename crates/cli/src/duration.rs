//! Durations on the command line: `30s`, `15m`, `1h`, `2d`, `1w`, or several together (`1h30m`).

use std::time::Duration;

/// Parses `<number><unit>` pieces, units `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d), as in
/// `30s`, `15m`, `2d` or `1h30m`. A number needs a unit: `30` alone is ambiguous.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration '{text}': expected a number and a unit, e.g. 30s, 15m, 1h, 2d, 1w"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration '{text}' is too long"))?;
    }
    Ok(Duration::from_millis(total))
}

/// The Unix time in ms `d` before `now_ms` (0 if that is before 1970).
pub fn ago_ms(d: Duration, now_ms: u64) -> u64 {
    now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(15 * 60)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_explained() {
        for bad in ["", "30", "h", "1x", "1.5h", "-1h", "1h 30m", "1hh"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("e.g. 30s"), "{bad}: {e}");
        }
        assert!(parse("99999999999999999w")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn ago_saturates() {
        assert_eq!(ago_ms(Duration::from_secs(1), 5_000), 4_000);
        assert_eq!(ago_ms(Duration::from_secs(10), 5_000), 0);
    }
}
