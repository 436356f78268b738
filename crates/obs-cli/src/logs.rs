//! Opening stored logs for the reading commands, and reporting damaged lines.

use std::path::Path;

use observatory::storage::{LogReader, ReadStats};

use crate::error::{CliError, Context};

/// Opens the run in `dir`: a run directory, or a base directory whose newest `run-*` run is
/// read (as `obs demo --out DIR` leaves it).
pub(crate) fn open(dir: &Path) -> Result<LogReader, CliError> {
    LogReader::open(dir).context(|| format!("cannot read logs in {}", dir.display()))
}

/// Tells (on stderr) what the reader skipped, so a damaged log never passes silently.
pub(crate) fn note_skipped(stats: &ReadStats) {
    if stats.skipped() > 0 {
        eprintln!(
            "obs: note: skipped {} damaged log line(s) ({} corrupt, {} too long)",
            stats.skipped(),
            stats.corrupt_lines,
            stats.too_long_lines
        );
        for bad in &stats.bad_lines {
            eprintln!("  {}:{}: {}", bad.file.display(), bad.line, bad.detail);
        }
    }
    for e in &stats.io_errors {
        eprintln!("obs: note: read error: {e}");
    }
}
