//! The cheap, cloneable view of a storage that the bus thread owns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use obs_core::Tier;
use serde::{Deserialize, Serialize};

use crate::{EventIter, FileNames, LogReader, MergedIter, ReaderConfig, StorageError};

/// Events and bytes of one tier on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSummary {
    /// Complete lines written to the OS (earlier runs included in append mode).
    pub events: u64,
    /// Bytes of the tier's files (all segments).
    pub size_bytes: u64,
}

/// What is on disk, as of the last write of each tier's buffer to the OS. Serialises as the
/// reference's `{"basic": {"events", "size_bytes"}, "health": {...}, "debug": {...},
/// "total_events"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSummary {
    /// `basic.log`.
    pub basic: TierSummary,
    /// `health.log`.
    pub health: TierSummary,
    /// `debug.log` and its segments.
    pub debug: TierSummary,
    /// The sum of the three event counts.
    pub total_events: u64,
}

impl StorageSummary {
    /// The summary of `tier`.
    pub fn tier(&self, tier: Tier) -> TierSummary {
        match tier {
            Tier::Basic => self.basic,
            Tier::Health => self.health,
            Tier::Debug => self.debug,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    pub(crate) events: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) lost: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) run_dir: PathBuf,
    pub(crate) names: FileNames,
    pub(crate) tiers: [TierCounters; 3],
    pub(crate) closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new(run_dir: PathBuf, names: FileNames) -> Self {
        Shared { run_dir, names, tiers: Default::default(), closed: AtomicBool::new(false) }
    }

    pub(crate) fn tier(&self, tier: Tier) -> &TierCounters {
        &self.tiers[crate::tier_index(tier)]
    }
}

/// A cheap, cloneable handle on a [`crate::TieredStorage`], valid after the storage was handed to
/// a logger (whose bus thread then owns it) and after it was closed.
///
/// Every number is as of the last time each tier's buffer was written to the OS: at each
/// `epoch_end` for basic, at once for health, at `train_end`, at a full buffer, at
/// `TrainingLogger::flush` and at close. Call `logger.flush()` first for up-to-date numbers.
#[derive(Clone, Debug)]
pub struct StorageHandle {
    pub(crate) shared: Arc<Shared>,
}

impl StorageHandle {
    /// Events and bytes per tier, as on disk after the last flush.
    pub fn summary(&self) -> StorageSummary {
        let get = |tier| {
            let c = self.shared.tier(tier);
            TierSummary {
                events: c.events.load(Ordering::Acquire),
                size_bytes: c.bytes.load(Ordering::Acquire),
            }
        };
        let (basic, health, debug) = (get(Tier::Basic), get(Tier::Health), get(Tier::Debug));
        StorageSummary {
            basic,
            health,
            debug,
            total_events: basic.events + health.events + debug.events,
        }
    }

    /// Events discarded because their tier's file kept failing (see
    /// [`crate::StorageConfig::max_pending_bytes`]).
    pub fn lost_events(&self) -> u64 {
        self.shared.tiers.iter().map(|c| c.lost.load(Ordering::Relaxed)).sum()
    }

    /// The directory the logs are written to (a `run-*` directory in [`crate::OpenMode::RunDir`]).
    pub fn run_dir(&self) -> &Path {
        &self.shared.run_dir
    }

    /// The tier file names.
    pub fn names(&self) -> &FileNames {
        &self.shared.names
    }

    /// Whether the storage was closed (by the logger's close, or dropped).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// A reader of this run, with the storage's file names.
    ///
    /// # Errors
    /// [`StorageError::MissingDirectory`] if the run directory was removed.
    pub fn reader(&self) -> Result<LogReader, StorageError> {
        LogReader::open_run(
            &self.shared.run_dir,
            ReaderConfig::default().names(self.shared.names.clone()),
        )
    }

    /// Streams `basic.log` as written so far.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_basic(&self) -> Result<EventIter, StorageError> {
        self.reader()?.read_basic()
    }

    /// Streams `health.log` as written so far.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_health(&self) -> Result<EventIter, StorageError> {
        self.reader()?.read_health()
    }

    /// Streams the debug tier as written so far.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_debug(&self) -> Result<EventIter, StorageError> {
        self.reader()?.read_debug()
    }

    /// Streams all tiers merged in timestamp order.
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read_all(&self) -> Result<MergedIter, StorageError> {
        self.reader()?.read_all()
    }

    /// The run's `fingerprint.json`, if a `train_start` event carried one.
    ///
    /// # Errors
    /// As [`LogReader::fingerprint`].
    pub fn fingerprint(&self) -> Result<Option<serde_json::Value>, StorageError> {
        self.reader()?.fingerprint()
    }
}
