//! File names of the tiers, their rotated segments, and run directory names.

use std::path::{Path, PathBuf};

use obs_core::Tier;
use serde::{Deserialize, Serialize};

use crate::StorageError;
use obs_core::time::civil_from_days;

/// The name of the reproducibility record written next to the logs.
pub const FINGERPRINT_FILE: &str = "fingerprint.json";

/// The prefix of run directories created by `OpenMode::RunDir`.
pub const RUN_DIR_PREFIX: &str = "run-";

/// The file names of the three tiers, relative to the run directory.
///
/// Rotated segments insert a number before the extension: `debug.log`, `debug.1.log`,
/// `debug.2.log`, ... (see [`FileNames::segment_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileNames {
    /// Train and epoch boundaries. Default `basic.log`.
    pub basic: String,
    /// Health checks and alerts. Default `health.log`.
    pub health: String,
    /// Everything else. Default `debug.log`.
    pub debug: String,
}

impl Default for FileNames {
    fn default() -> Self {
        FileNames {
            basic: "basic.log".to_owned(),
            health: "health.log".to_owned(),
            debug: "debug.log".to_owned(),
        }
    }
}

impl FileNames {
    /// Custom names; check them with [`FileNames::validate`] (opening storage does).
    pub fn new(
        basic: impl Into<String>,
        health: impl Into<String>,
        debug: impl Into<String>,
    ) -> Self {
        FileNames { basic: basic.into(), health: health.into(), debug: debug.into() }
    }

    /// The file name of `tier`'s first segment.
    pub fn name(&self, tier: Tier) -> &str {
        match tier {
            Tier::Basic => &self.basic,
            Tier::Health => &self.health,
            Tier::Debug => &self.debug,
        }
    }

    /// The file name of segment `n` of `tier`: `n == 0` is the plain name, later segments
    /// insert `.n` before the extension (`debug.log` → `debug.3.log`; `debug` → `debug.3`).
    pub fn segment_name(&self, tier: Tier, n: u32) -> String {
        let name = self.name(tier);
        if n == 0 {
            return name.to_owned();
        }
        let (stem, ext) = split_ext(name);
        format!("{stem}.{n}{ext}")
    }

    /// Which segment of `tier` the file name `file` is, if any.
    pub fn parse_segment(&self, tier: Tier, file: &str) -> Option<u32> {
        let name = self.name(tier);
        if file == name {
            return Some(0);
        }
        let (stem, ext) = split_ext(name);
        let middle = file.strip_prefix(stem)?.strip_prefix('.')?.strip_suffix(ext)?;
        let valid = !middle.is_empty()
            && !middle.starts_with('0')
            && middle.bytes().all(|b| b.is_ascii_digit());
        if valid { middle.parse().ok() } else { None }
    }

