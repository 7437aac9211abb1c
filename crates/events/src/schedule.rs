//! Schedules: `cron(…)` with seconds, `rate(…)` and one-shot `at(…)` expressions in UTC or a
//! named time zone, when each fires next, and the EventBridge "Scheduled Event" a fire sends.
//!
//! Missed fires (Lambent was down): the next fire is always computed strictly after *now*, so
//! a schedule found overdue at start fires exactly once (its event carries the missed time),
//! then keeps its normal cadence.

use crate::EventsError;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use std::str::FromStr;

/// What a schedule says about time.
#[derive(Debug, Clone)]
enum Expression {
    Cron(Box<cron::Schedule>),
    /// Every so many ms, counted from the schedule's creation.
    Rate(i64),
    /// Once, at this local time.
    At(NaiveDateTime),
}

/// A parsed, valid schedule rule.
#[derive(Debug, Clone)]
pub struct Rule {
    expression: Expression,
    tz: Tz,
    /// As stored: `cron(0 */5 * * * *)`, `rate(5 minutes)`, `at(2026-12-01T10:00:00)`.
    text: String,
}

impl Rule {
    /// From the API's fields: exactly one of `cron`, `rate`, `at`; `tz` defaults to UTC.
    pub fn from_parts(
        cron: Option<&str>,
        rate: Option<&str>,
        at: Option<&str>,
        tz: Option<&str>,
    ) -> Result<Rule, EventsError> {
        let text = match (cron, rate, at) {
            (Some(c), None, None) => format!("cron({})", c.trim()),
            (None, Some(r), None) => format!("rate({})", r.trim()),
            (None, None, Some(a)) => format!("at({})", a.trim()),
            _ => {
                return Err(EventsError::InvalidSchedule(
                    "give exactly one of cron, rate or at".into(),
                ))
            }
        };
        Rule::parse(&text, tz.unwrap_or("UTC"))
    }

