//! The one error type of the bridges.

use std::io;
use std::path::PathBuf;

use obs_core::BackendError;

/// Why a bridge could not do its work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A directory could not be created (missing permission, a file in the way, a full disk).
    #[error("could not create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An output file could not be created.
    #[error("could not create file {}: {source}", path.display())]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing or syncing an output file failed.
    #[error("could not write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading a file failed.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The run directory or file already exists: a bridge never writes over an earlier run.
    #[error("{} already exists; a bridge never overwrites an earlier run", path.display())]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },
    /// A run id given by the caller is not 1 to 64 characters of `[A-Za-z0-9_-]`.
    #[error("invalid run id {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")]
    InvalidRunId(String),
    /// A W&B project name is empty, longer than 128 characters, or contains one of `/\#?%:`.
    #[error("invalid project name {0:?}: use 1 to 128 characters without / \\ # ? % :")]
    InvalidProject(String),
    /// A file being read is not in the expected format (bad magic, checksum or encoding).
    #[error("corrupt data in {} at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A bridge setting is missing or unusable (no tracking URI, an unsupported scheme).
    #[error("{0}")]
    Config(String),
    /// A tracking server could not be reached after the retries, or refused a request. The
    /// message never holds the token.
    #[error("MLflow: {0}")]
    Http(String),
    /// The bridge was already closed.
    #[error("the bridge is closed")]
    Closed,
}

impl From<BridgeError> for BackendError {
    fn from(e: BridgeError) -> Self {
        match e {
            BridgeError::Closed => BackendError::Closed,
            BridgeError::Write { path, source } => {
                BackendError::io(format!("writing {}", path.display()), source)
            }
            other => BackendError::other(other),
        }
    }
}