    /// Checks that every name is a plain, distinct file name (no directories, not `.`/`..`).
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] naming the bad name.
    pub fn validate(&self) -> Result<(), StorageError> {
        for tier in Tier::ALL {
            let name = self.name(tier);
            let plain = !name.is_empty()
                && name != "."
                && name != ".."
                && name != FINGERPRINT_FILE
                && !name.contains(['/', '\\', '\0'])
                && !name.starts_with(RUN_DIR_PREFIX);
            if !plain {
                return Err(StorageError::InvalidConfig(format!(
                    "the {tier} file name {name:?} must be a plain file name (no path separators, \
                     not `.`, `..`, {FINGERPRINT_FILE:?} or starting with {RUN_DIR_PREFIX:?})"
                )));
            }
        }
        let mut all = [&self.basic, &self.health, &self.debug];
        all.sort();
        if all[0] == all[1] || all[1] == all[2] {
            return Err(StorageError::InvalidConfig(format!(
                "the three tier file names must differ, got {:?}, {:?}, {:?}",
                self.basic, self.health, self.debug
            )));
        }
        // A segment of one tier must never be mistaken for another tier's file.
        for a in Tier::ALL {
            for b in Tier::ALL {
                if a != b && self.parse_segment(a, self.name(b)).is_some() {
                    return Err(StorageError::InvalidConfig(format!(
                        "the {b} file name {:?} looks like a rotated segment of the {a} file {:?}",
                        self.name(b),
                        self.name(a)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The existing segments of `tier` in `dir`, in reading order (oldest first).
    ///
    /// # Errors
    /// When the directory cannot be listed.
    pub fn segments(&self, dir: &Path, tier: Tier) -> Result<Vec<(u32, PathBuf)>, StorageError> {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if let Some(n) = self.parse_segment(tier, &file) {
                found.push((n, entry.path()));
            }
        }
        found.sort_by_key(|(n, _)| *n);
        Ok(found)
    }
}

/// Splits `debug.log` into `("debug", ".log")`; a name without a dot has an empty extension.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    }
}

/// Parses a run directory name `run-YYYYMMDD-HHMMSS[-n]` into a sort key.
pub(crate) fn run_dir_key(name: &str) -> Option<(&str, u64)> {
    let rest = name.strip_prefix(RUN_DIR_PREFIX)?;
    let (stamp, suffix) = if rest.len() > 15 { rest.split_at(15) } else { (rest, "") };
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 15
        && b[8] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit());
    if !stamp_ok {
        return None;
    }
    if suffix.is_empty() {
        return Some((stamp, 0));
    }
    let n = suffix.strip_prefix('-')?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().map(|n| (stamp, n))
}

/// The run directories (`run-YYYYMMDD-HHMMSS[-n]`) directly under `base_dir`, oldest first.
///
/// # Errors
/// [`StorageError::MissingDirectory`] when `base_dir` is not a directory, or an I/O error
/// when it cannot be listed.
pub fn list_runs(base_dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, StorageError> {
    let base = base_dir.as_ref();
    if !base.is_dir() {
        return Err(StorageError::MissingDirectory { path: base.to_owned() });
    }
    let mut runs: Vec<(String, u64, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(base).map_err(|e| StorageError::io("listing", base, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", base, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if let Some((stamp, n)) = run_dir_key(&name)
            && entry.path().is_dir()
        {
            runs.push((stamp.to_owned(), n, entry.path()));
        }
    }
    runs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    Ok(runs.into_iter().map(|(_, _, p)| p).collect())
}

/// The subdirectory of a run directory that holds rank `rank`'s tiers: `rank-<rank>`.
pub fn rank_dir_name(rank: u32) -> String {
    format!("rank-{rank}")
}

/// The rank of a `rank-<r>` directory name (`r` in decimal, no sign, no leading zeros).
pub fn parse_rank_dir(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("rank-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The `rank-<r>` subdirectories of `run_dir` that hold at least one log, by rank.
///
/// # Errors
/// An I/O error when `run_dir` cannot be listed.
pub fn rank_dirs(run_dir: &Path, names: &FileNames) -> Result<Vec<(u32, PathBuf)>, StorageError> {
    let mut ranks = Vec::new();
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ranks),
        Err(e) => return Err(StorageError::io("listing", run_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", run_dir, e))?;
        let Some(rank) = entry.file_name().to_str().and_then(parse_rank_dir) else { continue };
        let path = entry.path();
        if path.is_dir() && crate::reader::has_logs(&path, names)? {
            ranks.push((rank, path));
        }
    }
    ranks.sort_by_key(|(r, _)| *r);
    Ok(ranks)
}

/// The UTC date and time `YYYYMMDD-HHMMSS` of a Unix time in seconds.
pub(crate) fn utc_stamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let n = FileNames::default();
        assert_eq!(n.segment_name(Tier::Debug, 0), "debug.log");
        assert_eq!(n.segment_name(Tier::Debug, 12), "debug.12.log");
        assert_eq!(n.parse_segment(Tier::Debug, "debug.12.log"), Some(12));
        assert_eq!(n.parse_segment(Tier::Debug, "debug.log"), Some(0));
        for bad in [
            "debug.0.log",
            "debug.01.log",
            "debug..log",
            "debug.x.log",
            "basic.log",
            "debug.1.logx",
        ] {
            assert_eq!(n.parse_segment(Tier::Debug, bad), None, "{bad}");
        }
        let plain = FileNames::new("b", "h", "d");
        assert_eq!(plain.segment_name(Tier::Basic, 2), "b.2");
        assert_eq!(plain.parse_segment(Tier::Basic, "b.2"), Some(2));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(FileNames::default().validate().is_ok());
        for names in [
            FileNames::new("a/b.log", "h.log", "d.log"),
            FileNames::new("", "h.log", "d.log"),
            FileNames::new("..", "h.log", "d.log"),
            FileNames::new("x.log", "x.log", "d.log"),
            FileNames::new("x.log", "x.1.log", "d.log"),
            FileNames::new("run-1.log", "h.log", "d.log"),
        ] {
            let err = names.validate().unwrap_err();
            assert!(matches!(err, StorageError::InvalidConfig(_)), "{names:?}");
        }
    }

    #[test]
    fn run_dir_names_sort_by_time_then_number() {
        assert_eq!(run_dir_key("run-20250102-030405"), Some(("20250102-030405", 0)));
        assert_eq!(run_dir_key("run-20250102-030405-10"), Some(("20250102-030405", 10)));
        for bad in [
            "run-2025",
            "run-20250102-03040x",
            "run-20250102-030405-",
            "run-20250102-030405x1",
            "xrun-20250102-030405",
        ] {
            assert_eq!(run_dir_key(bad), None, "{bad}");
        }
        assert!(run_dir_key("run-20250102-030405-2") < run_dir_key("run-20250102-030405-10"));
    }

    #[test]
    fn rank_dir_names_round_trip() {
        assert_eq!(rank_dir_name(3), "rank-3");
        assert_eq!(parse_rank_dir("rank-0"), Some(0));
        assert_eq!(parse_rank_dir("rank-12"), Some(12));
        for bad in ["rank-", "rank-01", "rank--1", "rank-1x", "rank-99999999999", "ranks-1"] {
            assert_eq!(parse_rank_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_stamps_are_correct() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_740_000_000), "20250219-212000");
        assert_eq!(utc_stamp(4_102_444_799), "20991231-235959");
    }
}
