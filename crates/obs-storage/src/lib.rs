#![doc = include_str!("../README.md")]

mod config;
mod error;
mod follow;
mod handle;
mod lines;
mod names;
mod reader;
mod storage;

pub use config::{
    DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_PENDING_BYTES, FsyncPolicy, OpenMode,
    StorageConfig,
};
pub use error::StorageError;
pub use follow::{FollowFrom, FollowPosition, Follower};
pub use handle::{StorageHandle, StorageSummary, TierSummary};
pub use names::{
    FINGERPRINT_FILE, FileNames, RUN_DIR_PREFIX, list_runs, parse_rank_dir, rank_dir_name,
    rank_dirs,
};
pub use reader::{
    BadLine, BadLineKind, DEFAULT_MAX_LINE_BYTES, EventFilter, EventIter, LogReader,
    MAX_REPORTED_BAD_LINES, MergedIter, ReadStats, ReaderConfig,
};
pub use storage::{APPEND_BOUNDARY_KEY, TieredStorage, is_append_boundary};

/// The position of `tier` in per-tier arrays: basic, health, debug.
pub(crate) const fn tier_index(tier: obs_core::Tier) -> usize {
    match tier {
        obs_core::Tier::Basic => 0,
        obs_core::Tier::Health => 1,
        obs_core::Tier::Debug => 2,
    }
}
