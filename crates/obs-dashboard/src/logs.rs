//! Rendering a dashboard from a stored log directory.

use std::path::{Path, PathBuf};

use obs_storage::{LogReader, ReadStats};

use crate::{Dashboard, DashboardConfig, DashboardError};

/// A dashboard built from stored logs, with what the reader met on the way.
#[derive(Debug)]
#[non_exhaustive]
pub struct FromLogs {
    /// The dashboard of every event read.
    pub dashboard: Dashboard,
    /// The run directory that was read (the newest `run-*` when given a base directory).
    pub run_dir: PathBuf,
    /// Lines skipped as corrupt or too long, partial tails, I/O errors.
    pub stats: ReadStats,
}

impl Dashboard {
    /// Reads every tier of the run in `dir` (a run directory, or a base directory whose newest
    /// `run-*` run is read), merged in timestamp order and streamed: memory stays bounded
    /// however large the logs are. The fingerprint comes from `train_start`, or else from the
    /// run's `fingerprint.json`. Damaged lines are skipped and counted, as the reader does.
    ///
    /// # Errors
    /// [`DashboardError::Logs`] when `dir` holds no logs or a log is not an event log.
    pub fn from_logs(
        dir: impl AsRef<Path>,
        config: DashboardConfig,
    ) -> Result<FromLogs, DashboardError> {
        let reader = LogReader::open(dir)?;
        let mut events = reader.read_all()?;
        let mut dashboard = Dashboard::new(config);
        for e in events.by_ref() {
            dashboard.ingest(&e);
        }
        let stats = events.total_stats();
        dashboard.closed = true;
        dashboard.from_logs = true;
        if dashboard.run.fingerprint.is_none() {
            match reader.fingerprint() {
                Ok(Some(fp)) => dashboard.run.fingerprint = Some(fp.into()),
                Ok(None) => {}
                Err(e) => dashboard.add_note("fingerprint.json", format!("unreadable: {e}")),
            }
        }
        dashboard.add_note("log directory", reader.run_dir().display().to_string());
        if stats.skipped() > 0 {
            dashboard.add_note(
                "skipped log lines",
                format!(
                    "{} corrupt, {} too long",
                    crate::render::count(stats.corrupt_lines),
                    crate::render::count(stats.too_long_lines)
                ),
            );
        }
        if !stats.io_errors.is_empty() {
            dashboard.add_note("read errors", stats.io_errors.join("; "));
        }
        Ok(FromLogs { dashboard, run_dir: reader.run_dir().to_owned(), stats })
    }
}

/// Renders the run in `log_dir` to the HTML file `out` (written atomically) and returns what
/// was read. The same page the exporter writes, built from the logs instead of live events.
///
/// # Errors
/// [`DashboardError::Logs`] when the logs cannot be opened, [`DashboardError::Io`] when the
/// file cannot be written.
pub fn render_logs(
    log_dir: impl AsRef<Path>,
    out: impl AsRef<Path>,
    config: DashboardConfig,
) -> Result<FromLogs, DashboardError> {
    let result = Dashboard::from_logs(log_dir, config)?;
    result.dashboard.write(out)?;
    Ok(result)
}
