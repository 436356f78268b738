#![doc = include_str!("../README.md")]

mod canonical;
mod dataset;
mod diff;
mod error;
mod fingerprint;
mod git;
mod hex;
mod system;
mod text;
mod time;

pub use canonical::{ModelFingerprint, canonical_json, model_hash};
pub use dataset::{Dataset, DatasetFingerprint, DatasetSource, Element, HashProgress};
pub use diff::{FieldChange, FingerprintDiff};
pub use error::FingerprintError;
pub use fingerprint::{
    BUILD_TARGET, FingerprintBuilder, OBSERVATORY_VERSION, RUSTC_VERSION, SCHEMA_VERSION,
    TrainingFingerprint, Versions,
};
pub use git::{GitInfo, redact_remote_url};
pub use system::{GpuProbe, Hardware, OsInfo};
