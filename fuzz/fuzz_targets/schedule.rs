//! Schedules' `cron(…)`, `rate(…)` and `at(…)` expressions with a time zone: parsing never
//! panics, and the next fire after any moment is strictly later than it.
//!
//! Input: expression (`cron(…)`, …) NUL time zone NUL after (ms, decimal) NUL anchor (ms,
//! decimal).
#![no_main]

use lambent_events::schedule::Rule;
use lambent_fuzz::fields;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 4);
    let tz = if f[1].is_empty() {
        "UTC"
    } else {
        f[1].as_str()
    };
    let _ = Rule::from_parts(Some(&f[0]), None, None, Some(tz));
    let _ = Rule::from_parts(None, Some(&f[0]), None, Some(tz));
    let Ok(rule) = Rule::parse(&f[0], tz) else {
        return;
    };
    // The clock and a schedule's creation are the server's: 1970 to 2200.
    let moment = |text: &str, default: i64| {
        text.trim()
            .parse::<i64>()
            .unwrap_or(default)
            .clamp(0, 7_258_118_400_000)
    };
    let after = moment(&f[2], 1_700_000_000_000);
    let anchor = moment(&f[3], 1_690_000_000_000);
    if let Some(next) = rule.next_after(after, anchor) {
        assert!(
            next > after,
            "{} fires at {next}, not after {after}",
            rule.text()
        );
    }
});
