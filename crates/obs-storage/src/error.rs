//! The error type of every fallible storage operation.

use std::io;
use std::path::PathBuf;

/// What went wrong while opening, writing or reading tiered logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The directory does not exist (reader) or is not a directory.
    #[error("log directory {} does not exist or is not a directory", path.display())]
    MissingDirectory {
        /// The directory that was asked for.
        path: PathBuf,
    },

    /// The directory exists but holds neither tier logs nor `run-*` run directories.
    #[error("no Observatory logs in {}: expected basic/health/debug .log files or run-* subdirectories", dir.display())]
    NoLogs {
        /// The directory that was searched.
        dir: PathBuf,
    },

    /// Opening storage in `OpenMode::CreateNew` over a directory that already holds
    /// logs: writing would mix two runs.
    #[error(
        "{} already holds logs of an earlier run ({}); refusing to mix runs. \
         Choose OpenMode::RunDir (a new run-* subdirectory per run), OpenMode::Append \
         (continue these files after a boundary event) or OpenMode::Overwrite (truncate them), \
         or use an empty directory",
        dir.display(),
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ExistingLogs {
        /// The directory.
        dir: PathBuf,
        /// The log files already there.
        files: Vec<PathBuf>,
    },

    /// The configuration is unusable (bad file names, zero buffer sizes, ...).
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),

    /// The disk (or quota) is full.
    #[error("no space left while {action} {}: {source}", path.display())]
    DiskFull {
        /// What was being done, such as `"writing"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Any other I/O failure, with what was being done and to which path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, such as `"creating directory"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A log file whose first line is not an Observatory event: probably not ours.
    #[error(
        "{} is not an Observatory event log: line {line} is not an event ({reason}); \
         set ReaderConfig::accept_foreign to skip and count such lines instead",
        path.display()
    )]
    NotAnEventLog {
        /// The file.
        path: PathBuf,
        /// The 1-based line number of the offending line.
        line: u64,
        /// Why it did not parse.
        reason: String,
    },

    /// `fingerprint.json` exists but is not valid JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Fingerprint {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// An event could not be encoded as JSON.
    #[error("could not encode an event: {0}")]
    Encode(String),

    /// Events of a tier were discarded because its file kept failing and its retry buffer was
    /// full.
    #[error("{count} {tier} event(s) lost because {} could not be written", path.display())]
    Lost {
        /// The tier.
        tier: obs_core::Tier,
        /// How many events were discarded by this call.
        count: u64,
        /// The file that could not be written.
        path: PathBuf,
    },
}

impl StorageError {
    /// An I/O error about `path`, classified: a full disk becomes [`StorageError::DiskFull`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            StorageError::DiskFull { action, path, source }
        } else {
            StorageError::Io { action, path, source }
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122 on Linux) on Unix; ERROR_DISK_FULL (112) on Windows.
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || (cfg!(unix) && e.raw_os_error() == Some(28))
        || (cfg!(windows) && e.raw_os_error() == Some(112))
}

impl From<StorageError> for obs_core::BackendError {
    fn from(e: StorageError) -> Self {
        obs_core::BackendError::other(e)
    }
}
