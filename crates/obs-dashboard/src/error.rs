//! What can go wrong when rendering a dashboard.

use std::io;
use std::path::PathBuf;

/// Why a dashboard could not be rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The HTML file could not be written.
    #[error("could not write the dashboard to {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The stored logs could not be read.
    #[error("could not read the logs: {0}")]
    Logs(#[from] obs_storage::StorageError),
    /// A [`crate::Comparison`] was given inconsistent input (no runs, too many runs, a
    /// difference without one value per run).
    #[error("cannot compare the runs: {0}")]
    Compare(String),
    /// The template engine failed. This is a bug in this crate, never caused by event data.
    #[error("could not render the dashboard template: {0}")]
    Template(String),
}
