#![doc = include_str!("../README.md")]

mod config;
mod engine;
mod epoch;
mod input;
mod loss;
mod rule;
mod warning;

pub use config::{ConfigError, WarningConfig};
pub use engine::{AutoHealthWarnings, HealthSummary};
pub use input::{ActivationStats, BatchInput};
pub use rule::{Rule, UnknownRule};
pub use warning::HealthWarning;
