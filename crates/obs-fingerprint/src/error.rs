//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Why a fingerprint could not be captured, saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The shape given for an in-memory dataset does not match its length.
    #[error("dataset shape {shape:?} describes {expected} elements but the slice has {len}")]
    ShapeMismatch {
        /// The shape given.
        shape: Vec<usize>,
        /// The product of the shape.
        expected: usize,
        /// The number of elements in the slice.
        len: usize,
    },
    /// The product of a dataset shape does not fit in `usize`.
    #[error("dataset shape {shape:?} overflows the element count")]
    ShapeOverflow {
        /// The shape given.
        shape: Vec<usize>,
    },
    /// A dataset file or directory could not be read.
    #[error("cannot read dataset {}: {source}", path.display())]
    DatasetIo {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A dataset path is neither a regular file nor a directory (a socket, a FIFO, a device).
    #[error("dataset {} is not a regular file or a directory", path.display())]
    DatasetNotRegular {
        /// The offending path.
        path: PathBuf,
    },
    /// A dataset file changed size while it was being hashed.
    #[error("dataset file {} changed while it was being hashed", path.display())]
    DatasetChanged {
        /// The file that changed.
        path: PathBuf,
    },
    /// The git repository was found but could not be read.
    #[error("git repository at {}: {message}", path.display())]
    Git {
        /// The directory discovery started from.
        path: PathBuf,
        /// What failed, with gix's explanation.
        message: String,
    },
    /// The current directory, the default start of git discovery, is unavailable.
    #[error("cannot determine the current directory for git discovery: {0}")]
    CurrentDir(#[source] io::Error),
    /// A fingerprint file could not be written.
    #[error("cannot write fingerprint to {}: {source}", path.display())]
    Save {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A fingerprint file could not be read.
    #[error("cannot read fingerprint {}: {source}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Text that should hold a fingerprint is not valid fingerprint JSON.
    #[error("invalid fingerprint JSON{}: {source}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Json {
        /// The file the text came from, if any.
        path: Option<PathBuf>,
        /// What the parser found wrong.
        #[source]
        source: serde_json::Error,
    },
}
