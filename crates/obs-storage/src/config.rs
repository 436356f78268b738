//! Settings of [`crate::TieredStorage`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{FileNames, StorageError};

/// What to do when the directory may already hold logs. Runs never mix silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpenMode {
    /// Write directly into `base_dir` (created if missing) when it holds no logs; otherwise
    /// fail with [`StorageError::ExistingLogs`]. Files are created with create-new semantics,
    /// so two processes racing for one directory cannot both win. The default.
    #[default]
    CreateNew,
    /// Create a fresh `run-YYYYMMDD-HHMMSS` subdirectory of `base_dir` (UTC time; `-1`, `-2`,
    /// ... appended when that name is taken) and write there. A run directory is never reused.
    RunDir,
    /// Continue the existing files of `base_dir` (created if missing). A torn last line is
    /// closed with a newline, and every tier file that already had content first gets a
    /// boundary event (see [`crate::is_append_boundary`]).
    Append,
    /// Truncate the tier files of `base_dir` and delete their rotated segments and
    /// `fingerprint.json` before writing.
    Overwrite,
}

/// When written data is forced to the disk with `fsync` (`File::sync_all`).
///
/// Data handed to the OS survives a crash of the process (even `SIGKILL`) under every policy;
/// `fsync` matters only for a crash of the machine or a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Never: the OS writes the page cache back when it chooses.
    Never,
    /// Once, when the storage is closed (and when a rotated segment is finished). The default.
    #[default]
    OnClose,
    /// At every explicit flush (`TrainingLogger::flush`), at `train_end`, and at close.
    OnFlush,
    /// After every write of a buffer to the OS: each epoch end, each health event, each full
    /// buffer. Slow; for runs whose every line must survive a power loss.
    Always,
}

/// The default number of buffered events that triggers a flush of every tier.
pub const DEFAULT_BUFFER_SIZE: usize = 50;

/// The default size of each tier's write buffer: 64 KiB.
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024;

/// The default cap on a tier's unwritten bytes while its file keeps failing: 16 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// Settings of [`crate::TieredStorage`]. Take [`StorageConfig::new`] and set what differs.
///
/// ```
/// use obs_storage::{FsyncPolicy, OpenMode, StorageConfig};
/// let config = StorageConfig::new("training_logs")
///     .mode(OpenMode::RunDir)
///     .write_debug(false)
///     .fsync(FsyncPolicy::OnFlush)
///     .rotate_bytes(Some(256 << 20));
/// assert_eq!(config.buffer_size, 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StorageConfig {
    /// Where the logs go (see [`OpenMode`]). Default `training_logs`.
    pub base_dir: PathBuf,
    /// The tier file names. Default `basic.log`, `health.log`, `debug.log`.
    pub names: FileNames,
    /// Whether debug-tier events are written at all. Default `true`; when `false` no debug file
    /// is created.
    pub write_debug: bool,
    /// When this many events are buffered across the tiers (checked after each batch the bus
    /// hands over), every tier is written to the OS.
    /// Default [`DEFAULT_BUFFER_SIZE`] (50, as the reference); at least 1.
    pub buffer_size: usize,
    /// A tier whose buffer reaches this many bytes is written to the OS at once. Default
    /// [`DEFAULT_BUFFER_BYTES`] (64 KiB); at least 1.
    pub buffer_bytes: usize,
    /// How an existing directory is treated. Default [`OpenMode::CreateNew`].
    pub mode: OpenMode,
    /// When data is fsynced. Default [`FsyncPolicy::OnClose`].
    pub fsync: FsyncPolicy,
    /// Rotate a tier to a new numbered segment (`debug.1.log`, `debug.2.log`, ...) before a
    /// write would take its current segment past this many bytes. A single line larger than the
    /// limit gets a segment of its own. Default `None` (never rotate); at least 1.
    pub rotate_bytes: Option<u64>,
    /// While a tier's file keeps failing (a full disk), its unwritten bytes are kept for a retry
    /// up to this cap; events beyond it are discarded and counted
    /// ([`crate::StorageHandle::lost_events`]). Default [`DEFAULT_MAX_PENDING_BYTES`].
    pub max_pending_bytes: usize,
    /// The process rank in a multi-process run: the tiers go to `rank-<r>/` inside the run
    /// directory (created if missing), so each process of the run writes its own files and no
    /// lock is needed. Default `None`: the tiers go to the run directory itself. Not allowed
    /// with [`OpenMode::RunDir`], whose fresh timestamped directory would differ between
    /// processes. See `docs/storage.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::new("training_logs")
    }
}

impl StorageConfig {
    /// Default settings writing under `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            base_dir: base_dir.into(),
            names: FileNames::default(),
            write_debug: true,
            buffer_size: DEFAULT_BUFFER_SIZE,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            mode: OpenMode::CreateNew,
            fsync: FsyncPolicy::OnClose,
            rotate_bytes: None,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            rank: None,
        }
    }

    /// Sets [`StorageConfig::rank`]: this process writes `<base_dir>/rank-<rank>/`.
    #[must_use]
    pub fn rank(mut self, rank: u32) -> Self {
        self.rank = Some(rank);
        self
    }

    /// Sets [`StorageConfig::mode`].
    #[must_use]
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets [`StorageConfig::names`].
    #[must_use]
    pub fn names(mut self, names: FileNames) -> Self {
        self.names = names;
        self
    }

    /// Sets [`StorageConfig::write_debug`].
    #[must_use]
    pub fn write_debug(mut self, write_debug: bool) -> Self {
        self.write_debug = write_debug;
        self
    }

    /// Sets [`StorageConfig::buffer_size`].
    #[must_use]
    pub fn buffer_size(mut self, events: usize) -> Self {
        self.buffer_size = events;
        self
    }

    /// Sets [`StorageConfig::buffer_bytes`].
    #[must_use]
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Sets [`StorageConfig::fsync`].
    #[must_use]
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Sets [`StorageConfig::rotate_bytes`].
    #[must_use]
    pub fn rotate_bytes(mut self, limit: Option<u64>) -> Self {
        self.rotate_bytes = limit;
        self
    }

    /// Sets [`StorageConfig::max_pending_bytes`].
    #[must_use]
    pub fn max_pending_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_bytes = bytes;
        self
    }

    /// The base directory.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`StorageError::InvalidConfig`] naming the bad setting.
    pub fn validate(&self) -> Result<(), StorageError> {
        self.names.validate()?;
        let bad =
            |what: &str| Err(StorageError::InvalidConfig(format!("{what} must be at least 1")));
        if self.buffer_size == 0 {
            return bad("buffer_size");
        }
        if self.buffer_bytes == 0 {
            return bad("buffer_bytes");
        }
        if self.rotate_bytes == Some(0) {
            return bad("rotate_bytes");
        }
        if self.max_pending_bytes == 0 {
            return bad("max_pending_bytes");
        }
        if self.rank.is_some() && self.mode == OpenMode::RunDir {
            return Err(StorageError::InvalidConfig(
                "rank cannot be combined with OpenMode::RunDir: every process would create its \
                 own timestamped run directory; give all ranks the same base_dir instead"
                    .to_owned(),
            ));
        }
        if self.base_dir.as_os_str().is_empty() {
            return Err(StorageError::InvalidConfig("base_dir is empty".to_owned()));
        }
        Ok(())
    }
}
