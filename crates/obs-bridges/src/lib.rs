#![doc = include_str!("../README.md")]

// The shared helpers below serve both formats; with only one format enabled, part of each
// is unused.
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod crc;
mod error;
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod histogram;
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod json;
#[cfg(feature = "mlflow")]
pub mod mlflow;
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod names;
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod proto;
#[cfg_attr(not(all(feature = "tensorboard", feature = "wandb")), allow(dead_code))]
mod steps;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
#[cfg(feature = "wandb")]
pub mod wandb;

pub use error::BridgeError;
pub use histogram::Histogram;
#[cfg(feature = "mlflow")]
pub use mlflow::{MlflowBridge, MlflowBuilder, MlflowStats, RunOutcome, export_ranks};
pub use names::{MAX_COMPONENT_LEN, sanitize_component};
pub use steps::LAYER_STATS;
#[cfg(feature = "tensorboard")]
pub use tensorboard::{TensorBoardBridge, TensorBoardBuilder, TensorBoardStats};
#[cfg(feature = "wandb")]
pub use wandb::{FailureFlag, WandbBridge, WandbBuilder, WandbStats};