    /// From the stored form.
    pub fn parse(text: &str, tz: &str) -> Result<Rule, EventsError> {
        let tz = Tz::from_str(tz).map_err(|_| {
            EventsError::InvalidSchedule(format!(
                "unknown time zone '{tz}': use an IANA name such as UTC or Europe/Paris"
            ))
        })?;
        let bad = |why: String| EventsError::InvalidSchedule(why);
        let inner = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|t| t.strip_suffix(')'))
                .map(str::trim)
        };
        let expression = if let Some(c) = inner("cron(") {
            let schedule = cron::Schedule::from_str(c).map_err(|e| {
                bad(format!(
                    "invalid cron expression '{c}': {e} (six fields with seconds first: \
                     'sec min hour day-of-month month day-of-week', e.g. '0 */5 * * * *')"
                ))
            })?;
            Expression::Cron(Box::new(schedule))
        } else if let Some(r) = inner("rate(") {
            Expression::Rate(parse_rate(r).map_err(bad)?)
        } else if let Some(a) = inner("at(") {
            let at = NaiveDateTime::parse_from_str(a, "%Y-%m-%dT%H:%M:%S").map_err(|e| {
                bad(format!(
                    "invalid time '{a}': {e} (use YYYY-MM-DDTHH:MM:SS, local to the time zone)"
                ))
            })?;
            Expression::At(at)
        } else {
            return Err(bad(format!(
                "invalid schedule '{text}': expected cron(…), rate(…) or at(…)"
            )));
        };
        Ok(Rule {
            expression,
            tz,
            text: text.to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// The first fire strictly after `after_ms`; `anchor_ms` (the schedule's creation) is where
    /// a rate counts from. `None`: it never fires again.
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match &self.expression {
            Expression::Cron(schedule) => {
                let after = self.tz.from_utc_datetime(&utc(after_ms).naive_utc());
                schedule
                    .after(&after)
                    .next()
                    .map(|t| t.with_timezone(&Utc).timestamp_millis())
            }
            Expression::Rate(period) => {
                let periods = if after_ms < anchor_ms {
                    0
                } else {
                    (after_ms - anchor_ms) / period + 1
                };
                Some(anchor_ms + periods * period)
            }
            Expression::At(at) => {
                let t = self
                    .tz
                    .from_local_datetime(at)
                    .earliest()?
                    .timestamp_millis();
                (t > after_ms).then_some(t)
            }
        }
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `5 minutes`, `1 hour`, `30 seconds`, `2 days` → ms.
fn parse_rate(r: &str) -> Result<i64, String> {
    let usage = || {
        format!("invalid rate '{r}': expected 'N unit' with unit seconds, minutes, hours or days (e.g. '5 minutes')")
    };
    let (n, unit) = r.split_once(' ').ok_or_else(usage)?;
    let n: i64 = n.trim().parse().map_err(|_| usage())?;
    if n <= 0 {
        return Err(format!("invalid rate '{r}': the value must be positive"));
    }
    let unit_ms = match unit.trim() {
        "second" | "seconds" => 1_000,
        "minute" | "minutes" => 60_000,
        "hour" | "hours" => 3_600_000,
        "day" | "days" => 86_400_000,
        _ => return Err(usage()),
    };
    n.checked_mul(unit_ms).ok_or_else(usage)
}

/// The EventBridge scheduled event a fire sends (`example-eventbridge-schedule.json`).
pub fn scheduled_event(
    id: &str,
    region: &str,
    namespace: &str,
    schedule: &str,
    fire_ms: i64,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": namespace,
        "time": utc(fire_ms).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{namespace}:rule/{schedule}")],
        "detail": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn cron_with_seconds_in_a_time_zone() {
        let r = Rule::from_parts(Some("0 0 10 * * *"), None, None, Some("Europe/Paris")).unwrap();
        assert_eq!(r.text(), "cron(0 0 10 * * *)");
        // 10:00 in Paris in winter is 09:00 UTC.
        let next = r.next_after(ms("2026-01-15T12:00:00Z"), 0).unwrap();
        assert_eq!(next, ms("2026-01-16T09:00:00Z"));
        let every_second = Rule::parse("cron(* * * * * *)", "UTC").unwrap();
        let t = ms("2026-01-15T12:00:00.300Z");
        assert_eq!(
            every_second.next_after(t, 0),
            Some(ms("2026-01-15T12:00:01Z"))
        );
    }

    #[test]
    fn rates_count_from_creation_and_skip_missed_periods() {
        let r = Rule::from_parts(None, Some("5 minutes"), None, None).unwrap();
        assert_eq!(r.next_after(0, 0), Some(300_000));
        // Down for an hour: the next fire is the first one after now, not twelve of them.
        assert_eq!(r.next_after(3_600_001, 0), Some(3_900_000));
        assert!(Rule::from_parts(None, Some("0 minutes"), None, None).is_err());
        assert!(Rule::from_parts(None, Some("5 fortnights"), None, None).is_err());
    }

    #[test]
    fn at_fires_once() {
        let r = Rule::from_parts(
            None,
            None,
            Some("2026-12-01T10:00:00"),
            Some("Europe/Paris"),
        )
        .unwrap();
        let t = ms("2026-12-01T09:00:00Z");
        assert_eq!(r.next_after(t - 1, 0), Some(t));
        assert_eq!(r.next_after(t, 0), None);
    }

    #[test]
    fn bad_rules_say_why() {
        let e = Rule::from_parts(Some("* * *"), None, None, None).unwrap_err();
        assert!(e.to_string().contains("invalid cron expression"), "{e}");
        let e = Rule::from_parts(Some("* * * * * *"), None, None, Some("Mars/Base")).unwrap_err();
        assert!(e.to_string().contains("unknown time zone"), "{e}");
        assert!(Rule::from_parts(None, None, None, None).is_err());
    }

    #[test]
    fn the_event_is_eventbridge_shaped() {
        let e = scheduled_event(
            "id1",
            "local",
            "default",
            "tick",
            ms("2026-01-15T12:00:00Z"),
        );
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["time"], "2026-01-15T12:00:00Z");
        assert_eq!(e["resources"][0], "arn:aws:events:local:default:rule/tick");
    }
}
