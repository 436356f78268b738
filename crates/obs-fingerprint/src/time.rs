//! UTC timestamps without a date-time dependency.

use obs_core::time::civil_from_days;
use std::time::{SystemTime, UNIX_EPOCH};

/// A capture instant: Unix milliseconds (negative before 1970).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Instant {
    pub(crate) unix_millis: i64,
}

impl Instant {
    pub(crate) fn now() -> Self {
        let millis = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Instant { unix_millis: millis }
    }

    /// Unix seconds as a float, as event timestamps are written.
    pub(crate) fn unix_seconds(self) -> f64 {
        self.unix_millis as f64 / 1000.0
    }

    /// RFC 3339 in UTC with milliseconds: `2026-02-27T14:30:00.123Z`.
    pub(crate) fn rfc3339(self) -> String {
        let (date, secs, millis) = self.split();
        format!("{date}T{}.{millis:03}Z", clock(secs))
    }

    fn split(self) -> (String, i64, i64) {
        let secs = self.unix_millis.div_euclid(1000);
        let millis = self.unix_millis.rem_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        (format!("{y:04}-{m:02}-{d:02}"), secs.rem_euclid(86_400), millis)
    }
}

fn clock(secs_of_day: i64) -> String {
    format!("{:02}:{:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60)
}

/// `2026-02-27 14:30:00 UTC` from an RFC 3339 UTC timestamp (as written by [`Instant::rfc3339`]);
/// anything else is returned unchanged.
pub(crate) fn display_utc(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(10..11), rfc3339.get(11..19)) {
        (Some(date), Some("T"), Some(time)) if rfc3339.ends_with('Z') => {
            format!("{date} {time} UTC")
        }
        _ => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Instant { unix_millis: 0 }.rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Instant { unix_millis: 1_772_202_600_123 }.rfc3339(),
            "2026-02-27T14:30:00.123Z"
        );
        // 2000-02-29 (a leap day in a century leap year) and the day after.
        assert_eq!(Instant { unix_millis: 951_782_400_000 }.rfc3339(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Instant { unix_millis: 951_868_799_999 }.rfc3339(), "2000-02-29T23:59:59.999Z");
        assert_eq!(Instant { unix_millis: -1 }.rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Instant { unix_millis: 1_500 }.unix_seconds(), 1.5);
    }

    #[test]
    fn display_is_readable_and_tolerant() {
        assert_eq!(display_utc("2026-02-27T14:30:00.123Z"), "2026-02-27 14:30:00 UTC");
        assert_eq!(display_utc("yesterday"), "yesterday");
        assert_eq!(display_utc(""), "");
        assert_eq!(display_utc("2026-02-27é14:30:00Z"), "2026-02-27é14:30:00Z");
    }

    #[test]
    fn now_is_after_2020() {
        assert!(Instant::now().unix_millis > 1_577_836_800_000);
    }
}
