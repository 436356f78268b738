//! Names that reach the file system: sanitised run names, host names, run ids, timestamps.

use obs_core::time::civil_from_days;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest sanitised path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 64;

/// Turns any string into one safe path component.
///
/// Keeps ASCII letters, digits, `-`, `_` and `.`; every other character (path separators,
/// spaces, control characters, non-ASCII) becomes `_`. Leading dots are removed so the result
/// is never `.`, `..` or a hidden file, the result is cut to [`MAX_COMPONENT_LEN`] bytes, and an
/// empty result becomes `"run"`.
///
/// ```
/// use obs_bridges::sanitize_component;
/// assert_eq!(sanitize_component("../etc/passwd"), "_etc_passwd");
/// assert_eq!(sanitize_component("exp 1: lr=0.1"), "exp_1__lr_0.1");
/// assert_eq!(sanitize_component(""), "run");
/// ```
pub fn sanitize_component(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let mut out: String = mapped.trim_start_matches('.').chars().take(MAX_COMPONENT_LEN).collect();
    if out.is_empty() {
        out.push_str("run");
    }
    out
}

/// The machine's host name, sanitised for file names (`localhost` when unknown).
pub(crate) fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok().or_else(|| std::env::var("COMPUTERNAME").ok()))
        .unwrap_or_default();
    let trimmed = raw.trim();
    if trimmed.is_empty() { "localhost".to_owned() } else { sanitize_component(trimmed) }
}

/// A fresh 64-bit value: the process's random hash keys mixed with a counter and the clock.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// An 8-character run id of `[a-z0-9]`, as W&B generates them.
pub(crate) fn new_run_id() -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut v = random_u64();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(v % 36) as usize] as char;
            v /= 36;
            c
        })
        .collect()
}

/// Whether `id` is a usable run id: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The last second of the year 9999: the end of `google.protobuf.Timestamp`'s valid range.
const MAX_UNIX: f64 = 253_402_300_799.0;

/// Splits Unix seconds into whole seconds and nanoseconds, within the range a protobuf
/// `Timestamp` may hold: 0 for non-finite or negative input, the end of year 9999 at most.
pub(crate) fn split_unix(t: f64) -> (i64, i32) {
    if !t.is_finite() || t < 0.0 {
        return (0, 0);
    }
    if t >= MAX_UNIX {
        return (MAX_UNIX as i64, 0);
    }
    let secs = t.floor();
    let nanos = ((t - secs) * 1e9).round().clamp(0.0, 999_999_999.0);
    (secs as i64, nanos as i32)
}

/// `YYYYMMDD_HHMMSS` in UTC for Unix seconds, the timestamp format of W&B run directories.
pub(crate) fn utc_timespec(t: f64) -> String {
    let (secs, _) = split_unix(t);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}_{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_removes_every_path_trick() {
        for (raw, want) in [
            ("experiment_001", "experiment_001"),
            ("..", "run"),
            (".hidden", "hidden"),
            ("a/b\\c", "a_b_c"),
            ("/abs/path", "_abs_path"),
            ("naïve 名前", "na_ve___"),
            ("tab\tnew\nline\0nul", "tab_new_line_nul"),
            ("C:\\x", "C__x"),
        ] {
            assert_eq!(sanitize_component(raw), want, "{raw:?}");
        }
        assert_eq!(sanitize_component(&"x".repeat(500)).len(), MAX_COMPONENT_LEN);
        let s = sanitize_component(&"é".repeat(500));
        assert_eq!(s.len(), MAX_COMPONENT_LEN);
    }

    #[test]
    fn run_ids_are_eight_lowercase_alphanumerics_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
            assert!(valid_run_id(id));
        }
        for bad in ["", "a/b", "..", "x y", &"a".repeat(65)] {
            assert!(!valid_run_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn utc_timespecs_match_known_dates() {
        assert_eq!(utc_timespec(0.0), "19700101_000000");
        assert_eq!(utc_timespec(1_740_000_000.5), "20250219_212000");
        // A leap day and the end of a century year.
        assert_eq!(utc_timespec(951_782_400.0), "20000229_000000");
        assert_eq!(utc_timespec(4_102_444_799.0), "20991231_235959");
        assert_eq!(utc_timespec(f64::NAN), "19700101_000000");
        assert_eq!(utc_timespec(f64::MAX), "99991231_235959");
        assert_eq!(utc_timespec(-1e300), "19700101_000000");
    }

    #[test]
    fn unix_times_split_into_seconds_and_nanos() {
        assert_eq!(split_unix(1.25), (1, 250_000_000));
        assert_eq!(split_unix(-3.0), (0, 0));
        assert_eq!(split_unix(f64::INFINITY), (0, 0));
        assert_eq!(split_unix(1e300), (253_402_300_799, 0));
        let (_, n) = split_unix(1.999_999_999_9);
        assert!(n <= 999_999_999);
    }
}
