#![doc = include_str!("../README.md")]

mod error;
mod follow;
mod lines;
mod names;
mod reader;

pub use error::StorageError;
pub use follow::{FollowFrom, FollowPosition, Follower};
pub use names::{FINGERPRINT_FILE, FileNames, RUN_DIR_PREFIX, list_runs};
pub use reader::{
    BadLine, BadLineKind, DEFAULT_MAX_LINE_BYTES, EventFilter, EventIter, LogReader,
    MAX_REPORTED_BAD_LINES, MergedIter, ReadStats, ReaderConfig,
};
