//! Time: the [`Clock`] an execution reads and sleeps on (Wait states, retry back-off, Task and
//! execution timeouts), and the timestamp format of ASL (RFC 3339).
//!
//! [`TokioClock`] is the one implementation: wall-clock time advanced by tokio's timer. Under
//! tokio's paused time (`#[tokio::test(start_paused = true)]`) it runs on virtual time: sleeps
//! complete as soon as every task is idle, so a test of a one-hour Wait takes microseconds and
//! concurrent sleepers still wake in deadline order.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The time source of an execution.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
    /// Return once `now() >= deadline`.
    async fn sleep_until(&self, deadline: OffsetDateTime);
}

/// Wall-clock time anchored once, advanced by `tokio::time` (so it follows paused time in tests).
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall: OffsetDateTime,
    instant: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the system time now and advancing with tokio's timer.
    pub fn new() -> Self {
        Self::starting_at(OffsetDateTime::now_utc())
    }

    /// A clock that reads `start` now (tests pin the date this way).
    pub fn starting_at(start: OffsetDateTime) -> Self {
        TokioClock {
            wall: start,
            instant: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall + self.instant.elapsed()
    }

    async fn sleep_until(&self, deadline: OffsetDateTime) {
        let wait = deadline - self.now();
        if wait.is_positive() {
            tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
        }
    }
}

/// Parse an ASL timestamp (RFC 3339, e.g. `2016-03-14T01:59:00Z`).
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Format a timestamp as AWS does in the context object and JSONata (`…T…Z`, milliseconds when
/// not whole seconds).
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{ms:03}Z")
    }
}
